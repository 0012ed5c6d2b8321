package radio

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/meshpb"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
)

type events struct {
	mu        sync.Mutex
	connected int
	info      Info
	texts     []string
	qs        []meshpb.QueueStatus
	acks      map[uint32]int32
}

func (e *events) Connected(i Info)   { e.mu.Lock(); e.connected++; e.info = i; e.mu.Unlock() }
func (e *events) Disconnected(error) {}
func (e *events) Packet(p *meshpb.MeshPacket) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch p.Decoded.Portnum {
	case meshpb.PortText:
		e.texts = append(e.texts, string(p.Decoded.Payload))
	case meshpb.PortRouting:
		r, _ := meshpb.UnmarshalRouting(p.Decoded.Payload)
		if e.acks == nil {
			e.acks = map[uint32]int32{}
		}
		e.acks[p.Decoded.RequestID] = r.ErrorReason
	}
}
func (e *events) QueueStatus(q meshpb.QueueStatus) {
	e.mu.Lock()
	e.qs = append(e.qs, q)
	e.mu.Unlock()
}
func (e *events) Notification(meshpb.ClientNotification) {}

func (e *events) count() int { e.mu.Lock(); defer e.mu.Unlock(); return e.connected }

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func start(t *testing.T, rcfg simradio.Config, lcfg Config) (*simradio.Radio, *Link, *events) {
	t.Helper()
	rcfg.Link = filepath.Join(t.TempDir(), "ttyUSB0")
	r, err := simradio.New(rcfg)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(r.Close)
	ev := &events{}
	lcfg.Open = func() (Port, error) { return OpenSerial(rcfg.Link) }
	if lcfg.WakeDelay == 0 {
		lcfg.WakeDelay = time.Millisecond
	}
	if lcfg.Reopen == 0 {
		lcfg.Reopen = 50 * time.Millisecond
	}
	l := New(lcfg, ev)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, l, ev
}

func TestHandshakeReceiveSend(t *testing.T) {
	r, l, ev := start(t, simradio.Config{NodeNum: 0xabc, Region: 3, Preset: 4, DebugText: true}, Config{})
	r.Type(0x1234, "hello \xff from the mesh")
	waitFor(t, "handshake", 3*time.Second, func() bool { return ev.count() == 1 })
	ev.mu.Lock()
	info := ev.info
	ev.mu.Unlock()
	if info.NodeNum != 0xabc || !info.HaveLoRa || info.LoRa.Region != 3 || info.LoRa.ModemPreset != 4 {
		t.Fatalf("info %+v", info)
	}
	waitFor(t, "text", 3*time.Second, func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.texts) == 1 })
	if ev.texts[0] != "hello \xff from the mesh" {
		t.Fatalf("%q", ev.texts[0])
	}
	p := &meshpb.MeshPacket{To: meshpb.Broadcast, ID: 0x77, HopLimit: 3, WantAck: true, HasDecoded: true,
		Decoded: meshpb.Data{Portnum: meshpb.PortText, Payload: []byte("out")}}
	if err := l.Send(p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "implicit ack", 3*time.Second, func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); _, ok := ev.acks[0x77]; return ok })
	if air := r.Air(); len(air) != 1 || string(air[0].Decoded.Payload) != "out" || air[0].HopLimit != 3 {
		t.Fatalf("air %+v", air)
	}
	if s := l.Stats(); s.BadFrames != 0 || s.TextBytes == 0 {
		t.Fatalf("stats %+v (debug text must be seen and skipped)", s)
	}
}

func TestRebootRehandshake(t *testing.T) {
	r, _, ev := start(t, simradio.Config{}, Config{})
	waitFor(t, "handshake", 3*time.Second, func() bool { return ev.count() == 1 })
	r.Reboot()
	waitFor(t, "second handshake", 3*time.Second, func() bool { return ev.count() == 2 })
	r.Type(1, "after reboot")
	waitFor(t, "text", 3*time.Second, func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.texts) == 1 })
}

func TestIdleTimeoutRehandshake(t *testing.T) {
	// The radio drops the client after 200 ms without ToRadio; the link's
	// heartbeat is too slow, so only the silence timeout saves it.
	r, _, ev := start(t, simradio.Config{IdleTimeout: 200 * time.Millisecond},
		Config{Heartbeat: 10 * time.Second, Silence: 400 * time.Millisecond})
	waitFor(t, "handshake", 3*time.Second, func() bool { return ev.count() == 1 })
	time.Sleep(300 * time.Millisecond)
	if r.Attached() {
		t.Fatal("simulated radio did not time the client out")
	}
	r.Type(1, "while detached")
	waitFor(t, "re-handshake after silence", 3*time.Second, func() bool { return ev.count() >= 2 })
	waitFor(t, "text", 3*time.Second, func() bool { ev.mu.Lock(); defer ev.mu.Unlock(); return len(ev.texts) == 1 })
}

func TestHeartbeatKeepsSessionAlive(t *testing.T) {
	// Idle timeout 8 heartbeats: 3 was flaky on 2 busy cores (a late
	// heartbeat tick is not a bug).
	r, _, ev := start(t, simradio.Config{IdleTimeout: 800 * time.Millisecond},
		Config{Heartbeat: 100 * time.Millisecond, Silence: 3 * time.Second})
	waitFor(t, "handshake", 3*time.Second, func() bool { return ev.count() == 1 })
	time.Sleep(1600 * time.Millisecond)
	if !r.Attached() || ev.count() != 1 {
		t.Fatalf("attached %v, handshakes %d", r.Attached(), ev.count())
	}
}

func TestUnplugReplug(t *testing.T) {
	r, _, ev := start(t, simradio.Config{}, Config{})
	waitFor(t, "handshake", 3*time.Second, func() bool { return ev.count() == 1 })
	r.Unplug()
	time.Sleep(300 * time.Millisecond)
	if err := r.Replug(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, "reconnect", 5*time.Second, func() bool { return ev.count() == 2 })
	t.Logf("reconnected %v after replug", time.Since(t0))
}
