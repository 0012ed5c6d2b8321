// Package ca is the community's offline certificate authority: the Nebula
// CA, the feed and alert signing keys, the address plan and the
// append-only ledger of every node it enrolled. It runs on an air-gapped
// laptop; nothing here opens a network connection.
package ca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/internal/atomicfile"
	"github.com/meshnode/meshnode/internal/uci"
)

// Files of a CA directory. The feed key names match `meshkit feed keygen`,
// so `MESHNODE_USIGN_KEY=DIR/usign.sec make` signs a release with them.
const (
	CACert     = "ca.crt"
	CAKey      = "ca.key"
	UsignSec   = "usign.sec"
	UsignPub   = "usign.pub"
	PGPSec     = "pgp.sec.asc"
	PGPPub     = "pgp.pub.asc"
	AlertKey   = "alert.key" // base64 Ed25519 seed, as lora-bridge/alert.ParsePrivate reads it
	AlertPub   = "alert.pub" // base64 public key, as UCI alert_key holds it
	ConfigFile = "ca.conf"   // UCI: address plan, lighthouses, certificate lifetime
	LedgerFile = "ledger"
	IssuedDir  = "issued" // issued/<name>/{node.crt,ca.crt,lighthouses}: waiting for the node
	Blocklist  = "blocklist"
)

// secrets are refused when group or others may read them.
var secrets = []string{CAKey, UsignSec, PGPSec, AlertKey}

// Lighthouse is a hub's overlay address and public endpoints, as the
// agent's 'config lighthouse' sections hold them.
type Lighthouse struct {
	Address   netip.Addr
	Endpoints []string
}

// InitOptions configure a new CA.
type InitOptions struct {
	Name        string // community name, on the CA certificate and keys
	Plan        Plan
	Lighthouses []Lighthouse
	CAValidity  time.Duration
	CertDays    int // node certificate lifetime
	Now         time.Time
}

// Fingerprints are what the operator reads aloud at the key ceremony.
type Fingerprints struct {
	NebulaCA string // SHA-256 of the CA certificate
	Usign    string // usign key number, the name of /etc/opkg/keys/<fp>
	PGP      string
	Alert    string // the base64 public key itself: short enough to compare
}

func (f Fingerprints) String() string {
	return fmt.Sprintf("Nebula CA   %s\nusign key   %s\nOpenPGP key %s\nalert key   %s\n", f.NebulaCA, f.Usign, f.PGP, f.Alert)
}

// Init creates a CA in dir, which must not hold one already. Every file is
// 0600 and the directory 0700.
func Init(dir string, o InitOptions) (Fingerprints, error) {
	var fps Fingerprints
	if o.Name == "" {
		o.Name = "meshnode"
	}
	if o.CAValidity <= 0 {
		o.CAValidity = 5 * 365 * 24 * time.Hour
	}
	if o.CertDays <= 0 {
		o.CertDays = 365
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := o.Plan.Validate(); err != nil {
		return fps, err
	}
	for _, lh := range o.Lighthouses {
		if !o.Plan.Network.Contains(lh.Address) {
			return fps, fmt.Errorf("lighthouse %s is not inside the overlay %s", lh.Address, o.Plan.Network)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fps, err
	}
	for _, f := range append(slices.Clone(secrets), CACert, LedgerFile, ConfigFile) {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fps, fmt.Errorf("%s already exists: refusing to overwrite a CA", filepath.Join(dir, f))
		}
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fps, err
	}
	tbs := &cert.TBSCertificate{
		// v2 is what nebula-cert v1.11 writes by default.
		Version:   cert.Version2,
		Name:      o.Name + " CA",
		Networks:  []netip.Prefix{o.Plan.Network},
		IsCA:      true,
		NotBefore: o.Now.Add(-time.Hour),
		NotAfter:  o.Now.Add(o.CAValidity),
		PublicKey: pub,
		Curve:     cert.Curve_CURVE25519,
	}
	caCrt, err := tbs.Sign(nil, cert.Curve_CURVE25519, priv)
	if err != nil {
		return fps, err
	}
	caPEM, err := caCrt.MarshalPEM()
	if err != nil {
		return fps, err
	}
	fps.NebulaCA, _ = caCrt.Fingerprint()

	sk, err := usign.Generate(rand.Reader, o.Name+" feed")
	if err != nil {
		return fps, err
	}
	fps.Usign = sk.Fingerprint()
	pgpSec, pgpPub, err := pgp.GenerateKey(o.Name+" feed", "", "", o.Now)
	if err != nil {
		return fps, err
	}
	signer, err := pgp.LoadSigner(pgpSec)
	if err != nil {
		return fps, err
	}
	fps.PGP = signer.Fingerprint()
	alertPub, alertPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fps, err
	}
	fps.Alert = base64.StdEncoding.EncodeToString(alertPub)

	conf, err := marshalConfig(o.Plan, o.Lighthouses, o.CertDays)
	if err != nil {
		return fps, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{CACert, caPEM},
		{CAKey, cert.MarshalSigningPrivateKeyToPEM(cert.Curve_CURVE25519, priv)},
		{UsignSec, sk.Marshal()},
		{UsignPub, sk.Public().Marshal()},
		{PGPSec, pgpSec},
		{PGPPub, pgpPub},
		{AlertKey, []byte(base64.StdEncoding.EncodeToString(alertPriv.Seed()) + "\n")},
		{AlertPub, []byte(fps.Alert + "\n")},
		{ConfigFile, conf},
	}
	for _, f := range files {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return fps, err
		}
	}
	return fps, nil
}

func marshalConfig(p Plan, lhs []Lighthouse, certDays int) ([]byte, error) {
	f := uci.NewFile(ConfigFile)
	s, err := f.AddSection("plan", "plan")
	if err != nil {
		return nil, err
	}
	s.Set("network", p.Network.String())
	for _, r := range Roles {
		s.Set(r, p.Pools[r].String())
	}
	s.Set("cert_days", strconv.Itoa(certDays))
	for _, lh := range lhs {
		ls, err := f.AddSection("lighthouse", "")
		if err != nil {
			return nil, err
		}
		ls.Set("address", lh.Address.String())
		for _, e := range lh.Endpoints {
			ls.AddList("endpoint", e)
		}
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f.Marshal(), nil
}

// CA is an opened CA directory.
type CA struct {
	Dir         string
	Plan        Plan
	Lighthouses []Lighthouse
	CertDays    int
	Now         func() time.Time // for tests; time.Now by default

	caCert cert.Certificate
	caPEM  []byte
	caKey  []byte
	ledger *Ledger
}

// PermissionError says a secret key may be read by users other than its
// owner; the CA refuses to use it.
type PermissionError struct {
	Path string
	Mode os.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s has mode %04o: a CA secret key must not be readable by others; fix with: chmod 600 %s", e.Path, e.Mode.Perm(), e.Path)
}

// CheckPermissions refuses secret key files that group or others may read.
func CheckPermissions(dir string) error {
	for _, f := range secrets {
		p := filepath.Join(dir, f)
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return &PermissionError{Path: p, Mode: fi.Mode()}
		}
	}
	return nil
}

// Open loads the CA in dir after checking its keys' permissions, its
// configuration and its ledger.
func Open(dir string) (*CA, error) {
	if err := CheckPermissions(dir); err != nil {
		return nil, err
	}
	c := &CA{Dir: dir, Now: time.Now}
	var err error
	if c.caPEM, err = os.ReadFile(filepath.Join(dir, CACert)); err != nil {
		return nil, err
	}
	if c.caCert, _, err = cert.UnmarshalCertificateFromPEM(c.caPEM); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, CACert), err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKey))
	if err != nil {
		return nil, err
	}
	key, _, curve, err := cert.UnmarshalSigningPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (passphrase-protected CA keys are not supported)", filepath.Join(dir, CAKey), err)
	}
	if err := c.caCert.VerifyPrivateKey(curve, key); err != nil {
		return nil, fmt.Errorf("%s does not belong to %s: %v", filepath.Join(dir, CAKey), filepath.Join(dir, CACert), err)
	}
	c.caKey = key
	if err := c.readConfig(); err != nil {
		return nil, err
	}
	if c.ledger, err = OpenLedger(filepath.Join(dir, LedgerFile)); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CA) readConfig() error {
	path := filepath.Join(c.Dir, ConfigFile)
	f, err := uci.ReadFile(path)
	if err != nil {
		return err
	}
	bad := func(sec, opt, format string, args ...any) error {
		return fmt.Errorf("%s: %s.%s: %s", path, sec, opt, fmt.Sprintf(format, args...))
	}
	plans := f.SectionsOfType("plan")
	if len(plans) != 1 {
		return fmt.Errorf("%s: want exactly one 'config plan' section, found %d", path, len(plans))
	}
	s := plans[0]
	c.Plan = Plan{Pools: map[string]netip.Prefix{}}
	for _, opt := range append([]string{"network"}, Roles...) {
		v, _ := s.Get(opt)
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return bad("plan", opt, "%q is not a prefix such as 10.0.4.64/26", v)
		}
		if opt == "network" {
			c.Plan.Network = p
		} else {
			c.Plan.Pools[opt] = p
		}
	}
	if err := c.Plan.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.CertDays = 365
	if v, ok := s.Get("cert_days"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			return bad("plan", "cert_days", "%q is not a number of days between 1 and 3650", v)
		}
		c.CertDays = n
	}
	for _, ls := range f.SectionsOfType("lighthouse") {
		v, _ := ls.Get("address")
		a, err := netip.ParseAddr(v)
		if err != nil || !c.Plan.Network.Contains(a) {
			return bad("lighthouse", "address", "%q is not an address inside %s", v, c.Plan.Network)
		}
		lh := Lighthouse{Address: a, Endpoints: ls.List("endpoint")}
		for _, e := range lh.Endpoints {
			if !endpointRe.MatchString(e) {
				return bad("lighthouse", "endpoint", "%q is not host:port", e)
			}
		}
		c.Lighthouses = append(c.Lighthouses, lh)
	}
	return nil
}

var endpointRe = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`)

// CertPEM is the CA certificate.
func (c *CA) CertPEM() []byte { return bytes.Clone(c.caPEM) }

// Fingerprint is the CA certificate's SHA-256.
func (c *CA) Fingerprint() string { fp, _ := c.caCert.Fingerprint(); return fp }

// Ledger is the CA's ledger.
func (c *CA) Ledger() *Ledger { return c.ledger }

// Issued is what goes back to a node: its certificate, the CA certificate
// and the lighthouses to dial.
type Issued struct {
	Name        string
	Address     netip.Prefix
	Cert        []byte // PEM
	CA          []byte // PEM
	Lighthouses []byte // UCI 'config lighthouse' sections
	Fingerprint string
	NotAfter    time.Time
}

// AlreadySignedError says a request's key was signed before.
type AlreadySignedError struct {
	Fingerprint string
	Node        Node
}

func (e *AlreadySignedError) Error() string {
	state := "active"
	if e.Node.Revoked {
		state = "revoked"
	}
	return fmt.Sprintf("this request (key %s) was already signed on %s for %s at %s (%s); use 'meshkit ca renew %s' for a new certificate",
		e.Fingerprint[:16], e.Node.Signed.UTC().Format(time.DateOnly), e.Node.Name, e.Node.Address, state, e.Node.Name)
}

// Sign checks req, gives it the next free address of its role, records it
// in the ledger and returns the certificate. A refused request leaves the
// ledger untouched.
func (c *CA) Sign(req *Request) (*Issued, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if n, ok := c.ledger.ByKey(req.Fingerprint()); ok {
		return nil, &AlreadySignedError{Fingerprint: req.Fingerprint(), Node: n}
	}
	if n, ok := c.ledger.Active(req.Name); ok {
		return nil, fmt.Errorf("name %s: already enrolled at %s; pick another name or revoke the old node first", req.Name, n.Address)
	}
	addr, err := c.Plan.next(req.Role, c.ledger.Used)
	if err != nil {
		return nil, err
	}
	n := Node{Name: req.Name, Role: req.Role, Groups: req.Groups, Address: addr, PublicKey: req.PublicKey}
	iss, err := c.issue(n)
	if err != nil {
		return nil, err
	}
	err = c.ledger.Append(Entry{Time: c.Now().UTC(), Op: OpSign, Name: n.Name, Address: addr, Role: n.Role,
		Groups: n.Groups, PublicKey: base64.StdEncoding.EncodeToString(n.PublicKey), Cert: iss.Fingerprint, NotAfter: iss.NotAfter})
	if err != nil {
		return nil, err
	}
	return iss, c.writeIssued(iss)
}

// Renew issues a new certificate for an active node with its recorded key
// and address, so renewal needs no visit to the node.
func (c *CA) Renew(name string) (*Issued, error) {
	n, ok := c.ledger.Active(name)
	if !ok {
		return nil, fmt.Errorf("%s is not an active node in %s", name, filepath.Join(c.Dir, LedgerFile))
	}
	iss, err := c.issue(n)
	if err != nil {
		return nil, err
	}
	if err := c.ledger.Append(Entry{Time: c.Now().UTC(), Op: OpRenew, Name: n.Name, Address: n.Address,
		Cert: iss.Fingerprint, NotAfter: iss.NotAfter}); err != nil {
		return nil, err
	}
	return iss, c.writeIssued(iss)
}

// Expiring lists active nodes whose certificate ends within d.
func (c *CA) Expiring(d time.Duration) []string {
	var out []string
	for _, n := range c.ledger.Nodes() {
		if !n.Revoked && n.NotAfter.Before(c.Now().Add(d)) {
			out = append(out, n.Name)
		}
	}
	return out
}

// Revoke retires a node: all its certificates go on the blocklist, and its
// address is never handed out again.
func (c *CA) Revoke(name, reason string) error {
	n, ok := c.ledger.Active(name)
	if !ok {
		return fmt.Errorf("%s is not an active node in %s", name, filepath.Join(c.Dir, LedgerFile))
	}
	if strings.ContainsAny(reason, "\n\r") {
		return errors.New("reason: one line please")
	}
	if err := c.ledger.Append(Entry{Time: c.Now().UTC(), Op: OpRevoke, Name: n.Name, Address: n.Address, Reason: reason}); err != nil {
		return err
	}
	// A certificate still waiting for a revoked node must not travel.
	if err := os.RemoveAll(filepath.Join(c.Dir, IssuedDir, name)); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, Blocklist), c.Blocklist(), 0o600)
}

func (c *CA) issue(n Node) (*Issued, error) {
	now := c.Now()
	notAfter := now.Add(time.Duration(c.CertDays) * 24 * time.Hour)
	// Nebula refuses a certificate that outlives its CA.
	if caEnd := c.caCert.NotAfter().Add(-time.Second); notAfter.After(caEnd) {
		notAfter = caEnd
	}
	groups := []string{n.Role}
	for _, g := range n.Groups {
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	tbs := &cert.TBSCertificate{
		Version:  c.caCert.Version(), // as nebula-cert sign: match the CA
		Name:     n.Name,
		Networks: []netip.Prefix{netip.PrefixFrom(n.Address, c.Plan.Network.Bits())},
		Groups:   groups,
		// Routers without a clock battery boot a little in the past.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  notAfter,
		PublicKey: n.PublicKey,
		Curve:     cert.Curve_CURVE25519,
	}
	if n.Role == "uplink" {
		// An exit node routes for the whole internet: Nebula only accepts
		// traffic to addresses in the certificate's unsafe networks, and
		// the agent refuses to run an uplink without this one.
		tbs.UnsafeNetworks = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	crt, err := tbs.Sign(c.caCert, cert.Curve_CURVE25519, c.caKey)
	if err != nil {
		return nil, fmt.Errorf("signing %s: %w", n.Name, err)
	}
	pemb, err := crt.MarshalPEM()
	if err != nil {
		return nil, err
	}
	fp, err := crt.Fingerprint()
	if err != nil {
		return nil, err
	}
	lh, err := LighthousesUCI(c.Lighthouses)
	if err != nil {
		return nil, err
	}
	return &Issued{Name: n.Name, Address: tbs.Networks[0], Cert: pemb, CA: bytes.Clone(c.caPEM),
		Lighthouses: lh, Fingerprint: fp, NotAfter: crt.NotAfter()}, nil
}

// LighthousesUCI renders lighthouses as the agent's UCI sections.
func LighthousesUCI(lhs []Lighthouse) ([]byte, error) {
	f := uci.NewFile("lighthouses")
	for _, lh := range lhs {
		s, err := f.AddSection("lighthouse", "")
		if err != nil {
			return nil, err
		}
		s.Set("address", lh.Address.String())
		for _, e := range lh.Endpoints {
			s.AddList("endpoint", e)
		}
	}
	return f.Marshal(), nil
}

// WriteTo writes the issued files into dir (created 0755: nothing secret).
func (iss *Issued) WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{IssuedCert: iss.Cert, IssuedCA: iss.CA, IssuedLighthouses: iss.Lighthouses} {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (c *CA) writeIssued(iss *Issued) error {
	return iss.WriteTo(filepath.Join(c.Dir, IssuedDir, iss.Name))
}

// Blocklist renders every certificate of every revoked node, one Nebula
// fingerprint a line (pki.blocklist), with who it was as a comment.
func (c *CA) Blocklist() []byte {
	var b bytes.Buffer
	b.WriteString("# meshnode blocklist: Nebula certificate fingerprints (pki.blocklist)\n")
	for _, n := range c.ledger.Nodes() {
		if !n.Revoked {
			continue
		}
		for _, fp := range n.Certs {
			fmt.Fprintf(&b, "%s # %s %s\n", fp, n.Name, n.Address)
		}
	}
	return b.Bytes()
}
