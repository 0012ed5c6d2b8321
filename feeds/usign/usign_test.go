package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RFC 8032 §7.1, TEST 1 (empty message).
const (
	rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfcSig  = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"

	testKeyNum = "00a1b2c3d4e5f607" // leading zero byte: exercises %016x padding
	testSalt   = "101112131415161718191a1b1c1d1e1f"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcKey builds the RFC 8032 test-1 key through Generate, feeding the
// randomness in the order Generate documents: seed, keynum, salt.
func rfcKey(t testing.TB) *SecretKey {
	t.Helper()
	r := bytes.NewReader(unhex(t, rfcSeed+testKeyNum+testSalt))
	s, err := Generate(r, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("Generate left %d random bytes unread", r.Len())
	}
	return s
}

// Golden files computed independently of this package (Python's base64 and
// hashlib over the layout of facts-openwrt §5).
const (
	goldenPub = "untrusted comment: public key 00a1b2c3d4e5f607\n" +
		"RWQAobLD1OX2B9damAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea\n"
	goldenSig = "untrusted comment: signed by key 00a1b2c3d4e5f607\n" +
		"RWQAobLD1OX2B+VWQwDDYKxykIbizIBugoqEh38euOXZdNhz4GUiSQFVX7iCFZCjO6zGHjlwHPm0a9Jb9fBZW74kZVFBQ456EAs=\n"
	goldenSec = "untrusted comment: private key 00a1b2c3d4e5f607\n" +
		"RWRCSwAAAAAQERITFBUWFxgZGhscHR4fSulvySzYtIAAobLD1OX2B51hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
)

func TestKnownAnswerRFC8032(t *testing.T) {
	s := rfcKey(t)
	pub := s.Public()
	if got := hex.EncodeToString(pub.Key); got != rfcPub {
		t.Errorf("public key = %s, want RFC 8032 %s", got, rfcPub)
	}
	sig := Sign(s, nil)
	if got := hex.EncodeToString(sig.Sig); got != rfcSig {
		t.Errorf("signature = %s, want RFC 8032 %s", got, rfcSig)
	}
	if err := Verify(pub, []byte{}, sig); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"public key", string(pub.Marshal()), goldenPub},
		{"signature", string(sig.Marshal()), goldenSig},
		{"secret key", string(s.Marshal()), goldenSec},
	} {
		if c.got != c.want {
			t.Errorf("%s file:\n got %q\nwant %q", c.name, c.got, c.want)
		}
	}
}

// decodeLine2 returns the decoded second line of a file, checking the
// first line's prefix and the trailing newline on the way.
func decodeLine2(t *testing.T, file []byte) []byte {
	t.Helper()
	lines := strings.Split(string(file), "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("file is not exactly two newline-terminated lines: %q", file)
	}
	if !strings.HasPrefix(lines[0], "untrusted comment: ") {
		t.Fatalf("line 1 = %q", lines[0])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestByteLayouts(t *testing.T) {
	s := rfcKey(t)
	keynum := unhex(t, testKeyNum)
	seed, pub := unhex(t, rfcSeed), unhex(t, rfcPub)

	t.Run("public", func(t *testing.T) {
		file := s.Public().Marshal()
		if b64 := strings.Split(string(file), "\n")[1]; len(b64) != 56 {
			t.Errorf("base64 length %d, want 56", len(b64))
		}
		raw := decodeLine2(t, file)
		if len(raw) != 42 {
			t.Fatalf("length %d, want 42", len(raw))
		}
		check(t, raw, 0, 2, []byte("Ed"), "algorithm")
		check(t, raw, 2, 10, keynum, "keynum")
		check(t, raw, 10, 42, pub, "public key")
	})

	t.Run("signature", func(t *testing.T) {
		file := Sign(s, nil).Marshal()
		if b64 := strings.Split(string(file), "\n")[1]; len(b64) != 100 {
			t.Errorf("base64 length %d, want 100", len(b64))
		}
		raw := decodeLine2(t, file)
		if len(raw) != 74 {
			t.Fatalf("length %d, want 74", len(raw))
		}
		check(t, raw, 0, 2, []byte("Ed"), "algorithm")
		check(t, raw, 2, 10, keynum, "keynum")
		check(t, raw, 10, 74, unhex(t, rfcSig), "signature")
	})

	t.Run("secret", func(t *testing.T) {
		file := s.Marshal()
		if b64 := strings.Split(string(file), "\n")[1]; len(b64) != 140 {
			t.Errorf("base64 length %d, want 140", len(b64))
		}
		raw := decodeLine2(t, file)
		if len(raw) != 104 {
			t.Fatalf("length %d, want 104", len(raw))
		}
		seckey := append(append([]byte{}, seed...), pub...)
		sum := sha512.Sum512(seckey)
		check(t, raw, 0, 2, []byte("Ed"), "algorithm")
		check(t, raw, 2, 4, []byte("BK"), "kdf algorithm")
		check(t, raw, 4, 8, []byte{0, 0, 0, 0}, "kdfrounds")
		check(t, raw, 8, 24, unhex(t, testSalt), "salt")
		check(t, raw, 24, 32, sum[:8], "checksum")
		check(t, raw, 32, 40, keynum, "keynum")
		check(t, raw, 40, 72, seed, "seed")
		check(t, raw, 72, 104, pub, "public half")
	})
}

func check(t *testing.T, raw []byte, from, to int, want []byte, what string) {
	t.Helper()
	if got := raw[from:to]; !bytes.Equal(got, want) {
		t.Errorf("bytes %d..%d (%s) = %x, want %x", from, to, what, got, want)
	}
}

func TestFingerprint(t *testing.T) {
	for _, c := range []struct {
		keynum string
		want   string
	}{
		{"0000000000000000", "0000000000000000"},
		{"000000000000012a", "000000000000012a"},
		{"00a1b2c3d4e5f607", "00a1b2c3d4e5f607"},
		{"ffffffffffffffff", "ffffffffffffffff"},
		{"d310c6f2833e97f7", "d310c6f2833e97f7"}, // OpenWrt 24.10 release key id
	} {
		var n [8]byte
		copy(n[:], unhex(t, c.keynum))
		for _, got := range []string{
			(&PublicKey{KeyNum: n}).Fingerprint(),
			(&Signature{KeyNum: n}).Fingerprint(),
			(&SecretKey{KeyNum: n}).Fingerprint(),
		} {
			if got != c.want {
				t.Errorf("Fingerprint(%s) = %s, want %s", c.keynum, got, c.want)
			}
		}
	}
}

// A third-party feed key as published for /etc/opkg/keys/7ffc7517c4cc0c56:
// parsing it must give exactly the fingerprint it is installed under.
func TestRealWorldPublicKey(t *testing.T) {
	const file = "untrusted comment: OpenWrt usign key of Stan Grishin\n" +
		"RWR//HUXxMwMVnx7fESOKO7x8XoW4/dRidJPjt91hAAU2L59mYvHy0Fa\n"
	k, err := ParsePublicKey([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if fp := k.Fingerprint(); fp != "7ffc7517c4cc0c56" {
		t.Errorf("fingerprint %s, want 7ffc7517c4cc0c56", fp)
	}
	if k.Comment != "OpenWrt usign key of Stan Grishin" {
		t.Errorf("comment %q", k.Comment)
	}
	if got := string(k.Marshal()); got != file {
		t.Errorf("re-marshal changed the file:\n%q", got)
	}
}

func TestRoundTrip(t *testing.T) {
	s, err := Generate(rand.Reader, "meshnode feed key")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ParseSecretKey(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyNum != s.KeyNum || !s2.Key.Equal(s.Key) || s2.Comment != s.Comment || s2.salt != s.salt {
		t.Errorf("secret key round trip differs")
	}
	if !bytes.Equal(s2.Marshal(), s.Marshal()) {
		t.Errorf("secret key file not reproduced")
	}

	pub := s.Public()
	if pub.Comment != "meshnode feed key" {
		t.Errorf("public comment %q", pub.Comment)
	}
	pub2, err := ParsePublicKey(pub.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if pub2.KeyNum != pub.KeyNum || !pub2.Key.Equal(pub.Key) || pub2.Comment != pub.Comment {
		t.Errorf("public key round trip differs")
	}

	msg := []byte("Package: meshnode\nVersion: 1.0-r1\n\n")
	sig := Sign(s2, msg)
	sig2, err := ParseSignature(sig.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if sig2.KeyNum != sig.KeyNum || !bytes.Equal(sig2.Sig, sig.Sig) || sig2.Comment != "signed by key "+s.Fingerprint() {
		t.Errorf("signature round trip differs: %+v", sig2)
	}
	if err := Verify(pub2, msg, sig2); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestDefaultCommentsAndSanitising(t *testing.T) {
	s := rfcKey(t)
	s.Comment = "two\nlines\r"
	file := s.Public().Marshal()
	if !bytes.HasPrefix(file, []byte("untrusted comment: two lines \n")) {
		t.Errorf("newline in comment not neutralised: %q", file)
	}
	if _, err := ParsePublicKey(file); err != nil {
		t.Errorf("sanitised file does not parse: %v", err)
	}
}

func TestParseTolerance(t *testing.T) {
	// CRLF (edited on Windows), missing final newline, trailing blank line:
	// all still readable by usign, so accepted.
	for _, f := range []string{
		strings.ReplaceAll(goldenPub, "\n", "\r\n"),
		strings.TrimSuffix(goldenPub, "\n"),
		goldenPub + "\n",
	} {
		k, err := ParsePublicKey([]byte(f))
		if err != nil {
			t.Errorf("%q: %v", f, err)
			continue
		}
		if hex.EncodeToString(k.Key) != rfcPub || k.Fingerprint() != testKeyNum {
			t.Errorf("%q: wrong key", f)
		}
	}
}

// withRaw re-encodes a modified struct under the golden comment line.
func withRaw(t *testing.T, golden string, edit func([]byte) []byte) []byte {
	t.Helper()
	lines := strings.Split(golden, "\n")
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	raw = edit(raw)
	return []byte(lines[0] + "\n" + base64.StdEncoding.EncodeToString(raw) + "\n")
}

func TestPassphraseKeyRejected(t *testing.T) {
	file := withRaw(t, goldenSec, func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[4:8], 42)
		return b
	})
	_, err := ParseSecretKey(file)
	if !errors.Is(err, ErrPassphrase) {
		t.Fatalf("err = %v, want ErrPassphrase", err)
	}
	for _, want := range []string{"passphrase", "42", "without passphrase"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	flip := func(i int) func([]byte) []byte {
		return func(b []byte) []byte { b[i] ^= 0x01; return b }
	}
	type parser func([]byte) error
	parsePub := func(b []byte) error { _, err := ParsePublicKey(b); return err }
	parseSig := func(b []byte) error { _, err := ParseSignature(b); return err }
	parseSec := func(b []byte) error { _, err := ParseSecretKey(b); return err }

	// Secret key whose checksum is right for its bytes but whose public half
	// was swapped for another key's.
	otherPub := withRaw(t, goldenSec, func(b []byte) []byte {
		b[72] ^= 0x80
		sum := sha512.Sum512(b[40:104])
		copy(b[24:32], sum[:8])
		return b
	})

	for _, c := range []struct {
		name  string
		parse parser
		file  []byte
		want  error
	}{
		{"pub no comment", parsePub, []byte(strings.SplitN(goldenPub, "\n", 2)[1]), ErrComment},
		{"pub one line", parsePub, []byte("untrusted comment: x"), ErrComment},
		{"pub signify-style trusted", parsePub, []byte("trusted comment: x\n" + strings.SplitN(goldenPub, "\n", 2)[1]), ErrComment},
		{"pub empty", parsePub, nil, ErrComment},
		{"pub bad base64 char", parsePub, []byte(strings.Replace(goldenPub, "RWQA", "RW!A", 1)), ErrBase64},
		{"pub base64 with space", parsePub, []byte(strings.Replace(goldenPub, "RWQA", "RWQ A", 1)), ErrBase64},
		{"pub truncated base64", parsePub, []byte(strings.Replace(goldenPub, "B1Ea\n", "B1E\n", 1)), ErrBase64},
		{"pub empty base64", parsePub, []byte("untrusted comment: x\n\n"), ErrBase64},
		{"pub trailing garbage", parsePub, []byte(goldenPub + goldenPub), ErrBase64},
		{"pub short", parsePub, withRaw(t, goldenPub, func(b []byte) []byte { return b[:41] }), ErrLength},
		{"pub long", parsePub, withRaw(t, goldenPub, func(b []byte) []byte { return append(b, 0) }), ErrLength},
		{"pub is a signature", parsePub, []byte(goldenSig), ErrLength},
		{"pub wrong alg", parsePub, withRaw(t, goldenPub, flip(1)), ErrAlgorithm},
		{"sig short", parseSig, withRaw(t, goldenSig, func(b []byte) []byte { return b[:73] }), ErrLength},
		{"sig is a key", parseSig, []byte(goldenPub), ErrLength},
		{"sig wrong alg", parseSig, withRaw(t, goldenSig, flip(0)), ErrAlgorithm},
		{"sig bad base64", parseSig, []byte(strings.Replace(goldenSig, "EAs=", "EAs", 1)), ErrBase64},
		{"sec short", parseSec, withRaw(t, goldenSec, func(b []byte) []byte { return b[:103] }), ErrLength},
		{"sec wrong alg", parseSec, withRaw(t, goldenSec, flip(0)), ErrAlgorithm},
		{"sec wrong kdf", parseSec, withRaw(t, goldenSec, flip(2)), ErrAlgorithm},
		{"sec checksum byte", parseSec, withRaw(t, goldenSec, flip(24)), ErrChecksum},
		{"sec seed byte", parseSec, withRaw(t, goldenSec, flip(40)), ErrChecksum},
		{"sec pub byte", parseSec, withRaw(t, goldenSec, flip(103)), ErrChecksum},
		{"sec pub not of seed", parseSec, otherPub, ErrChecksum},
	} {
		err := c.parse(c.file)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// Bytes that are not covered by a check must not break parsing: salt
	// (unused without passphrase) and keynum.
	for _, i := range []int{8, 23, 32, 39} {
		if _, err := ParseSecretKey(withRaw(t, goldenSec, flip(i))); err != nil {
			t.Errorf("flip byte %d: %v", i, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	s := rfcKey(t)
	other, err := Generate(rand.Reader, "")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Packages\n")
	sig := Sign(s, msg)

	err = Verify(other.Public(), msg, sig)
	var km *KeyMismatchError
	if !errors.Is(err, ErrKeyMismatch) || !errors.As(err, &km) {
		t.Fatalf("err = %v, want KeyMismatchError", err)
	}
	want := "signed by key 00a1b2c3d4e5f607, not " + other.Fingerprint()
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}

	// Same keynum, different key: only Ed25519 itself can tell.
	imposter := other.Public()
	imposter.KeyNum = s.KeyNum
	if err := Verify(imposter, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("imposter key: err = %v, want ErrBadSignature", err)
	}

	if err := Verify(s.Public(), []byte("Packages\n\n"), sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed message: err = %v, want ErrBadSignature", err)
	}
	bad := *sig
	bad.Sig = bytes.Clone(sig.Sig)
	bad.Sig[63] ^= 0x10
	if err := Verify(s.Public(), msg, &bad); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed signature: err = %v, want ErrBadSignature", err)
	}
	bad.Sig = bad.Sig[:10]
	if err := Verify(s.Public(), msg, &bad); !errors.Is(err, ErrLength) {
		t.Errorf("short signature: err = %v, want ErrLength", err)
	}
}

// Go's ed25519 must agree with what Sign produces for keys that came
// through a file, i.e. Key really is seed‖pub.
func TestSecretKeyIsGoPrivateKey(t *testing.T) {
	s, err := ParseSecretKey([]byte(goldenSec))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Key.Seed(), unhex(t, rfcSeed)) {
		t.Errorf("seed differs")
	}
	if !bytes.Equal(s.Key.Public().(ed25519.PublicKey), unhex(t, rfcPub)) {
		t.Errorf("public differs")
	}
}

func TestLoadKeyDir(t *testing.T) {
	a, _ := Generate(rand.Reader, "a")
	b := rfcKey(t)
	write := func(dir, name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	write(dir, a.Fingerprint(), a.Public().Marshal())
	write(dir, b.Fingerprint(), b.Public().Marshal())
	write(dir, ".gitkeep", nil)
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[a.Fingerprint()] == nil || keys["00a1b2c3d4e5f607"] == nil {
		t.Fatalf("keys = %v", keys)
	}

	misnamed := t.TempDir()
	write(misnamed, "meshnode.pub", b.Public().Marshal())
	_, err = LoadKeyDir(misnamed)
	if err == nil || !strings.Contains(err.Error(), "meshnode.pub") || !strings.Contains(err.Error(), "00a1b2c3d4e5f607") {
		t.Errorf("misnamed key: err = %v, want file name and fingerprint", err)
	}

	broken := t.TempDir()
	write(broken, "00a1b2c3d4e5f607", []byte("untrusted comment: x\nnot base64!\n"))
	_, err = LoadKeyDir(broken)
	if !errors.Is(err, ErrBase64) || !strings.Contains(err.Error(), filepath.Join(broken, "00a1b2c3d4e5f607")) {
		t.Errorf("broken key: err = %v, want ErrBase64 naming the file", err)
	}

	if _, err := LoadKeyDir(filepath.Join(dir, "missing")); err == nil {
		t.Errorf("missing dir: no error")
	}
}
