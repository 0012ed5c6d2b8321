package pgp

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParseSHA256Sums: SHA256SUMS comes from a download; parsing must never
// panic, every accepted name must be safe to open below the feed dir, and
// writing the parsed sums back out must parse to the same list. Seeds:
// testdata/fuzz/FuzzParseSHA256Sums.
func FuzzParseSHA256Sums(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := ParseSHA256Sums(data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, s := range sums {
			if checkName(s.Name) != nil || len(s.SHA256) != 64 {
				t.Fatalf("accepted bad entry %+v", s)
			}
			writeLine(&buf, s.SHA256, s.Name)
		}
		again, err := ParseSHA256Sums(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", buf.Bytes(), err)
		}
		if !reflect.DeepEqual(again, sums) {
			t.Fatalf("round trip: %+v != %+v", again, sums)
		}
	})
}
