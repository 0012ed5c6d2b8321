// Package shape_test runs agent/shape against the real kernel inside two
// private network namespaces joined by a veth pair: "node" holds the WAN
// being shaped, "net" stands in for the internet. Nothing is connected to
// the machine's own network; iperf3 traffic stays on the veth.
package shape_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/shape"
	"github.com/meshnode/meshnode/internal/uci"
)

// Addresses from TEST-NET-1 (RFC 5737): never routed anywhere.
const (
	nodeAddr = "192.0.2.1"
	netAddr  = "192.0.2.2"
	wan      = "wan0"
)

type env struct {
	node, net string // namespace names
	nsFD      *os.File
	k         *shape.NetlinkKernel
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("namespace shaping tests need root (run via make test)")
	}
	for _, tool := range []string{"ip", "tc", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make test installs iperf3 from Debian): %v", tool, err)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newEnv builds the two namespaces; t.Cleanup removes them even when the
// test fails, which also removes every qdisc and IFB inside.
func newEnv(t *testing.T) *env {
	t.Helper()
	requireRoot(t)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, time.Now().UnixNano()%100000)
	e := &env{node: "mshape-n-" + id, net: "mshape-i-" + id}
	run(t, "ip", "netns", "add", e.node)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", e.node).Run() })
	run(t, "ip", "netns", "add", e.net)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", e.net).Run() })
	run(t, "ip", "-n", e.node, "link", "add", wan, "type", "veth", "peer", "name", "inet0", "netns", e.net)
	run(t, "ip", "-n", e.node, "addr", "add", nodeAddr+"/24", "dev", wan)
	run(t, "ip", "-n", e.net, "addr", "add", netAddr+"/24", "dev", "inet0")
	for _, ns := range []string{e.node, e.net} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", e.node, "link", "set", wan, "up")
	run(t, "ip", "-n", e.net, "link", "set", "inet0", "up")
	f, err := os.Open("/run/netns/" + e.node)
	if err != nil {
		t.Fatal(err)
	}
	e.nsFD = f
	t.Cleanup(func() { f.Close() })
	k, err := shape.OpenKernel(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	e.k = k
	t.Cleanup(func() { k.Close() })
	return e
}

// server starts iperf3 servers in the "net" namespace (one per port).
func (e *env) server(t *testing.T, port int) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", e.net, "iperf3", "-s", "-B", netAddr, "-p", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 50; i++ {
		if exec.Command("ip", "netns", "exec", e.net, "sh", "-c",
			fmt.Sprintf("ss -ltn | grep -q ':%d '", port)).Run() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("iperf3 server on port %d did not start", port)
}

type iperfResult struct {
	Start struct {
		TCPMSS int `json:"tcp_mss_default"`
	} `json:"start"`
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			LostPercent   float64 `json:"lost_percent"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs a client in the node namespace; extra args select -R, -u ...
func (e *env) iperf(t *testing.T, port int, extra ...string) iperfResult {
	t.Helper()
	r, err := e.tryIperf(port, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryIperf is iperf without testing.T, for goroutines. A server still
// tearing down the previous test refuses the next connection for a
// moment, so connection failures are retried.
func (e *env) tryIperf(port int, extra ...string) (iperfResult, error) {
	args := append([]string{"netns", "exec", e.node, "iperf3", "-c", netAddr, "-p", fmt.Sprint(port),
		"-J", "-t", "4", "-O", "1"}, extra...)
	var r iperfResult
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("ip", args...).Output()
		r = iperfResult{}
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			return r, fmt.Errorf("iperf3 %v: %v %v\n%s", extra, err, jerr, out)
		}
		if r.Error == "" {
			return r, nil
		}
		if attempt == 5 || !strings.Contains(r.Error, "connect") && !strings.Contains(r.Error, "busy") {
			return r, fmt.Errorf("iperf3 %v: %s", extra, r.Error)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// tcpWireRate converts iperf3's TCP goodput to the rate HTB counts: each
// MSS-sized segment also carries 66 bytes of Ethernet, IPv4 and TCP
// (with timestamps) headers.
func tcpWireRate(r iperfResult) float64 {
	mss := float64(r.Start.TCPMSS)
	if mss == 0 {
		mss = 1448
	}
	return r.End.SumReceived.BitsPerSecond * (mss + 66) / mss
}

func parse(t testing.TB, text string) shape.Config {
	t.Helper()
	f, err := uci.Parse("/etc/config/meshnode", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := shape.ParseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func rateConfig(upKbit, downKbit int64, extra string) string {
	return fmt.Sprintf(`config shape 'wan'
	option device '%s'
	option link_speed '1gbit'
	option upload '%d'
	option download '%d'
%s`, wan, upKbit, downKbit, extra)
}

// logBuf captures the shaper's log for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newShaper(t *testing.T, e *env, clk shape.Clock) (*shape.Shaper, *logBuf) {
	lb := &logBuf{}
	s := shape.New(e.k, clk, slog.New(slog.NewTextHandler(lb, nil)))
	t.Cleanup(func() { _ = s.Stop() })
	return s, lb
}

func (e *env) tc(t *testing.T, args ...string) string {
	return run(t, append([]string{"ip", "netns", "exec", e.node, "tc"}, args...)...)
}

func within(got, want, tol float64) bool { return got >= want*(1-tol) && got <= want*(1+tol) }

// TestRateAccuracy: at 5, 20 and 50 Mbit/s the TCP rate in each direction
// is within ±5 % of the configured rate. The leaf falls back because this
// kernel has no fq_codel, and the fallback is logged once.
func TestRateAccuracy(t *testing.T) {
	e := newEnv(t)
	e.server(t, 5201)
	s, lb := newShaper(t, e, shape.SystemClock{})
	ctx := context.Background()
	for _, mbit := range []int64{5, 20, 50} {
		if err := s.Apply(ctx, parse(t, rateConfig(mbit*1000, mbit*1000, ""))); err != nil {
			t.Fatalf("apply %d mbit: %v", mbit, err)
		}
		for _, dir := range []string{"upload", "download"} {
			var extra []string
			if dir == "download" {
				extra = []string{"-R"}
			}
			want := float64(mbit) * 1e6
			var got float64
			for attempt := 1; attempt <= 2; attempt++ {
				got = tcpWireRate(e.iperf(t, 5201, extra...))
				t.Logf("%d Mbit/s %s: wire %.2f Mbit/s (%.1f %%), attempt %d", mbit, dir, got/1e6, 100*got/want, attempt)
				if within(got, want, 0.05) {
					break
				}
			}
			if !within(got, want, 0.05) {
				t.Errorf("%d Mbit/s %s: measured %.2f Mbit/s, outside ±5 %%", mbit, dir, got/1e6)
			}
		}
	}
	st := s.Status()
	if len(st.Links) != 1 || st.Links[0].Leaf == "fq_codel" {
		t.Fatalf("status: %+v", st)
	}
	t.Logf("leaf in use: %s", st.Links[0].Leaf)
	if n := strings.Count(lb.String(), "falling back"); n != 1 {
		t.Errorf("want one fallback warning, got %d:\n%s", n, lb.String())
	}
	if !strings.Contains(e.tc(t, "qdisc", "show", "dev", wan), "htb") {
		t.Error("no htb on wan")
	}
}

// classRate reads the rate of HTB class handle (e.g. "1:1") on dev.
func (e *env) classRate(t *testing.T, dev, handle string) string {
	out := e.tc(t, "class", "show", "dev", dev, "classid", handle)
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "rate" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReconcileRepairs: a second pass changes nothing; deleting the root
// qdisc, the ingress qdisc or the IFB, or removing and re-creating the
// WAN, is repaired by Run from netlink events; Stop removes everything.
// A mark filter must either keep its mark in the kernel or not be there:
// a kernel without CONFIG_CLS_U32_MARK (as this test machine's) drops the
// mark and would send all traffic to the mark's class.
func TestMarkFilters(t *testing.T) {
	e := newEnv(t)
	s, _ := newShaper(t, e, shape.SystemClock{})
	err := s.Apply(context.Background(), parse(t, rateConfig(10000, 20000, "\tlist bulk_mark '0x10/0xff'\n")))
	out, _ := exec.Command("ip", "netns", "exec", e.node, "tc", "filter", "show", "dev", wan).Output()
	if err != nil {
		if !strings.Contains(err.Error(), "firewall marks") {
			t.Fatal(err)
		}
		t.Logf("kernel without u32 marks: %v", err)
		if strings.Contains(string(out), "mark 0x") || strings.Count(string(out), "match 00000000/00000000 at 0") > 0 {
			t.Fatalf("a mark filter was left behind:\n%s", out)
		}
		return
	}
	if !strings.Contains(string(out), "mark 0x") { // tc prints "mark 0x0010 0x00ff (success N)"
		t.Fatalf("Apply succeeded but no mark match in the kernel:\n%s", out)
	}
}

func TestReconcileRepairs(t *testing.T) {
	e := newEnv(t)
	s, lb := newShaper(t, e, shape.SystemClock{})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shaper log:\n%s", lb)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Apply(ctx, parse(t, rateConfig(10000, 20000, ""))); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconcile("test"); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); st.LastChanges != 0 {
		t.Fatalf("second pass made %d changes, want 0 (read-back differs from desired)", st.LastChanges)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(100 * time.Millisecond) // let Run subscribe

	hasHTB := func(dev string) func() bool {
		return func() bool {
			out, _ := exec.Command("ip", "netns", "exec", e.node, "tc", "qdisc", "show", "dev", dev).Output()
			return strings.Contains(string(out), "htb 1:")
		}
	}
	hasIngress := func() bool {
		out, _ := exec.Command("ip", "netns", "exec", e.node, "tc", "filter", "show", "dev", wan, "ingress").Output()
		return strings.Contains(string(out), "ifb4wan0")
	}
	start := time.Now()
	e.tc(t, "qdisc", "del", "dev", wan, "root")
	eventually(t, "root htb re-applied", 3*time.Second, hasHTB(wan))
	t.Logf("root qdisc restored after %v", time.Since(start))

	e.tc(t, "qdisc", "del", "dev", wan, "ingress")
	eventually(t, "ingress redirect re-applied", 3*time.Second, hasIngress)

	run(t, "ip", "-n", e.node, "link", "del", "ifb4wan0")
	eventually(t, "ifb re-created and shaped", 3*time.Second, func() bool { return hasHTB("ifb4wan0")() && hasIngress() })

	// The WAN goes away and comes back (a USB modem replugged).
	run(t, "ip", "-n", e.node, "link", "del", wan)
	time.Sleep(200 * time.Millisecond)
	run(t, "ip", "-n", e.node, "link", "add", wan, "type", "veth", "peer", "name", "inet0", "netns", e.net)
	run(t, "ip", "-n", e.node, "link", "set", wan, "up")
	eventually(t, "wan re-shaped after it came back", 3*time.Second, func() bool { return hasHTB(wan)() && hasIngress() })

	cancel()
	<-done
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	q := e.tc(t, "qdisc", "show", "dev", wan)
	links := run(t, "ip", "-n", e.node, "link", "show")
	if strings.Contains(q, "htb") || strings.Contains(q, "ingress") || strings.Contains(links, "ifb4wan0") {
		t.Fatalf("Stop left shaping behind:\n%s\n%s", q, links)
	}
}

// TestBadConfigKeepsShaping: rejected configurations leave the kernel as
// it was and name the file, section and option.
func TestBadConfigKeepsShaping(t *testing.T) {
	e := newEnv(t)
	s, _ := newShaper(t, e, shape.SystemClock{})
	ctx := context.Background()
	if err := s.Apply(ctx, parse(t, rateConfig(10000, 10000, ""))); err != nil {
		t.Fatal(err)
	}
	before := e.tc(t, "class", "show", "dev", wan)
	// Checked when parsing: the agent never gets to Apply.
	f, err := uci.Parse("/etc/config/meshnode", []byte(rateConfig(10000, 2000000, "")))
	if err != nil {
		t.Fatal(err)
	}
	want := `/etc/config/meshnode:5: section "wan": option "download": 2000000 kbit/s is above the link speed of 1000000 kbit/s`
	if _, err := shape.ParseConfig(f); err == nil || err.Error() != want {
		t.Errorf("above link speed: got %v, want %s", err, want)
	}
	// Checked against the system by Apply.
	err = s.Apply(ctx, parse(t, strings.Replace(rateConfig(10000, 10000, ""), wan, "eth9", 1)))
	want = `/etc/config/meshnode:2: section "wan": option "device": unknown interface "eth9"`
	if err == nil || err.Error() != want {
		t.Errorf("unknown interface: got %v, want %s", err, want)
	}
	if after := e.tc(t, "class", "show", "dev", wan); after != before {
		t.Fatalf("rejected config changed the kernel:\n%s\n%s", before, after)
	}
}

// fakeClock moves only when told; After channels fire on Set.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// TestScheduleBoundary: a night window raises the limit exactly at 22:00
// of the injected clock, and it is not raised a second earlier.
func TestScheduleBoundary(t *testing.T) {
	e := newEnv(t)
	day := time.Date(2026, 3, 14, 21, 59, 58, 0, time.UTC)
	clk := &fakeClock{now: day}
	s, _ := newShaper(t, e, clk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := parse(t, rateConfig(5000, 5000, "\tlist schedule '22:00-07:00 upload=20mbit download=40mbit'\n"))
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if r := e.classRate(t, wan, "1:1"); r != "5Mbit" {
		t.Fatalf("day rate %q, want 5Mbit", r)
	}
	clk.Set(day.Add(time.Second)) // 21:59:59
	time.Sleep(300 * time.Millisecond)
	if r := e.classRate(t, wan, "1:1"); r != "5Mbit" {
		t.Fatalf("rate changed before the boundary: %q", r)
	}
	clk.Set(day.Add(2 * time.Second)) // 22:00:00
	eventually(t, "night upload rate at 22:00", 2*time.Second, func() bool { return e.classRate(t, wan, "1:1") == "20Mbit" })
	eventually(t, "night download rate at 22:00", 2*time.Second, func() bool { return e.classRate(t, "ifb4wan0", "1:1") == "40Mbit" })
	if st := s.Status(); st.Links[0].Window != "22:00-07:00" {
		t.Errorf("status window %q", st.Links[0].Window)
	}
	clk.Set(time.Date(2026, 3, 15, 7, 0, 0, 0, time.UTC))
	eventually(t, "day rate back at 07:00", 2*time.Second, func() bool { return e.classRate(t, wan, "1:1") == "5Mbit" })
}

// TestEmergencyGuarantee: with bulk TCP saturating the link, a UDP stream
// marked EF (emergency class, 2 Mbit/s guaranteed of 20) still gets at
// least 95 % of its guarantee, in both directions.
func TestEmergencyGuarantee(t *testing.T) {
	e := newEnv(t)
	e.server(t, 5201)
	e.server(t, 5202)
	s, _ := newShaper(t, e, shape.SystemClock{})
	cfg := parse(t, rateConfig(20000, 20000, "\toption emergency_rate '2mbit'\n"))
	if err := s.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	const guarantee = 2e6 // wire bits/s
	const payload = 1000  // UDP payload bytes; +8 UDP +20 IPv4 +14 Ethernet on the wire
	sendRate := guarantee * payload / (payload + 42)
	for _, dir := range []string{"upload", "download"} {
		var rev []string
		if dir == "download" {
			rev = []string{"-R"}
		}
		var got float64
		for attempt := 1; attempt <= 2; attempt++ {
			bulk := make(chan iperfResult, 1)
			bulkErr := make(chan error, 1)
			go func() {
				args := append([]string{"-t", "6", "-P", "4"}, rev...)
				r, err := e.tryIperf(5201, args...)
				bulk <- r
				bulkErr <- err
			}()
			time.Sleep(1500 * time.Millisecond) // bulk is saturating before the probe starts
			args := append([]string{"-u", "-b", fmt.Sprint(int(sendRate)), "-l", fmt.Sprint(payload), "-S", "0xb8"}, rev...)
			r := e.iperf(t, 5202, args...)
			b := <-bulk
			if err := <-bulkErr; err != nil {
				t.Fatal(err)
			}
			got = r.End.Sum.BitsPerSecond * (1 - r.End.Sum.LostPercent/100) * (payload + 42) / payload
			t.Logf("%s: emergency UDP %.2f Mbit/s on the wire (%.1f %% of guarantee, %.2f %% lost), bulk TCP %.2f Mbit/s goodput, attempt %d",
				dir, got/1e6, 100*got/guarantee, r.End.Sum.LostPercent, b.End.SumReceived.BitsPerSecond/1e6, attempt)
			if got >= 0.95*guarantee {
				break
			}
		}
		if got < 0.95*guarantee {
			t.Errorf("%s: emergency got %.2f Mbit/s, below 95 %% of %.0f Mbit/s", dir, got/1e6, guarantee/1e6)
		}
	}
	st := s.Status()
	for _, tr := range st.Links[0].Trees {
		if c := tr.Classes[0]; c.Name != shape.Emergency || c.Packets == 0 {
			t.Errorf("%s: emergency class counters %+v", tr.Direction, c)
		}
	}
}
