// Package lora tests two lora-bridge instances end to end: two simulated
// radios on pseudo-terminals, the bridges' real serial, journal and UDP
// peer code between them on loopback.
package lora

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/airtime"
	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/message"
	"github.com/meshnode/meshnode/lora-bridge/radio"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
)

type node struct {
	radio  *simradio.Radio
	b      *bridge.Bridge
	j      *journal.Journal
	cancel context.CancelFunc
	done   chan struct{}
}

func startNode(t *testing.T, dir string, r *simradio.Radio, listen netip.AddrPort, peer netip.AddrPort) *node {
	t.Helper()
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := airtime.Preset(8)
	cfg := bridge.Config{NodeID: 0x42, Modem: m, Budget: airtime.NewBudget(100, 100),
		TextInterval: 5 * time.Millisecond, AlertInterval: 5 * time.Millisecond, Grace: 5 * time.Millisecond,
		Retransmit: 100 * time.Millisecond, Listen: listen, Socket: filepath.Join(dir, "sock"),
		Peers: []bridge.Peer{{Name: "other", Addr: peer}}, Log: log.New(io.Discard, "", 0)}
	b := bridge.New(cfg, j)
	path := r.Path()
	l := radio.New(radio.Config{Open: func() (radio.Port, error) { return radio.OpenSerial(path) },
		WakeDelay: time.Millisecond, Reopen: 50 * time.Millisecond, Heartbeat: time.Second}, b)
	b.SetLink(l)
	// The previous instance's socket closes asynchronously.
	for try := 0; ; try++ {
		err := b.ListenPeers()
		if err == nil {
			break
		}
		if try == 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{radio: r, b: b, j: j, cancel: cancel, done: make(chan struct{})}
	go b.RunPeers(ctx)
	go b.ServeAPI(ctx)
	go b.Run(ctx)
	go func() { l.Run(ctx); close(n.done) }()
	return n
}

func (n *node) stop() { n.cancel(); <-n.done; n.j.Close() }

func TestRadioToRadioExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	ra, err := simradio.New(simradio.Config{NodeNum: 0xa, Link: filepath.Join(dir, "ttyA"), DebugText: true,
		TextInterval: 2 * time.Millisecond, AlertInterval: 2 * time.Millisecond})
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer ra.Close()
	rb, _ := simradio.New(simradio.Config{NodeNum: 0xb, Link: filepath.Join(dir, "ttyB"),
		TextInterval: 2 * time.Millisecond, AlertInterval: 2 * time.Millisecond})
	defer rb.Close()
	addrA := netip.MustParseAddrPort("127.0.0.1:47401")
	addrB := netip.MustParseAddrPort("127.0.0.1:47402")
	a := startNode(t, filepath.Join(dir, "a"), ra, addrA, addrB)
	defer a.stop()
	b := startNode(t, filepath.Join(dir, "b"), rb, addrB, addrA)

	const total = 200
	for i := 0; i < total; i++ {
		ra.Type(0x1000, fmt.Sprintf("msg %d", i))
		if i == total/2 {
			// Restart bridge B in the middle of the burst.
			b.stop()
			b = startNode(t, filepath.Join(dir, "b"), rb, addrB, addrA)
		}
	}
	defer func() { b.stop() }()
	// A long message crosses as numbered parts and arrives whole.
	long := ""
	for len(long) < 500 {
		long += "0123456789"
	}
	// Another bridge's parts, heard on radio A, are reassembled by A.
	for _, p := range message.Split(long, 232, 0x123456) {
		ra.Type(0x1001, p)
	}

	seen := map[string]int{}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		seen = map[string]int{}
		ids := map[uint32]bool{}
		for _, p := range rb.Air() {
			if ids[p.ID] {
				continue // the mesh dedupes a resend with the same id
			}
			ids[p.ID] = true
			seen[string(p.Decoded.Payload)]++
		}
		if len(seen) >= total+3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < total; i++ {
		want := fmt.Sprintf("!00001000: msg %d", i)
		if seen[want] != 1 {
			t.Fatalf("%q arrived %d times (of %d distinct payloads)", want, seen[want], len(seen))
		}
	}
	var parts int
	for p, n := range seen {
		if len(p) > 232 {
			t.Fatalf("payload of %d bytes on air", len(p))
		}
		if n != 1 {
			t.Fatalf("%q arrived %d times", p, n)
		}
		if len(p) > 0 && p[0] == '[' {
			parts++
		}
	}
	if parts != 3 {
		t.Fatalf("long message: %d parts on air, want 3", parts)
	}
	if st := rb.Stats(); st.ZeroHop != 0 || st.TooLarge != 0 {
		t.Fatalf("radio B stats %+v", st)
	}
}
