package ca

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
		return fmt.Errorf("name %q: want 1-32 lower-case letters, digits and '-', not starting or ending with '-'", clip(s))
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
		return fmt.Errorf("role %q: want one of hub, relay, uplink, client", r.Role)
	}
	if len(r.Groups) > MaxGroups {
		return fmt.Errorf("groups: %d given, at most %d", len(r.Groups), MaxGroups)
	}
	for _, g := range r.Groups {
		if !groupRe.MatchString(g) {
			return fmt.Errorf("groups: %q: want lower-case letters, digits, '_' and '-'", g)
		}
	}
	if len(r.PublicKey) != 32 {
		return fmt.Errorf("public-key: %d bytes, want a 32-byte X25519 key", len(r.PublicKey))
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
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nname %s\nrole %s\ngroups %s\npublic-key %s\nfingerprint %s\n",
		RequestMagic, r.Name, r.Role, strings.Join(r.Groups, ","),
		base64.StdEncoding.EncodeToString(r.PublicKey), r.Fingerprint())
	return b.Bytes()
}

// ParseRequest reads a request written by Marshal. Every field must be
// present once, and the fingerprint must match the key, so a torn or
// edited file is refused with the field named.
func ParseRequest(data []byte) (*Request, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty file")
	}
	if data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("last line is incomplete (file cut short while being written?)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if lines[0] != RequestMagic {
		return nil, fmt.Errorf("line 1: want %q, got %q", RequestMagic, clip(lines[0]))
	}
	seen := map[string]string{}
	for i, l := range lines[1:] {
		k, v, ok := strings.Cut(l, " ")
		if !ok && l != "groups" {
			return nil, fmt.Errorf("line %d: want 'field value', got %q", i+2, clip(l))
		}
		switch k {
		case "name", "role", "groups", "public-key", "fingerprint":
		default:
			return nil, fmt.Errorf("line %d: unknown field %q", i+2, clip(k))
		}
		if _, dup := seen[k]; dup {
			return nil, fmt.Errorf("line %d: field %s given twice", i+2, k)
		}
		seen[k] = v
	}
	for _, k := range []string{"name", "role", "groups", "public-key", "fingerprint"} {
		if _, ok := seen[k]; !ok {
			return nil, fmt.Errorf("field %s is missing", k)
		}
	}
	r := &Request{Name: seen["name"], Role: seen["role"]}
	if g := seen["groups"]; g != "" {
		r.Groups = strings.Split(g, ",")
	}
	pub, err := base64.StdEncoding.Strict().DecodeString(seen["public-key"])
	if err != nil {
		return nil, fmt.Errorf("public-key: not base64")
	}
	r.PublicKey = pub
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if fp := seen["fingerprint"]; fp != r.Fingerprint() {
		return nil, fmt.Errorf("fingerprint %q does not match the public key (%s): the file was changed or damaged", clip(fp), r.Fingerprint())
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
