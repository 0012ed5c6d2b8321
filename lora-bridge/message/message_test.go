package message

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoundTrip(t *testing.T) {
	m := Message{Key: Key{1, 2}, Kind: Alert, Verified: true, Time: 1700000000, RadioID: 9, Sender: "ana", Body: "fire at the mill"}
	b := Append(nil, &m)
	got, rest, err := Decode(append(b, 0xAA))
	if err != nil || got != m || len(rest) != 1 {
		t.Fatalf("%+v %v %d", got, err, len(rest))
	}
	for i := 0; i < len(b); i++ {
		if _, _, err := Decode(b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}

func TestSanitize(t *testing.T) {
	if got := Sanitize([]byte("a\xffb\x1b[31mc\nd")); got != "a\uFFFDb[31mc\nd" {
		t.Fatalf("%q", got)
	}
}

func TestSplitReassembleBounds(t *testing.T) {
	for _, n := range []int{0, 232, 233, 500, 2000} {
		text := strings.Repeat("é", n/2) + strings.Repeat("x", n%2)
		parts := Split(text, 232, 0xabcdef)
		var joined string
		for i, p := range parts {
			if len(p) > 232 || !utf8.ValidString(p) {
				t.Fatalf("n=%d part %d: %d bytes, valid %v", n, i, len(p), utf8.ValidString(p))
			}
			if len(parts) == 1 {
				joined = p
				continue
			}
			pp, ok := ParsePart(p)
			if !ok || pp.I != i+1 || pp.N != len(parts) || pp.Tag != 0xabcdef {
				t.Fatalf("n=%d part %d: %q %+v", n, i, p[:20], pp)
			}
			joined += pp.Body
		}
		if joined != text {
			t.Fatalf("n=%d: reassembled text differs", n)
		}
	}
}
