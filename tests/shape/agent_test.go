package shape_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/overlay/certtest"
	topo "github.com/meshnode/meshnode/tests/overlay"
)

// TestAgentAppliesShaping runs the real meshnode agent in a namespace with
// a `config shape` section: the agent installs HTB on the WAN and an IFB,
// reports the classes in its status, applies a changed rate on reload,
// keeps the old shaping when a reload brings an invalid rate, and removes
// everything on SIGTERM.
func TestAgentAppliesShaping(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun for the overlay")
	}
	dir := t.TempDir()
	bin := filepath.Join(t.TempDir(), "meshnode")
	build := exec.Command("go", "build", "-o", bin, "./cmd/meshnode")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	nss := &topo.Namespaces{Prefix: fmt.Sprintf("mnsa%d-", os.Getpid()%100000)}
	t.Cleanup(nss.Close)
	node, err := nss.Add("node")
	if err != nil {
		t.Fatal(err)
	}
	isp, err := nss.Add("isp")
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Veth(node, "wan", isp, "up0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{node, "ip", "addr", "add", "192.0.2.10/24", "dev", "wan"}, {node, "ip", "link", "set", "wan", "up"},
		{isp, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0"}, {isp, "ip", "link", "set", "up0", "up"},
	} {
		if err := topo.NS(c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := certtest.NewCA("test ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Sign(certtest.Opts{Name: "node", Address: "10.0.4.130/24"})
	if err != nil {
		t.Fatal(err)
	}
	if err := certtest.Write(dir, ca, n); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "meshnode")
	writeCfg := func(upload string) {
		t.Helper()
		cfg := fmt.Sprintf(`config overlay 'overlay'
	option role 'client'
	option address '10.0.4.130/24'
	option ca '%[1]s/ca.crt'
	option cert '%[1]s/node.crt'
	option key '%[1]s/node.key'

config lighthouse 'hub'
	option address '10.0.4.1'
	list endpoint '192.0.2.1:4242'

config shape 'wan'
	option device 'wan'
	option upload '%[2]s'
	option download '20mbit'
	option link_speed '1gbit'
`, dir, upload)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("10mbit")
	log, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	agent := exec.Command("ip", "netns", "exec", node, bin, "run", "--config", cfgPath, "--state-dir", dir)
	agent.Stdout, agent.Stderr = log, log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		agent.Process.Kill()
		if b, err := os.ReadFile(filepath.Join(dir, "agent.log")); err == nil && t.Failed() {
			t.Logf("agent log:\n%s", b)
		}
	})

	qdiscs := func(dev string) string {
		out, _ := exec.Command("ip", "netns", "exec", node, "tc", "qdisc", "show", "dev", dev).CombinedOutput()
		return string(out)
	}
	classes := func() string {
		out, _ := exec.Command("ip", "netns", "exec", node, "tc", "class", "show", "dev", "wan").CombinedOutput()
		return string(out)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("HTB on wan", func() bool { return strings.Contains(qdiscs("wan"), "htb") })
	waitFor("ingress redirect to the IFB", func() bool { return strings.Contains(qdiscs("ifb4wan"), "htb") })
	if !strings.Contains(classes(), "rate 10Mbit") {
		t.Errorf("no 10 Mbit/s class on wan:\n%s", classes())
	}

	status := func() map[string]json.RawMessage {
		out, err := exec.Command(bin, "status", "--json", "--socket", filepath.Join(dir, "meshnode.sock")).Output()
		if err != nil {
			t.Fatalf("meshnode status: %v", err)
		}
		var s map[string]json.RawMessage
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("status JSON: %v\n%s", err, out)
		}
		return s
	}
	if sh := status()["shaping"]; !strings.Contains(string(sh), `"wan"`) {
		t.Errorf("status has no shaping section for wan: %s", sh)
	}

	reload := func() {
		t.Helper()
		if err := agent.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("5mbit")
	reload()
	waitFor("the 5 Mbit/s class after reload", func() bool { return strings.Contains(classes(), "rate 5Mbit") })

	// An invalid rate is rejected as a whole; the 5 Mbit/s shaping stays.
	writeCfg("0")
	reload()
	waitFor("the rejected reload in status", func() bool {
		return strings.Contains(string(status()["last_reload"]), "rate must be above zero")
	})
	if !strings.Contains(classes(), "rate 5Mbit") {
		t.Errorf("shaping changed after a rejected reload:\n%s", classes())
	}

	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	if q := qdiscs("wan"); strings.Contains(q, "htb") || strings.Contains(q, "ingress") {
		t.Errorf("shaping left on wan after SIGTERM:\n%s", q)
	}
	if out, _ := exec.Command("ip", "netns", "exec", node, "ip", "link", "show", "ifb4wan").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("IFB left after SIGTERM: %s", out)
	}
}
