package luci

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshnode/meshnode/agent/shape"
	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/agent/wan"
	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
	"github.com/meshnode/meshnode/tests/overlay"
)

// The namespace topology is tests/overlay's (hub, relay and client on an
// "internet" bridge), with, for the client:
//
//	client wan 192.0.2.5 -- br0 192.0.2.254 inet   probe target 198.51.100.1
//	client lte 10.66.0.2 -- lte0 10.66.0.1  inet   probe target 198.51.100.2
//
// The client's agent shapes wan (HTB, IFB) and runs failover over the two
// uplinks, wan first (tier 1) and lte as backup (tier 2). The test takes
// an uplink down by dropping its probe target's packets with nft in inet,
// flaps it until the agent damps it, bounces lte's carrier for probing,
// and reloads the agent without shaping and with a schedule window in
// force. lora-bridge runs against a simulated radio (lora-bridge/simradio)
// in the client's namespace. Every status below is the JSON the real
// processes returned at that moment.

const (
	wanTarget = "198.51.100.1"
	lteTarget = "198.51.100.2"
	inetAddr  = "192.0.2.254"
	clientWAN = "192.0.2.5"
)

// captured is what the real agent and bridge said in each state, and the
// handles to talk to them while the browser tests run.
type captured struct {
	bin, sock, cfg string // meshnode binary, the client agent's socket and config
	down           []byte // the rpcd plugin's reply when no agent runs
	// status snapshots by state: good, probing, wan-down, no-internet,
	// damped, shaping-off, schedule.
	snaps map[string][]byte
	// share replies captured with a snapshot whose config differs from the
	// one the live agent runs now (shaping-off).
	shares map[string][]byte
	// lora-bridge replies: ok, unplugged, stopped (status) and recent.
	lora            map[string][]byte
	loraBin, loraSk string
	window          string // the schedule window of the schedule snapshot, "HH:MM-HH:MM"
	client          *overlay.Node
	steps           []string // what was waited for, how long
	loraTook        time.Duration
	topo            *overlay.Topology
	inet            string
}

// clientUCI is the client's extra configuration: sharing bounds, shaping
// of wan (none when !shaping; with a schedule window when window != ""),
// failover over wan and lte.
func clientUCI(shaping bool, window string) string {
	var b strings.Builder
	b.WriteString("\nconfig share 'share'\n\toption upload_min '2000'\n\toption upload_max '20000'\n")
	if shaping {
		b.WriteString("\nconfig shape 'limit'\n\toption device 'wan'\n\toption upload '10000'\n\toption download '50000'\n\toption link_speed '1gbit'\n")
		if window != "" {
			fmt.Fprintf(&b, "\tlist schedule '%s upload=5000 download=30000'\n", window)
		}
	}
	// Quick judgements so the states come within seconds; a damped uplink
	// is held 5 s.
	b.WriteString("\nconfig failover 'failover'\n\toption damp_hold '5s'\n")
	fmt.Fprintf(&b, "\nconfig uplink 'wan'\n\toption device 'wan'\n\toption gateway '%s'\n\tlist target '%s'\n"+
		"\toption interval '200ms'\n\toption timeout '400ms'\n\toption up '3'\n\toption down '2'\n", inetAddr, wanTarget)
	fmt.Fprintf(&b, "\nconfig uplink 'lte'\n\toption device 'lte'\n\toption gateway '10.66.0.1'\n\tlist target '%s'\n"+
		"\toption tier '2'\n\toption interval '500ms'\n\toption timeout '400ms'\n\toption up '6'\n\toption down '2'\n", lteTarget)
	return b.String()
}

func buildBinaries(t *testing.T, dir string) (meshnode, lora string) {
	meshnode, lora = filepath.Join(dir, "meshnode"), filepath.Join(dir, "lora-bridge")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range [][2]string{{meshnode, "github.com/meshnode/meshnode/cmd/meshnode"}, {lora, "github.com/meshnode/meshnode/cmd/lora-bridge"}} {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-trimpath", "-o", p[0], p[1])
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("build %s: %v\n%s", p[1], err, out)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return meshnode, lora
}

// rpcdStatus runs the agent's rpcd plugin as rpcd does.
func rpcdStatus(bin, sock string) ([]byte, error) {
	return exec.Command(bin, "rpcd", "--socket", sock, "call", "status").Output()
}

// state is one status snapshot, raw and decoded.
type state struct {
	raw json.RawMessage
	st  status.Snapshot
	up  wan.Status
	sh  shape.Status
}

func (c *captured) read() (state, error) {
	var s state
	raw, err := status.Client{Socket: c.sock}.StatusRaw()
	if err != nil {
		return s, err
	}
	s.raw = raw
	if err := json.Unmarshal(raw, &s.st); err != nil {
		return s, err
	}
	if len(s.st.Uplinks) > 0 {
		_ = json.Unmarshal(s.st.Uplinks, &s.up)
	}
	if len(s.st.Shaping) > 0 {
		_ = json.Unmarshal(s.st.Shaping, &s.sh)
	}
	return s, nil
}

// wait polls the agent until ok holds and returns that snapshot.
func (c *captured) wait(t *testing.T, what string, d time.Duration, ok func(s state) bool) []byte {
	t.Helper()
	var last state
	var err error
	start := time.Now()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last, err = c.read(); err == nil && ok(last) {
			c.steps = append(c.steps, fmt.Sprintf("%s %.1fs", what, time.Since(start).Seconds()))
			return last.raw
		}
	}
	log, _ := os.ReadFile(filepath.Join(c.client.Dir, "agent.log"))
	t.Fatalf("waited %v for %s (last error %v)\nuplinks %s\nshaping %s\nagent log (tail):\n%s", d, what, err,
		last.st.Uplinks, last.st.Shaping, tailOf(string(log), 40))
	return nil
}

func tailOf(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

func uplink(s state, name string) wan.UplinkStatus {
	for _, u := range s.up.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return wan.UplinkStatus{}
}

func isState(name, st string) func(s state) bool {
	return func(s state) bool { return uplink(s, name).State == st }
}

func and(fs ...func(s state) bool) func(s state) bool {
	return func(s state) bool {
		for _, f := range fs {
			if !f(s) {
				return false
			}
		}
		return true
	}
}

func active(name string) func(s state) bool {
	return func(s state) bool { return len(s.up.Active) == 1 && s.up.Active[0] == name }
}

// block drops what inet receives for the given probe targets (the
// internet behind an uplink dies, its link stays up); unblock undoes it.
func (c *captured) block(t *testing.T, addrs ...string) {
	t.Helper()
	if err := overlay.NS(c.inet, "nft", "add table ip mnluci; add chain ip mnluci in { type filter hook input priority 0 ; } ; flush chain ip mnluci in ; add rule ip mnluci in ip daddr { "+strings.Join(addrs, ", ")+" } drop"); err != nil {
		t.Fatal(err)
	}
}

func (c *captured) unblock(t *testing.T) {
	t.Helper()
	if err := overlay.NS(c.inet, "nft", "delete table ip mnluci"); err != nil {
		t.Fatal(err)
	}
}

// reconfigure rewrites the client's config and has the agent reload it.
func (c *captured) reconfigure(t *testing.T, extra string) {
	t.Helper()
	c.client.Extra = extra
	if _, err := c.topo.WriteConfig(c.client); err != nil {
		t.Fatal(err)
	}
	if r, err := (status.Client{Socket: c.sock}).Reload(); err != nil || !r.OK {
		t.Fatalf("reload: %v %+v", err, r)
	}
}

// shareReply is the share method's answer for the client's config now.
func (c *captured) shareReply() []byte {
	var out strings.Builder
	status.ShareRPCD("share", strings.NewReader("{}"), &out, c.cfg, nil)
	return []byte(out.String())
}

// capture runs the agents and the bridge and records their status in
// every state the page tests need. The client agent and the bridge keep
// running until the test ends (the live and sharing-limit tests use them).
func capture(t *testing.T) *captured {
	start := time.Now()
	dir := t.TempDir()
	c := &captured{snaps: map[string][]byte{}, shares: map[string][]byte{}, lora: map[string][]byte{}}
	c.bin, c.loraBin = buildBinaries(t, dir)
	c.steps = append(c.steps, fmt.Sprintf("build %.1fs", time.Since(start).Seconds()))
	var err error
	if c.down, err = rpcdStatus(c.bin, filepath.Join(dir, "no-agent.sock")); err != nil {
		t.Fatalf("meshnode rpcd call status without agent: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for the agent in network namespaces (run `make test` as root)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun for the agent")
	}
	topo, err := overlay.Build(fmt.Sprintf("lu%d-", os.Getpid()%100000), c.bin, t.TempDir())
	t.Cleanup(topo.Close)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Certify(); err != nil {
		t.Fatal(err)
	}
	c.topo, c.client, c.inet = topo, topo.Nodes["client"], topo.Prefix+"inet"
	c.sock, c.cfg = c.client.Socket(), filepath.Join(c.client.Dir, "meshnode")
	cl := c.client.NS
	if err := overlay.Veth(cl, "lte", c.inet, "lte0"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{c.inet, "ip", "addr", "add", inetAddr + "/24", "dev", "br0"},
		{c.inet, "ip", "addr", "add", wanTarget + "/32", "dev", "lo"},
		{c.inet, "ip", "addr", "add", lteTarget + "/32", "dev", "lo"},
		{c.inet, "ip", "addr", "add", "10.66.0.1/24", "dev", "lte0"},
		{c.inet, "ip", "link", "set", "lte0", "up"},
		{cl, "ip", "addr", "add", "10.66.0.2/24", "dev", "lte"},
		{cl, "ip", "link", "set", "lte", "up"},
	} {
		if err := overlay.NS(cmd[0], cmd[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	c.client.Extra = clientUCI(true, "")
	for _, n := range []string{"hub", "relay", "client"} {
		if err := topo.Start(topo.Nodes[n]); err != nil {
			t.Fatal(err)
		}
	}
	loraDone := make(chan struct{})
	go func() {
		defer close(loraDone)
		c.captureLoRa(t, dir)
	}()

	tunnelUp := func(s state) bool {
		if len(s.st.Lighthouses) == 0 {
			return false
		}
		for _, l := range s.st.Lighthouses {
			if !l.Reachable {
				return false
			}
		}
		return true
	}
	shaped := func(s state) bool { return len(s.sh.Links) == 1 && len(s.sh.Links[0].Trees) == 2 }
	c.snaps["good"] = c.wait(t, "tunnel, both uplinks up, wan in use, shaping", 30*time.Second,
		and(tunnelUp, shaped, isState("wan", "up"), isState("lte", "up"), active("wan")))

	// lte loses its carrier, then gets it back: probing until six rounds
	// (3 s) are good.
	if err := overlay.NS(cl, "ip", "link", "set", "lte", "down"); err != nil {
		t.Fatal(err)
	}
	c.wait(t, "lte down without carrier", 5*time.Second, isState("lte", "down"))
	if err := overlay.NS(cl, "ip", "link", "set", "lte", "up"); err != nil {
		t.Fatal(err)
	}
	c.snaps["probing"] = c.wait(t, "lte probing", 5*time.Second, isState("lte", "probing"))
	c.wait(t, "lte up again", 10*time.Second, isState("lte", "up"))

	// wan's internet dies (its link stays up): traffic moves to lte.
	c.block(t, wanTarget)
	c.snaps["wan-down"] = c.wait(t, "wan down, lte in use", 5*time.Second, and(isState("wan", "down"), active("lte")))
	// Both die.
	c.block(t, wanTarget, lteTarget)
	c.snaps["no-internet"] = c.wait(t, "both down", 5*time.Second, and(isState("wan", "down"), isState("lte", "down")))
	c.unblock(t)
	// Two more flaps of wan within a minute; its next return is damped.
	for i := 0; i < 2; i++ {
		c.wait(t, "wan up", 5*time.Second, isState("wan", "up"))
		c.block(t, wanTarget)
		c.wait(t, "wan down", 5*time.Second, isState("wan", "down"))
		c.unblock(t)
	}
	c.snaps["damped"] = c.wait(t, "wan damped", 5*time.Second, isState("wan", "damped"))
	c.wait(t, "wan back after the hold", 10*time.Second, and(isState("wan", "up"), active("wan")))

	// Shaping off: the chart falls back to the routed bytes.
	c.reconfigure(t, clientUCI(false, ""))
	c.snaps["shaping-off"] = c.wait(t, "no shaped link", 5*time.Second, func(s state) bool { return len(s.sh.Links) == 0 && s.st.Shaping != nil })
	c.shares["shaping-off"] = c.shareReply()

	// A schedule window in force now (local time, as the agent reads it).
	now := time.Now()
	c.window = now.Add(-30*time.Minute).Format("15:04") + "-" + now.Add(90*time.Minute).Format("15:04")
	c.reconfigure(t, clientUCI(true, c.window))
	c.snaps["schedule"] = c.wait(t, "the schedule window in force", 5*time.Second, func(s state) bool {
		return shaped(s) && s.sh.Links[0].Window == c.window
	})
	<-loraDone
	if t.Failed() {
		t.FailNow()
	}
	c.steps = append(c.steps, fmt.Sprintf("lora-bridge %.1fs", c.loraTook.Seconds()))
	t.Logf("captured the agent and the bridge in every state in %v: %s", time.Since(start).Round(time.Millisecond), strings.Join(c.steps, ", "))
	return c
}

// captureLoRa runs lora-bridge against a simulated radio and records its
// status connected, with the radio unplugged and the bridge stopped, and
// its recent messages after a signed and an unsigned alert.
func (c *captured) captureLoRa(t *testing.T, dir string) {
	start := time.Now()
	defer func() { c.loraTook = time.Since(start) }()
	dir = filepath.Join(dir, "lora")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Error(err)
		return
	}
	r, err := simradio.New(simradio.Config{NodeNum: 0x5eed00c1, TextInterval: time.Millisecond, AlertInterval: time.Millisecond})
	if err != nil {
		t.Errorf("simulated radio: %v", err)
		return
	}
	t.Cleanup(r.Close)
	pub, priv, _ := ed25519.GenerateKey(nil)
	c.loraSk = filepath.Join(dir, "api.sock")
	cfg := fmt.Sprintf(`config bridge 'main'
	option port '%s'
	option region 'EU_868'
	option preset 'LONG_FAST'
	option journal '%s'
	option socket '%s'
	option listen '127.0.0.1:4404'
	option node_id '5eed00c2'
	option text_interval '2'
	option alert_interval '2'
	option grace '1'
	option heartbeat '1'
	list alert_key '%s'
`, r.Path(), filepath.Join(dir, "journal"), c.loraSk, base64.StdEncoding.EncodeToString(pub))
	if err := os.WriteFile(filepath.Join(dir, "lora-bridge"), []byte(cfg), 0o600); err != nil {
		t.Error(err)
		return
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Error(err)
		return
	}
	// In the client's namespace: its peer port stays off the host.
	cmd := exec.Command("ip", "netns", "exec", c.client.NS, c.loraBin, "run", "-c", filepath.Join(dir, "lora-bridge"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	fail := func(format string, a ...any) {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Errorf(format+"\nlora-bridge log:\n%s", append(a, b)...)
	}
	// out runs the real binary's client command, as a script would.
	out := func(args ...string) []byte {
		b, err := exec.Command(c.loraBin, args...).Output()
		if err != nil {
			fail("lora-bridge %v: %v", args, err)
		}
		return b
	}
	connected := func(want bool) bool {
		rep, err := bridge.Call(c.loraSk, bridge.Request{Method: "status"})
		return err == nil && rep.Status != nil && rep.Status.Radio.Connected == want
	}
	waitFor := func(what string, f func() bool) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if f() {
				return true
			}
		}
		fail("lora-bridge: waited 10 s for %s", what)
		return false
	}
	if !waitFor("the radio handshake", func() bool { return r.Attached() && connected(true) }) {
		return
	}
	signed, err := alert.Sign(priv, "Flood warning for the river district until 18:00", time.Now())
	if err != nil {
		t.Error(err)
		return
	}
	for _, req := range []bridge.Request{
		{Method: "send", Text: "water at the school, 14:00", Sender: "ana"},
		{Method: "alert", Text: "Boil water before drinking in the north quarter"},
		{Method: "alert", Text: signed},
	} {
		if _, err := bridge.Call(c.loraSk, req); err != nil {
			fail("lora-bridge %s: %v", req.Method, err)
			return
		}
	}
	c.lora["ok"] = out("status", "-s", c.loraSk)
	c.lora["recent"] = out("recent", "-s", c.loraSk, "-n", "20")
	r.Unplug()
	if !waitFor("the radio seen unplugged", func() bool { return connected(false) }) {
		return
	}
	c.lora["unplugged"] = out("status", "-s", c.loraSk)
	if err := r.Replug(); err != nil {
		t.Error(err)
		return
	}
	// What the rpcd plugin answers when the bridge's socket is gone: its
	// own code path (cmd/lora-bridge rpcd), with this socket.
	stopped := filepath.Join(dir, "stopped.sock")
	rep, err := bridge.Call(stopped, bridge.Request{Method: "status"})
	if err != nil && rep.Error == "" {
		rep.Error = err.Error()
	}
	c.lora["stopped"], _ = json.Marshal(rep)
}

// blast sends UDP datagrams of 1200 bytes from namespace ns to dst at
// about kbit kbit/s until stop is closed.
func blast(ns, dst string, kbit int, stop <-chan struct{}) error {
	to, err := net.ResolveUDPAddr("udp4", dst)
	if err != nil {
		return err
	}
	var conn *net.UDPConn
	if err := overlay.InNS(ns, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		return err
	}
	go func() {
		defer conn.Close()
		buf := make([]byte, 1200)
		perSecond := float64(kbit) * 1000 / 8
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		// Paced by the clock, not by ticks (a late tick is not lost).
		credit, last := 0.0, time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			credit += now.Sub(last).Seconds() * perSecond
			last = now
			for ; credit >= float64(len(buf)); credit -= float64(len(buf)) {
				_, _ = conn.WriteToUDP(buf, to)
			}
		}
	}()
	return nil
}
