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
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/internal/atomicfile"
	"github.com/meshnode/meshnode/internal/errfmt"
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
		return errfmt.Errorf("%s reload: %v: %s", initScript, err, bytes.TrimSpace(out))
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
	keyPath := n.path(KeyFile)
	data, err := os.ReadFile(keyPath)
	var k *ecdh.PrivateKey
	switch {
	case err == nil:
		priv, _, curve, err := cert.UnmarshalPrivateKeyFromPEM(data)
		if err != nil || curve != cert.Curve_CURVE25519 {
			return nil, errfmt.Errorf("%s: not a Nebula X25519 private key: %v", keyPath, err)
		}
		if k, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, errfmt.Errorf("%s: %v", keyPath, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	default:
		if err := os.MkdirAll(n.Dir, 0o700); err != nil {
			return nil, err
		}
		if k, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(keyPath, cert.MarshalPrivateKeyToPEM(cert.Curve_CURVE25519, k.Bytes()), 0o600); err != nil {
			return nil, err
		}
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
		return nil, errfmt.Errorf("%s: %w", n.path(RequestFile), err)
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
		return nil, errfmt.Errorf("the CA certificate must come with %s: %w", crt, err)
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
	crt, _, err := n.check(r, &o)
	return crt, err
}

// check is Check that also returns the CA's fingerprint. Its errors are
// built from strings: formatting each with errfmt costs more flash on
// MIPS.
func (n *Node) check(r *Response, o *ImportOptions) (cert.Certificate, string, error) {
	src := r.Source
	crt, rest, err := cert.UnmarshalCertificateFromPEM(r.Cert)
	if err != nil {
		return refused(src + ": not a Nebula certificate: " + err.Error())
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return refused(src + ": unexpected data after the certificate")
	}
	if crt.IsCA() {
		return refused(src + " is a CA certificate, not a node's")
	}
	pool, fps, err := caPool(r.CA)
	if err != nil {
		return refused("CA certificate beside " + src + ": " + err.Error())
	}
	if len(fps) != 1 {
		return refused("CA certificate beside " + src + ": want exactly one CA, found " + strconv.Itoa(len(fps)))
	}
	caFP := fps[0]
	if o.CAFingerprint != "" && !strings.EqualFold(o.CAFingerprint, caFP) {
		return refused("CA certificate beside " + src + " has fingerprint " + caFP + ", not " + o.CAFingerprint + " as given: refusing it")
	}
	// A node that already trusts a CA keeps trusting only that one.
	caPath := n.path(CAFile)
	if cur, err := os.ReadFile(caPath); err == nil {
		// An empty or unreadable ca.crt trusts nothing yet: the first CA is taken.
		if _, trusted, err := caPool(cur); err == nil && len(trusted) > 0 && !slices.Contains(trusted, caFP) {
			return refused(src + " was issued by CA " + caFP[:16] + ", but this node trusts " + trusted[0][:16] + " (" + caPath + ")")
		}
	}
	for _, b := range o.Blocklist {
		pool.BlocklistFingerprint(b)
	}
	if _, err := pool.VerifyCertificate(n.now(), crt); err != nil {
		return refused(src + " (" + quote(crt.Name()) + ") does not verify against its CA: " + err.Error())
	}
	keyPath := n.path(KeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, "", errfmt.Errorf("this node has no key (%s): run 'meshnode enroll --name N --role R' first: %w", keyPath, err)
	}
	key, _, curve, err := cert.UnmarshalPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return refused(keyPath + ": " + err.Error())
	}
	if err := crt.VerifyPrivateKey(curve, key); err != nil {
		return refused(src + " (" + quote(crt.Name()) + ") is for another node: it does not match this node's key " + keyPath)
	}
	return crt, caFP, nil
}

// refused is check's result for a response it refuses. Not inlined, as
// it is called from a dozen error paths.
//
//go:noinline
func refused(msg string) (cert.Certificate, string, error) {
	return nil, "", errors.New(msg)
}

// caPool parses CA certificates and returns their fingerprints. Not
// inlined, nor is GetFingerprints at each call: its map loop costs flash.
//
//go:noinline
func caPool(pemData []byte) (*cert.CAPool, []string, error) {
	p, err := cert.NewCAPoolFromPEM(pemData)
	if err != nil {
		return nil, nil, err
	}
	return p, p.GetFingerprints(), nil
}

// quote is strconv.Quote (fmt's %q), not inlined: that is about 250
// bytes of MIPS code at each call.
//
//go:noinline
func quote(s string) string { return strconv.Quote(s) }

// Import checks r and installs it: certificate, CA and lighthouses into
// the node's directory, address, role and lighthouses into the agent's
// UCI file; then the agent is reloaded. On any error nothing is changed.
func (n *Node) Import(ctx context.Context, r *Response, o ImportOptions) (*Installed, error) {
	crt, caFP, err := n.check(r, &o)
	if err != nil {
		return nil, err
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
	names := [...]string{CAFile, CertFile, LighthousesFile}
	for i, data := range [...][]byte{r.CA, r.Cert, r.Lighthouses} {
		if len(data) == 0 {
			continue // only the lighthouses can be missing: check parsed the rest
		}
		if err := atomicfile.WriteFile(n.path(names[i]), data, 0o644); err != nil {
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
			return inst, errfmt.Errorf("certificate installed, but the agent did not reload: %w", err)
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
		return nil, errfmt.Errorf("lighthouse list from the CA: %w", err)
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
			if o.IsList {
				err = ns.SetList(o.Name, o.Values)
			} else {
				err = ns.Set(o.Name, o.Values[0])
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return f, nil
}
