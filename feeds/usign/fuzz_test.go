package usign

import (
	"bytes"
	"testing"
)

// The parsers read files from feeds and key directories that may come from
// anywhere; they must reject garbage with an error, never a panic, and what
// they accept must survive a marshal round trip. Seeds: testdata/fuzz/.

func FuzzParsePublicKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data)
		if err != nil {
			return
		}
		k2, err := ParsePublicKey(k.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if k2.KeyNum != k.KeyNum || !bytes.Equal(k2.Key, k.Key) {
			t.Fatalf("round trip changed the key")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			return
		}
		s2, err := ParseSignature(s.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if s2.KeyNum != s.KeyNum || !bytes.Equal(s2.Sig, s.Sig) {
			t.Fatalf("round trip changed the signature")
		}
		// Verifying garbage against a fixed key must not panic either.
		_ = Verify(&PublicKey{KeyNum: s.KeyNum, Key: make([]byte, 32)}, data, s)
	})
}

func FuzzParseSecretKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSecretKey(data)
		if err != nil {
			return
		}
		s2, err := ParseSecretKey(s.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if s2.KeyNum != s.KeyNum || !s2.Key.Equal(s.Key) {
			t.Fatalf("round trip changed the key")
		}
	})
}
