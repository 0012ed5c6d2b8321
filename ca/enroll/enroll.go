// Package enroll is the node's side of the offline CA: it makes the node's
// key pair where it will be used (the private key never leaves the node),
// writes the signing request, and installs the certificate that comes back.
package enroll

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/internal/atomicfile"
	"github.com/meshnode/meshnode/internal/run"
	"github.com/meshnode/meshnode/internal/uci"
)

// Files in the node's directory (default /etc/meshnode, kept across
// sysupgrade). The names are what agent/config expects by default.
const (
	KeyFile         = "node.key"
	CertFile        = "node.crt"
	CAFile          = "ca.crt"
	RequestFile     = "request" // the pending request, until a certificate is installed
	LighthousesFile = "lighthouses"
	BlocklistFile   = "blocklist"
)

// Node is where a node keeps its identity.
type Node struct {
	Dir    string // default /etc/meshnode
	Config string // the agent's UCI file, updated with address, role and lighthouses; "" to leave it alone
	Now    func() time.Time
	// Reload asks the running agent to re-read its files; nil does nothing.
	Reload func(context.Context) error
}

// Default is a node as OpenWrt lays it out.
func Default() *Node {
	return &Node{Dir: "/etc/meshnode", Config: "/etc/config/meshnode", Now: time.Now, Reload: ProcdReload}
}

// ProcdReload asks procd to reload the agent: the init script's reload
// sends SIGHUP, which is what `meshnode reload` triggers too. A service
// that is not running is not an error: it reads the new files when it starts.
func ProcdReload(ctx context.Context) error {
	const initScript = "/etc/init.d/meshnode"
	if _, err := os.Stat(initScript); err != nil {
		return nil
	}
	out, err := run.CombinedOutput(ctx, initScript, "reload")
	if err != nil {
		return fmt.Errorf("%s reload: %v: %s", initScript, err, bytes.TrimSpace(out))
	}
	return nil
}

// path is not inlined: it is called at 16 places, and a copy at each
// costs flash on MIPS.
//
//go:noinline
func (n *Node) path(f string) string { return filepath.Join(n.Dir, f) }

func (n *Node) now() time.Time {
	if n.Now == nil {
		return time.Now()
	}
	return n.Now()
}

// PublicKey returns the node's public key, making the key pair first if
// there is none (the private key is written 0600 and never copied).
func (n *Node) PublicKey() ([]byte, error) {
	data, err := os.ReadFile(n.path(KeyFile))
	if err == nil {
		priv, _, curve, err := cert.UnmarshalPrivateKeyFromPEM(data)
		if err != nil || curve != cert.Curve_CURVE25519 {
			return nil, fmt.Errorf("%s: not a Nebula X25519 private key: %v", n.path(KeyFile), err)
		}
		k, err := ecdh.X25519().NewPrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", n.path(KeyFile), err)
		}
		return k.PublicKey().Bytes(), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return nil, err
	}
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(n.path(KeyFile), cert.MarshalPrivateKeyToPEM(cert.Curve_CURVE25519, k.Bytes()), 0o600); err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

// Request makes (or reuses) the node's key and writes its signing request
// to the node's directory, where a bundle import finds it to carry it to
// the CA.
func (n *Node) Request(name, role string, groups []string) (*exchange.Request, error) {
	req := &exchange.Request{Name: name, Role: role, Groups: groups, PublicKey: make([]byte, 32)}
	// Validate before a key is made: a typo must not leave files behind.
	if err := req.Validate(); err != nil {
		return nil, err
	}
	pub, err := n.PublicKey()
	if err != nil {
		return nil, err
	}
	req.PublicKey = pub
	if err := atomicfile.WriteFile(n.path(RequestFile), req.Marshal(), 0o644); err != nil {
		return nil, err
	}
	return req, nil
}

// Pending returns the request waiting for a certificate, or nil.
func (n *Node) Pending() (*exchange.Request, error) {
	data, err := os.ReadFile(n.path(RequestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := exchange.ParseRequest(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.path(RequestFile), err)
	}
	return r, nil
}

// Response is what the CA sent back for this node.
type Response struct {
	Cert        []byte
	CA          []byte
	Lighthouses []byte // optional
	Source      string // for messages
}

// ReadResponse reads an issued directory (node.crt, ca.crt, lighthouses)
// or a certificate file with ca.crt beside it.
func ReadResponse(path string) (*Response, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	dir, crt := path, filepath.Join(path, exchange.IssuedCert)
	if !fi.IsDir() {
		dir, crt = filepath.Dir(path), path
	}
	r := &Response{Source: crt}
	if r.Cert, err = os.ReadFile(crt); err != nil {
		return nil, err
	}
	if r.CA, err = os.ReadFile(filepath.Join(dir, exchange.IssuedCA)); err != nil {
		return nil, fmt.Errorf("the CA certificate must come with %s: %w", crt, err)
	}
	if r.Lighthouses, err = os.ReadFile(filepath.Join(dir, exchange.IssuedLighthouses)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return r, nil
}

// ImportOptions tune Import.
type ImportOptions struct {
	// CAFingerprint, if set, pins the CA the operator read out at the
	// ceremony; needed trust for the very first import.
	CAFingerprint string
	// Blocklist are fingerprints the node already refuses.
	Blocklist []string
}

// Installed describes a certificate that was installed.
type Installed struct {
	Name     string
	Address  netip.Prefix
	Groups   []string
	NotAfter time.Time
	CA       string // CA fingerprint
	Changed  bool   // false: the same certificate was already installed
}

// Check verifies a response against the node's key and CA without
// changing anything.
func (n *Node) Check(r *Response, o ImportOptions) (cert.Certificate, error) {
	crt, rest, err := cert.UnmarshalCertificateFromPEM(r.Cert)
	if err != nil {
		return nil, fmt.Errorf("%s: not a Nebula certificate: %v", r.Source, err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: unexpected data after the certificate", r.Source)
	}
	if crt.IsCA() {
		return nil, fmt.Errorf("%s is a CA certificate, not a node's", r.Source)
	}
	pool, err := cert.NewCAPoolFromPEM(r.CA)
	if err != nil {
		return nil, fmt.Errorf("CA certificate beside %s: %v", r.Source, err)
	}
	fps := pool.GetFingerprints()
	if len(fps) != 1 {
		return nil, fmt.Errorf("CA certificate beside %s: want exactly one CA, found %d", r.Source, len(fps))
	}
	caFP := fps[0]
	if o.CAFingerprint != "" && !strings.EqualFold(o.CAFingerprint, caFP) {
		return nil, fmt.Errorf("CA certificate beside %s has fingerprint %s, not %s as given: refusing it", r.Source, caFP, o.CAFingerprint)
	}
	// A node that already trusts a CA keeps trusting only that one.
	if cur, err := os.ReadFile(n.path(CAFile)); err == nil {
		if p, err := cert.NewCAPoolFromPEM(cur); err == nil && !slices.Contains(p.GetFingerprints(), caFP) {
			return nil, fmt.Errorf("%s was issued by CA %s, but this node trusts %s (%s)", r.Source, caFP[:16], p.GetFingerprints()[0][:16], n.path(CAFile))
		}
	}
	for _, b := range o.Blocklist {
		pool.BlocklistFingerprint(b)
	}
	if _, err := pool.VerifyCertificate(n.now(), crt); err != nil {
		return nil, fmt.Errorf("%s (%q) does not verify against its CA: %v", r.Source, crt.Name(), err)
	}
	keyPEM, err := os.ReadFile(n.path(KeyFile))
	if err != nil {
		return nil, fmt.Errorf("this node has no key (%s): run 'meshnode enroll --name N --role R' first: %w", n.path(KeyFile), err)
	}
	key, _, curve, err := cert.UnmarshalPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", n.path(KeyFile), err)
	}
	if err := crt.VerifyPrivateKey(curve, key); err != nil {
		return nil, fmt.Errorf("%s (%q) is for another node: it does not match this node's key %s", r.Source, crt.Name(), n.path(KeyFile))
	}
	return crt, nil
}

// Import checks r and installs it: certificate, CA and lighthouses into
// the node's directory, address, role and lighthouses into the agent's
// UCI file; then the agent is reloaded. On any error nothing is changed.
func (n *Node) Import(ctx context.Context, r *Response, o ImportOptions) (*Installed, error) {
	crt, err := n.Check(r, o)
	if err != nil {
		return nil, err
	}
	caFP := ""
	if p, err := cert.NewCAPoolFromPEM(r.CA); err == nil {
		caFP = p.GetFingerprints()[0]
	}
	inst := &Installed{Name: crt.Name(), Groups: crt.Groups(), NotAfter: crt.NotAfter(), CA: caFP}
	if nets := crt.Networks(); len(nets) > 0 {
		inst.Address = nets[0]
	}
	if cur, err := os.ReadFile(n.path(CertFile)); err == nil && bytes.Equal(cur, r.Cert) {
		return inst, nil
	}
	inst.Changed = true

	// Prepare the UCI change before touching anything, so a broken
	// configuration file stops the import with nothing half-done.
	var conf *uci.File
	if n.Config != "" {
		conf, err = n.updatedConfig(inst, crt, r.Lighthouses)
		if err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{{CAFile, r.CA}, {CertFile, r.Cert}}
	if len(r.Lighthouses) > 0 {
		files = append(files, struct {
			name string
			data []byte
		}{LighthousesFile, r.Lighthouses})
	}
	for _, f := range files {
		if err := atomicfile.WriteFile(n.path(f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	if conf != nil {
		if err := uci.WriteFile(n.Config, conf); err != nil {
			return nil, err
		}
	}
	if err := os.Remove(n.path(RequestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if n.Reload != nil {
		if err := n.Reload(ctx); err != nil {
			return inst, fmt.Errorf("certificate installed, but the agent did not reload: %w", err)
		}
	}
	return inst, nil
}

// updatedConfig returns the agent's UCI file with the overlay's role and
// address set and the lighthouse sections replaced by the CA's list
// (without the node itself: a hub lists no lighthouse for itself). A
// missing file is left missing: the package's default config creates it.
func (n *Node) updatedConfig(inst *Installed, crt cert.Certificate, lighthouses []byte) (*uci.File, error) {
	f, err := uci.ReadFile(n.Config)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ovs := f.SectionsOfType("overlay")
	var ov *uci.Section
	if len(ovs) > 0 {
		ov = ovs[0]
	} else if ov, err = f.AddSection("overlay", "overlay"); err != nil {
		return nil, err
	}
	role := ""
	for _, g := range crt.Groups() {
		if slices.Contains(exchange.Roles, g) {
			role = g
			break
		}
	}
	if role != "" {
		if err := ov.Set("role", role); err != nil {
			return nil, err
		}
	}
	if inst.Address.IsValid() {
		if err := ov.Set("address", inst.Address.String()); err != nil {
			return nil, err
		}
	}
	if len(lighthouses) == 0 {
		return f, nil
	}
	lf, err := uci.Parse(LighthousesFile, lighthouses)
	if err != nil {
		return nil, fmt.Errorf("lighthouse list from the CA: %w", err)
	}
	for _, s := range f.SectionsOfType("lighthouse") {
		f.DeleteSection(s)
	}
	for _, s := range lf.SectionsOfType("lighthouse") {
		if a, _ := s.Get("address"); a == inst.Address.Addr().String() {
			continue
		}
		ns, err := f.AddSection("lighthouse", "")
		if err != nil {
			return nil, err
		}
		for _, o := range s.Options() {
			set := ns.SetList
			if !o.IsList {
				set = func(name string, v []string) error { return ns.Set(name, v[0]) }
			}
			if err := set(o.Name, o.Values); err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}
