package tests

import (
	"os/exec"
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
