package overlay

import (
	"net/netip"
	"sync"
	"testing"
)

// packet returns a minimal IPv4 header from src to dst, n bytes long.
func packet(src, dst string, n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	return p
}

type sink struct{ reads [][]byte }

func (s *sink) Read(p []byte) (int, error) {
	n := copy(p, s.reads[0])
	s.reads = s.reads[1:]
	return n, nil
}
func (s *sink) Write(p []byte) (int, error) { return len(p), nil }
func (s *sink) Close() error                { return nil }

func TestTrafficCounts(t *testing.T) {
	tr := newTraffic(netip.MustParsePrefix("10.42.0.1/16"))
	in := &sink{reads: [][]byte{
		packet("10.42.0.1", "10.42.0.2", 100),
		packet("10.42.0.1", "10.42.0.2", 50),
		packet("10.42.0.1", "192.0.2.9", 70),
		{0x60, 0, 0}, // IPv6 / short: carried, not counted
	}}
	q := &countingQueue{in, tr}
	buf := make([]byte, 1500)
	for range 4 {
		if _, err := q.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Write(packet("10.42.0.2", "10.42.0.1", 40)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Write(packet("198.51.100.1", "10.42.0.1", 30)); err != nil {
		t.Fatal(err)
	}
	if i, o := tr.Bytes(netip.MustParseAddr("10.42.0.2")); i != 40 || o != 150 {
		t.Errorf("peer 10.42.0.2: in %d out %d, want 40 150", i, o)
	}
	if i, o := tr.RoutedBytes(); i != 30 || o != 70 {
		t.Errorf("routed: in %d out %d, want 30 70", i, o)
	}
	if i, o := tr.Bytes(netip.MustParseAddr("10.42.0.3")); i != 0 || o != 0 {
		t.Errorf("unknown peer: %d %d", i, o)
	}
}

// A scan of the overlay network must not grow the table past maxPeers.
func TestTrafficBounded(t *testing.T) {
	tr := newTraffic(netip.MustParsePrefix("10.42.0.0/16"))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range maxPeers {
				a := netip.AddrFrom4([4]byte{10, 42, byte(w*64 + i>>8), byte(i)})
				tr.counter(a).out.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := len(*tr.peers.Load()); n != maxPeers {
		t.Fatalf("%d peers tracked, want the cap %d", n, maxPeers)
	}
	var total uint64
	for _, c := range *tr.peers.Load() {
		total += c.out.Load()
	}
	total += tr.untracked.out.Load()
	if total != 4*maxPeers {
		t.Fatalf("counted %d packets, want %d", total, 4*maxPeers)
	}
}

func BenchmarkTrafficCounter(b *testing.B) {
	tr := newTraffic(netip.MustParsePrefix("10.42.0.0/16"))
	p := packet("10.42.0.1", "10.42.0.2", 1400)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if a, ok := ipv4(p, 16); ok {
				tr.counter(a).out.Add(uint64(len(p)))
			}
		}
	})
}
