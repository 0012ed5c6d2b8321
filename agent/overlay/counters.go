package overlay

import (
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"

	nconfig "github.com/slackhq/nebula/config"
	noverlay "github.com/slackhq/nebula/overlay"
)

// Nebula keeps no per-peer byte counts, so the agent counts at the TUN
// device: what Nebula reads from it goes out to the packet's destination,
// what it writes came in from the packet's source. Traffic routed through
// an uplink is counted under its internet address, not the uplink's, and
// summed in Routed instead.

// byteCounter keeps in and out on separate cache lines: Nebula reads the
// TUN device and writes to it from different goroutines, usually on
// different cores.
type byteCounter struct {
	in  atomic.Uint64
	_   [56]byte
	out atomic.Uint64
	_   [56]byte
}

// maxPeers bounds the per-peer table: a local process scanning the overlay
// network must not grow it without limit. Traffic to further addresses is
// still carried, only not counted per peer.
const maxPeers = 4096

// Traffic holds byte counts per overlay address.
type Traffic struct {
	network netip.Prefix

	// peers is copied on write: every packet looks its peer up, a new
	// peer is rare, and a lookup must not write shared memory (a
	// read lock would, from two cores, on every packet).
	peers atomic.Pointer[map[netip.Addr]*byteCounter]
	mu    sync.Mutex // serialises writers of peers
	// Routed counts packets whose other end is outside the overlay network.
	Routed byteCounter
	// untracked counts packets to peers beyond maxPeers.
	untracked byteCounter
}

func newTraffic(network netip.Prefix) *Traffic {
	t := &Traffic{network: network.Masked()}
	t.peers.Store(&map[netip.Addr]*byteCounter{})
	return t
}

// Bytes returns bytes received from and sent to a, including IP headers.
func (t *Traffic) Bytes(a netip.Addr) (in, out uint64) {
	c := (*t.peers.Load())[a]
	if c == nil {
		return 0, 0
	}
	return c.in.Load(), c.out.Load()
}

// RoutedBytes returns the bytes of traffic with a far end outside the overlay.
func (t *Traffic) RoutedBytes() (in, out uint64) { return t.Routed.in.Load(), t.Routed.out.Load() }

func (t *Traffic) counter(a netip.Addr) *byteCounter {
	if !t.network.Contains(a) {
		return &t.Routed
	}
	if c := (*t.peers.Load())[a]; c != nil {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.peers.Load()
	if c := old[a]; c != nil {
		return c
	}
	if len(old) >= maxPeers {
		return &t.untracked
	}
	m := maps.Clone(old)
	c := &byteCounter{}
	m[a] = c
	t.peers.Store(&m)
	return c
}

// ipv4 returns the address at off in an IPv4 packet, if p is one.
func ipv4(p []byte, off int) (netip.Addr, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(p[off : off+4])), true
}

type countingDevice struct {
	noverlay.Device
	t *Traffic
}

func (d *countingDevice) Read(p []byte) (int, error) {
	n, err := d.Device.Read(p)
	if n > 0 {
		if a, ok := ipv4(p[:n], 16); ok {
			d.t.counter(a).out.Add(uint64(n))
		}
	}
	return n, err
}

func (d *countingDevice) Write(p []byte) (int, error) {
	if a, ok := ipv4(p, 12); ok {
		d.t.counter(a).in.Add(uint64(len(p)))
	}
	return d.Device.Write(p)
}

func (d *countingDevice) NewMultiQueueReader() (io.ReadWriteCloser, error) {
	q, err := d.Device.NewMultiQueueReader()
	if err != nil {
		return nil, err
	}
	return &countingQueue{q, d.t}, nil
}

type countingQueue struct {
	io.ReadWriteCloser
	t *Traffic
}

func (q *countingQueue) Read(p []byte) (int, error) {
	n, err := q.ReadWriteCloser.Read(p)
	if a, ok := ipv4(p[:max(n, 0)], 16); ok {
		q.t.counter(a).out.Add(uint64(n))
	}
	return n, err
}

func (q *countingQueue) Write(p []byte) (int, error) {
	if a, ok := ipv4(p, 12); ok {
		q.t.counter(a).in.Add(uint64(len(p)))
	}
	return q.ReadWriteCloser.Write(p)
}

// countingFactory opens the kernel TUN device as Nebula would and counts
// its traffic into t.
func countingFactory(t *Traffic) noverlay.DeviceFactory {
	return func(c *nconfig.C, l *slog.Logger, nets []netip.Prefix, routines int) (noverlay.Device, error) {
		d, err := noverlay.NewDeviceFromConfig(c, l, nets, routines)
		if err != nil {
			return nil, err
		}
		return &countingDevice{Device: d, t: t}, nil
	}
}
