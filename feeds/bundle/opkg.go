package bundle

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slackhq/nebula/cert"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/run"
)

// OpkgCLI runs the real opkg with a private configuration that names only
// the bundle's feed, so an offline node does not wait for feeds it cannot
// reach. Signature checking stays as /etc/opkg.conf sets it (opkg checks
// Packages.sig against /etc/opkg/keys itself).
type OpkgCLI struct {
	Bin  string // default "opkg"
	Conf string // default /etc/opkg.conf
}

// Upgrade implements Opkg.
func (o OpkgCLI) Upgrade(ctx context.Context, dir string, pkgs []string) ([]string, error) {
	bin, confPath := o.Bin, o.Conf
	if bin == "" {
		bin = "opkg"
	}
	if confPath == "" {
		confPath = "/etc/opkg.conf"
	}
	base, err := os.ReadFile(confPath)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "meshnode-opkg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var conf bytes.Buffer
	for _, l := range strings.Split(string(base), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "lists_dir" || strings.HasPrefix(f[0], "src")) {
			continue
		}
		conf.WriteString(l + "\n")
	}
	conf.WriteString("lists_dir ext " + filepath.Join(tmp, "lists") + "\nsrc/gz meshnode_bundle file://" + dir + "\n")
	cf := filepath.Join(tmp, "opkg.conf")
	if err := os.WriteFile(cf, conf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	opkg := func(args ...string) ([]byte, error) {
		out, err := run.CombinedOutput(ctx, bin, append([]string{"-f", cf}, args...)...)
		if err != nil {
			return out, errfmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return out, nil
	}
	if _, err := opkg("update"); err != nil {
		return nil, err
	}
	out, err := opkg("list-upgradable")
	if err != nil {
		return nil, err
	}
	var up []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "name - old - new"
		name, _, _ := strings.Cut(sc.Text(), " ")
		if slices.Contains(pkgs, name) {
			up = append(up, name)
		}
	}
	if len(up) == 0 {
		return nil, nil
	}
	if _, err := opkg(append([]string{"upgrade"}, up...)...); err != nil {
		return nil, err
	}
	return up, nil
}

func parseCertName(pemData []byte) (string, error) {
	c, _, err := cert.UnmarshalCertificateFromPEM(pemData)
	if err != nil {
		return "", err
	}
	return c.Name(), nil
}
