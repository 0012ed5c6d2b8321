package lora

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
	"github.com/meshnode/meshnode/tests/overlay"
)

// The tests below run the real lora-bridge binary twice, each process in
// its own network namespace, the two namespaces joined by a veth pair and
// nothing else: no packet leaves the namespaces. Each bridge has its own
// simulated radio on a pty (ptys and the unix API socket are not
// namespaced, so the test drives both from here).

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
	nsSeq     atomic.Int32
)

func TestMain(m *testing.M) {
	// Helpers agent_test.go runs inside a namespace (they exit).
	postMain()
	overlay.PingMain()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bridgeBinary builds cmd/lora-bridge once per test run.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "lora-bridge-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "lora-bridge")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/meshnode/meshnode/cmd/lora-bridge")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// twoNamespaces creates namespaces joined by a veth pair, 10.77.0.1 and
// 10.77.0.2, removed by t.Cleanup even when the test fails.
func twoNamespaces(t *testing.T) (nsA, nsB string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (ip netns); run the lora tests as root, e.g. in the CI container")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip for network namespaces")
	}
	n := nsSeq.Add(1)
	tag := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	nsA, nsB = "lbA-"+tag, "lbB-"+tag
	for _, ns := range []string{nsA, nsB} {
		if err := ipCmd("netns", "add", ns); err != nil {
			t.Skipf("cannot create network namespaces here: %v", err)
		}
		t.Cleanup(func() { _ = ipCmd("netns", "del", ns) })
	}
	// Deleting a namespace removes its end of the veth, and with it the
	// pair, so the namespace cleanups cover the link too.
	steps := [][]string{
		{"-n", nsA, "link", "add", "lbv0", "type", "veth", "peer", "name", "lbv1", "netns", nsB},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
		{"-n", nsA, "addr", "add", "10.77.0.1/24", "dev", "lbv0"},
		{"-n", nsB, "addr", "add", "10.77.0.2/24", "dev", "lbv1"},
		{"-n", nsA, "link", "set", "lbv0", "up"},
		{"-n", nsB, "link", "set", "lbv1", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	return nsA, nsB
}

// procNode is one lora-bridge process and its simulated radio.
type procNode struct {
	t     *testing.T
	name  string
	ns    string
	dir   string
	radio *simradio.Radio
	sock  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func newProcNode(t *testing.T, name, ns, self, peer string, nodeID uint32) *procNode {
	t.Helper()
	dir := t.TempDir()
	r, err := simradio.New(simradio.Config{NodeNum: 0x5eed0000 | nodeID, Link: filepath.Join(dir, "ttyUSB0"),
		DebugText: true, TextInterval: time.Millisecond, AlertInterval: time.Millisecond})
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(r.Close)
	cfg := fmt.Sprintf(`config bridge 'main'
	option port '%s'
	option region 'US'
	option preset 'SHORT_TURBO'
	option airtime_share '100'
	option journal '%s'
	option socket '%s'
	option listen '%s:4404'
	option node_id '%08x'
	option text_interval '2'
	option alert_interval '2'
	option grace '1'
	option heartbeat '1'

config peer
	option name 'other'
	option address '%s:4404'
`, r.Path(), filepath.Join(dir, "journal"), filepath.Join(dir, "api.sock"), self, nodeID, peer)
	if err := os.WriteFile(filepath.Join(dir, "lora-bridge"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n := &procNode{t: t, name: name, ns: ns, dir: dir, radio: r, sock: filepath.Join(dir, "api.sock")}
	t.Cleanup(n.stop)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("bridge %s log:\n%s", name, b)
		}
	})
	return n
}

// start runs the bridge and waits for its API and its radio handshake.
func (n *procNode) start() {
	t := n.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(n.dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// ip netns exec execs the command: the pid is the bridge's own, so
	// SIGKILL reaches the bridge, not a wrapper.
	cmd := exec.Command("ip", "netns", "exec", n.ns, bridgeBinary(t), "run", "-c", filepath.Join(n.dir, "lora-bridge"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	waitUntil(t, n.name+" API up", 10*time.Second, func() bool {
		_, err := bridge.Call(n.sock, bridge.Request{Method: "status"})
		return err == nil
	})
	waitUntil(t, n.name+" radio handshake", 10*time.Second, n.radio.Attached)
}

func (n *procNode) signal(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (n *procNode) kill9() { n.signal(syscall.SIGKILL) }
func (n *procNode) stop()  { n.signal(syscall.SIGTERM) }

func waitUntil(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !f() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startPair(t *testing.T) (a, b *procNode) {
	nsA, nsB := twoNamespaces(t)
	a = newProcNode(t, "A", nsA, "10.77.0.1", "10.77.0.2", 0xa)
	b = newProcNode(t, "B", nsB, "10.77.0.2", "10.77.0.1", 0xb)
	a.start()
	b.start()
	return a, b
}

// onAir counts, per payload, the packets radio r transmitted and their
// distinct packet ids (the mesh dedupes a resend with the same id).
func onAir(r *simradio.Radio) (count map[string]int, ids map[string]map[uint32]bool) {
	count, ids = map[string]int{}, map[string]map[uint32]bool{}
	for _, p := range r.Air() {
		s := string(p.Decoded.Payload)
		count[s]++
		if ids[s] == nil {
			ids[s] = map[uint32]bool{}
		}
		ids[s][p.ID] = true
	}
	return count, ids
}

func TestNetnsRadioToRadioExactlyOnce(t *testing.T) {
	a, b := startPair(t)
	a.radio.Type(0x1234, "water at the school, 14:00")
	want := "!00001234: water at the school, 14:00"
	waitUntil(t, "the message on radio B", 10*time.Second, func() bool {
		c, _ := onAir(b.radio)
		return c[want] > 0
	})
	// Longer than the first peer retransmission timeout (1 s): a lost or
	// late ack would show up as a second transmission.
	time.Sleep(1500 * time.Millisecond)
	if c, _ := onAir(b.radio); c[want] != 1 || len(c) != 1 {
		t.Fatalf("radio B transmitted %v, want %q exactly once", c, want)
	}
	if air := a.radio.Air(); len(air) != 0 {
		t.Fatalf("radio A transmitted %d packets: the message came back (loop)", len(air))
	}
}

func TestNetnsKill9MidBurst(t *testing.T) {
	a, b := startPair(t)
	const total = 1000
	var posted atomic.Int32
	errc := make(chan error, 1)
	go func() {
		// Each message has its own id, so a post retried after A died
		// is accepted once even if A journaled it before dying.
		for i := 0; i < total; i++ {
			req := bridge.Request{Method: "send", Text: fmt.Sprintf("burst %04d", i), ID: uint32(i + 1)}
			deadline := time.Now().Add(20 * time.Second)
			for {
				_, err := bridge.Call(a.sock, req)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					errc <- fmt.Errorf("post %d: %v", i, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			posted.Add(1)
		}
		errc <- nil
	}()

	// kill -9 the sending bridge while it is accepting the burst.
	waitUntil(t, "posts to A", 30*time.Second, func() bool { return posted.Load() >= 300 })
	a.kill9()
	killedA := posted.Load()
	time.Sleep(300 * time.Millisecond)
	a.start()
	// kill -9 the receiving bridge while it is putting the burst on air.
	waitUntil(t, "radio B transmitting the burst", 30*time.Second, func() bool { return len(b.radio.Air()) >= 500 })
	b.kill9()
	killedB := len(b.radio.Air())
	time.Sleep(300 * time.Millisecond)
	b.start()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("A killed after %d accepted posts, B after %d transmissions", killedA, killedB)
	if killedA >= total || killedB >= total {
		t.Fatalf("burst finished before the kills")
	}

	var c map[string]int
	var ids map[string]map[uint32]bool
	waitUntil(t, "all messages on radio B", 60*time.Second, func() bool {
		c, ids = onAir(b.radio)
		return len(c) >= total
	})
	time.Sleep(1500 * time.Millisecond) // retransmissions would arrive now
	c, ids = onAir(b.radio)
	resent := 0
	for i := 0; i < total; i++ {
		p := fmt.Sprintf("burst %04d", i)
		if len(ids[p]) != 1 {
			t.Errorf("%q went on air under %d packet ids (%d transmissions), want exactly 1", p, len(ids[p]), c[p])
		}
		resent += c[p] - 1
	}
	if len(c) != total {
		t.Errorf("radio B transmitted %d distinct payloads, want %d", len(c), total)
	}
	t.Logf("%d same-id resends (deduplicated by the mesh); radio B stats %+v", resent, b.radio.Stats())
}

func TestNetnsUnplugReplug(t *testing.T) {
	a, b := startPair(t)
	a.radio.Unplug()
	waitUntil(t, "bridge A to notice the unplug", 5*time.Second, func() bool {
		r, err := bridge.Call(a.sock, bridge.Request{Method: "status"})
		return err == nil && !r.Status.Radio.Connected
	})
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	if err := a.radio.Replug(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reconnect after replug", 5*time.Second, a.radio.Attached)
	d := time.Since(t0)
	t.Logf("reconnected %v after replug (target 5 s)", d.Round(time.Millisecond))
	if d > 5*time.Second {
		t.Fatalf("reconnect took %v", d)
	}
	// And traffic flows again.
	a.radio.Type(0x77, "after replug")
	waitUntil(t, "a message after the replug on radio B", 10*time.Second, func() bool {
		c, _ := onAir(b.radio)
		return c["!00000077: after replug"] == 1
	})
}
