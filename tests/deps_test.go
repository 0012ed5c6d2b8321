package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRouterBinariesLeaveOutHeavyDeps guards flash: code that only the
// operator's laptop needs must not be linked into what routers run. Each
// entry was measured: OpenPGP (with circl and image/jpeg) cost meshnode
// about 250 KB; net/http costs lora-bridge about 0.9 MB compressed.
func TestRouterBinariesLeaveOutHeavyDeps(t *testing.T) {
	forbidden := map[string][]string{
		"./cmd/meshnode": {"github.com/ProtonMail/go-crypto", "github.com/meshnode/meshnode/feeds/pgp",
			"github.com/meshnode/meshnode/feeds/verify", "github.com/meshnode/meshnode/ca"},
		// net/http's client (Transport, bundled HTTP/2) is ~450 KB of meshnode
		// on MIPS; internal/httpconn does its few requests.
		"./cmd/lora-bridge": {"net/http", "github.com/slackhq/nebula", "github.com/ProtonMail/go-crypto"},
	}
	for cmd, bad := range forbidden {
		c := exec.Command("go", "list", "-deps", cmd)
		c.Dir = repoRoot
		out, err := c.Output()
		if err != nil {
			t.Fatalf("go list %s: %v", cmd, err)
		}
		deps := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, d := range deps {
			for _, b := range bad {
				if d == b || (strings.HasPrefix(d, b+"/") && !strings.HasPrefix(b, "github.com/meshnode/")) {
					t.Errorf("%s links %s", cmd, d)
				}
			}
		}
	}
}

// TestMeshnodeHasNoHTTPClient: the server half of net/http is in the agent
// anyway (Nebula's metrics), the client half must not be.
func TestMeshnodeHasNoHTTPClient(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshnode")
	c := exec.Command("go", "build", "-o", bin, "./cmd/meshnode")
	c.Dir = repoRoot
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	for _, sym := range []string{"net/http.(*Transport).roundTrip", "net/http.(*Client).do"} {
		if strings.Contains(string(out), " "+sym+"\n") {
			t.Errorf("meshnode links %s", sym)
		}
	}
}
