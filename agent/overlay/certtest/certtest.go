// Package certtest makes Nebula CAs and node certificates for tests, with
// Nebula's own cert package, the way nebula-cert would.
package certtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/slackhq/nebula/cert"
	"golang.org/x/crypto/curve25519"
)

// CA is a signing authority.
type CA struct {
	Cert cert.Certificate
	key  ed25519.PrivateKey
	PEM  []byte
}

// NewCA makes a CA valid from an hour ago for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	t := &cert.TBSCertificate{Version: cert.Version1, Name: name, IsCA: true,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity), PublicKey: pub, Curve: cert.Curve_CURVE25519}
	c, err := t.Sign(nil, cert.Curve_CURVE25519, priv)
	if err != nil {
		return nil, err
	}
	p, err := c.MarshalPEM()
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c, key: priv, PEM: p}, nil
}

// Node is a signed node certificate and its private key, as PEM.
type Node struct {
	Cert, Key []byte
}

// Opts describe a node certificate.
type Opts struct {
	Name      string
	Address   string // 10.0.4.1/24
	Groups    []string
	Unsafe    []string // unsafe networks, e.g. 0.0.0.0/0 for an uplink
	NotBefore time.Time
	NotAfter  time.Time
}

// Sign issues a node certificate.
func (ca *CA) Sign(o Opts) (*Node, error) {
	priv := make([]byte, 32)
	if _, err := rand.Read(priv); err != nil {
		return nil, err
	}
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		return nil, err
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = ca.Cert.NotAfter().Add(-time.Second)
	}
	t := &cert.TBSCertificate{Version: cert.Version1, Name: o.Name, Groups: o.Groups,
		NotBefore: o.NotBefore, NotAfter: o.NotAfter, PublicKey: pub, Curve: cert.Curve_CURVE25519,
		Networks: []netip.Prefix{netip.MustParsePrefix(o.Address)}}
	for _, u := range o.Unsafe {
		t.UnsafeNetworks = append(t.UnsafeNetworks, netip.MustParsePrefix(u))
	}
	c, err := t.Sign(ca.Cert, cert.Curve_CURVE25519, ca.key)
	if err != nil {
		return nil, err
	}
	p, err := c.MarshalPEM()
	if err != nil {
		return nil, err
	}
	return &Node{Cert: p, Key: cert.MarshalPrivateKeyToPEM(cert.Curve_CURVE25519, priv)}, nil
}

// Write stores ca.crt, node.crt and node.key (0600) in dir.
func Write(dir string, ca *CA, n *Node) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"ca.crt": ca.PEM, "node.crt": n.Cert} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "node.key"), n.Key, 0o600)
}
