package lora

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
	"github.com/meshnode/meshnode/tests/overlay"
)

// postEnv makes the test binary POST one request and print "code body":
// the test runs it inside a node's namespace with `ip netns exec`.
const postEnv = "MESHNODE_TEST_POST"

func postMain() {
	url := os.Getenv(postEnv)
	if url == "" {
		return
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Post(url, "application/json", strings.NewReader(os.Getenv(postEnv+"_BODY")))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, b)
	os.Exit(0)
}

// postFrom posts body to url from namespace ns; it returns the HTTP code
// and body, or an error when no answer came (a dropped connection).
func postFrom(ns, url, body string) (int, string, error) {
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), postEnv+"="+url, postEnv+"_BODY="+body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("%v: %s", err, out)
	}
	code, rest, _ := strings.Cut(string(out), " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return 0, "", fmt.Errorf("helper said %q", out)
	}
	return n, rest, nil
}

// TestAgentRelaysAlertOverOverlay: the hub posts an alert to a relay's
// agent over the overlay; the relay's agent hands it to the lora-bridge
// running there, and the alert goes out on that node's (simulated) radio.
// A client, not in the allowed group, cannot post.
func TestAgentRelaysAlertOverOverlay(t *testing.T) {
	if why := overlay.CanRun(); why != "" {
		t.Skip(why)
	}
	bin, err := overlay.BuildAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lb := bridgeBinary(t)
	topo, err := overlay.Build(fmt.Sprintf("mnlo%d-", os.Getpid()%100000), bin, t.TempDir())
	t.Cleanup(topo.Close)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Certify(); err != nil {
		t.Fatal(err)
	}
	hub, relay, client := topo.Nodes["hub"], topo.Nodes["relay"], topo.Nodes["client"]
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []*overlay.Node{hub, relay, client} {
				b, _ := os.ReadFile(filepath.Join(n.Dir, "agent.log"))
				t.Logf("--- %s agent.log\n%s", n.Name, tail(string(b), 25))
			}
		}
	})

	// lora-bridge on the relay, against a simulated radio.
	radio, err := simradio.New(simradio.Config{NodeNum: 0x5eed0033, Link: filepath.Join(relay.Dir, "ttyUSB0"),
		TextInterval: time.Millisecond, AlertInterval: time.Millisecond})
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(radio.Close)
	sock := filepath.Join(relay.Dir, "lora-bridge.sock")
	cfg := fmt.Sprintf(`config bridge 'main'
	option port '%s'
	option region 'US'
	option preset 'SHORT_TURBO'
	option airtime_share '100'
	option journal '%s'
	option socket '%s'
	option listen '127.0.0.1:4404'
	option node_id '5eed0033'
	option text_interval '2'
	option alert_interval '2'
	option grace '1'
	option heartbeat '1'
`, radio.Path(), filepath.Join(relay.Dir, "journal"), sock)
	if err := os.WriteFile(filepath.Join(relay.Dir, "lora-bridge"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(relay.Dir, "lora-bridge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", relay.NS, lb, "run", "-c", filepath.Join(relay.Dir, "lora-bridge"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	waitUntil(t, "lora-bridge API", 10*time.Second, func() bool {
		_, err := bridge.Call(sock, bridge.Request{Method: "status"})
		return err == nil
	})
	waitUntil(t, "radio handshake", 10*time.Second, radio.Attached)

	// The relay's agent finds the bridge through config lora; relays
	// serve the overlay API by default, to the hub group.
	relay.Extra = "\nconfig lora 'lora'\n\toption socket '" + sock + "'\n"
	for _, n := range []*overlay.Node{hub, relay, client} {
		if err := topo.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*overlay.Node{hub, relay, client} {
		if _, err := overlay.WaitStatus(n.Socket(), 20*time.Second, func(s status.Snapshot) bool { return s.Role == n.Role }); err != nil {
			t.Fatal(err)
		}
	}
	// The relay's snapshot carries the bridge's status.
	if _, err := overlay.WaitStatus(relay.Socket(), 10*time.Second, func(s status.Snapshot) bool {
		return strings.Contains(string(s.LoRa), `"running": true`) && strings.Contains(string(s.LoRa), `"journal"`)
	}); err != nil {
		t.Fatal(err)
	}

	url := "http://" + relay.Overlay + ":9643/lora/alert"
	text := "flood warning: river at the school, 14:00"
	var code int
	var body string
	waitUntil(t, "the hub's post over the overlay", 20*time.Second, func() bool {
		code, body, err = postFrom(hub.NS, url, `{"text":"`+text+`","sender":"hub","id":4242}`)
		return err == nil
	})
	if code != 200 || !strings.Contains(body, `"key"`) {
		t.Fatalf("hub's alert: %d %s", code, body)
	}
	waitUntil(t, "the alert on the relay's radio", 10*time.Second, func() bool {
		c, _ := onAir(radio)
		return c[text] > 0
	})

	// A client has a tunnel to the relay but not the group: Nebula's
	// firewall drops its connection, and nothing reaches the radio.
	if err := overlay.PingFrom(client.NS, relay.Overlay, 20*time.Second); err != nil {
		t.Fatalf("client has no tunnel to the relay: %v", err)
	}
	if code, body, err := postFrom(client.NS, url, `{"text":"fake all-clear"}`); err == nil {
		t.Fatalf("client's post was answered: %d %s", code, body)
	}
	// The hub's own loopback listener answers, without a bridge there.
	if code, body, err := postFrom(hub.NS, "http://127.0.0.1:9643/lora/status", ``); err != nil || code != 503 || !strings.Contains(body, "not running") {
		t.Fatalf("hub loopback: %d %s %v", code, body, err)
	}
	// The relay serves no loopback by default.
	if _, _, err := postFrom(relay.NS, "http://127.0.0.1:9643/lora/status", ``); err == nil {
		t.Fatal("relay answers on loopback by default")
	}
	time.Sleep(300 * time.Millisecond)
	if c, _ := onAir(radio); c["fake all-clear"] != 0 || c[text] != 1 || len(c) != 1 {
		t.Fatalf("on air: %v", c)
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
