package overlay

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	nconfig "github.com/slackhq/nebula/config"

	"github.com/meshnode/meshnode/agent/config"
	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

var fakePEM = Material{CA: "CA PEM", Cert: "CERT PEM", Key: "SECRET KEY PEM"}

// TestGolden pins the Nebula configuration of every role.
func TestGolden(t *testing.T) {
	// relay-lighthouse: a relay that is also a lighthouse; hub-second-lighthouse:
	// a hub that reports to it (so nodes that cannot reach the hub learn
	// its relays there).
	for _, role := range []string{"hub", "relay", "uplink", "client", "relay-lighthouse", "hub-second-lighthouse"} {
		t.Run(role, func(t *testing.T) {
			c, err := config.Load(filepath.Join("testdata", role+".uci"))
			if err != nil {
				t.Fatal(err)
			}
			text, err := YAML(Redact(Settings(c, fakePEM)))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, fakePEM.Key) {
				t.Fatal("redacted configuration contains the private key")
			}
			goldenfile.Check(t, filepath.Join("testdata", role+".yaml"), []byte(text))
			// Nebula's own loader must read it back to the same settings.
			full, _ := YAML(Settings(c, fakePEM))
			nc := nconfig.NewC(nil)
			if err := nc.LoadString(full); err != nil {
				t.Fatal(err)
			}
			if got := nc.GetString("pki.key", ""); got != fakePEM.Key {
				t.Errorf("pki.key = %q", got)
			}
			if got := nc.GetString("cipher", ""); got != c.Cipher {
				t.Errorf("cipher = %q", got)
			}
		})
	}
}

func TestNeedsRestart(t *testing.T) {
	base, err := config.Load(filepath.Join("testdata", "client.uci"))
	if err != nil {
		t.Fatal(err)
	}
	old := Settings(base, fakePEM)
	for _, tc := range []struct {
		name string
		edit func(c *config.Config)
		want []string
	}{
		{"nothing", func(c *config.Config) {}, nil},
		{"firewall rule", func(c *config.Config) { c.Rules = nil }, nil},
		{"relays", func(c *config.Config) { c.Relays = nil }, nil},
		{"routes", func(c *config.Config) { c.Routes = nil }, nil},
		{"lighthouse interval", func(c *config.Config) { c.LighthouseInterval = 30 }, nil},
		{"cipher", func(c *config.Config) { c.Cipher = "chachapoly" }, []string{"cipher"}},
		{"port", func(c *config.Config) { c.Port = 4243 }, []string{"listen.port"}},
		{"device", func(c *config.Config) { c.Device = "nebula1" }, []string{"tun.dev"}},
		{"lighthouse", func(c *config.Config) { c.ServeLighthouse = true; c.Port = 4242 }, []string{"lighthouse.am_lighthouse", "listen.port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *base
			tc.edit(&c)
			got := NeedsRestart(old, Settings(&c, fakePEM))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPushesUpdates: only a lighthouse that lists other lighthouses has
// its updates pushed; every other node's Nebula sends its own.
func TestPushesUpdates(t *testing.T) {
	for name, want := range map[string]bool{"hub": false, "relay": false, "client": false,
		"relay-lighthouse": true, "hub-second-lighthouse": true} {
		c, err := config.Load(filepath.Join("testdata", name+".uci"))
		if err != nil {
			t.Fatal(err)
		}
		if got := PushesUpdates(Settings(c, fakePEM)); got != want {
			t.Errorf("%s: PushesUpdates = %v, want %v", name, got, want)
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
