// Package pgp signs and verifies a feed's SHA256SUMS with OpenPGP, so people
// who fetch a feed with ordinary tools (curl, gpg, sha256sum) can check it
// without usign. It wraps github.com/ProtonMail/go-crypto/openpgp.
//
// Keys are v4 EdDSA (Ed25519, the "legacy" algorithm 22 every GnuPG since
// 2.1 understands). Ed25519 itself is deterministic, so with the library's
// random salt notation switched off a signature depends only on key, message
// and signature time: two builds with the same keys and SOURCE_DATE_EPOCH
// produce identical SHA256SUMS.asc files.
package pgp

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Errors returned (wrapped) by this package; test with errors.Is.
var (
	ErrPassphrase   = errors.New("secret key is passphrase-protected")
	ErrNoSecret     = errors.New("no usable secret key")
	ErrMalformed    = errors.New("malformed OpenPGP data")
	ErrUnknownKey   = errors.New("signed by an untrusted key") // see UnknownKeyError
	ErrBadSignature = errors.New("bad signature")              // see BadSignatureError
	// ErrRejected: the signature matches, but the trusted key is expired or
	// revoked now, or uses an algorithm the library refuses.
	ErrRejected = errors.New("signature rejected")
)

const (
	armorSignature = "PGP SIGNATURE"
	armorPublic    = "PGP PUBLIC KEY BLOCK"
	armorPrivate   = "PGP PRIVATE KEY BLOCK"
)

// config is the one place that decides how keys and signatures are made.
// now is the time stamped into whatever is created.
func config(now time.Time) *packet.Config {
	deterministic := false
	return &packet.Config{
		Algorithm:   packet.PubKeyAlgoEdDSA,
		Curve:       packet.Curve25519,
		DefaultHash: crypto.SHA256,
		Time:        func() time.Time { return now },
		// go-crypto adds a random "salt@notations.openpgpjs.org" notation to
		// every v4 signature by default (fault-attack hardening). That makes
		// SHA256SUMS.asc differ between otherwise identical builds.
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
}

// GenerateKey makes a new signing-only key without passphrase, created at
// created (truncated to seconds; OpenPGP has no finer time).
func GenerateKey(name, comment, email string, created time.Time) (armoredSecret, armoredPublic []byte, err error) {
	created = created.UTC().Truncate(time.Second)
	e, err := openpgp.NewEntity(name, comment, email, config(created))
	if err != nil {
		return nil, nil, fmt.Errorf("pgp: generating key: %w", err)
	}
	// NewEntity adds an encryption subkey; a feed key only ever signs, and a
	// build machine should not be something people can encrypt mail to.
	e.Subkeys = nil

	var sec, pub bytes.Buffer
	if err := writeArmored(&sec, armorPrivate, func(w io.Writer) error {
		// NewEntity has already made the self-signatures; re-signing here
		// would stamp them with the current time instead of created.
		return e.SerializePrivateWithoutSigning(w, nil)
	}); err != nil {
		return nil, nil, err
	}
	if err := writeArmored(&pub, armorPublic, e.Serialize); err != nil {
		return nil, nil, err
	}
	return sec.Bytes(), pub.Bytes(), nil
}

func writeArmored(out *bytes.Buffer, blockType string, body func(io.Writer) error) error {
	w, err := armor.Encode(out, blockType, nil)
	if err != nil {
		return err
	}
	if err := body(w); err != nil {
		return fmt.Errorf("pgp: serializing: %w", err)
	}
	if err := w.Close(); err != nil {
		return err
	}
	out.WriteByte('\n') // armor.Encode ends without a final newline
	return nil
}

// Signer signs with one secret key.
type Signer struct {
	entity *openpgp.Entity
	// notBefore is the latest creation time among the signing key and its
	// self-signatures: signatures dated earlier are rejected by GnuPG
	// ("key created in the future") and by go-crypto itself.
	notBefore time.Time
	// keyID pins the (sub)key LoadSigner checked; left to itself the
	// library would pick whichever signing key was valid at the signature
	// time, which for an old SOURCE_DATE_EPOCH may be another one.
	keyID  uint64
	public []byte // armored, made once so PublicKey cannot fail
}

// LoadSigner reads one armored secret key (as written by GenerateKey or by
// gpg --export-secret-keys --armor). The key must not be passphrase-protected:
// the build runs unattended.
func LoadSigner(armoredSecret []byte) (*Signer, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredSecret))
	if err != nil {
		return nil, fmt.Errorf("reading secret key: %w: %v", ErrMalformed, err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("%w: file holds %d keys, want exactly one", ErrNoSecret, len(el))
	}
	e := el[0]
	now := time.Now()
	key, ok := e.SigningKey(now)
	if !ok {
		return nil, fmt.Errorf("%w: key %s has no signing key valid now (expired or revoked?)",
			ErrNoSecret, fingerprint(e))
	}
	switch {
	case key.PrivateKey == nil:
		return nil, fmt.Errorf("%w: key %s is a public key only; export the secret key "+
			"(gpg --export-secret-keys --armor)", ErrNoSecret, fingerprint(e))
	case key.PrivateKey.Dummy():
		// gpg exports a stub when the secret lives on a smartcard or was
		// exported with --export-secret-subkeys without the signing subkey.
		return nil, fmt.Errorf("%w: key %s holds only a stub for the signing key (smartcard or offline key?)",
			ErrNoSecret, fingerprint(e))
	case key.PrivateKey.Encrypted:
		return nil, fmt.Errorf("%w: key %s cannot be used by an unattended build; "+
			"make or export a key without passphrase for the signing machine", ErrPassphrase, fingerprint(e))
	}

	s := &Signer{entity: e, keyID: key.PublicKey.KeyId}
	var pub bytes.Buffer
	if err := writeArmored(&pub, armorPublic, e.Serialize); err != nil {
		return nil, err
	}
	s.public = pub.Bytes()
	for _, t := range []time.Time{e.PrimaryKey.CreationTime, key.PublicKey.CreationTime} {
		s.raise(t)
	}
	if sig, _ := e.PrimarySelfSignature(); sig != nil {
		s.raise(sig.CreationTime)
	}
	if key.SelfSignature != nil {
		s.raise(key.SelfSignature.CreationTime)
		if key.SelfSignature.EmbeddedSignature != nil {
			s.raise(key.SelfSignature.EmbeddedSignature.CreationTime)
		}
	}
	return s, nil
}

func (s *Signer) raise(t time.Time) {
	if t.After(s.notBefore) {
		s.notBefore = t
	}
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
}

// Fingerprint is the primary key's fingerprint, 40 uppercase hex digits, as
// gpg --fingerprint shows it without spaces.
func (s *Signer) Fingerprint() string { return fingerprint(s.entity) }

// PublicKey returns the armored public key, for publishing next to the feed.
func (s *Signer) PublicKey() []byte { return bytes.Clone(s.public) }

// Sign returns an ASCII-armored detached signature over msg dated at
// (truncated to seconds). Dates before the key's creation are moved up to it,
// so a SOURCE_DATE_EPOCH older than the key still signs, still
// deterministically.
func (s *Signer) Sign(msg []byte, at time.Time) ([]byte, error) {
	at = at.UTC().Truncate(time.Second)
	if at.Before(s.notBefore) {
		at = s.notBefore.UTC()
	}
	cfg := config(at)
	cfg.SigningKeyId = s.keyID
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.entity, bytes.NewReader(msg), cfg); err != nil {
		return nil, fmt.Errorf("pgp: signing with key %s: %w", s.Fingerprint(), err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// KeyRing holds the public keys trusted to sign SHA256SUMS.
type KeyRing struct {
	entities openpgp.EntityList
}

// LoadKeyRing reads armored public keys, one armored block per argument
// (each block may hold several keys).
func LoadKeyRing(armoredPublic ...[]byte) (*KeyRing, error) {
	k := &KeyRing{}
	for i, a := range armoredPublic {
		el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(a))
		if err != nil {
			return nil, fmt.Errorf("reading public key %d: %w: %v", i+1, ErrMalformed, err)
		}
		k.entities = append(k.entities, el...)
	}
	if len(k.entities) == 0 {
		return nil, fmt.Errorf("%w: no public keys given", ErrMalformed)
	}
	return k, nil
}

// Fingerprints lists the primary fingerprints in the ring, in load order.
func (k *KeyRing) Fingerprints() []string {
	fps := make([]string, len(k.entities))
	for i, e := range k.entities {
		fps[i] = fingerprint(e)
	}
	return fps
}

// UnknownKeyError says a signature was made by keys not in the ring. It
// matches ErrUnknownKey with errors.Is.
type UnknownKeyError struct {
	Issuers []string // fingerprints (40 hex) or, for old signatures, key ids (16 hex)
}

func (e *UnknownKeyError) Error() string {
	if len(e.Issuers) == 0 {
		return "signature names no signing key"
	}
	return fmt.Sprintf("signed by PGP key %s, which is not trusted", strings.Join(e.Issuers, ", "))
}

// Is makes errors.Is(err, ErrUnknownKey) true.
func (e *UnknownKeyError) Is(target error) bool { return target == ErrUnknownKey }

// BadSignatureError says a signature by a trusted key does not match the
// data: the data or the signature was changed. It matches ErrBadSignature
// with errors.Is.
type BadSignatureError struct {
	Issuers []string // as in UnknownKeyError
}

func (e *BadSignatureError) Error() string {
	return fmt.Sprintf("signature by PGP key %s does not match the data", strings.Join(e.Issuers, ", "))
}

// Is makes errors.Is(err, ErrBadSignature) true.
func (e *BadSignatureError) Is(target error) bool { return target == ErrBadSignature }

// Verify checks an armored detached signature over msg and returns the
// fingerprint of the trusted primary key that made it.
func (k *KeyRing) Verify(msg, armoredSig []byte) (signerFingerprint string, err error) {
	block, err := armor.Decode(bytes.NewReader(armoredSig))
	if err != nil {
		return "", fmt.Errorf("%w: not an armored signature: %v", ErrMalformed, err)
	}
	if block.Type != armorSignature {
		return "", fmt.Errorf("%w: armor type %q, want %q", ErrMalformed, block.Type, armorSignature)
	}
	body, err := io.ReadAll(block.Body) // also checks the armor CRC
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}

	// Find out who signed first, so an untrusted signer gets a message naming
	// the key instead of go-crypto's "signature made by unknown entity".
	issuers, known, err := k.issuers(body)
	if err != nil {
		return "", err
	}
	if !known {
		return "", &UnknownKeyError{Issuers: issuers}
	}

	signer, err := openpgp.CheckDetachedSignature(k.entities, bytes.NewReader(msg), bytes.NewReader(body), nil)
	if err != nil {
		var sigErr pgperrors.SignatureError
		switch {
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			// Issuer is in the ring but not as a signing-capable key.
			return "", &UnknownKeyError{Issuers: issuers}
		case errors.As(err, &sigErr):
			return "", &BadSignatureError{Issuers: issuers}
		default:
			// Expired or revoked key, unsupported algorithm, ...
			return "", fmt.Errorf("%w: %v", ErrRejected, err)
		}
	}
	return fingerprint(signer), nil
}

// issuers lists who made the signatures in body and whether any of them is
// in the ring.
func (k *KeyRing) issuers(body []byte) (issuers []string, known bool, err error) {
	r := packet.NewReader(bytes.NewReader(body))
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		sig, ok := p.(*packet.Signature)
		if !ok {
			return nil, false, fmt.Errorf("%w: %T packet in a detached signature", ErrMalformed, p)
		}
		switch {
		case len(sig.IssuerFingerprint) > 0:
			issuers = append(issuers, strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint)))
		case sig.IssuerKeyId != nil:
			issuers = append(issuers, fmt.Sprintf("%016X", *sig.IssuerKeyId))
		}
		if sig.IssuerKeyId != nil && len(k.entities.KeysById(*sig.IssuerKeyId)) > 0 {
			known = true
		}
	}
	if len(issuers) == 0 {
		return nil, false, fmt.Errorf("%w: no signature packet names its key", ErrMalformed)
	}
	return issuers, known, nil
}
