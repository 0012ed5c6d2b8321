package overlay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/status"
)

func TestMain(m *testing.M) {
	PingMain()
	os.Exit(m.Run())
}

func buildAgent(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "meshnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/meshnode/meshnode/cmd/meshnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and TUN devices (run `make test` as root)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun")
	}
}

// ping pings dst from the node's namespace until it answers or timeout.
func ping(n *Node, dst string, timeout time.Duration) error {
	if err := PingFrom(n.NS, dst, timeout); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

func waitStatus(n *Node, timeout time.Duration, ok func(status.Snapshot) bool) (status.Snapshot, error) {
	return WaitStatus(n.Socket(), timeout, ok)
}

func logs(t *testing.T, topo *Topology) {
	if !t.Failed() {
		return
	}
	for _, n := range topo.Nodes {
		b, _ := os.ReadFile(filepath.Join(n.Dir, "agent.log"))
		lines := strings.Split(string(b), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s agent.log (tail)\n%s", n.Name, strings.Join(lines, "\n"))
	}
}

func TestOverlay(t *testing.T) {
	needRoot(t)
	bin := buildAgent(t)
	// Unique per run: tests/shape, tests/lora and tests/ca make namespaces
	// too, and `go test ./...` runs packages (and maybe two checkouts) at once.
	prefix := fmt.Sprintf("mn%d-%d-", os.Getpid()%100000, time.Now().UnixNano()%10000)
	topo, err := Build(prefix, bin, t.TempDir())
	t.Cleanup(topo.Close)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs(t, topo) })
	if err := topo.Certify(); err != nil {
		t.Fatal(err)
	}
	// client2 cannot reach uplink2's home directly (a hard firewall on the
	// path), nor the hub's public address over UDP (an ISP that drops it):
	// it must go through the relay for both. Nebula never asks a lighthouse
	// about another lighthouse, so client2 lists only the relay as its
	// lighthouse and learns there that the hub is reached through it.
	c2 := topo.Nodes["client2"]
	c2.Lighthouses = []string{"relay"}
	if err := NS(c2.NS, "nft", "add table ip blk; add chain ip blk out { type filter hook output priority 0 ; } ; add rule ip blk out ip daddr 192.0.2.12 drop ; add rule ip blk out ip daddr 192.0.2.1 udp dport 1-65535 drop ; add chain ip blk in { type filter hook input priority 0 ; } ; add rule ip blk in ip saddr 192.0.2.12 drop ; add rule ip blk in ip saddr 192.0.2.1 udp sport 1-65535 drop"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hub", "relay", "uplink1", "uplink2", "client", "client2"} {
		if err := topo.Start(topo.Nodes[name]); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range topo.Nodes {
		if _, err := waitStatus(n, 20*time.Second, func(s status.Snapshot) bool { return s.Role == n.Role }); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("every pair pings", func(t *testing.T) {
		names := []string{"hub", "relay", "uplink1", "uplink2", "client"}
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for _, a := range names {
			for _, b := range names {
				if a >= b {
					continue
				}
				wg.Add(1)
				go func(a, b *Node) {
					defer wg.Done()
					errs <- ping(a, b.Overlay, 20*time.Second)
				}(topo.Nodes[a], topo.Nodes[b])
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("status lists peers", func(t *testing.T) {
		hub := topo.Nodes["hub"]
		s, err := waitStatus(hub, 10*time.Second, func(s status.Snapshot) bool { return len(s.Peers) >= 4 })
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, p := range s.Peers {
			names[p.Name] = true
			if p.LastHandshake.IsZero() {
				t.Errorf("peer %s has no handshake time", p.Name)
			}
		}
		for _, want := range []string{"relay", "uplink1", "uplink2", "client"} {
			if !names[want] {
				t.Errorf("hub status misses peer %s: %+v", want, s.Peers)
			}
		}
		if s.Certificate.Name != "hub" || s.Certificate.DaysLeft < 1 || s.Certificate.Warning == "" {
			t.Errorf("certificate: %+v (48 h certificate must warn)", s.Certificate)
		}
		c, err := waitStatus(topo.Nodes["client"], 10*time.Second, func(s status.Snapshot) bool {
			return len(s.Lighthouses) == 2 && s.Lighthouses[0].Reachable && s.Lighthouses[1].Reachable
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range c.Peers {
			if p.Name == "hub" && (p.BytesIn == 0 || p.BytesOut == 0) {
				t.Errorf("client counts no bytes to the hub: %+v", p)
			}
		}
		out, err := exec.Command(bin, "status", "--socket", hub.Socket()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "uplink1") {
			t.Errorf("meshnode status: %v\n%s", err, out)
		}
	})

	t.Run("relay for a blocked path", func(t *testing.T) {
		if err := ping(c2, "10.0.4.65", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		s, err := waitStatus(c2, 10*time.Second, func(s status.Snapshot) bool {
			for _, p := range s.Peers {
				if p.Name == "uplink2" && len(p.Relays) > 0 {
					return true
				}
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("client2 peers: %+v", s.Peers)
	})

	t.Run("hub through the relay when the direct path is blocked", func(t *testing.T) {
		if err := ping(c2, "10.0.4.1", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		s, err := waitStatus(c2, 10*time.Second, func(s status.Snapshot) bool {
			for _, p := range s.Peers {
				if p.Name == "hub" {
					return len(p.Relays) == 1 && p.Relays[0] == "10.0.4.33" && p.Remote == ""
				}
			}
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "status", "--socket", c2.Socket()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via relay 10.0.4.33") {
			t.Errorf("meshnode status does not show the hub via the relay: %v\n%s", err, out)
		}
		t.Logf("client2 peers: %+v", s.Peers)
		// The hub sees client2 through the relay as well: the tunnel is one.
		h, err := waitStatus(topo.Nodes["hub"], 10*time.Second, func(s status.Snapshot) bool {
			for _, p := range s.Peers {
				if p.Name == "client2" {
					return len(p.Relays) > 0
				}
			}
			return false
		})
		if err != nil {
			t.Errorf("hub: %v (peers %+v)", err, h.Peers)
		}
	})

	t.Run("SIGHUP applies in place", func(t *testing.T) {
		n := topo.Nodes["client"]
		before, _ := status.Client{Socket: n.Socket()}.Status()
		n.Extra = "\toption lighthouse_interval '3'\n\tlist relay '10.0.4.33'\n"
		// A rule that opens port 22 from the hub: a firewall change is applied in place.
		n.Extra += "\nconfig rule\n\toption proto 'tcp'\n\toption port '22'\n\toption host 'hub'\n"
		if _, err := topo.WriteConfig(n); err != nil {
			t.Fatal(err)
		}
		if err := n.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		s, err := waitStatus(n, 10*time.Second, func(s status.Snapshot) bool { return s.LastReload != nil })
		if err != nil {
			t.Fatal(err)
		}
		if !s.LastReload.OK || s.LastReload.Restarted || !s.Started.Equal(before.Started) {
			t.Errorf("reload: %+v, started %v -> %v", s.LastReload, before.Started, s.Started)
		}
		if err := ping(n, "10.0.4.1", 5*time.Second); err != nil {
			t.Error(err)
		}

		// An invalid configuration is rejected and the running one stays.
		n.Extra = "\toption cipher 'aes256'\n"
		if _, err := topo.WriteConfig(n); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "reload", "--socket", n.Socket()).CombinedOutput()
		if err == nil || !strings.Contains(string(out), `section 'overlay' option 'cipher': "aes256" is not aes or chachapoly`) {
			t.Errorf("bad reload: %v %s", err, out)
		}
		if err := ping(n, "10.0.4.1", 5*time.Second); err != nil {
			t.Error(err)
		}
		n.Extra = ""
		_, _ = topo.WriteConfig(n)
	})

	t.Run("killed agent rejoins", func(t *testing.T) {
		n := topo.Nodes["uplink1"]
		_ = n.Cmd.Process.Kill()
		time.Sleep(300 * time.Millisecond)
		if err := topo.Start(n); err != nil {
			t.Fatal(err)
		}
		if err := ping(n, "10.0.4.1", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := ping(topo.Nodes["client"], n.Overlay, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SIGTERM shuts down cleanly", func(t *testing.T) {
		n := topo.Nodes["client"]
		_ = n.Cmd.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(n.Socket()); os.IsNotExist(err) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := os.Stat(n.Socket()); err == nil {
			t.Error("socket still there after SIGTERM")
		}
		if NS(n.NS, "ip", "link", "show", "meshnode0") == nil {
			t.Error("tun device still there after SIGTERM")
		}
	})
}
