// Package exchange holds what travels by hand between a node and the CA:
// signing requests, the files of an issued certificate, the blocklist, and
// the rules for node names and roles. Routers import it to enroll and to
// read bundles, so it must stay small: nothing here may pull in the CA's
// key handling (OpenPGP and friends cost flash on every router).
package exchange

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// RequestMagic is the first line of every signing request; the number is
// the format version.
const RequestMagic = "meshnode-request 1"

// A Request asks the CA for a certificate: written on the node, carried to
// the CA by hand. It holds only the public half of the node's key.
type Request struct {
	Name      string
	Role      string
	Groups    []string
	PublicKey []byte // X25519, 32 bytes (Nebula's default curve)
}

// Names are DNS labels so they work as overlay host names and in Ansible.
var (
	nameRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	groupRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// ValidName checks a node name.
func ValidName(s string) error {
	if !nameRe.MatchString(s) {
		return errfmt.Errorf("name %q: want 1-32 lower-case letters, digits and '-', not starting or ending with '-'", Clip(s))
	}
	return nil
}

// MaxGroups bounds the groups a request may ask for.
const MaxGroups = 8

// Validate checks name, role and groups, naming the field that is wrong.
func (r *Request) Validate() error {
	if err := ValidName(r.Name); err != nil {
		return err
	}
	if !slices.Contains(Roles, r.Role) {
		return errfmt.Errorf("role %q: want one of hub, relay, uplink, client", r.Role)
	}
	if len(r.Groups) > MaxGroups {
		return errfmt.Errorf("groups: %d given, at most %d", len(r.Groups), MaxGroups)
	}
	for _, g := range r.Groups {
		if !groupRe.MatchString(g) {
			return errfmt.Errorf("groups: %q: want lower-case letters, digits, '_' and '-'", g)
		}
	}
	if len(r.PublicKey) != 32 {
		return errfmt.Errorf("public-key: %d bytes, want a 32-byte X25519 key", len(r.PublicKey))
	}
	return nil
}

// Fingerprint is the SHA-256 of the public key in hex: what the node host
// and the operator read to each other.
func (r *Request) Fingerprint() string { return KeyFingerprint(r.PublicKey) }

// KeyFingerprint is the SHA-256 of a public key in hex.
func KeyFingerprint(pub []byte) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:])
}

// Marshal writes the request as text lines; the fingerprint line lets a
// reader check the file was carried intact.
func (r *Request) Marshal() []byte {
	return []byte(RequestMagic + "\nname " + r.Name + "\nrole " + r.Role + "\ngroups " + strings.Join(r.Groups, ",") +
		"\npublic-key " + base64.StdEncoding.EncodeToString(r.PublicKey) + "\nfingerprint " + r.Fingerprint() + "\n")
}

// ParseRequest reads a request written by Marshal. Every field must be
// present once, and the fingerprint must match the key, so a torn or
// edited file is refused with the field named.
func ParseRequest(data []byte) (*Request, error) {
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	if data[len(data)-1] != '\n' {
		return nil, errors.New("last line is incomplete (file cut short while being written?)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if lines[0] != RequestMagic {
		return nil, errfmt.Errorf("line 1: want %q, got %q", RequestMagic, Clip(lines[0]))
	}
	// Values and whether each was seen, by index in requestFields: a
	// map costs more flash on MIPS.
	var (
		vals [len(requestFields)]string
		seen [len(requestFields)]bool
	)
	for i, l := range lines[1:] {
		k, v, ok := strings.Cut(l, " ")
		j := slices.Index(requestFields[:], k)
		msg := ""
		switch {
		case !ok && l != "groups":
			msg = "want 'field value', got " + quoteClip(l)
		case j < 0:
			msg = "unknown field " + quoteClip(k)
		case seen[j]:
			msg = "field " + k + " given twice"
		}
		if msg != "" {
			return nil, errfmt.Errorf("line %d: %s", i+2, msg)
		}
		vals[j], seen[j] = v, true
	}
	for j, k := range requestFields {
		if !seen[j] {
			return nil, errfmt.Errorf("field %s is missing", k)
		}
	}
	r := &Request{Name: vals[0], Role: vals[1]}
	if g := vals[2]; g != "" {
		r.Groups = strings.Split(g, ",")
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(vals[3])
	if err != nil {
		return nil, errors.New("public-key: not base64")
	}
	r.PublicKey = pub
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if fp := vals[4]; fp != r.Fingerprint() {
		return nil, errfmt.Errorf("fingerprint %q does not match the public key (%s): the file was changed or damaged", Clip(fp), r.Fingerprint())
	}
	return r, nil
}

// requestFields are the lines of a request after the first, in the
// order Marshal writes them.
var requestFields = [...]string{"name", "role", "groups", "public-key", "fingerprint"}

// quoteClip is %q of Clip(s). Not inlined: strconv.Quote inlined is about
// 250 bytes of MIPS code at each call.
//
//go:noinline
func quoteClip(s string) string { return strconv.Quote(Clip(s)) }

// Clip shortens untrusted text quoted in an error message.
func Clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Roles a node can be enrolled with; they match agent/config's roles.
var Roles = []string{"hub", "relay", "uplink", "client"}

// Files of an issued certificate directory, as the node imports them.
const (
	IssuedCert        = "node.crt"
	IssuedCA          = "ca.crt"
	IssuedLighthouses = "lighthouses"
)

// ParseBlocklist reads a blocklist: one 64-hex-digit fingerprint per line,
// '#' starts a comment, blank lines are ignored.
func ParseBlocklist(data []byte) ([]string, error) {
	var out []string
	for i, l := range strings.Split(string(data), "\n") {
		if j := strings.IndexByte(l, '#'); j >= 0 {
			l = l[:j]
		}
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if !IsHex64(l) {
			return nil, errfmt.Errorf("line %d: %q is not a certificate fingerprint (64 hex digits)", i+1, Clip(l))
		}
		out = append(out, l)
	}
	return out, nil
}

// IsHex64 reports whether s is a fingerprint: 64 lower-case hex digits.
func IsHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
