package tests

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRouterBinariesLeaveOutHeavyDeps guards flash: code that only the
// operator's laptop needs must not be linked into what routers run. Each
// entry was measured: OpenPGP (with circl and image/jpeg) cost meshnode
// about 250 KB; net/http costs lora-bridge about 0.9 MB compressed; on
// mips_24kc florianl/go-tc cost meshnode ~520 KB, mdlayher/netlink ~260 KB
// (Nebula already links vishvananda/netlink/nl, which the agent uses),
// os/exec and x/net/icmp ~40 KB.
func TestRouterBinariesLeaveOutHeavyDeps(t *testing.T) {
	forbidden := map[string][]string{
		"./cmd/meshnode": {"github.com/ProtonMail/go-crypto", "github.com/meshnode/meshnode/feeds/pgp",
			"github.com/meshnode/meshnode/feeds/verify", "github.com/meshnode/meshnode/ca",
			"github.com/florianl/go-tc", "github.com/mdlayher/netlink", "os/exec", "golang.org/x/net/icmp"},
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

// TestLiteAgentLeavesOutTheOverlay: `go build -tags lite ./cmd/meshnode`
// (package meshnode-lite) must fit an 8 MiB board next to lora-bridge, so
// it links neither Nebula nor the full agent's concerns, nor net, net/http
// or encoding/json (see agent/lite's package comment for what each costs).
func TestLiteAgentLeavesOutTheOverlay(t *testing.T) {
	c := exec.Command("go", "list", "-deps", "-tags", "lite", "./cmd/meshnode")
	c.Dir = repoRoot
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Split(strings.TrimSpace(string(out)), "\n")
	bad := []string{"github.com/slackhq/nebula", "net", "net/http", "encoding/json", "flag", "github.com/ProtonMail/go-crypto",
		"github.com/meshnode/meshnode/agent/daemon", "github.com/meshnode/meshnode/agent/overlay",
		"github.com/meshnode/meshnode/agent/wan", "github.com/meshnode/meshnode/agent/shape",
		"github.com/meshnode/meshnode/agent/status", "github.com/meshnode/meshnode/agent/config",
		"github.com/meshnode/meshnode/internal/uci", "github.com/meshnode/meshnode/ca",
		"github.com/meshnode/meshnode/feeds", "github.com/meshnode/meshnode/lora-bridge"}
	for _, d := range deps {
		for _, b := range bad {
			if d == b || strings.HasPrefix(d, b+"/") {
				t.Errorf("meshnode -tags lite links %s", d)
			}
		}
	}
	if len(deps) < 10 || !contains(deps, "github.com/meshnode/meshnode/agent/lite") {
		t.Errorf("unexpected dependency list: %v", deps)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestLiteAgentRuns builds the lite agent for this machine and runs it
// against a fake router tree (MESHNODE_LITE_ROOT) with a fake lora-bridge
// socket; then cross-builds it for mips_24kc and guards its size.
func TestLiteAgentRuns(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "meshnode")
	c := exec.Command("go", "build", "-tags", "lite", "-o", bin, "./cmd/meshnode")
	c.Dir = repoRoot
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags lite: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "meshnode ") || !strings.Contains(string(out), " lite (") {
		t.Fatalf("--version: %v %q", err, out)
	}

	root := filepath.Join(dir, "root")
	for n, content := range map[string]string{
		"proc/uptime":                   "100.0 0\n",
		"sys/class/net/eth0/operstate":  "up\n",
		"sys/class/net/wlan0/operstate": "down\n",
		"etc/config/lora-bridge":        "config bridge 'main'\n\toption enabled '1'\n",
	} {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sockDir, err := os.MkdirTemp("", "lite")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "lora-bridge.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(conn).ReadString('\n')
			conn.Write([]byte(`{"status":{"radio":{"Connected":false,"LastError":"no device"},"node":"!00000001"}}` + "\n"))
			conn.Close()
		}
	}()
	cmd := exec.Command(bin, "status", "--json", "--lora-socket", sock)
	cmd.Env = append(os.Environ(), "MESHNODE_LITE_ROOT="+root)
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("status --json: %v", err)
	}
	var st struct {
		Role   string `json:"role"`
		Uptime int64  `json:"uptime_seconds"`
		Links  []struct {
			Name string `json:"name"`
			Up   bool   `json:"up"`
		} `json:"links"`
		LoRa struct {
			Running bool `json:"running"`
			Status  struct {
				Radio struct{ Connected bool } `json:"radio"`
				Node  string                   `json:"node"`
			} `json:"status"`
		} `json:"lora"`
		Nebula *string `json:"nebula"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st.Role != "lite" || st.Uptime != 100 || len(st.Links) != 2 || !st.Links[0].Up || st.Links[1].Up ||
		!st.LoRa.Running || st.LoRa.Status.Node != "!00000001" || st.Nebula != nil {
		t.Errorf("status: %s", out)
	}

	// Size guard: the budget (profiles/, `meshkit profiles --measure`) gives
	// meshnode-lite ~490 KiB of squashfs on the NanoStation M XW, about
	// 1.8 MB raw for a Go binary on MIPS; this catches a dependency that
	// creeps in long before the budget table refuses the board.
	mips := filepath.Join(dir, "meshnode-mips")
	c = exec.Command("go", "build", "-tags", "lite", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", mips, "./cmd/meshnode")
	c.Dir = repoRoot
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mips", "GOMIPS=softfloat")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("go build for mips: %v\n%s", err, out)
	}
	fi, err := os.Stat(mips)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1_850_000 // measured 1,769,629 with Go 1.26
	if fi.Size() > limit {
		t.Errorf("meshnode -tags lite for mips is %d bytes, over %d: see what it links (go tool nm -size -sort size)", fi.Size(), limit)
	}
}
