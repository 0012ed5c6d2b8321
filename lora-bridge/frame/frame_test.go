package frame

import (
	"bytes"
	"testing"
)

type rec struct {
	events []string // "F:<payload>" or "T:<text>"
	valid  func([]byte) bool
}

func (r *rec) Frame(p []byte) bool {
	if r.valid != nil && !r.valid(p) {
		return false
	}
	r.events = append(r.events, "F:"+string(p))
	return true
}

func (r *rec) Text(t []byte) { r.events = append(r.events, "T:"+string(t)) }

func join(ev []string) string {
	var b bytes.Buffer
	for _, e := range ev {
		b.WriteString(e + "|")
	}
	return b.String()
}

// mergeText joins adjacent text events: chunking of text is not part of
// the contract, its order relative to frames is.
func mergeText(ev []string) []string {
	var out []string
	for _, e := range ev {
		if len(out) > 0 && e[0] == 'T' && out[len(out)-1][0] == 'T' {
			out[len(out)-1] += e[2:]
			continue
		}
		out = append(out, e)
	}
	return out
}

func TestTextFrameTextFrameSplitAcrossReads(t *testing.T) {
	in := []byte("boot log\r\n")
	in = Append(in, []byte("AB"))
	in = append(in, "INFO x\n"...)
	in = Append(in, []byte("CDE"))
	for cut := 0; cut <= len(in); cut++ {
		r := &rec{}
		s := NewSplitter(r)
		s.Write(in[:cut])
		s.Write(in[cut:])
		s.Flush()
		if got, want := join(mergeText(r.events)), "T:boot log\r\n|F:AB|T:INFO x\n|F:CDE|"; got != want {
			t.Fatalf("cut %d: %q, want %q", cut, got, want)
		}
	}
}

func TestResyncAfterFalseStart(t *testing.T) {
	// An em dash (E2 80 94) followed by C3 looks like a header with a huge
	// or bogus length; the real frame begins inside the bogus one.
	in := []byte("a\xe2\x80\x94\xc3")
	in = Append(in, []byte("OK"))
	r := &rec{valid: func(p []byte) bool { return string(p) == "OK" }}
	s := NewSplitter(r)
	s.Write(in)
	s.Flush()
	got := join(mergeText(r.events))
	if want := "T:a\xe2\x80\x94\xc3|F:OK|"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if s.Stats.Frames != 1 || s.Stats.Rejected == 0 {
		t.Fatalf("stats %+v", s.Stats)
	}
}

func TestInvalidPayloadResumesAfterStart1(t *testing.T) {
	// Candidate of length 6 whose payload holds a valid frame at offset 2.
	inner := Append(nil, []byte("Z"))
	in := append([]byte{Start1, Start2, 0, byte(len(inner))}, inner...)
	r := &rec{valid: func(p []byte) bool { return string(p) == "Z" }}
	s := NewSplitter(r)
	s.Write(in)
	s.Flush()
	if got := join(mergeText(r.events)); got != "T:\x94\xc3\x00\x05|F:Z|" {
		t.Fatalf("%q", got)
	}
}

func TestLengthOverMaxAndZeroLength(t *testing.T) {
	in := []byte{Start1, Start2, 0x02, 0x01} // 513
	in = Append(in, nil)
	r := &rec{}
	s := NewSplitter(r)
	s.Write(in)
	s.Flush()
	if got := join(mergeText(r.events)); got != "T:\x94\xc3\x02\x01|F:|" {
		t.Fatalf("%q", got)
	}
}

func TestMaxFrame(t *testing.T) {
	p := bytes.Repeat([]byte{7}, MaxPayload)
	r := &rec{}
	s := NewSplitter(r)
	s.Write(Append([]byte("x"), p))
	if len(r.events) != 2 || len(r.events[1]) != 2+MaxPayload {
		t.Fatalf("%d events", len(r.events))
	}
}

func TestStalledCandidateFlush(t *testing.T) {
	// A false header claiming 300 bytes holds text back until Flush.
	r := &rec{}
	s := NewSplitter(r)
	s.Write([]byte("x\x94\xc3\x01\x2cmore text"))
	if got := join(mergeText(r.events)); got != "" && got != "T:x|" {
		t.Fatalf("before flush: %q", got)
	}
	s.Flush()
	if got := join(mergeText(r.events)); got != "T:x\x94\xc3\x01\x2cmore text|" {
		t.Fatalf("%q", got)
	}
}

func TestAppendPanicsOverMax(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	Append(nil, make([]byte, MaxPayload+1))
}
