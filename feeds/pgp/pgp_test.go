package pgp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ProtonMail/go-crypto/openpgp/s2k"
)

var (
	keyCreated = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	epoch      = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) // stands in for SOURCE_DATE_EPOCH
)

type testKey struct{ sec, pub []byte }

// keys makes two distinct keys (EdDSA generation takes microseconds).
func keys(t *testing.T) [2]testKey {
	t.Helper()
	var ks [2]testKey
	for i := range ks {
		sec, pub, err := GenerateKey("meshnode feed", "test", "feed@example.org", keyCreated)
		if err != nil {
			t.Fatal(err)
		}
		ks[i] = testKey{sec, pub}
	}
	return ks
}

func signer(t *testing.T, k testKey) *Signer {
	t.Helper()
	s, err := LoadSigner(k.sec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ring(t *testing.T, pubs ...[]byte) *KeyRing {
	t.Helper()
	r, err := LoadKeyRing(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var msg = []byte("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  Packages\n")

func TestSignVerifyRoundTrip(t *testing.T) {
	k := keys(t)[0]
	s := signer(t, k)
	if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(s.Fingerprint()) {
		t.Errorf("fingerprint %q is not 40 uppercase hex digits", s.Fingerprint())
	}
	for _, armored := range [][]byte{k.sec, k.pub, s.PublicKey()} {
		if !bytes.HasSuffix(armored, []byte("-----\n")) {
			t.Errorf("armored key does not end with a newline: %q", armored[len(armored)-20:])
		}
	}
	sig, err := s.Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----\n")) || !bytes.HasSuffix(sig, []byte("-----END PGP SIGNATURE-----\n")) {
		t.Errorf("not an armored signature file:\n%s", sig)
	}
	// Both the generated public file and the one derived from the secret
	// key must verify.
	for _, pub := range [][]byte{k.pub, s.PublicKey()} {
		fp, err := ring(t, pub).Verify(msg, sig)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if fp != s.Fingerprint() {
			t.Errorf("signer %s, want %s", fp, s.Fingerprint())
		}
	}

	p := sigPacket(t, sig)
	if !p.CreationTime.Equal(epoch) {
		t.Errorf("signature time %v, want %v", p.CreationTime, epoch)
	}
	if p.PubKeyAlgo != packet.PubKeyAlgoEdDSA || p.Version != 4 {
		t.Errorf("signature is v%d algo %d, want v4 EdDSA (22)", p.Version, p.PubKeyAlgo)
	}
}

// sigPacket decodes the single signature packet of an armored signature.
func sigPacket(t *testing.T, armored []byte) *packet.Signature {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		t.Fatalf("packet %T", p)
	}
	return sig
}

func TestGeneratedKeyShape(t *testing.T) {
	k := keys(t)[0]
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(k.pub))
	if err != nil {
		t.Fatal(err)
	}
	e := el[0]
	if e.PrimaryKey.Version != 4 || e.PrimaryKey.PubKeyAlgo != packet.PubKeyAlgoEdDSA {
		t.Errorf("primary key v%d algo %d, want v4 EdDSA", e.PrimaryKey.Version, e.PrimaryKey.PubKeyAlgo)
	}
	if !e.PrimaryKey.CreationTime.Equal(keyCreated) {
		t.Errorf("created %v, want %v", e.PrimaryKey.CreationTime, keyCreated)
	}
	if len(e.Subkeys) != 0 {
		t.Errorf("%d subkeys, want a signing-only primary key", len(e.Subkeys))
	}
	if _, ok := e.Identities["meshnode feed (test) <feed@example.org>"]; !ok {
		t.Errorf("identities %v", e.Identities)
	}
	if bytes.Contains(k.pub, []byte("PRIVATE")) || !bytes.Contains(k.sec, []byte("BEGIN PGP PRIVATE KEY BLOCK")) {
		t.Errorf("armor types mixed up")
	}
}

// Two builds with the same key and SOURCE_DATE_EPOCH must produce the same
// SHA256SUMS.asc. go-crypto randomises v4 signatures with a salt notation
// unless told not to; this pins that we tell it.
func TestDeterministic(t *testing.T) {
	k := keys(t)[0]
	a, err := signer(t, k).Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := signer(t, k).Sign(msg, epoch.Add(999*time.Millisecond)) // sub-second part is dropped
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("same key, message and time gave different signatures:\n%s\n%s", a, b)
	}
	if n := sigPacket(t, a).Notations; len(n) != 0 {
		t.Errorf("signature carries notations %v (random salt?)", n[0].Name)
	}
	c, err := signer(t, k).Sign(msg, epoch.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Errorf("different times gave the same signature")
	}
}

// A SOURCE_DATE_EPOCH older than the key must still sign, dated at the key's
// creation, and deterministically.
func TestSignBeforeKeyCreation(t *testing.T) {
	k := keys(t)[0]
	s := signer(t, k)
	old, err := s.Sign(msg, keyCreated.AddDate(-3, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := sigPacket(t, old).CreationTime; !got.Equal(keyCreated) {
		t.Errorf("signature dated %v, want key creation %v", got, keyCreated)
	}
	atCreation, err := s.Sign(msg, keyCreated)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, atCreation) {
		t.Errorf("clamped signature differs from one made at key creation")
	}
	if _, err := ring(t, k.pub).Verify(msg, old); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestTamperedMessage(t *testing.T) {
	k := keys(t)[0]
	sig, err := signer(t, k).Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(msg, []byte("e3b0"), []byte("e3b1"), 1)
	if _, err := ring(t, k.pub).Verify(bad, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered message: err = %v, want ErrBadSignature", err)
	}
}

func TestTamperedSignature(t *testing.T) {
	k := keys(t)[0]
	sig, err := signer(t, k).Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	// Change one signature byte and re-armor (valid CRC), so the check that
	// fails is the cryptographic one.
	block, err := armor.Decode(bytes.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(block.Body)
	body[len(body)-1] ^= 0x01
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, "PGP SIGNATURE", nil)
	w.Write(body)
	w.Close()
	if _, err := ring(t, k.pub).Verify(msg, buf.Bytes()); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed signature byte: err = %v, want ErrBadSignature", err)
	}

	// Damage inside the armor: base64 or CRC no longer match.
	lines := strings.Split(string(sig), "\n")
	lines[2] = strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return r
	}, lines[2])
	if _, err := ring(t, k.pub).Verify(msg, []byte(strings.Join(lines, "\n"))); err == nil {
		t.Errorf("damaged armor verified")
	}
	for _, garbage := range [][]byte{nil, []byte("hello"), k.pub} {
		if _, err := ring(t, k.pub).Verify(msg, garbage); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%.20q): err = %v, want ErrMalformed", garbage, err)
		}
	}
}

func TestWrongKey(t *testing.T) {
	ks := keys(t)
	s := signer(t, ks[0])
	sig, err := s.Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ring(t, ks[1].pub).Verify(msg, sig)
	var uk *UnknownKeyError
	if !errors.Is(err, ErrUnknownKey) || !errors.As(err, &uk) {
		t.Fatalf("err = %v, want UnknownKeyError", err)
	}
	want := "signed by PGP key " + s.Fingerprint() + ", which is not trusted"
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	// With both keys trusted the right one is reported.
	r := ring(t, ks[1].pub, ks[0].pub)
	if fp, err := r.Verify(msg, sig); err != nil || fp != s.Fingerprint() {
		t.Errorf("two-key ring: %s, %v", fp, err)
	}
	if got := r.Fingerprints(); len(got) != 2 || got[1] != s.Fingerprint() {
		t.Errorf("Fingerprints = %v", got)
	}
}

func TestEncryptedKeyRejected(t *testing.T) {
	k := keys(t)[0]
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(k.sec))
	if err != nil {
		t.Fatal(err)
	}
	// Iterated+salted S2K with the minimum count, as gpg exports use (the
	// library's Argon2 default takes seconds under qemu).
	cfg := &packet.Config{S2KConfig: &s2k.Config{S2KMode: s2k.IteratedSaltedS2K, S2KCount: 65536}}
	if err := el[0].EncryptPrivateKeys([]byte("hunter2"), cfg); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, "PGP PRIVATE KEY BLOCK", nil)
	if err := el[0].SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()

	_, err = LoadSigner(buf.Bytes())
	if !errors.Is(err, ErrPassphrase) {
		t.Fatalf("err = %v, want ErrPassphrase", err)
	}
	for _, want := range []string{"passphrase", "without passphrase"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadSignerRejects(t *testing.T) {
	ks := keys(t)
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"public only", ks[0].pub, ErrNoSecret},
		{"garbage", []byte("not a key"), ErrMalformed},
		{"empty", nil, ErrMalformed},
		{"signature", mustSign(t, ks[0]), ErrMalformed},
	} {
		_, err := LoadSigner(c.data)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := LoadKeyRing(); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty key ring: err = %v", err)
	}
	if _, err := LoadKeyRing([]byte("junk")); !errors.Is(err, ErrMalformed) {
		t.Errorf("junk key ring: err = %v", err)
	}
}

func mustSign(t *testing.T, k testKey) []byte {
	t.Helper()
	sig, err := signer(t, k).Sign(msg, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// GnuPG is what people outside OpenWrt use to check SHA256SUMS.asc; gpgv
// must accept our key and signature. Skipped where gpg is not installed.
func TestGnuPGInterop(t *testing.T) {
	gpg, err1 := exec.LookPath("gpg")
	gpgv, err2 := exec.LookPath("gpgv")
	if err1 != nil || err2 != nil {
		t.Skip("gpg/gpgv not installed")
	}
	k := keys(t)[0]
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubAsc := write("key.asc", k.pub)
	sums := write("SHA256SUMS", msg)
	asc := write("SHA256SUMS.asc", mustSign(t, k))
	keyring := filepath.Join(dir, "key.gpg")
	// --dearmor and gpgv need no agent, so nothing is left running.
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "GNUPGHOME="+dir, "LC_ALL=C")
		return cmd.CombinedOutput()
	}
	if out, err := run(gpg, "--batch", "--homedir", dir, "--output", keyring, "--dearmor", pubAsc); err != nil {
		t.Fatalf("gpg --dearmor: %v\n%s", err, out)
	}
	out, err := run(gpgv, "--homedir", dir, "--keyring", keyring, asc, sums)
	if err != nil {
		t.Fatalf("gpgv rejected our signature: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Good signature") {
		t.Errorf("gpgv output:\n%s", out)
	}
	write("SHA256SUMS", append(msg, '\n'))
	if out, err := run(gpgv, "--homedir", dir, "--keyring", keyring, asc, sums); err == nil {
		t.Errorf("gpgv accepted a changed file:\n%s", out)
	}
}

// Fixtures made once with GnuPG 2.2.40 (testdata/gpg-*):
//   - gpg-subkey.sec.asc / .pub.asc: ed25519 primary key (certify only,
//     fingerprint below) with an ed25519 signing subkey, no passphrase,
//     exported with --export-secret-keys --armor / --export --armor;
//   - gpg-SHA256SUMS.asc: gpg --detach-sign --armor of gpg-SHA256SUMS by it;
//   - gpg-passphrase.sec.asc: another ed25519 key protected with passphrase
//     "pw" (iterated+salted S2K, as gpg exports).
const gpgPrimary = "449D8367828D6AAAB0F7660363C2686C9DDE31CB"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGnuPGSignatureVerifies(t *testing.T) {
	r := ring(t, readTestdata(t, "gpg-subkey.pub.asc"))
	sums := readTestdata(t, "gpg-SHA256SUMS")
	asc := readTestdata(t, "gpg-SHA256SUMS.asc")
	fp, err := r.Verify(sums, asc)
	if err != nil {
		t.Fatal(err)
	}
	if fp != gpgPrimary {
		t.Errorf("signer %s, want the primary key %s (not the subkey)", fp, gpgPrimary)
	}
	if _, err := r.Verify(append(sums, ' '), asc); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed file: err = %v", err)
	}
}

// A key exported from gpg whose signing key is a subkey: LoadSigner must
// pick the subkey, report the primary fingerprint, and date signatures no
// earlier than the subkey binding.
func TestGnuPGExportedKeySigns(t *testing.T) {
	s, err := LoadSigner(readTestdata(t, "gpg-subkey.sec.asc"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint() != gpgPrimary {
		t.Errorf("fingerprint %s, want %s", s.Fingerprint(), gpgPrimary)
	}
	sig, err := s.Sign(msg, epoch) // epoch is before the key was made
	if err != nil {
		t.Fatal(err)
	}
	p := sigPacket(t, sig)
	if !p.CreationTime.Equal(s.notBefore) {
		t.Errorf("signature dated %v, want %v", p.CreationTime, s.notBefore)
	}
	if *p.IssuerKeyId == s.entity.PrimaryKey.KeyId {
		t.Errorf("signed with the certify-only primary key, want the signing subkey")
	}
	fp, err := ring(t, readTestdata(t, "gpg-subkey.pub.asc")).Verify(msg, sig)
	if err != nil || fp != gpgPrimary {
		t.Errorf("Verify: %s, %v", fp, err)
	}
}

func TestGnuPGPassphraseKeyRejected(t *testing.T) {
	_, err := LoadSigner(readTestdata(t, "gpg-passphrase.sec.asc"))
	if !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), "without passphrase") {
		t.Errorf("err = %v, want ErrPassphrase telling what to do", err)
	}
}

// A key that has expired by verification time: the signature is fine but
// go-crypto (unlike gpgv, which only warns) rejects it.
func TestExpiredKeyRejected(t *testing.T) {
	created := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := config(created)
	cfg.KeyLifetimeSecs = 3600
	e, err := openpgp.NewEntity("old", "", "old@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var sig, pub bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, e, bytes.NewReader(msg), cfg); err != nil {
		t.Fatal(err)
	}
	if err := writeArmored(&pub, armorPublic, e.Serialize); err != nil {
		t.Fatal(err)
	}
	_, err = ring(t, pub.Bytes()).Verify(msg, sig.Bytes())
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("err = %v, want ErrRejected (expired)", err)
	}
}
