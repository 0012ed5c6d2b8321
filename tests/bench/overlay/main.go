// Command overlay compares the meshnode agent with stock nebula built from
// the same module version with the same flags, in one run, and prints a
// markdown table: overlay TCP throughput between two network namespaces
// joined by a veth (iperf3, alternating rounds, medians), RSS idle and
// under load (VmRSS, VmHWM), and binary size for mips_24kc (raw and
// xz -9e). Both run the same Nebula settings: the ones the agent generates
// from its UCI file (cipher chachapoly, MTU 1300), written to YAML for
// stock nebula. Run as root: `go run ./tests/bench/overlay`.
//
// The namespaces are linked only to each other; no packet leaves them.
// They are removed on exit, on failure and on Ctrl-C.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/agent/config"
	agentoverlay "github.com/meshnode/meshnode/agent/overlay"
	"github.com/meshnode/meshnode/agent/overlay/certtest"
	"github.com/meshnode/meshnode/tests/overlay"
)

// The two ends: a on the "hub" side runs the iperf3 server, b the client.
const (
	pubA, pubB = "192.0.2.1", "192.0.2.2"
	ovA, ovB   = "10.0.4.1", "10.0.4.130"
)

// nolimit is meshnode run with option memory_limit 'off'.
const nolimit = "meshnode-nolimit"

var (
	rounds  = flag.Int("rounds", 5, "throughput rounds per implementation (alternating)")
	seconds = flag.Int("seconds", 4, "iperf3 duration per round")
	noSize  = flag.Bool("no-size", false, "skip the mips_24kc size comparison")
)

// cleanup runs what must happen however the program ends.
var cleanup struct {
	sync.Mutex
	fns []func()
}

func atExit(f func()) {
	cleanup.Lock()
	cleanup.fns = append(cleanup.fns, f)
	cleanup.Unlock()
}

func runCleanup() {
	cleanup.Lock()
	fns := cleanup.fns
	cleanup.fns = nil
	cleanup.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

func fatal(format string, args ...any) {
	runCleanup()
	fmt.Fprintf(os.Stderr, "bench overlay: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	overlay.PingMain() // this binary is also the ping helper inside a namespace
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("needs root: creates network namespaces and TUN devices")
	}
	for _, tool := range []string{"ip", "iperf3", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			fatal("%s is not installed", tool)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fatal("interrupted (%v): removed the namespaces", s)
	}()

	dir, err := os.MkdirTemp("", "overlay-bench")
	if err != nil {
		fatal("%v", err)
	}
	atExit(func() { os.RemoveAll(dir) })

	version := nebulaVersion()
	native := map[string]string{}
	for _, impl := range []string{"meshnode", "nebula"} {
		bin, err := build(dir, impl, "")
		if err != nil {
			fatal("%v", err)
		}
		native[impl] = bin
	}
	var sizes [][]string
	if !*noSize {
		// Sizes first: xz -9e on two 20 MB binaries must not share the CPU
		// with the throughput rounds.
		sizes, err = sizeRows(dir)
		if err != nil {
			fatal("%v", err)
		}
	}

	env, err := setup(dir)
	if err != nil {
		fatal("%v", err)
	}
	native[nolimit] = native["meshnode"]
	res := map[string]*results{"meshnode": {}, "nebula": {}, nolimit: {}}
	for r := 0; r < *rounds; r++ {
		// Alternate which goes first so a warming machine favours neither.
		order := []string{"meshnode", "nebula", nolimit}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, impl := range order {
			if err := env.round(impl, native[impl], res[impl]); err != nil {
				fatal("%s round %d: %v", impl, r+1, err)
			}
		}
	}
	runCleanup()

	fmt.Printf("Nebula %s, linux/%s, %d rounds of %d s each (medians), cipher chachapoly, MTU %d.\n\n",
		version, goarch(), *rounds, *seconds, config.DefaultMTU)
	fmt.Println("| overlay | meshnode | stock nebula | ratio | target |")
	fmt.Println("|---|---|---|---|---|")
	m, n := res["meshnode"], res["nebula"]
	row := func(name string, a, b float64, unit string, scale float64, target string, higherBetter bool) {
		ratio := a / b
		ok := ratio <= parseTarget(target)
		if higherBetter {
			ok = ratio >= parseTarget(target)
		}
		mark := ""
		if !ok {
			mark = " (missed)"
		}
		fmt.Printf("| %s | %.1f %s | %.1f %s | %.3f× | %s%s |\n", name, a/scale, unit, b/scale, unit, ratio, target, mark)
	}
	row("TCP throughput b→a over the overlay", median(m.bps), median(n.bps), "Mbit/s", 1e6, "≥ 0.95×", true)
	// Rounds of the two run back to back, so the ratio within a round is
	// less exposed to the machine's load drifting over the whole run.
	fmt.Printf("| TCP throughput, median of per-round ratios | | | %.3f× | ≥ 0.95× |\n", median(ratios(m.bps, n.bps)))
	row("CPU seconds per GB moved, both ends", median(m.cpuPerGB), median(n.cpuPerGB), "s", 1, "≤ 1.05×", false)
	row("RSS idle, a (hub, lighthouse) VmRSS", median(m.idleA), median(n.idleA), "MB", 1e3, "≤ 1.1×", false)
	row("RSS idle, b (client) VmRSS", median(m.idleB), median(n.idleB), "MB", 1e3, "≤ 1.1×", false)
	row("RSS under load, a VmHWM", median(m.peakA), median(n.peakA), "MB", 1e3, "≤ 1.1×", false)
	row("RSS under load, b VmHWM", median(m.peakB), median(n.peakB), "MB", 1e3, "≤ 1.1×", false)
	nl := res[nolimit]
	row("TCP throughput, meshnode memory_limit 'off'", median(nl.bps), median(n.bps), "Mbit/s", 1e6, "≥ 0.95×", true)
	row("CPU seconds per GB, memory_limit 'off'", median(nl.cpuPerGB), median(n.cpuPerGB), "s", 1, "≤ 1.05×", false)
	row("RSS under load, b VmHWM, memory_limit 'off'", median(nl.peakB), median(n.peakB), "MB", 1e3, "≤ 1.1×", false)
	for _, s := range sizes {
		fmt.Println("| " + strings.Join(s, " | ") + " |")
	}
	fmt.Printf("\nThroughput per round, Mbit/s: meshnode %s; nebula %s; meshnode memory_limit 'off' %s.\n",
		mbits(m.bps), mbits(n.bps), mbits(nl.bps))
	fmt.Println("meshnode rows use its shipped defaults (Go memory limit 20 MiB); stock nebula has no limit.")
}

// ratios returns a[i]/b[i] for each round both completed.
func ratios(a, b []float64) []float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return r
}

func parseTarget(t string) float64 {
	f, _ := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(t)[1], "×"), 64)
	return f
}

func mbits(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.0f", x/1e6))
	}
	return strings.Join(s, ", ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func goarch() string {
	out, _ := exec.Command("go", "env", "GOARCH").Output()
	return strings.TrimSpace(string(out))
}

func nebulaVersion() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/slackhq/nebula").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// build compiles meshnode or stock nebula the way `make` builds meshnode.
// goarch "" is the host; "mips" is mips_24kc (big endian, softfloat).
func build(dir, impl, goarch string) (string, error) {
	pkg := map[string]string{"meshnode": "./cmd/meshnode", "nebula": "github.com/slackhq/nebula/cmd/nebula"}[impl]
	out := filepath.Join(dir, impl)
	env := append(os.Environ(), "CGO_ENABLED=0")
	if goarch != "" {
		out += "." + goarch
		env = append(env, "GOOS=linux", "GOARCH="+goarch, "GOMIPS=softfloat")
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s %s: %v\n%s", impl, goarch, err, b)
	}
	return out, nil
}

func sizeRows(dir string) ([][]string, error) {
	type size struct{ raw, xz int64 }
	got := map[string]size{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, impl := range []string{"meshnode", "nebula"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bin, err := build(dir, impl, "mips")
			if err != nil {
				errs <- err
				return
			}
			st, err := os.Stat(bin)
			if err != nil {
				errs <- err
				return
			}
			// xz -9e as in an xz squashfs image: what flash space it costs.
			out, err := exec.Command("sh", "-c", "xz -9e -T1 -c "+bin+" | wc -c").Output()
			if err != nil {
				errs <- fmt.Errorf("xz %s: %v", bin, err)
				return
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
			mu.Lock()
			got[impl] = size{st.Size(), n}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	m, n := got["meshnode"], got["nebula"]
	row := func(name string, a, b int64) []string {
		r := float64(a) / float64(b)
		mark := ""
		if r > 1.05 {
			mark = " (missed)"
		}
		return []string{name, fmt.Sprintf("%.2f MB", float64(a)/1e6), fmt.Sprintf("%.2f MB", float64(b)/1e6),
			fmt.Sprintf("%.3f×", r), "≤ 1.05×" + mark}
	}
	return [][]string{
		row("mips_24kc binary, raw", m.raw, n.raw),
		row("mips_24kc binary, xz -9e", m.xz, n.xz),
	}, nil
}

// env is two namespaces linked by a veth, with certificates and the
// configuration of both ends for both implementations.
type env struct {
	dir    string
	nsA    string
	nsB    string
	agent  map[string]string // end -> UCI path
	stock  map[string]string // end -> nebula YAML path
	stDirs map[string]string
}

func setup(dir string) (*env, error) {
	nss := &overlay.Namespaces{Prefix: fmt.Sprintf("mnb%d-%d-", os.Getpid()%100000, time.Now().UnixNano()%10000)}
	atExit(nss.Close)
	e := &env{dir: dir, agent: map[string]string{}, stock: map[string]string{}, stDirs: map[string]string{}}
	var err error
	if e.nsA, err = nss.Add("a"); err != nil {
		return nil, err
	}
	if e.nsB, err = nss.Add("b"); err != nil {
		return nil, err
	}
	if err := overlay.Veth(e.nsA, "wan", e.nsB, "wan"); err != nil {
		return nil, err
	}
	for ns, addr := range map[string]string{e.nsA: pubA, e.nsB: pubB} {
		if err := overlay.NS(ns, "ip", "addr", "add", addr+"/24", "dev", "wan"); err != nil {
			return nil, err
		}
		if err := overlay.NS(ns, "ip", "link", "set", "wan", "up"); err != nil {
			return nil, err
		}
	}
	ca, err := certtest.NewCA("meshnode bench", 48*time.Hour)
	if err != nil {
		return nil, err
	}
	for _, end := range []struct{ name, role, ov, uci string }{
		// The hub's overlay firewall lets iperf3 in, on both implementations.
		{"a", "hub", ovA, "\nconfig rule\n\toption proto 'tcp'\n\toption port '5201'\n\toption host 'any'\n"},
		{"b", "client", ovB, fmt.Sprintf("\nconfig lighthouse 'a'\n\toption address '%s'\n\tlist endpoint '%s:4242'\n", ovA, pubA)},
	} {
		d := filepath.Join(dir, end.name)
		n, err := ca.Sign(certtest.Opts{Name: end.name, Address: end.ov + "/24", Groups: []string{end.role}})
		if err != nil {
			return nil, err
		}
		if err := certtest.Write(d, ca, n); err != nil {
			return nil, err
		}
		text := fmt.Sprintf("config overlay 'overlay'\n\toption role '%s'\n\toption address '%s/24'\n"+
			"\toption ca '%[3]s/ca.crt'\n\toption cert '%[3]s/node.crt'\n\toption key '%[3]s/node.key'\n"+
			"\toption cipher 'chachapoly'\n\toption mtu '%d'\n\toption dns_port '5353'\n%s",
			end.role, end.ov, d, config.DefaultMTU, end.uci)
		uci := filepath.Join(d, "meshnode")
		if err := os.WriteFile(uci, []byte(text), 0o600); err != nil {
			return nil, err
		}
		// The same without the agent's Go memory limit, to show its cost.
		nolimit := strings.Replace(text, "\toption dns_port", "\toption memory_limit 'off'\n\toption dns_port", 1)
		if err := os.WriteFile(uci+"-nolimit", []byte(nolimit), 0o600); err != nil {
			return nil, err
		}
		// Stock nebula gets exactly the settings the agent generates.
		c, err := config.Parse(uci, []byte(text))
		if err != nil {
			return nil, err
		}
		mat, _, err := agentoverlay.LoadMaterial(c, time.Now())
		if err != nil {
			return nil, err
		}
		y, err := agentoverlay.YAML(agentoverlay.Settings(c, mat))
		if err != nil {
			return nil, err
		}
		yml := filepath.Join(d, "nebula.yml")
		if err := os.WriteFile(yml, []byte(y), 0o600); err != nil {
			return nil, err
		}
		e.agent[end.name], e.stock[end.name], e.stDirs[end.name] = uci, yml, d
	}
	return e, nil
}

type results struct {
	bps, cpuPerGB              []float64
	idleA, idleB, peakA, peakB []float64 // kB
}

// proc is a running daemon; ip netns exec execs the program, so pid is
// the daemon's own.
type proc struct {
	pid  int
	stop func()
}

// start runs impl at one end.
func (e *env) start(impl, bin, end string) (*proc, error) {
	ns := map[string]string{"a": e.nsA, "b": e.nsB}[end]
	args := []string{"netns", "exec", ns, bin}
	switch impl {
	case "meshnode":
		args = append(args, "run", "--config", e.agent[end], "--state-dir", e.stDirs[end])
	case nolimit:
		args = append(args, "run", "--config", e.agent[end]+"-nolimit", "--state-dir", e.stDirs[end])
	default:
		args = append(args, "-config", e.stock[end])
	}
	log, err := os.OpenFile(filepath.Join(e.stDirs[end], impl+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(done) }()
	stop := func() {
		// SIGTERM lets either close its tunnels and remove the TUN device,
		// so the next round can create it again.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	atExit(stop)
	return &proc{pid: cmd.Process.Pid, stop: stop}, nil
}

func (e *env) round(impl, bin string, res *results) error {
	a, err := e.start(impl, bin, "a")
	if err != nil {
		return err
	}
	defer a.stop()
	b, err := e.start(impl, bin, "b")
	if err != nil {
		return err
	}
	defer b.stop()
	if err := e.ping(e.nsB, ovA, 15*time.Second); err != nil {
		return fmt.Errorf("tunnel did not come up (logs in %s): %w", e.dir, err)
	}
	// Idle: the tunnel is up and the handshake garbage has had a GC cycle.
	time.Sleep(3 * time.Second)
	idleA, err := rss(a.pid, "VmRSS")
	if err != nil {
		return err
	}
	idleB, err := rss(b.pid, "VmRSS")
	if err != nil {
		return err
	}
	cpu0 := cpuSeconds(a.pid) + cpuSeconds(b.pid)
	bps, err := e.iperf()
	if err != nil {
		return err
	}
	// CPU per byte moved holds still when other work shares the machine,
	// which throughput does not.
	res.cpuPerGB = append(res.cpuPerGB, (cpuSeconds(a.pid)+cpuSeconds(b.pid)-cpu0)/(bps*float64(*seconds)/8/1e9))
	peakA, err := rss(a.pid, "VmHWM")
	if err != nil {
		return err
	}
	peakB, err := rss(b.pid, "VmHWM")
	if err != nil {
		return err
	}
	res.bps = append(res.bps, bps)
	res.idleA, res.idleB = append(res.idleA, idleA), append(res.idleB, idleB)
	res.peakA, res.peakB = append(res.peakA, peakA), append(res.peakB, peakB)
	fmt.Fprintf(os.Stderr, "%-16s %6.0f Mbit/s  %4.2f CPU s/GB  idle %5.1f/%5.1f MB  peak %5.1f/%5.1f MB\n",
		impl, bps/1e6, res.cpuPerGB[len(res.cpuPerGB)-1], idleA/1e3, idleB/1e3, peakA/1e3, peakB/1e3)
	return nil
}

// ping uses this binary as ping inside ns, as the overlay tests do.
func (e *env) ping(ns, dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0])
		cmd.Env = append(os.Environ(), overlay.PingEnv+"="+dst)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%v %s", err, out)
	}
	return last
}

// iperf runs an iperf3 server on a's overlay address and the client in b,
// and returns the received bits per second.
func (e *env) iperf() (float64, error) {
	srv := exec.Command("ip", "netns", "exec", e.nsA, "iperf3", "-s", "-1", "-B", ovA, "-p", "5201")
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	for i := 0; ; i++ {
		if exec.Command("ip", "netns", "exec", e.nsA, "sh", "-c", "ss -ltn | grep -q ':5201 '").Run() == nil {
			break
		}
		if i == 50 {
			return 0, errors.New("iperf3 server did not start listening")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []byte
	var err error
	for i := 0; i < 20; i++ {
		out, err = exec.Command("ip", "netns", "exec", e.nsB, "iperf3", "-c", ovA, "-p", "5201",
			"-t", strconv.Itoa(*seconds), "--connect-timeout", "1000", "-J").Output()
		if err == nil {
			break
		}
		// The server may not listen yet.
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3: %v %s", err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond == 0 {
		return 0, errors.New("iperf3: " + r.Error)
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// cpuSeconds is the user and system CPU time of pid (/proc/<pid>/stat
// fields 14 and 15, in USER_HZ = 100 on Linux).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

// rss reads a /proc/<pid>/status field in kB.
func rss(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
