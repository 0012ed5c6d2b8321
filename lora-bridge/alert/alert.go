// Package alert signs and verifies community alerts with Ed25519. The
// signature travels inside the radio payload as "\nsig:" and 86 base64url
// characters, so a signed alert still fits one LoRa packet and phones show
// the text first.
package alert

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
)

const (
	sep = "\nsig:"
	// domain separates alert signatures from any other use of the key.
	domain = "meshnode-alert-v1\n"
	// MaxText leaves room in a 232-byte payload for the signature and
	// the " @<unix time>" stamp.
	MaxText = 232 - len(sep) - 86 - 12
)

// Sign returns the payload for text, stamped with t.
func Sign(priv ed25519.PrivateKey, text string, t time.Time) (string, error) {
	if len(text) > MaxText {
		return "", errfmt.Errorf("alert: text is %d bytes, at most %d fit with a signature", len(text), MaxText)
	}
	body := text + " @" + strconv.FormatInt(t.Unix(), 10)
	sig := ed25519.Sign(priv, []byte(domain+body))
	return body + sep + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verify splits a payload into its text and reports whether it carries a
// valid signature by one of keys. Unsigned text is returned unchanged.
func Verify(keys []ed25519.PublicKey, payload string) (body string, signed, ok bool) {
	i := strings.LastIndex(payload, sep)
	if i < 0 {
		return payload, false, false
	}
	body = payload[:i]
	sig, err := base64.RawURLEncoding.DecodeString(payload[i+len(sep):])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return payload, false, false
	}
	for _, k := range keys {
		if ed25519.Verify(k, []byte(domain+body), sig) {
			return body, true, true
		}
	}
	return body, true, false
}

// ParseKey reads a base64 (std or url) Ed25519 public key from UCI.
func ParseKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("not a base64 Ed25519 public key (32 bytes)")
	}
	return ed25519.PublicKey(b), nil
}

// ParsePrivate reads a base64 Ed25519 seed (32 bytes) or private key (64).
func ParsePrivate(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("alert key: not base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		return ed25519.PrivateKey(b), nil
	}
	return nil, errors.New("alert key: want a 32-byte seed or 64-byte private key")
}
