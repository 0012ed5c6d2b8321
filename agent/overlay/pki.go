package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/internal/errfmt"
)

// CertInfo is what status reports about the node's own certificate.
type CertInfo struct {
	Name     string
	Groups   []string
	NotAfter time.Time
}

// LoadMaterial reads the CA, certificate and key named in c and checks
// that Nebula will accept them, so a node host gets one clear message
// instead of Nebula's context-free one (or a crash loop under procd).
func LoadMaterial(c *config.Config, now time.Time) (mat Material, info CertInfo, err error) {
	err = loadMaterial(c, now, &mat, &info)
	return mat, info, err
}

// loadMaterial is LoadMaterial filling mat as it reads, and info only
// when every check passed. It returns errors alone: a copy of both
// structs at each of a dozen returns costs flash on MIPS.
func loadMaterial(c *config.Config, now time.Time, mat *Material, info *CertInfo) error {
	var err error
	if mat.CA, err = readPEM(c, "ca", c.CA); err != nil {
		return err
	}
	if mat.Cert, err = readPEM(c, "cert", c.Cert); err != nil {
		return err
	}
	if mat.Key, err = readPEM(c, "key", c.Key); err != nil {
		return err
	}
	if mat.Blocklist, err = ReadBlocklist(c.Blocklist); err != nil {
		return overlayError(c.File, "blocklist", "%v", err)
	}

	pool, err := cert.NewCAPoolFromPEM([]byte(mat.CA))
	if err != nil {
		return overlayError(c.File, "ca", "%s: not a Nebula CA certificate: %v", c.CA, err)
	}
	crt, _, err := cert.UnmarshalCertificateFromPEM([]byte(mat.Cert))
	if err != nil {
		return overlayError(c.File, "cert", "%s: not a Nebula certificate: %v", c.Cert, err)
	}
	if crt.IsCA() {
		return overlayError(c.File, "cert", "%s is a CA certificate; the node needs its own certificate signed by it", c.Cert)
	}
	if crt.Expired(now) {
		return overlayError(c.File, "cert", "%s (%q) is not valid now: valid from %s until %s; ask the CA for a new one",
			c.Cert, crt.Name(), crt.NotBefore().UTC().Format(time.RFC3339), crt.NotAfter().UTC().Format(time.RFC3339))
	}
	if _, err := pool.VerifyCertificate(now, crt); err != nil {
		if errors.Is(err, cert.ErrCaNotFound) {
			return overlayError(c.File, "cert", "%s (%q) was signed by a different CA than %s (issuer %s)", c.Cert, crt.Name(), c.CA, crt.Issuer())
		}
		return overlayError(c.File, "cert", "%s (%q) does not verify against %s: %v", c.Cert, crt.Name(), c.CA, err)
	}
	key, _, curve, err := cert.UnmarshalPrivateKeyFromPEM([]byte(mat.Key))
	if err != nil {
		return overlayError(c.File, "key", "%s: not a Nebula private key: %v", c.Key, err)
	}
	if err := crt.VerifyPrivateKey(curve, key); err != nil {
		return overlayError(c.File, "key", "%s does not belong to %s (%q): %v", c.Key, c.Cert, crt.Name(), err)
	}
	if !slices.Contains(crt.Networks(), c.Address) {
		return overlayError(c.File, "address", "%s is not in %s, which is for %v", c.Address, c.Cert, crt.Networks())
	}
	if c.Role == config.RoleUplink && !slices.ContainsFunc(crt.UnsafeNetworks(), func(p netip.Prefix) bool { return p.Bits() == 0 }) {
		return overlayError(c.File, "role", "uplink: %s has no unsafe network 0.0.0.0/0, so peers will not send exit traffic to it", c.Cert)
	}
	*info = CertInfo{Name: crt.Name(), Groups: crt.Groups(), NotAfter: crt.NotAfter()}
	return nil
}

// readPEM reads the PEM file at path, named by option opt.
func readPEM(c *config.Config, opt, path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", overlayError(c.File, opt, "%s does not exist; copy the node's files from the CA to /etc/meshnode/", path)
	}
	if err != nil {
		return "", overlayError(c.File, opt, "%s", err)
	}
	return string(b), nil
}

// ReadBlocklist reads the revoked certificates' fingerprints from path
// ("" or a missing file: none). An error names the file and the line.
func ReadBlocklist(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fps, err := exchange.ParseBlocklist(b)
	if err != nil {
		return nil, errfmt.Errorf("%s: %w", path, err)
	}
	return fps, nil
}

// overlayError is an error in the overlay section's option opt. Not
// inlined: it is called from a dozen error paths, and a copy at each
// costs flash on MIPS.
//
//go:noinline
func overlayError(file, opt, format string, args ...any) error {
	return &config.Error{File: file, Section: "overlay", Option: opt, Msg: fmt.Sprintf(format, args...)}
}
