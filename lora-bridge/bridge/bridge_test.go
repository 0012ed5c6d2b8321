package bridge

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/airtime"
	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/meshpb"
	"github.com/meshnode/meshnode/lora-bridge/message"
	"github.com/meshnode/meshnode/lora-bridge/radio"
)

// clock is a fake clock: time moves only when a test says so.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// fakeRadio records what the bridge sends.
type fakeRadio struct {
	mu   sync.Mutex
	sent []meshpb.MeshPacket
	err  error
}

func (f *fakeRadio) Send(p *meshpb.MeshPacket) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.sent = append(f.sent, p.Clone())
	return nil
}
func (f *fakeRadio) Stats() radio.Stats { return radio.Stats{Connected: true} }
func (f *fakeRadio) take() []meshpb.MeshPacket {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type rig struct {
	b     *Bridge
	j     *journal.Journal
	clk   *clock
	radio *fakeRadio
	log   *syncBuf
}

const ownNode = 0x5eed0001

func newRig(t *testing.T, cfg Config, jo journal.Options) *rig {
	t.Helper()
	j, err := journal.Open(t.TempDir(), jo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	r := &rig{j: j, clk: &clock{t: time.Unix(1_800_000_000, 0)}, radio: &fakeRadio{}, log: &syncBuf{}}
	if cfg.NodeID == 0 {
		cfg.NodeID = 0x42
	}
	if cfg.TextInterval == 0 {
		cfg.TextInterval = 2 * time.Second
	}
	if cfg.AlertInterval == 0 {
		cfg.AlertInterval = 10 * time.Second
	}
	if cfg.Modem.SF == 0 {
		cfg.Modem, _ = airtime.Preset(0)
	}
	cfg.Now = r.clk.Now
	cfg.Log = log.New(r.log, "", 0)
	r.b = New(cfg, j)
	r.b.SetLink(r.radio)
	r.b.Connected(radio.Info{NodeNum: ownNode})
	return r
}

// step runs the sender at the fake clock's time.
func (r *rig) step() { r.b.step(r.clk.Now()) }

// acked makes the radio answer p like the firmware: QueueStatus res 0.
func (r *rig) queued(p meshpb.MeshPacket) {
	r.b.QueueStatus(meshpb.QueueStatus{Res: 0, Free: 15, MaxLen: 16, MeshPacketID: p.ID})
}

func (r *rig) nak(p meshpb.MeshPacket, reason int32) {
	r.b.Packet(&meshpb.MeshPacket{From: ownNode, To: ownNode, ID: 7, HasDecoded: true,
		Decoded: meshpb.Data{Portnum: meshpb.PortRouting, Payload: meshpb.AppendRouting(nil, reason), RequestID: p.ID}})
}

func (r *rig) post(t *testing.T, kind uint8, text string) message.Message {
	t.Helper()
	m, _, err := r.b.Post(kind, "", text, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSendRulesPacingAndGrace(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	m1 := r.post(t, message.Text, "first")
	r.post(t, message.Text, "second")
	r.step()
	s := r.radio.take()
	if len(s) != 1 {
		t.Fatalf("sent %d packets, want 1", len(s))
	}
	p := s[0]
	if p.ID == 0 || p.ID != m1.RadioID || p.HopLimit != 3 || !p.WantAck || p.To != meshpb.Broadcast ||
		p.Decoded.Portnum != meshpb.PortText || string(p.Decoded.Payload) != "first" {
		t.Fatalf("packet %+v", p)
	}
	r.step()
	if n := len(r.radio.take()); n != 0 {
		t.Fatalf("resent before any answer: %d", n)
	}
	r.queued(p)
	r.clk.Add(999 * time.Millisecond)
	r.step()
	if n := len(r.radio.take()); n != 0 || r.j.Stats().Delivered != 0 {
		t.Fatalf("done before the NAK grace (1 s) was over")
	}
	r.clk.Add(time.Millisecond)
	r.step() // first is done; second waits for the 2 s text interval
	if n := len(r.radio.take()); n != 0 || r.j.Stats().Delivered != 1 {
		t.Fatalf("sent %d, delivered %d; want 0 and 1", n, r.j.Stats().Delivered)
	}
	r.clk.Add(time.Second)
	r.step()
	s = r.radio.take()
	if len(s) != 1 || string(s[0].Decoded.Payload) != "second" || s[0].ID == p.ID {
		t.Fatalf("second message: %+v", s)
	}
}

func TestAlertPriorityAndInterval(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	r.post(t, message.Alert, "FIRE")
	r.post(t, message.Alert, "FLOOD")
	r.step()
	s := r.radio.take()
	if len(s) != 1 || s[0].Decoded.Portnum != meshpb.PortAlert || s[0].Priority != meshpb.PriorityAlert {
		t.Fatalf("alert packet %+v", s)
	}
	r.queued(s[0])
	r.clk.Add(9 * time.Second)
	r.step()
	if n := len(r.radio.take()); n != 0 {
		t.Fatal("second alert within 10 s (the firmware drops it silently)")
	}
	r.clk.Add(time.Second)
	r.step()
	if s := r.radio.take(); len(s) != 1 || string(s[0].Decoded.Payload) != "FLOOD" {
		t.Fatalf("second alert: %+v", s)
	}
}

func TestRateLimitNAKResendsSameID(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	r.post(t, message.Text, "hello")
	r.step()
	p := r.radio.take()[0]
	r.queued(p)
	r.nak(p, meshpb.ErrRateLimit)
	r.clk.Add(500 * time.Millisecond)
	r.step() // NAK seen: wait a full interval again
	r.clk.Add(1999 * time.Millisecond)
	r.step()
	if n := len(r.radio.take()); n != 0 {
		t.Fatal("resent within the text interval after a rate-limit NAK")
	}
	r.clk.Add(time.Millisecond)
	r.step()
	s := r.radio.take()
	if len(s) != 1 || s[0].ID != p.ID {
		t.Fatalf("resend %+v, want same id %08x", s, p.ID)
	}
	if c := r.b.Snapshot().Counters; c.NAKs != 1 || c.ToRadio != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestTooLargeNAKDropsAndMovesOn(t *testing.T) {
	r := newRig(t, Config{TextInterval: time.Millisecond}, journal.Options{})
	r.post(t, message.Text, "one")
	r.post(t, message.Text, "two")
	r.step()
	p := r.radio.take()[0]
	r.queued(p)
	r.nak(p, meshpb.ErrTooLarge)
	r.clk.Add(10 * time.Millisecond)
	r.step()
	if s := r.radio.take(); len(s) != 1 || string(s[0].Decoded.Payload) != "two" {
		t.Fatalf("after TOO_LARGE: %+v", s)
	}
	if c := r.b.Snapshot().Counters; c.Dropped != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestNoQueueStatusResends(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	r.post(t, message.Text, "lost")
	r.step()
	p := r.radio.take()[0]
	r.clk.Add(10 * time.Second)
	r.step()
	if n := len(r.radio.take()); n != 0 {
		t.Fatal("resent before 10 s without QueueStatus")
	}
	r.clk.Add(time.Millisecond)
	r.step()
	if s := r.radio.take(); len(s) != 1 || s[0].ID != p.ID {
		t.Fatalf("resend %+v", s)
	}
}

func TestQueueFullBlocks(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	r.b.QueueStatus(meshpb.QueueStatus{Free: 0, MaxLen: 16})
	r.post(t, message.Text, "wait")
	r.step()
	if n := len(r.radio.take()); n != 0 {
		t.Fatal("sent while the radio's queue is full")
	}
	r.b.QueueStatus(meshpb.QueueStatus{Free: 1, MaxLen: 16})
	r.step()
	if n := len(r.radio.take()); n != 1 {
		t.Fatal("not sent once the queue had room")
	}
}

func TestAirtimeBudgetNeverExceeded(t *testing.T) {
	m, _ := airtime.Preset(0)                    // LONG_FAST: ~0.5 s per short text
	budget := airtime.NewBudget(100.0/3600, 100) // 1 s per rolling hour
	r := newRig(t, Config{Modem: m, Budget: budget, TextInterval: time.Millisecond, Grace: time.Millisecond}, journal.Options{})
	for i := 0; i < 5; i++ {
		r.post(t, message.Text, fmt.Sprintf("msg %d", i))
	}
	sent := 0
	for i := 0; i < 100; i++ {
		r.step()
		for _, p := range r.radio.take() {
			sent++
			r.queued(p)
		}
		r.clk.Add(time.Second)
		if u := budget.Used(r.clk.Now()); u > budget.Limit() {
			t.Fatalf("airtime %v over the budget %v", u, budget.Limit())
		}
	}
	if sent == 0 || sent >= 5 {
		t.Fatalf("sent %d of 5 within 100 s on a 1 s/h budget", sent)
	}
	if r.b.Snapshot().Counters.BudgetWaits == 0 {
		t.Fatal("budget waits not counted")
	}
	// An hour later the budget has room again.
	r.clk.Add(time.Hour)
	r.step()
	if n := len(r.radio.take()); n != 1 {
		t.Fatalf("after an hour: sent %d", n)
	}
}

func TestLongTextSplitIntoParts(t *testing.T) {
	r := newRig(t, Config{TextInterval: time.Millisecond, Grace: time.Millisecond}, journal.Options{})
	long := strings.Repeat("äbcdefghij", 50) // 550 bytes, multi-byte runes
	r.post(t, message.Text, long)
	var got []meshpb.MeshPacket
	for i := 0; i < 10; i++ {
		r.step()
		for _, p := range r.radio.take() {
			got = append(got, p)
			r.queued(p)
		}
		r.clk.Add(10 * time.Millisecond)
	}
	if len(got) != 3 {
		t.Fatalf("%d parts on air, want 3", len(got))
	}
	ids := map[uint32]bool{}
	var body string
	for i, p := range got {
		if len(p.Decoded.Payload) > 232 {
			t.Fatalf("part %d: %d bytes", i, len(p.Decoded.Payload))
		}
		ids[p.ID] = true
		pa, ok := message.ParsePart(string(p.Decoded.Payload))
		if !ok || pa.I != i+1 || pa.N != 3 {
			t.Fatalf("part %d: %q", i, p.Decoded.Payload)
		}
		body += pa.Body
	}
	if len(ids) != 3 || ids[0] || body != long {
		t.Fatalf("ids %v; reassembled %d bytes", ids, len(body))
	}
	if r.j.Stats().Pending != 0 {
		t.Fatal("message still pending after its last part")
	}
}

// --- from the radio ---

func textPacket(from, id uint32, text string) *meshpb.MeshPacket {
	return &meshpb.MeshPacket{From: from, To: meshpb.Broadcast, ID: id, HopLimit: 2, HasDecoded: true,
		Decoded: meshpb.Data{Portnum: meshpb.PortText, Payload: []byte(text)}}
}

func withPeer(cfg Config) Config {
	cfg.Peers = []Peer{{Name: "hub"}}
	return cfg
}

func TestRadioDedupByOriginAndID(t *testing.T) {
	r := newRig(t, withPeer(Config{}), journal.Options{})
	r.b.Packet(textPacket(0x1000, 0xabc, "hi"))
	r.b.Packet(textPacket(0x1000, 0xabc, "hi"))     // rebroadcast heard again
	r.b.Packet(textPacket(0x1001, 0xabc, "hi too")) // same id, other origin
	r.b.Packet(textPacket(ownNode, 0xdef, "mine"))  // our own: never back over IP
	pend := r.j.Pending("peer:hub", 10)
	if len(pend) != 2 || pend[0].Body != "hi" || pend[1].Body != "hi too" || pend[0].Sender != "!00001000" {
		t.Fatalf("pending %+v", pend)
	}
	if c := r.b.Snapshot().Counters; c.FromRadio != 2 {
		t.Fatalf("counters %+v", c)
	}
	if st := r.j.Stats(); st.Duplicates != 1 {
		t.Fatalf("journal %+v", st)
	}
	if len(r.j.Pending(DestRadio, 10)) != 0 {
		t.Fatal("a message from the radio was queued back to the radio")
	}
}

func TestRadioBadInput(t *testing.T) {
	r := newRig(t, withPeer(Config{}), journal.Options{})
	r.b.Packet(&meshpb.MeshPacket{From: 9, ID: 1, HasDecoded: true, Decoded: meshpb.Data{Portnum: 3, Payload: []byte{1, 2}}})
	r.b.Packet(&meshpb.MeshPacket{From: 9, ID: 2, HasDecoded: true, Decoded: meshpb.Data{Portnum: 999, Payload: []byte("x")}})
	r.b.Packet(&meshpb.MeshPacket{From: 9, ID: 3}) // encrypted, not for us
	r.b.Packet(&meshpb.MeshPacket{From: 9, ID: 4, HasDecoded: true, Decoded: meshpb.Data{Portnum: meshpb.PortRouting,
		Payload: []byte{0xff, 0xff}}}) // invalid protobuf
	r.b.Packet(&meshpb.MeshPacket{From: 9, ID: 5, ViaMQTT: true, HasDecoded: true, Decoded: meshpb.Data{Portnum: meshpb.PortText, Payload: []byte("mqtt")}})
	r.b.Packet(textPacket(9, 6, "bad \xff\xfe utf8 \x1b[31m"))
	pend := r.j.Pending("peer:hub", 10)
	if len(pend) != 1 || pend[0].Body != "bad \ufffd\ufffd utf8 [31m" {
		t.Fatalf("pending %+v", pend)
	}
	c := r.b.Snapshot().Counters
	if c.Ignored != 2 || c.BadInput != 1 || c.FromRadio != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestReassembly(t *testing.T) {
	r := newRig(t, withPeer(Config{}), journal.Options{})
	long := strings.Repeat("0123456789", 60)
	parts := message.Split(long, 232, 0xabcdef)
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	// Out of order, one part heard twice, another sender's text between.
	r.b.Packet(textPacket(0x77, 10, parts[2]))
	r.b.Packet(textPacket(0x77, 11, parts[0]))
	r.b.Packet(textPacket(0x88, 99, "unrelated"))
	r.b.Packet(textPacket(0x77, 11, parts[0]))
	if n := len(r.j.Pending("peer:hub", 10)); n != 1 {
		t.Fatalf("%d pending before the last part, want 1 (the unrelated text)", n)
	}
	r.b.Packet(textPacket(0x77, 12, parts[1]))
	pend := r.j.Pending("peer:hub", 10)
	if len(pend) != 2 || pend[1].Body != long {
		t.Fatalf("pending %+v", pend)
	}
	// The same parts again (a rebroadcast) are the same message.
	for i, p := range parts {
		r.b.Packet(textPacket(0x77, uint32(20+i), p))
	}
	if n := len(r.j.Pending("peer:hub", 10)); n != 2 {
		t.Fatalf("%d pending after the parts came again", n)
	}
	// A part whose siblings never come is forgotten after 10 minutes.
	r.b.Packet(textPacket(0x99, 1, message.Split(long, 232, 0x111111)[0]))
	r.clk.Add(11 * time.Minute)
	r.b.Packet(textPacket(0x98, 1, message.Split(long, 232, 0x222222)[0]))
	r.b.mu.Lock()
	_, stale := r.b.parts[partKey{0x99, 0x111111}]
	n := len(r.b.parts)
	r.b.mu.Unlock()
	if stale || n != 1 {
		t.Fatalf("%d partial messages kept after 11 min (stale one kept: %v)", n, stale)
	}
}

func TestReassemblyBounded(t *testing.T) {
	r := newRig(t, withPeer(Config{}), journal.Options{})
	long := strings.Repeat("x", 300)
	for i := 0; i < 500; i++ {
		r.b.Packet(textPacket(uint32(1000+i), 1, message.Split(long, 232, uint32(i))[0]))
	}
	r.b.mu.Lock()
	n := len(r.b.parts)
	r.b.mu.Unlock()
	if n > 64 {
		t.Fatalf("%d partial messages kept, want at most 64", n)
	}
}

// --- alerts ---

func signedAlert(t *testing.T, priv ed25519.PrivateKey, text string) string {
	t.Helper()
	p, err := alert.Sign(priv, text, time.Unix(1_800_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAlertsVerifiedBeforeCrossingIP(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, forger, _ := ed25519.GenerateKey(nil)
	r := newRig(t, withPeer(Config{AlertKeys: []ed25519.PublicKey{pub}}), journal.Options{})
	good := signedAlert(t, priv, "evacuate the valley")
	forged := signedAlert(t, forger, "evacuate the hill")
	tampered := strings.Replace(good, "valley", "vallex", 1)
	for i, s := range []string{good, forged, tampered, "unsigned"} {
		r.b.Packet(&meshpb.MeshPacket{From: 0x77, ID: uint32(100 + i), HasDecoded: true,
			Decoded: meshpb.Data{Portnum: meshpb.PortAlert, Payload: []byte(s)}})
	}
	pend := r.j.Pending("peer:hub", 10)
	if len(pend) != 1 || pend[0].Body != good || !pend[0].Verified || pend[0].Kind != message.Alert {
		t.Fatalf("alerts for peers: %+v", pend)
	}
	if c := r.b.Snapshot().Counters; c.Unverified != 3 {
		t.Fatalf("counters %+v", c)
	}
	// The API says whether a posted alert verified.
	rep := r.b.Handle(Request{Method: "alert", Text: forged})
	if rep.Error != "" || rep.Verified == nil || *rep.Verified {
		t.Fatalf("forged alert via API: %+v", rep)
	}
	rep = r.b.Handle(Request{Method: "alert", Text: signedAlert(t, priv, "all clear")})
	if rep.Verified == nil || !*rep.Verified {
		t.Fatalf("signed alert via API: %+v", rep)
	}
}

// --- full journal ---

func TestJournalFullIsCountedNotLost(t *testing.T) {
	r := newRig(t, withPeer(Config{TextInterval: time.Millisecond, Grace: time.Millisecond}), journal.Options{MaxPending: 400})
	var accepted []message.Message
	var refused int
	for i := 0; i < 20; i++ {
		m, _, err := r.b.Post(message.Text, "", fmt.Sprintf("message %d with some body text", i), 0)
		switch {
		case err == nil:
			accepted = append(accepted, m)
		case errors.Is(err, journal.ErrFull):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if refused == 0 || len(accepted) == 0 {
		t.Fatalf("accepted %d, refused %d: the bound was not reached", len(accepted), refused)
	}
	// From the radio too: counted and logged, no crash.
	r.b.Packet(textPacket(0x55, 1, "heard while full"))
	c := r.b.Snapshot().Counters
	if c.JournalErrors != uint64(refused+1) {
		t.Fatalf("counters %+v, refused %d", c, refused)
	}
	if !strings.Contains(r.log.String(), "journal: message") {
		t.Fatalf("not logged: %q", r.log.String())
	}
	// The API reports the refusal to the caller.
	if rep := r.b.Handle(Request{Method: "send", Text: "one more"}); !strings.Contains(rep.Error, "not accepted") {
		t.Fatalf("reply %+v", rep)
	}
	// Every accepted message still goes out on the radio.
	var onAir []string
	for i := 0; i < 100 && len(onAir) < len(accepted); i++ {
		r.step()
		for _, p := range r.radio.take() {
			onAir = append(onAir, string(p.Decoded.Payload))
			r.queued(p)
		}
		r.clk.Add(5 * time.Millisecond)
	}
	if len(onAir) != len(accepted) {
		t.Fatalf("%d of %d accepted messages went on air", len(onAir), len(accepted))
	}
	for i, m := range accepted {
		if onAir[i] != m.Body {
			t.Fatalf("on air %q, want %q", onAir[i], m.Body)
		}
	}
}
