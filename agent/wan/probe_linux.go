//go:build linux

package wan

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// control pins a socket to the path before it is bound or connected: the
// mark selects the uplink's own table (so its gateway is used even when
// the default route points elsewhere) and the device binding keeps the
// probe from leaking onto another uplink if that table is missing.
func (p Path) control(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if p.Device != "" {
			if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, p.Device); serr != nil {
				return
			}
		}
		if p.Mark != 0 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(p.Mark))
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func isRefused(err error) bool { return errors.Is(err, unix.ECONNREFUSED) }

// icmpProber sends echo requests on one raw socket per uplink. Every raw
// ICMP socket sees every reply on its device, so replies are matched by
// identifier, sequence and a random token in the payload.
type icmpProber struct {
	conn  net.PacketConn
	id    uint16
	token [8]byte
	seq   atomic.Uint32

	mu   sync.Mutex
	wait map[uint16]waiter
}

type waiter struct {
	from netip.Addr
	ch   chan time.Time
}

func newICMPProber(p Path) (*icmpProber, error) {
	lc := net.ListenConfig{Control: p.control}
	c, err := lc.ListenPacket(context.Background(), "ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	pr := &icmpProber{conn: c, wait: map[uint16]waiter{}}
	_, _ = rand.Read(pr.token[:])
	pr.id = binary.BigEndian.Uint16(pr.token[:2])
	go pr.read()
	return pr, nil
}

func (p *icmpProber) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		at := time.Now()
		// The socket hands over ICMP without the IP header.
		id, seq, data, ok := parseEchoReply(buf[:n])
		if !ok || id != p.id || !bytes.HasPrefix(data, p.token[:]) {
			continue
		}
		ip, _ := from.(*net.IPAddr)
		if ip == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.IP)
		p.mu.Lock()
		w, ok := p.wait[seq]
		p.mu.Unlock()
		if ok && w.from == src.Unmap() {
			select {
			case w.ch <- at:
			default:
			}
		}
	}
}

func (p *icmpProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	dst, err := netip.ParseAddr(target)
	if err != nil {
		return 0, err
	}
	seq := uint16(p.seq.Add(1))
	w := waiter{from: dst, ch: make(chan time.Time, 1)}
	p.mu.Lock()
	p.wait[seq] = w
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.wait, seq)
		p.mu.Unlock()
	}()
	b := icmpEcho(icmpEchoRequest, p.id, seq, p.token[:])
	start := time.Now()
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, err
	}
	select {
	case at := <-w.ch:
		return at.Sub(start), nil
	case <-ctx.Done():
		return 0, errTimeout
	}
}

func (p *icmpProber) Close() error { return p.conn.Close() }
