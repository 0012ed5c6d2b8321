package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meshnode/meshnode/internal/atomicfile"
)

// Ledger operations.
const (
	OpSign   = "sign"   // a new node got an address and a certificate
	OpRenew  = "renew"  // the same node, same key and address, a new certificate
	OpRevoke = "revoke" // the node's certificates are blocklisted; its address is retired
)

// Entry is one line of the ledger: JSON, newline-terminated.
type Entry struct {
	Seq       int        `json:"seq"`
	Time      time.Time  `json:"time"`
	Op        string     `json:"op"`
	Name      string     `json:"name"`
	Address   netip.Addr `json:"address"`
	Role      string     `json:"role,omitempty"`
	Groups    []string   `json:"groups,omitempty"`
	PublicKey string     `json:"public_key,omitempty"` // base64, sign only
	Cert      string     `json:"cert,omitempty"`       // certificate fingerprint, sign and renew
	NotAfter  time.Time  `json:"not_after,omitzero"`
	Reason    string     `json:"reason,omitempty"` // revoke only
}

// ParseEntry reads one ledger line (without its newline) and checks the
// fields its operation needs.
func ParseEntry(line []byte) (Entry, error) {
	var e Entry
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return e, fmt.Errorf("not a ledger entry: %v", err)
	}
	if d.More() {
		return e, errors.New("not a ledger entry: trailing data")
	}
	if e.Seq < 1 {
		return e, fmt.Errorf("seq %d: want 1 or more", e.Seq)
	}
	if ValidName(e.Name) != nil {
		return e, fmt.Errorf("name %q is not a node name", clip(e.Name))
	}
	if !e.Address.Is4() {
		return e, fmt.Errorf("address %v is not an IPv4 address", e.Address)
	}
	switch e.Op {
	case OpSign:
		if !slices.Contains(Roles, e.Role) {
			return e, fmt.Errorf("role %q is unknown", clip(e.Role))
		}
		if k, err := base64.StdEncoding.DecodeString(e.PublicKey); err != nil || len(k) != 32 {
			return e, errors.New("public_key is not a base64 32-byte key")
		}
		fallthrough
	case OpRenew:
		if !isHex64(e.Cert) {
			return e, fmt.Errorf("cert %q is not a certificate fingerprint", clip(e.Cert))
		}
		if e.NotAfter.IsZero() {
			return e, errors.New("not_after is missing")
		}
	case OpRevoke:
	default:
		return e, fmt.Errorf("op %q: want sign, renew or revoke", clip(e.Op))
	}
	return e, nil
}

// Node is a ledger's view of one enrollment: a name, a key and an
// address, with every certificate ever issued to it.
type Node struct {
	Name      string
	Role      string
	Groups    []string
	Address   netip.Addr
	PublicKey []byte
	Certs     []string // certificate fingerprints, oldest first
	NotAfter  time.Time
	Signed    time.Time
	Revoked   bool
}

// Ledger is the CA's append-only record of every address handed out.
// Lines are only ever appended and fsynced; an address that appears once
// is never given to another node, even after revocation.
type Ledger struct {
	path    string
	entries []Entry
	byAddr  map[netip.Addr]*Node
	byKey   map[string]*Node // key fingerprint -> node
	byName  map[string]*Node // active (not revoked) nodes only
}

// TornError says the ledger's last line was never finished (power cut or
// full disk while appending). The complete lines before it are intact.
type TornError struct {
	Path string
	Line int
}

func (e *TornError) Error() string {
	return fmt.Sprintf("%s: line %d is incomplete (a write was cut short); nothing was changed. Check the line, then remove it with a text editor and retry", e.Path, e.Line)
}

// OpenLedger reads the ledger at path (a missing file is an empty ledger)
// and checks it line by line.
func OpenLedger(path string) (*Ledger, error) {
	l := &Ledger{path: path, byAddr: map[netip.Addr]*Node{}, byKey: map[string]*Node{}, byName: map[string]*Node{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	entries, err := ParseLedger(data)
	if err != nil {
		var te *TornError
		if errors.As(err, &te) {
			te.Path = path
			return nil, te
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, e := range entries {
		if err := l.apply(e); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, i+1, err)
		}
	}
	return l, nil
}

// ParseLedger splits data into entries, checking each line and that seq
// counts up from 1 without gaps (a lost or reordered line shows).
func ParseLedger(data []byte) ([]Entry, error) {
	var out []Entry
	line := 0
	for len(data) > 0 {
		line++
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, &TornError{Line: line}
		}
		e, err := ParseEntry(data[:i])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if e.Seq != line {
			return nil, fmt.Errorf("line %d: seq %d, want %d (a line is missing or out of order)", line, e.Seq, line)
		}
		out = append(out, e)
		data = data[i+1:]
	}
	return out, nil
}

// apply updates the views with e, refusing anything that would break the
// ledger's promises.
func (l *Ledger) apply(e Entry) error {
	switch e.Op {
	case OpSign:
		if n, ok := l.byAddr[e.Address]; ok {
			return fmt.Errorf("address %s was already given to %s", e.Address, n.Name)
		}
		pub, _ := base64.StdEncoding.DecodeString(e.PublicKey)
		fp := KeyFingerprint(pub)
		if n, ok := l.byKey[fp]; ok {
			return fmt.Errorf("key %s was already signed for %s (%s)", fp[:16], n.Name, n.Address)
		}
		if n, ok := l.byName[e.Name]; ok {
			return fmt.Errorf("name %s is in use by %s; revoke it first", e.Name, n.Address)
		}
		n := &Node{Name: e.Name, Role: e.Role, Groups: e.Groups, Address: e.Address, PublicKey: pub,
			Certs: []string{e.Cert}, NotAfter: e.NotAfter, Signed: e.Time}
		l.byAddr[e.Address], l.byKey[fp], l.byName[e.Name] = n, n, n
	case OpRenew, OpRevoke:
		n, ok := l.byName[e.Name]
		if !ok || n.Address != e.Address {
			return fmt.Errorf("%s at %s is not an active node", e.Name, e.Address)
		}
		if e.Op == OpRenew {
			n.Certs = append(n.Certs, e.Cert)
			n.NotAfter = e.NotAfter
		} else {
			n.Revoked = true
			delete(l.byName, e.Name)
		}
	}
	l.entries = append(l.entries, e)
	return nil
}

// Append validates e, writes it as the next line and fsyncs before
// returning, so a signed certificate is never handed out unrecorded.
func (l *Ledger) Append(e Entry) error {
	e.Seq = len(l.entries) + 1
	// Check against a copy first: a refused entry leaves memory and disk alone.
	probe, err := l.clone()
	if err != nil {
		return err
	}
	if err := probe.apply(e); err != nil {
		return err
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(l.path)
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", l.path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if statErr != nil {
		if err := atomicfile.SyncDir(filepath.Dir(l.path)); err != nil {
			return err
		}
	}
	*l = *probe
	return nil
}

func (l *Ledger) clone() (*Ledger, error) {
	c := &Ledger{path: l.path, byAddr: map[netip.Addr]*Node{}, byKey: map[string]*Node{}, byName: map[string]*Node{}}
	for _, e := range l.entries {
		if err := c.apply(e); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Entries returns a copy of every entry, oldest first.
func (l *Ledger) Entries() []Entry { return slices.Clone(l.entries) }

// Nodes returns every enrollment ever made, by address.
func (l *Ledger) Nodes() []Node {
	var out []Node
	for _, n := range l.byAddr {
		c := *n
		c.Certs = slices.Clone(n.Certs)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Node) int { return a.Address.Compare(b.Address) })
	return out
}

// Active returns the node called name, if it is enrolled and not revoked.
func (l *Ledger) Active(name string) (Node, bool) {
	n, ok := l.byName[name]
	if !ok {
		return Node{}, false
	}
	c := *n
	c.Certs = slices.Clone(n.Certs)
	return c, true
}

// ByKey returns the enrollment (active or revoked) for a key fingerprint.
func (l *Ledger) ByKey(fp string) (Node, bool) {
	n, ok := l.byKey[fp]
	if !ok {
		return Node{}, false
	}
	return *n, true
}

// Used reports whether a was ever handed out.
func (l *Ledger) Used(a netip.Addr) bool { _, ok := l.byAddr[a]; return ok }
