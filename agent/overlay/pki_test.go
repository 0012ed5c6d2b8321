package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/agent/overlay/certtest"
)

func TestLoadMaterial(t *testing.T) {
	ca, err := certtest.NewCA("mesh", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := certtest.NewCA("other", 24*time.Hour)
	good, _ := ca.Sign(certtest.Opts{Name: "n1", Address: "10.0.4.130/24", Groups: []string{"clients"}})
	second, _ := ca.Sign(certtest.Opts{Name: "n2", Address: "10.0.4.131/24"})
	foreign, _ := other.Sign(certtest.Opts{Name: "n1", Address: "10.0.4.130/24"})
	expired, _ := ca.Sign(certtest.Opts{Name: "old", Address: "10.0.4.130/24",
		NotBefore: time.Now().Add(-50 * time.Minute), NotAfter: time.Now().Add(-10 * time.Minute)})
	if expired == nil || good == nil || second == nil || foreign == nil {
		t.Fatal("signing failed")
	}

	setup := func(t *testing.T, n *certtest.Node, role string) *config.Config {
		dir := t.TempDir()
		if err := certtest.Write(dir, ca, n); err != nil {
			t.Fatal(err)
		}
		return &config.Config{File: "/etc/config/meshnode", Role: role, Address: mustPrefix("10.0.4.130/24"),
			CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key")}
	}

	c := setup(t, good, config.RoleClient)
	_, info, err := LoadMaterial(c, time.Now())
	if err != nil || info.Name != "n1" || info.Groups[0] != "clients" {
		t.Fatalf("good: %v %+v", err, info)
	}

	for _, tc := range []struct {
		name string
		prep func(t *testing.T) *config.Config
		want string
	}{
		{"missing", func(t *testing.T) *config.Config {
			c := setup(t, good, config.RoleClient)
			os.Remove(c.Cert)
			return c
		}, `option 'cert': ` + "%dir%/node.crt does not exist"},
		{"expired", func(t *testing.T) *config.Config { return setup(t, expired, config.RoleClient) }, `option 'cert': %dir%/node.crt ("old") is not valid now`},
		{"foreign CA", func(t *testing.T) *config.Config { return setup(t, foreign, config.RoleClient) }, `was signed by a different CA`},
		{"key mismatch", func(t *testing.T) *config.Config {
			c := setup(t, good, config.RoleClient)
			os.WriteFile(c.Key, second.Key, 0o600)
			return c
		}, `option 'key': %dir%/node.key does not belong to`},
		{"not a cert", func(t *testing.T) *config.Config {
			c := setup(t, good, config.RoleClient)
			os.WriteFile(c.Cert, []byte("hello"), 0o600)
			return c
		}, `not a Nebula certificate`},
		{"CA as cert", func(t *testing.T) *config.Config {
			c := setup(t, good, config.RoleClient)
			os.WriteFile(c.Cert, ca.PEM, 0o600)
			return c
		}, `is a CA certificate`},
		{"address", func(t *testing.T) *config.Config { return setup(t, second, config.RoleClient) }, `option 'address': 10.0.4.130/24 is not in`},
		{"uplink without exit", func(t *testing.T) *config.Config { return setup(t, good, config.RoleUplink) }, `option 'role': uplink`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.prep(t)
			_, _, err := LoadMaterial(c, time.Now())
			want := strings.ReplaceAll(tc.want, "%dir%", filepath.Dir(c.Cert))
			if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "/etc/config/meshnode: section 'overlay'") {
				t.Errorf("want %q, got %v", want, err)
			}
		})
	}
}
