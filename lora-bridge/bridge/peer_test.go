package bridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/message"
)

// peerRig is a bridge whose one peer is a plain UDP socket in the test,
// on loopback: the real encoding and the real socket run, the clock is
// fake.
type peerRig struct {
	*rig
	remote *net.UDPConn
	raddr  netip.AddrPort
}

func newPeerRig(t *testing.T, jo journal.Options) *peerRig {
	t.Helper()
	remote, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Skipf("no loopback UDP: %v", err)
	}
	t.Cleanup(func() { remote.Close() })
	raddr := remote.LocalAddr().(*net.UDPAddr).AddrPort()
	r := newRig(t, Config{Peers: []Peer{{Name: "hub", Addr: raddr}}, Listen: netip.MustParseAddrPort("127.0.0.1:0"),
		Retransmit: time.Second}, jo)
	if err := r.b.ListenPeers(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.b.peers.conn.Close() })
	return &peerRig{rig: r, remote: remote, raddr: raddr}
}

// recv returns the datagrams the bridge sent to the remote within d.
func (p *peerRig) recv(t *testing.T, d time.Duration) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 4096)
	for {
		p.remote.SetReadDeadline(time.Now().Add(d))
		n, _, err := p.remote.ReadFromUDPAddrPort(buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
		d = 20 * time.Millisecond
	}
}

func dataDatagram(m *message.Message) []byte {
	return message.Append(append([]byte(magic), typData), m)
}

func ackDatagram(keys ...message.Key) []byte {
	b := append([]byte(magic), typAck)
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, k.Origin)
		b = binary.BigEndian.AppendUint32(b, k.ID)
	}
	return b
}

func TestPeerRetransmitUntilAcked(t *testing.T) {
	p := newPeerRig(t, journal.Options{})
	m := p.post(t, message.Text, "to the hub")
	now := p.clk.Now()
	p.b.peers.send(now)
	got := p.recv(t, time.Second)
	if len(got) != 1 || !bytes.Equal(got[0], dataDatagram(&m)) {
		t.Fatalf("datagrams %q", got)
	}
	// Retransmission after 1 s, then 2 s, 4 s: exponential backoff.
	for _, step := range []struct {
		at   time.Duration
		want int
	}{{999 * time.Millisecond, 0}, {time.Second, 1}, {2999 * time.Millisecond, 0}, {3 * time.Second, 1}, {7 * time.Second, 1}} {
		p.b.peers.send(now.Add(step.at))
		if n := len(p.recv(t, 50*time.Millisecond)); n != step.want {
			t.Fatalf("at +%v: %d datagrams, want %d", step.at, n, step.want)
		}
	}
	p.b.peers.handle(p.raddr, ackDatagram(m.Key))
	p.b.peers.send(now.Add(time.Hour))
	if n := len(p.recv(t, 50*time.Millisecond)); n != 0 {
		t.Fatalf("%d datagrams after the ack", n)
	}
	st := p.b.Snapshot()
	if ps := st.Peers[0]; ps.Sent != 1 || ps.Retrans != 3 || ps.Acked != 1 || ps.Unacked != 0 {
		t.Fatalf("peer status %+v", ps)
	}
	if st.Counters.ToPeers != 1 || len(p.j.Pending("peer:hub", 10)) != 0 {
		t.Fatalf("counters %+v; still pending for the peer", st.Counters)
	}
	// A late duplicate ack changes nothing.
	p.b.peers.handle(p.raddr, ackDatagram(m.Key))
	if c := p.b.Snapshot().Counters; c.ToPeers != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestPeerWindowBounded(t *testing.T) {
	p := newPeerRig(t, journal.Options{})
	for i := 0; i < window+10; i++ {
		p.post(t, message.Text, "m")
	}
	p.b.peers.send(p.clk.Now())
	if n := len(p.recv(t, time.Second)); n != window {
		t.Fatalf("%d datagrams in flight, want the window %d", n, window)
	}
}

func TestPeerReceiveAcksDurablyAndDedups(t *testing.T) {
	p := newPeerRig(t, journal.Options{})
	m := message.Message{Key: message.Key{Origin: 0x99, ID: 7}, Kind: message.Text, Time: 1, RadioID: 0x1234, Sender: "hub", Body: "from afar"}
	for i := 0; i < 3; i++ {
		p.b.peers.handle(p.raddr, dataDatagram(&m))
		got := p.recv(t, time.Second)
		if len(got) != 1 || !bytes.Equal(got[0], ackDatagram(m.Key)) {
			t.Fatalf("try %d: reply %q", i, got)
		}
	}
	pend := p.j.Pending(DestRadio, 10)
	if len(pend) != 1 || pend[0].Body != "from afar" {
		t.Fatalf("pending for the radio %+v", pend)
	}
	if len(p.j.Pending("peer:hub", 10)) != 0 {
		t.Fatal("a peer's message was queued back to peers")
	}
	if st := p.j.Stats(); st.Syncs == 0 || st.Duplicates != 2 {
		t.Fatalf("journal %+v: ack before sync, or duplicates not counted", st)
	}
	if c := p.b.Snapshot().Counters; c.FromPeers != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestPeerBadInput(t *testing.T) {
	p := newPeerRig(t, journal.Options{})
	good := message.Message{Key: message.Key{Origin: 1, ID: 2}, Kind: message.Text, Body: "ok"}
	enc := dataDatagram(&good)
	long := message.Message{Key: message.Key{Origin: 1, ID: 3}, Kind: message.Text, Body: strings.Repeat("x", message.MaxBody+1)}
	badKind := good
	badKind.Kind = 9
	lenOver := append([]byte(nil), enc...)
	binary.BigEndian.PutUint16(lenOver[len(magic)+1+22+2:], 0xffff) // body length past the end
	cases := map[string][]byte{
		"empty":          {},
		"magic only":     []byte(magic),
		"wrong magic":    append([]byte("MLB2"), enc[4:]...),
		"garbage":        []byte("\x00\xff\x94\xc3 garbage garbage"),
		"truncated":      enc[:len(enc)-1],
		"torn header":    enc[:len(magic)+10],
		"length over":    lenOver,
		"body over max":  dataDatagram(&long),
		"unknown kind":   dataDatagram(&badKind),
		"trailing bytes": append(append([]byte(nil), enc...), 0),
		"unknown type":   append([]byte(magic), 9, 1, 2),
		"short ack":      append([]byte(magic), typAck, 1, 2, 3),
	}
	for name, d := range cases {
		p.b.peers.handle(p.raddr, d)
		if got := p.recv(t, 20*time.Millisecond); len(got) != 0 {
			t.Errorf("%s: answered %q", name, got)
		}
	}
	// A datagram from an address that is not a configured peer.
	p.b.peers.handle(netip.MustParseAddrPort("127.0.0.1:9"), enc)
	if c := p.b.Snapshot().Counters; c.BadInput != uint64(len(cases)+1) || c.FromPeers != 0 {
		t.Fatalf("counters %+v, want %d bad inputs and nothing accepted", c, len(cases)+1)
	}
	if n := len(p.j.Pending(DestRadio, 10)); n != 0 {
		t.Fatalf("%d messages accepted from bad input", n)
	}
	if !strings.Contains(p.log.String(), "bad input") {
		t.Fatalf("not logged: %q", p.log.String())
	}
	// Invalid UTF-8 inside an otherwise valid message is sanitised.
	u := message.Message{Key: message.Key{Origin: 1, ID: 4}, Kind: message.Text, Body: "a\xffb\x1b"}
	p.b.peers.handle(p.raddr, dataDatagram(&u))
	if pend := p.j.Pending(DestRadio, 10); len(pend) != 1 || pend[0].Body != "a\ufffdb" {
		t.Fatalf("pending %+v", pend)
	}
}

func TestPeerJournalFullNotAckedThenRetransmitted(t *testing.T) {
	p := newPeerRig(t, journal.Options{MaxPending: 200})
	var keys []message.Key
	for i := 0; ; i++ {
		m := message.Message{Key: message.Key{Origin: 0x99, ID: uint32(i + 1)}, Kind: message.Text, Body: "a message from a peer bridge"}
		p.b.peers.handle(p.raddr, dataDatagram(&m))
		if len(p.recv(t, 200*time.Millisecond)) == 0 {
			// Full: not acknowledged, so the peer keeps it.
			keys = append(keys, m.Key)
			break
		}
		if i > 100 {
			t.Fatal("journal bound never reached")
		}
	}
	c := p.b.Snapshot().Counters
	if c.JournalErrors != 1 {
		t.Fatalf("counters %+v", c)
	}
	// The radio drains the journal; the peer's retransmission is then
	// accepted and acknowledged.
	for _, m := range p.j.Pending(DestRadio, 100) {
		if err := p.j.Done(m.Key, DestRadio); err != nil {
			t.Fatal(err)
		}
	}
	m := message.Message{Key: keys[0], Kind: message.Text, Body: "a message from a peer bridge"}
	p.b.peers.handle(p.raddr, dataDatagram(&m))
	if got := p.recv(t, time.Second); len(got) != 1 || !bytes.Equal(got[0], ackDatagram(m.Key)) {
		t.Fatalf("retransmission answered %q", got)
	}
}

// TestPeersOverUDP runs two bridges' peer loops against each other.
func TestPeersOverUDP(t *testing.T) {
	a := newRig(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), NodeID: 0xa}, journal.Options{})
	b := newRig(t, Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), NodeID: 0xb}, journal.Options{})
	// Real time here: the loops' tickers drive the exchange.
	a.b.cfg.Now, b.b.cfg.Now = time.Now, time.Now
	if err := b.b.ListenPeers(); err != nil {
		t.Fatal(err)
	}
	a.b.cfg.Peers = []Peer{{Name: "b", Addr: b.b.PeerAddr()}}
	if err := a.b.ListenPeers(); err != nil {
		t.Fatal(err)
	}
	b.b.cfg.Peers = []Peer{{Name: "a", Addr: a.b.PeerAddr()}}
	b.b.peers.byIP[a.b.PeerAddr()] = &peerState{Peer: b.b.cfg.Peers[0], unacked: map[message.Key]*outMsg{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.b.RunPeers(ctx)
	go b.b.RunPeers(ctx)
	m := a.post(t, message.Text, "over udp")
	end := time.Now().Add(5 * time.Second)
	for len(b.j.Pending(DestRadio, 10)) == 0 || len(a.j.Pending("peer:b", 10)) != 0 {
		if time.Now().After(end) {
			t.Fatalf("not delivered and acked: b pending %v, a pending %v", b.j.Pending(DestRadio, 10), a.j.Pending("peer:b", 10))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := b.j.Pending(DestRadio, 10); len(got) != 1 || got[0].Key != m.Key {
		t.Fatalf("b got %+v", got)
	}
	s, _ := json.Marshal(a.b.Snapshot().Peers)
	if !strings.Contains(string(s), `"acked":1`) {
		t.Fatalf("a's peer status %s", s)
	}
}
