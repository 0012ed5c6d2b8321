package alert

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

func TestSignVerifyForge(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	text := strings.Repeat("x", MaxText)
	p, err := Sign(priv, text, time.Unix(1700000000, 0))
	if err != nil || len(p) > 232 {
		t.Fatalf("%d bytes, %v", len(p), err)
	}
	if body, signed, ok := Verify([]ed25519.PublicKey{other, pub}, p); !signed || !ok || body != text+" @1700000000" {
		t.Fatalf("%q %v %v", body, signed, ok)
	}
	if _, signed, ok := Verify([]ed25519.PublicKey{other}, p); !signed || ok {
		t.Fatal("verified with the wrong key")
	}
	forged := strings.Replace(p, "xxx", "xyx", 1)
	if _, _, ok := Verify([]ed25519.PublicKey{pub}, forged); ok {
		t.Fatal("forged text verified")
	}
	if _, err := Sign(priv, text+"x", time.Now()); err == nil {
		t.Fatal("oversized alert signed")
	}
}
