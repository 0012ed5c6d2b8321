package meshpb

import (
	"runtime"
	"testing"
)

// FuzzFromRadio: any input decodes or fails cleanly, never panics, and the
// decoder's allocations stay bounded by a small constant (it aliases the
// input instead of allocating from length fields).
func FuzzFromRadio(f *testing.F) {
	for _, s := range []string{
		"\x40\x01", "\x08\x05\x38\xf8\xac\xd1\x91\x01", "\x5a\x09\x10\x0f\x18\x10\x20\x8d\x98\xac\x50",
		"\x12\x1e\x0d\xef\xbe\xad\xde\x15\xef\xbe\xad\xde\x22\x0b\x08\x05\x12\x02\x18\x00\x35\x0d\x0c\x0b\x0a\x35\x44\x33\x22\x11\x58\x78",
		"\x0a\xff\xff\xff\xff\x0f", "\x1b\x1c", "\x32\x03\x0a\x01\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m FromRadio
		var err error
		// The fuzzing engine allocates concurrently: the least of three
		// measurements is ours.
		if grew := minAlloc(func() { err = UnmarshalFromRadio(b, &m) }); grew > 1024 {
			t.Fatalf("decode of %d bytes allocated %d bytes", len(b), grew)
		}
		if err == nil && m.Kind == KindPacket && m.Packet.HasDecoded && m.Packet.Decoded.Portnum == PortRouting {
			_, _ = UnmarshalRouting(m.Packet.Decoded.Payload)
		}
		if err == nil {
			// Whatever decodes must re-encode and decode to the same thing.
			var again FromRadio
			enc := AppendFromRadio(nil, &m)
			if err := UnmarshalFromRadio(enc, &again); err != nil {
				t.Fatalf("re-encoding of %x does not decode: %v", b, err)
			}
		}
	})
}

func FuzzToRadio(f *testing.F) {
	f.Add([]byte("\x18\xf8\xac\xd1\x91\x01"))
	f.Add([]byte("\x3a\x00"))
	f.Add([]byte("\x0a\x16\x15\xff\xff\xff\xff\x22\x06\x08\x01\x12\x02\x68\x69\x35\x0d\x0c\x0b\x0a\x48\x03\x50\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ToRadio
		var p MeshPacket
		if UnmarshalToRadio(b, &m, &p) == nil {
			_ = AppendToRadio(nil, &m)
		}
	})
}

// minAlloc returns the fewest bytes allocated by the process over three
// runs of f.
func minAlloc(f func()) uint64 {
	least := ^uint64(0)
	var ms runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		f()
		runtime.ReadMemStats(&ms)
		least = min(least, ms.TotalAlloc-before)
	}
	return least
}
