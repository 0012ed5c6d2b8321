package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/message"
)

// Peer protocol over UDP (inside the authenticated overlay): datagrams
// "MLB1" + type + body. DATA carries one encoded message; ACK lists the
// keys the receiver has journaled (durably), so the sender can stop
// retransmitting. Duplicates are acknowledged again: the journal dedupes.
const (
	magic   = "MLB1"
	typData = 1
	typAck  = 2
	// window bounds unacknowledged messages per peer.
	window = 64
)

type peerState struct {
	Peer
	unacked map[message.Key]*outMsg
	sent    uint64
	retrans uint64
	acked   uint64
	lastAck time.Time
}

type outMsg struct {
	m    message.Message
	next time.Time
	rto  time.Duration
}

type peers struct {
	b    *Bridge
	conn *net.UDPConn
	mu   sync.Mutex
	byIP map[netip.AddrPort]*peerState
	list []*peerState
	wake chan struct{}
}

// PeerStatus is one peer's line in the status.
type PeerStatus struct {
	Name    string `json:"name"`
	Addr    string `json:"address"`
	Unacked int    `json:"unacked"`
	Sent    uint64 `json:"sent"`
	Retrans uint64 `json:"retransmitted"`
	Acked   uint64 `json:"acked"`
	LastAck int64  `json:"last_ack,omitempty"`
}

func (p *peers) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peers) status() []PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []PeerStatus
	for _, ps := range p.list {
		s := PeerStatus{Name: ps.Name, Addr: ps.Addr.String(), Unacked: len(ps.unacked), Sent: ps.sent, Retrans: ps.retrans, Acked: ps.acked}
		if !ps.lastAck.IsZero() {
			s.LastAck = ps.lastAck.Unix()
		}
		out = append(out, s)
	}
	return out
}

// ListenPeers opens the UDP socket; RunPeers serves it.
func (b *Bridge) ListenPeers() error {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(b.cfg.Listen))
	if err != nil {
		return err
	}
	b.setDests()
	p := &peers{b: b, conn: c, byIP: map[netip.AddrPort]*peerState{}, wake: make(chan struct{}, 1)}
	for _, pe := range b.cfg.Peers {
		ps := &peerState{Peer: pe, unacked: map[message.Key]*outMsg{}}
		p.byIP[netip.AddrPortFrom(pe.Addr.Addr().Unmap(), pe.Addr.Port())] = ps
		p.list = append(p.list, ps)
	}
	b.peers = p
	return nil
}

// PeerAddr is the bound UDP address (for tests with port 0).
func (b *Bridge) PeerAddr() netip.AddrPort {
	return b.peers.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// RunPeers receives and sends until ctx ends.
func (b *Bridge) RunPeers(ctx context.Context) {
	p := b.peers
	go func() { <-ctx.Done(); p.conn.Close() }()
	go p.receive(ctx)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.wake:
		}
		p.send(p.b.now())
	}
}

func (p *peers) send(now time.Time) {
	for _, ps := range p.list {
		dest := "peer:" + ps.Name
		if len(ps.unacked) < window {
			for _, m := range p.b.j.Pending(dest, window) {
				p.mu.Lock()
				if _, ok := ps.unacked[m.Key]; !ok && len(ps.unacked) < window {
					ps.unacked[m.Key] = &outMsg{m: m, rto: p.b.cfg.Retransmit}
				}
				p.mu.Unlock()
			}
		}
		p.mu.Lock()
		var due []*outMsg
		for _, o := range ps.unacked {
			if !now.Before(o.next) {
				due = append(due, o)
			}
		}
		p.mu.Unlock()
		for _, o := range due {
			buf := append([]byte(magic), typData)
			buf = message.Append(buf, &o.m)
			if _, err := p.conn.WriteToUDPAddrPort(buf, ps.Addr); err != nil {
				continue
			}
			p.mu.Lock()
			if o.next.IsZero() {
				ps.sent++
			} else {
				ps.retrans++
				o.rto = min(o.rto*2, 30*time.Second)
			}
			o.next = now.Add(o.rto)
			p.mu.Unlock()
		}
	}
}

func (p *peers) receive(ctx context.Context) {
	buf := make([]byte, 4096)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		p.handle(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), buf[:n])
	}
}

// handle serves one datagram from.
func (p *peers) handle(from netip.AddrPort, d []byte) {
	p.mu.Lock()
	ps := p.byIP[from]
	p.mu.Unlock()
	if ps == nil {
		// Not a configured peer: the overlay authenticates peers, the
		// address list is the only authorisation.
		p.b.badInput("peer: datagram from unknown address %v", from)
		return
	}
	if len(d) < len(magic)+1 || string(d[:len(magic)]) != magic {
		p.b.badInput("peer %s: %d bytes without the %s header", ps.Name, len(d), magic)
		return
	}
	body := d[len(magic)+1:]
	switch d[len(magic)] {
	case typData:
		m, rest, err := message.Decode(body)
		if err == nil && len(rest) != 0 {
			err = errors.New("trailing bytes")
		}
		if err != nil {
			p.b.badInput("peer %s: %v", ps.Name, err)
			return
		}
		// Signed alerts are verified again here, by our own keys.
		if _, err := p.b.accept(m, []string{DestRadio}, "peer:"+ps.Name); err != nil {
			return // not journaled: no ack, the peer retransmits
		}
		// Ack only what is durable.
		if err := p.b.j.Sync(); err != nil {
			p.b.cfg.Log.Printf("journal: sync: %v", err)
			return
		}
		ack := append([]byte(magic), typAck)
		ack = binary.BigEndian.AppendUint32(ack, m.Key.Origin)
		ack = binary.BigEndian.AppendUint32(ack, m.Key.ID)
		_, _ = p.conn.WriteToUDPAddrPort(ack, from)
	case typAck:
		if len(body) == 0 || len(body)%8 != 0 {
			p.b.badInput("peer %s: ack of %d bytes", ps.Name, len(body))
		}
		for ; len(body) >= 8; body = body[8:] {
			k := message.Key{Origin: binary.BigEndian.Uint32(body), ID: binary.BigEndian.Uint32(body[4:])}
			p.mu.Lock()
			_, ok := ps.unacked[k]
			delete(ps.unacked, k)
			if ok {
				ps.acked++
				ps.lastAck = p.b.now()
			}
			p.mu.Unlock()
			if ok {
				if err := p.b.j.Done(k, "peer:"+ps.Name); err == nil {
					p.b.mu.Lock()
					p.b.counters.ToPeers++
					p.b.mu.Unlock()
				}
			}
		}
		p.kick()
	default:
		p.b.badInput("peer %s: unknown datagram type %d", ps.Name, d[len(magic)])
	}
}
