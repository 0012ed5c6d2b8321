// Package wan holds the namespace integration tests of uplink failover
// and the topology and traffic helpers they share with the benchmark
// (tests/bench/wan). Every address lives inside namespaces the test
// creates; nothing is linked to the machine's network.
package wan

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshnode/meshnode/agent/overlay/certtest"
	"github.com/meshnode/meshnode/agent/status"
	agentwan "github.com/meshnode/meshnode/agent/wan"
	"github.com/meshnode/meshnode/tests/overlay"
)

// Sh runs a command and returns its error with its output.
func Sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// NS runs a command in namespace ns (tests/overlay's).
func NS(ns string, args ...string) error { return overlay.NS(ns, args...) }

// Veth links device an in namespace a with bn in b (tests/overlay's) and
// sets both up.
func Veth(a, an, b, bn string) error {
	if err := overlay.Veth(a, an, b, bn); err != nil {
		return err
	}
	if err := NS(a, "ip", "link", "set", "dev", an, "up"); err != nil {
		return err
	}
	return NS(b, "ip", "link", "set", "dev", bn, "up")
}

// Local is topology (a): a node with two WANs, each to an ISP namespace,
// both ISPs joined to an "internet" namespace holding the probe targets
// (198.51.100.1-3) and an echo server (198.51.100.10).
//
//	node wan1 10.1.1.2 -- 10.1.1.1 isp1 10.9.1.1 -- 10.9.1.2 inet
//	node wan2 10.1.2.2 -- 10.1.2.1 isp2 10.9.2.1 -- 10.9.2.2 inet
type Local struct {
	overlay.Namespaces
	Node, ISP1, ISP2, Inet string
}

// Addresses of the Local topology.
const (
	Wan1Addr = "10.1.1.2"
	Wan2Addr = "10.1.2.2"
	EchoAddr = "198.51.100.10:7000"
)

// BuildLocal creates topology (a). wan2 gets a netifd-style default route
// in the main table so the agent learns its gateway.
func BuildLocal(prefix string) (*Local, error) {
	l := &Local{Namespaces: overlay.Namespaces{Prefix: prefix}}
	var err error
	for _, p := range []*string{&l.Node, &l.ISP1, &l.ISP2, &l.Inet} {
		name := map[*string]string{&l.Node: "node", &l.ISP1: "isp1", &l.ISP2: "isp2", &l.Inet: "inet"}[p]
		if *p, err = l.Add(name); err != nil {
			return l, err
		}
	}
	cmds := [][]string{}
	for i, isp := range []string{l.ISP1, l.ISP2} {
		n := i + 1
		if err := Veth(l.Node, fmt.Sprintf("wan%d", n), isp, "lan"); err != nil {
			return l, err
		}
		if err := Veth(isp, "up", l.Inet, fmt.Sprintf("isp%d", n)); err != nil {
			return l, err
		}
		cmds = append(cmds,
			[]string{l.Node, "ip", "addr", "add", fmt.Sprintf("10.1.%d.2/24", n), "dev", fmt.Sprintf("wan%d", n)},
			[]string{isp, "ip", "addr", "add", fmt.Sprintf("10.1.%d.1/24", n), "dev", "lan"},
			[]string{isp, "ip", "addr", "add", fmt.Sprintf("10.9.%d.1/24", n), "dev", "up"},
			[]string{isp, "ip", "route", "add", "default", "via", fmt.Sprintf("10.9.%d.2", n)},
			[]string{isp, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
			[]string{l.Inet, "ip", "addr", "add", fmt.Sprintf("10.9.%d.2/24", n), "dev", fmt.Sprintf("isp%d", n)},
			[]string{l.Inet, "ip", "route", "add", fmt.Sprintf("10.1.%d.0/24", n), "via", fmt.Sprintf("10.9.%d.1", n)},
		)
	}
	for _, a := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.10"} {
		cmds = append(cmds, []string{l.Inet, "ip", "addr", "add", a + "/32", "dev", "lo"})
	}
	cmds = append(cmds, []string{l.Node, "ip", "route", "add", "default", "via", "10.1.2.1", "dev", "wan2", "metric", "20"})
	for _, c := range cmds {
		if err := NS(c[0], c[1:]...); err != nil {
			return l, err
		}
	}
	return l, nil
}

// KillUpstream drops everything an ISP namespace forwards: its link to the
// node stays up, the internet behind it is gone.
func KillUpstream(ns string) error {
	return NS(ns, "nft", "add table ip mnkill; add chain ip mnkill kill { type filter hook forward priority 0 ; } ; add rule ip mnkill kill drop")
}

// KillDestinations drops what ns forwards to the given networks only.
func KillDestinations(ns string, nets ...string) error {
	return NS(ns, "nft", "add table ip mnkill; add chain ip mnkill kill { type filter hook forward priority 0 ; } ; add rule ip mnkill kill ip daddr { "+strings.Join(nets, ", ")+" } drop")
}

// RandomLoss drops pct percent of what ns forwards from iface (one
// direction: the test kernel has no netem).
func RandomLoss(ns, iface string, pct int) error {
	return NS(ns, "nft", fmt.Sprintf("add table ip mnkill; add chain ip mnkill kill { type filter hook forward priority 0 ; } ; add rule ip mnkill kill iifname %q numgen random mod 100 < %d drop", iface, pct))
}

// Restore removes KillUpstream's, KillDestinations' or RandomLoss's table.
func Restore(ns string) error { return NS(ns, "nft", "delete table ip mnkill") }

// Echo answers UDP datagrams with "payload|source address it saw".
func Echo(ns, addr string) (stop func(), err error) {
	var c *net.UDPConn
	err = overlay.InNS(ns, func() error {
		ua, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP("udp4", ua)
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP(append(buf[:n:n], "|"+from.IP.String()...), from)
		}
	}()
	return func() { c.Close() }, nil
}

// Reply is one echoed datagram.
type Reply struct {
	Sent, At time.Time
	Via      string // the source address the server saw
}

// Flow sends a small datagram every interval from a namespace, like the
// issue's client, and records the replies.
type Flow struct {
	c    *net.UDPConn
	dst  *net.UDPAddr
	mu   sync.Mutex
	sent map[uint64]time.Time
	got  []Reply
	stop chan struct{}
}

// StartFlow opens the flow's socket in ns and starts sending to dst.
func StartFlow(ns, dst string, every time.Duration) (*Flow, error) {
	f := &Flow{sent: map[uint64]time.Time{}, stop: make(chan struct{})}
	var err error
	if f.dst, err = net.ResolveUDPAddr("udp4", dst); err != nil {
		return nil, err
	}
	if err := overlay.InNS(ns, func() error {
		var err error
		f.c, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for seq := uint64(0); ; seq++ {
			f.mu.Lock()
			f.sent[seq] = time.Now()
			f.mu.Unlock()
			_, _ = f.c.WriteToUDP([]byte(fmt.Sprint(seq)), f.dst)
			select {
			case <-f.stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := f.c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			at := time.Now()
			seqs, via, ok := strings.Cut(string(buf[:n]), "|")
			if !ok {
				continue
			}
			var seq uint64
			fmt.Sscan(seqs, &seq)
			f.mu.Lock()
			f.got = append(f.got, Reply{Sent: f.sent[seq], At: at, Via: via})
			f.mu.Unlock()
		}
	}()
	return f, nil
}

// Close stops the flow.
func (f *Flow) Close() {
	close(f.stop)
	f.c.Close()
}

// First returns the first reply received after t that went via via.
func (f *Flow) First(after time.Time, via string) (Reply, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.got {
		if r.At.After(after) && r.Via == via {
			return r, true
		}
	}
	return Reply{}, false
}

// Last returns the last reply.
func (f *Flow) Last() (Reply, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		return Reply{}, false
	}
	return f.got[len(f.got)-1], true
}

// WaitVia waits up to timeout for a reply via via received after t and
// returns how long after t it came.
func (f *Flow) WaitVia(after time.Time, via string, timeout time.Duration) (time.Duration, error) {
	deadline := after.Add(timeout)
	for time.Now().Before(deadline) {
		if r, ok := f.First(after, via); ok {
			return r.At.Sub(after), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	last, _ := f.Last()
	return 0, fmt.Errorf("no reply via %s within %s (last reply via %q at %s)", via, timeout, last.Via, last.At.Format(time.StampMilli))
}

// Agent is a meshnode agent running in a namespace.
type Agent struct {
	Dir string
	Cmd *exec.Cmd
}

// Socket is the agent's status socket.
func (a *Agent) Socket() string { return filepath.Join(a.Dir, "meshnode.sock") }

// Log returns the agent's log.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(filepath.Join(a.Dir, "agent.log"))
	return string(b)
}

// Stop ends the agent with SIGTERM so it removes its routes, and waits.
func (a *Agent) Stop() {
	if a.Cmd == nil || a.Cmd.Process == nil {
		return
	}
	_ = a.Cmd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { _ = a.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = a.Cmd.Process.Kill()
		<-done
	}
	a.Cmd = nil
}

// HubUCI is a hub's overlay section with certificates in dir; the wan
// tests use a hub because it needs no lighthouse.
func HubUCI(dir string) string {
	return fmt.Sprintf("config overlay 'overlay'\n\toption role 'hub'\n\toption address '10.0.4.1/24'\n"+
		"\toption ca '%[1]s/ca.crt'\n\toption cert '%[1]s/node.crt'\n\toption key '%[1]s/node.key'\n"+
		"\toption port '4242'\n\toption dns_port '5353'\n\toption metrics_port '0'\n\toption log_level 'info'\n", dir)
}

// StartAgent writes certificates and uci (the whole file) into dir and
// runs bin in ns.
func StartAgent(bin, ns, dir, uci string) (*Agent, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := certtest.NewCA("wan test", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	c, err := ca.Sign(certtest.Opts{Name: "node", Address: "10.0.4.1/24", Groups: []string{"hub"}})
	if err != nil {
		return nil, err
	}
	if err := certtest.Write(dir, ca, c); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "meshnode")
	if err := os.WriteFile(cfg, []byte(uci), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "run", "--config", cfg, "--state-dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	return &Agent{Dir: dir, Cmd: cmd}, nil
}

// Status is the agent's failover status.
type Status = agentwan.Status

// Uplinks reads the agent's failover status.
func Uplinks(socket string) (agentwan.Status, error) {
	var st agentwan.Status
	s, err := status.Client{Socket: socket}.Status()
	if err != nil {
		return st, err
	}
	if len(s.Uplinks) == 0 {
		return st, fmt.Errorf("no uplinks in the status")
	}
	return st, json.Unmarshal(s.Uplinks, &st)
}

// WaitUplinks polls the status until ok holds.
func WaitUplinks(socket string, timeout time.Duration, ok func(agentwan.Status) bool) (agentwan.Status, error) {
	deadline := time.Now().Add(timeout)
	var st agentwan.Status
	var err error
	for time.Now().Before(deadline) {
		st, err = Uplinks(socket)
		if err == nil && ok(st) {
			return st, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err == nil {
		err = fmt.Errorf("condition not met; last status %+v", st)
	}
	return st, err
}

// Find returns the named uplink's status.
func Find(st agentwan.Status, name string) agentwan.UplinkStatus {
	for _, u := range st.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return agentwan.UplinkStatus{}
}

// Active reports whether exactly these uplinks carry the default route.
func Active(names ...string) func(agentwan.Status) bool {
	return func(st agentwan.Status) bool {
		return st.Class == agentwan.ClassUp && strings.Join(st.Active, ",") == strings.Join(names, ",")
	}
}

// Changes sums the uplinks' state changes.
func Changes(st agentwan.Status) uint64 {
	var n uint64
	for _, u := range st.Uplinks {
		n += u.Changes
	}
	return n
}

// BuildAgent compiles cmd/meshnode into dir.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "meshnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/meshnode/meshnode/cmd/meshnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
}

// LocalUCI is the node's configuration for topology (a): wan1 tier 1 with
// its gateway set, wan2 tier 2 with its gateway learned from the main
// table; probe targets in the test's "internet" namespace.
func LocalUCI(dir string) string {
	targets := "\tlist target '198.51.100.1'\n\tlist target '198.51.100.2'\n\tlist target '198.51.100.3'\n"
	return HubUCI(dir) +
		"\nconfig uplink 'wan1'\n\toption device 'wan1'\n\toption gateway '10.1.1.1'\n\toption tier '1'\n" + targets +
		"\nconfig uplink 'wan2'\n\toption device 'wan2'\n\toption tier '2'\n" + targets
}
