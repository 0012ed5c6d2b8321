package frame

import (
	"bytes"
	"runtime"
	"testing"
)

type countH struct {
	frames, text, framed int
	valid                bool
}

func (c *countH) Frame(p []byte) bool {
	if len(p) > MaxPayload {
		panic("oversized frame")
	}
	if c.valid && (len(p) == 0 || p[0]&1 == 1) {
		return false // an arbitrary validator, to exercise the rescans
	}
	c.frames++
	c.framed += HeaderLen + len(p)
	return true
}
func (c *countH) Text(t []byte) {
	if len(t) > maxText {
		panic("oversized text")
	}
	c.text += len(t)
}

// FuzzSplitter: arbitrary bytes in arbitrary read sizes never panic, never
// grow memory, and every input byte ends up in a frame or in the text.
func FuzzSplitter(f *testing.F) {
	f.Add([]byte("log\n\x94\xc3\x00\x02\x40\x01tail"), uint8(3), false)
	f.Add([]byte("\xe2\x80\x94\xc3\x00\x02\x3a\x00"), uint8(1), true)
	f.Add(append([]byte{0x94, 0xc3, 0x02, 0x00}, bytes.Repeat([]byte{0x94}, 600)...), uint8(17), true)
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, valid bool) {
		h := &countH{valid: valid}
		s := NewSplitter(h)
		step := int(chunk) + 1
		// The least of three runs (the fuzzing engine allocates
		// concurrently); the splitter itself must allocate nothing.
		least := ^uint64(0)
		var ms runtime.MemStats
		for run := 0; run < 3; run++ {
			*h = countH{valid: valid}
			s.Reset()
			s.Stats = Stats{}
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			for i := 0; i < len(in); i += step {
				s.Write(in[i:min(i+step, len(in))])
			}
			s.Flush()
			runtime.ReadMemStats(&ms)
			least = min(least, ms.TotalAlloc-before)
		}
		if least > 0 {
			t.Fatalf("splitting %d bytes allocated %d bytes", len(in), least)
		}
		if h.text+h.framed != len(in) || uint64(h.text) != s.Stats.TextBytes {
			t.Fatalf("%d text + %d framed bytes from %d input bytes", h.text, h.framed, len(in))
		}
	})
}
