// Package usign reads and writes the key and signature files of OpenWrt's
// usign (and OpenBSD's signify, which shares the formats), and signs and
// verifies with them. opkg checks a feed's Packages.sig with usign against the
// keys in /etc/opkg/keys, so what this package writes must be byte-compatible
// with that tool.
//
// Every file is two lines: "untrusted comment: <text>" and the standard
// padded base64 of a fixed-size binary struct. The comment is not covered by
// any signature, hence "untrusted".
package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// Errors returned (wrapped) by the parsers and Verify. Test for them with
// errors.Is; the wrapping messages carry the details. None of the messages
// name a file, so callers can prefix the path themselves.
var (
	ErrComment      = errors.New("bad comment line")
	ErrBase64       = errors.New("bad base64")
	ErrLength       = errors.New("wrong length")
	ErrAlgorithm    = errors.New("wrong algorithm")
	ErrChecksum     = errors.New("checksum mismatch")
	ErrPassphrase   = errors.New("secret key is passphrase-protected")
	ErrKeyMismatch  = errors.New("key mismatch")
	ErrBadSignature = errors.New("bad signature")
)

// Layout of the binary structs (facts-openwrt §5). Multi-byte integers are
// big-endian; only kdfrounds and the keynum-as-fingerprint are integers.
const (
	commentPrefix = "untrusted comment: "

	pkAlg  = "Ed" // signature algorithm tag in every struct
	kdfAlg = "BK" // bcrypt KDF tag in secret keys

	publicKeyLen = 2 + 8 + ed25519.PublicKeySize // 42
	signatureLen = 2 + 8 + ed25519.SignatureSize // 74

	// Secret key: "Ed" "BK" kdfrounds[4] salt[16] checksum[8] keynum[8] seckey[64].
	secOffRounds = 4
	secOffSalt   = secOffRounds + 4                   // 8
	secOffSum    = secOffSalt + 16                    // 24
	secOffNum    = secOffSum + 8                      // 32
	secOffKey    = secOffNum + 8                      // 40
	secretKeyLen = secOffKey + ed25519.PrivateKeySize // 104
)

// PublicKey is a usign public key, as stored in /etc/opkg/keys/<fingerprint>.
type PublicKey struct {
	KeyNum  [8]byte
	Key     ed25519.PublicKey
	Comment string // untrusted; empty means a default is written
}

// SecretKey is an unencrypted usign secret key. Key is Go's Ed25519 private
// key, which is seed‖pub exactly like usign's seckey field.
type SecretKey struct {
	KeyNum  [8]byte
	Key     ed25519.PrivateKey
	Comment string // untrusted; empty means a default is written

	// salt is kept only so that Parse→Marshal reproduces the file; without a
	// passphrase usign never uses it.
	salt [16]byte
}

// Signature is a usign signature file (Packages.sig).
type Signature struct {
	KeyNum  [8]byte
	Sig     []byte
	Comment string // untrusted; empty means a default is written
}

// Generate makes a new key pair without passphrase. rand supplies the seed,
// the key number and the salt.
func Generate(rand io.Reader, comment string) (*SecretKey, error) {
	var buf [ed25519.SeedSize + 8 + 16]byte
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, errfmt.Errorf("usign: reading randomness: %w", err)
	}
	s := &SecretKey{
		Key:     ed25519.NewKeyFromSeed(buf[:ed25519.SeedSize]),
		Comment: comment,
	}
	copy(s.KeyNum[:], buf[ed25519.SeedSize:])
	copy(s.salt[:], buf[ed25519.SeedSize+8:])
	return s, nil
}

// Public returns the public half. It carries the secret key's comment, as
// usign -G -c does for both files.
func (s *SecretKey) Public() *PublicKey {
	pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
	copy(pub, s.Key[ed25519.SeedSize:])
	return &PublicKey{KeyNum: s.KeyNum, Key: pub, Comment: s.Comment}
}

// fingerprint formats a keynum the way usign names key files: the 8 bytes
// read as a big-endian integer, 16 lowercase hex digits with leading zeros.
// Not inlined: the Fingerprint methods would each carry a copy.
//
//go:noinline
func fingerprint(n [8]byte) string {
	return hex.EncodeToString(n[:]) // big-endian already
}

// Fingerprint is the key's file name in /etc/opkg/keys.
func (k *PublicKey) Fingerprint() string { return fingerprint(k.KeyNum) }

// Fingerprint is the same as the public key's.
func (s *SecretKey) Fingerprint() string { return fingerprint(s.KeyNum) }

// Fingerprint names the key that made the signature.
func (s *Signature) Fingerprint() string { return fingerprint(s.KeyNum) }

// Marshal returns the whole public key file.
func (k *PublicKey) Marshal() []byte {
	b := make([]byte, 0, publicKeyLen)
	b = append(b, pkAlg...)
	b = append(b, k.KeyNum[:]...)
	b = append(b, k.Key...)
	return encodeFile(k.Comment, "public key "+k.Fingerprint(), b)
}

// Marshal returns the whole secret key file (kdfrounds 0: no passphrase).
func (s *SecretKey) Marshal() []byte {
	b := make([]byte, secretKeyLen)
	copy(b, pkAlg)
	copy(b[2:], kdfAlg)
	binary.BigEndian.PutUint32(b[secOffRounds:], 0)
	copy(b[secOffSalt:], s.salt[:])
	copy(b[secOffSum:], checksum(s.Key))
	copy(b[secOffNum:], s.KeyNum[:])
	copy(b[secOffKey:], s.Key)
	return encodeFile(s.Comment, "private key "+s.Fingerprint(), b)
}

// Marshal returns the whole signature file.
func (s *Signature) Marshal() []byte {
	b := make([]byte, 0, signatureLen)
	b = append(b, pkAlg...)
	b = append(b, s.KeyNum[:]...)
	b = append(b, s.Sig...)
	return encodeFile(s.Comment, "signed by key "+s.Fingerprint(), b)
}

// checksum lets usign detect a wrong passphrase (or corruption) without
// trying a signature: first 8 bytes of SHA-512 over seed‖pub.
func checksum(seckey []byte) []byte {
	sum := sha512.Sum512(seckey)
	return sum[:8]
}

func encodeFile(comment, def string, raw []byte) []byte {
	if comment == "" {
		comment = def
	}
	// A line break in the comment would push the base64 to line 3 and make
	// the file unreadable for usign.
	comment = strings.NewReplacer("\n", " ", "\r", " ").Replace(comment)
	var buf bytes.Buffer
	buf.WriteString(commentPrefix)
	buf.WriteString(comment)
	buf.WriteByte('\n')
	buf.WriteString(base64.StdEncoding.EncodeToString(raw))
	buf.WriteByte('\n')
	return buf.Bytes()
}

// decodeFile splits a usign file into comment and decoded struct and checks
// the decoded length. what names the struct for error messages.
func decodeFile(data []byte, what string, want int) (comment string, raw []byte, err error) {
	comment, raw, kind, msg := splitFile(data, want)
	if kind != nil {
		return "", nil, errfmt.Errorf("%s: %w: %s", what, kind, msg)
	}
	if string(raw[:2]) != pkAlg {
		return "", nil, errfmt.Errorf("%s: %w: algorithm %q, want %q (Ed25519)", what, ErrAlgorithm, raw[:2], pkAlg)
	}
	return comment, raw, nil
}

// splitFile is decodeFile without the algorithm check; on error it
// returns the error kind and the details, so the error is built in one
// place (each costs flash on MIPS).
func splitFile(data []byte, want int) (comment string, raw []byte, kind error, msg string) {
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return "", nil, ErrComment, "want two lines, found one"
	}
	first = bytes.TrimSuffix(first, []byte("\r")) // tolerate files edited on Windows
	if !bytes.HasPrefix(first, []byte(commentPrefix)) {
		return "", nil, ErrComment, `first line must start with "` + commentPrefix + `"`
	}
	comment = string(first[len(commentPrefix):])

	line, tail, _ := bytes.Cut(rest, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	// usign reads only two lines; anything more than blank space means the
	// file is not what the caller thinks it is (e.g. two keys pasted together).
	if len(bytes.TrimSpace(tail)) != 0 {
		return "", nil, ErrBase64, "unexpected text after the base64 line"
	}
	if len(line) == 0 {
		return "", nil, ErrBase64, "second line is empty"
	}
	raw = make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	n, err := base64.StdEncoding.Strict().Decode(raw, line)
	if err != nil {
		return "", nil, ErrBase64, err.Error()
	}
	if n != want {
		return "", nil, ErrLength, "decodes to " + strconv.Itoa(n) + " bytes, want " + strconv.Itoa(want)
	}
	return comment, raw[:n], nil, ""
}

// ParsePublicKey parses a public key file.
func ParsePublicKey(data []byte) (*PublicKey, error) {
	comment, raw, err := decodeFile(data, "public key", publicKeyLen)
	if err != nil {
		return nil, err
	}
	k := &PublicKey{Key: ed25519.PublicKey(bytes.Clone(raw[10:])), Comment: comment}
	copy(k.KeyNum[:], raw[2:10])
	return k, nil
}

// ParseSignature parses a signature file.
func ParseSignature(data []byte) (*Signature, error) {
	comment, raw, err := decodeFile(data, "signature", signatureLen)
	if err != nil {
		return nil, err
	}
	s := &Signature{Sig: bytes.Clone(raw[10:]), Comment: comment}
	copy(s.KeyNum[:], raw[2:10])
	return s, nil
}

// ParseSecretKey parses a secret key file. Passphrase-protected keys are
// rejected: usign itself cannot use them either.
func ParseSecretKey(data []byte) (*SecretKey, error) {
	comment, raw, err := decodeFile(data, "secret key", secretKeyLen)
	if err != nil {
		return nil, err
	}
	if string(raw[2:4]) != kdfAlg {
		return nil, errfmt.Errorf("secret key: %w: KDF %q, want %q", ErrAlgorithm, raw[2:4], kdfAlg)
	}
	// Checked before the checksum: with a passphrase the key bytes are
	// encrypted, so the checksum would fail with a misleading message.
	if rounds := binary.BigEndian.Uint32(raw[secOffRounds:]); rounds != 0 {
		return nil, errfmt.Errorf("%w (%d KDF rounds); usign cannot use such keys: "+
			"make a key without passphrase for the signing machine (usign -G, or signify -G -n)",
			ErrPassphrase, rounds)
	}
	seckey := raw[secOffKey:]
	if subtle.ConstantTimeCompare(checksum(seckey), raw[secOffSum:secOffNum]) != 1 {
		return nil, errfmt.Errorf("secret key: %w: the key bytes are corrupt", ErrChecksum)
	}
	// The stored public half is what usign writes into signatures' key files;
	// if it does not belong to the seed every signature would fail to verify.
	priv := ed25519.NewKeyFromSeed(seckey[:ed25519.SeedSize])
	if subtle.ConstantTimeCompare(priv[ed25519.SeedSize:], seckey[ed25519.SeedSize:]) != 1 {
		return nil, errfmt.Errorf("secret key: %w: public half does not belong to the seed", ErrChecksum)
	}
	s := &SecretKey{Key: priv, Comment: comment}
	copy(s.KeyNum[:], raw[secOffNum:secOffKey])
	copy(s.salt[:], raw[secOffSalt:secOffSum])
	return s, nil
}

// Sign makes a pure Ed25519 signature over the raw message, as usign -S does.
func Sign(s *SecretKey, msg []byte) *Signature {
	return &Signature{
		KeyNum:  s.KeyNum,
		Sig:     ed25519.Sign(s.Key, msg),
		Comment: "signed by key " + s.Fingerprint(),
	}
}

// KeyMismatchError says a signature was made by another key than the one
// it is checked against. It matches ErrKeyMismatch with errors.Is.
type KeyMismatchError struct {
	Signed, Want string // fingerprints
}

func (e *KeyMismatchError) Error() string {
	return "signed by key " + e.Signed + ", not " + e.Want
}

// Is makes errors.Is(err, ErrKeyMismatch) true.
func (e *KeyMismatchError) Is(target error) bool { return target == ErrKeyMismatch }

// Verify checks sig over msg with pub. Like signify (and usign -P, which
// picks the key file by keynum) the keynums must match; usign -p skips that
// check, but a mismatch always means the wrong key was handed over.
func Verify(pub *PublicKey, msg []byte, sig *Signature) error {
	if pub.KeyNum != sig.KeyNum {
		return &KeyMismatchError{Signed: sig.Fingerprint(), Want: pub.Fingerprint()}
	}
	if len(pub.Key) != ed25519.PublicKeySize || len(sig.Sig) != ed25519.SignatureSize {
		return errfmt.Errorf("%w: malformed key or signature", ErrLength)
	}
	if !ed25519.Verify(pub.Key, msg, sig.Sig) {
		return errfmt.Errorf("%w: does not match the data (key %s)", ErrBadSignature, pub.Fingerprint())
	}
	return nil
}
