// Command wan measures uplink failover in network namespaces and prints a
// markdown table beside mwan3's figures (../shared/docs/facts-performance.md
// §1-2): failover after upstream death with the link up, after carrier
// loss, and recovery, each over N trials; probe traffic per uplink; agent
// CPU time per probe. Run as root: go run ./tests/bench/wan [-n 10].
// Everything happens inside namespaces it creates and removes.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	wantest "github.com/meshnode/meshnode/tests/wan"
)

func main() {
	n := flag.Int("n", 10, "trials per measurement")
	steady := flag.Duration("steady", 10*time.Second, "period for probe traffic and CPU")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "wan bench: run as root (creates network namespaces)")
		os.Exit(2)
	}
	if err := run(*n, *steady); err != nil {
		fmt.Fprintln(os.Stderr, "wan bench:", err)
		os.Exit(1)
	}
}

type series []time.Duration

func (s series) median() time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c) == 0 {
		return 0
	}
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func (s series) max() time.Duration { return slices.Max(s) }

func sec(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func run(n int, steady time.Duration) (err error) {
	dir, err := os.MkdirTemp("", "meshnode-wan-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := wantest.BuildAgent(dir)
	if err != nil {
		return err
	}
	l, err := wantest.BuildLocal(fmt.Sprintf("mwb%d-", os.Getpid()%100000))
	defer l.Close()
	if err != nil {
		return err
	}
	stopEcho, err := wantest.Echo(l.Inet, wantest.EchoAddr)
	if err != nil {
		return err
	}
	defer stopEcho()
	// Trials flap wan1 on purpose: no damping here.
	uci := wantest.LocalUCI(filepath.Join(dir, "node")) + "\nconfig failover 'failover'\n\toption damp_after '100'\n"
	a, err := wantest.StartAgent(bin, l.Node, filepath.Join(dir, "node"), uci)
	if err != nil {
		return err
	}
	defer a.Stop()
	defer func() {
		if err != nil {
			fmt.Fprintln(os.Stderr, a.Log())
		}
	}()
	sock := a.Socket()
	bothUp := func(st wantest.Status) bool {
		return wantest.Active("wan1")(st) && wantest.Find(st, "wan2").State == "up"
	}
	if _, err := wantest.WaitUplinks(sock, 15*time.Second, bothUp); err != nil {
		return err
	}

	// Steady state first, without the flow: probes only.
	tx := func(dev, what string) (int64, error) {
		out, err := exec.Command("ip", "netns", "exec", l.Node, "cat", "/sys/class/net/"+dev+"/statistics/"+what).Output()
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	}
	cpu := func() (time.Duration, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.Cmd.Process.Pid))
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ
	}
	st0, _ := wantest.Uplinks(sock)
	devs := []string{"wan1", "wan2"}
	var p0, b0, p1, b1 [2]int64
	for i, d := range devs {
		p0[i], _ = tx(d, "tx_packets")
		b0[i], _ = tx(d, "tx_bytes")
	}
	c0, err := cpu()
	if err != nil {
		return err
	}
	time.Sleep(steady)
	c1, _ := cpu()
	for i, d := range devs {
		p1[i], _ = tx(d, "tx_packets")
		b1[i], _ = tx(d, "tx_bytes")
	}
	st1, _ := wantest.Uplinks(sock)
	probes := int64(0)
	for i := range st1.Uplinks {
		probes += int64(st1.Uplinks[i].ProbesSent - st0.Uplinks[i].ProbesSent)
	}
	secs := steady.Seconds()

	flow, err := wantest.StartFlow(l.Node, wantest.EchoAddr, 10*time.Millisecond)
	if err != nil {
		return err
	}
	defer flow.Close()
	var dead, carrier, recovery series
	for i := range n {
		if _, err := wantest.WaitUplinks(sock, 10*time.Second, bothUp); err != nil {
			return fmt.Errorf("trial %d: %w", i, err)
		}
		if _, err := flow.WaitVia(time.Now(), wantest.Wan1Addr, 3*time.Second); err != nil {
			return err
		}
		// Start at a random phase of the probe interval.
		time.Sleep(time.Duration(i*37%250) * time.Millisecond)
		t := time.Now()
		if err := wantest.KillUpstream(l.ISP1); err != nil {
			return err
		}
		d, err := flow.WaitVia(t, wantest.Wan2Addr, 10*time.Second)
		if err != nil {
			return fmt.Errorf("trial %d, upstream death: %w", i, err)
		}
		dead = append(dead, d)
		t = time.Now()
		if err := wantest.Restore(l.ISP1); err != nil {
			return err
		}
		if d, err = flow.WaitVia(t, wantest.Wan1Addr, 10*time.Second); err != nil {
			return fmt.Errorf("trial %d, recovery: %w", i, err)
		}
		recovery = append(recovery, d)
		if _, err := wantest.WaitUplinks(sock, 10*time.Second, bothUp); err != nil {
			return err
		}
		time.Sleep(time.Duration(i*53%250) * time.Millisecond)
		t = time.Now()
		if err := wantest.NS(l.ISP1, "ip", "link", "set", "lan", "down"); err != nil {
			return err
		}
		if d, err = flow.WaitVia(t, wantest.Wan2Addr, 5*time.Second); err != nil {
			return fmt.Errorf("trial %d, carrier loss: %w", i, err)
		}
		carrier = append(carrier, d)
		if err := wantest.NS(l.ISP1, "ip", "link", "set", "lan", "up"); err != nil {
			return err
		}
	}

	fmt.Printf("## Uplink failover (%d trials, network namespaces, x86-64; default probe settings: 3 targets, interval 250 ms, timeout 750 ms, down 3, up 5)\n\n", n)
	fmt.Println("Time from the fault (or repair) to the first reply of a 10 ms UDP flow through the other WAN.")
	fmt.Println()
	fmt.Println("| measurement | median | worst | mwan3 (fact sheet) |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| upstream dead, link up | %s | %s | 120-146 s shipped config; 60-74 s one target |\n", sec(dead.median()), sec(dead.max()))
	fmt.Printf("| carrier loss | %s | %s | immediate (netifd ifdown) |\n", sec(carrier.median()), sec(carrier.max()))
	fmt.Printf("| recovery | %s | %s | ~40-50 s |\n", sec(recovery.median()), sec(recovery.max()))
	fmt.Println()
	fmt.Println("| steady state | value |")
	fmt.Println("|---|---|")
	for i, d := range devs {
		// wan1 carries the default route, wan2 is on standby: with no
		// traffic of their own both send only probes (3 targets each).
		fmt.Printf("| probe traffic out of %s | %.1f packets/s, %.0f bytes/s (replies the same) |\n",
			d, float64(p1[i]-p0[i])/secs, float64(b1[i]-b0[i])/secs)
	}
	fmt.Println("| mwan3 shipped config, per WAN (4 targets, one ping each, every ~10 s) | ~0.4 packets/s |")
	fmt.Printf("| probes sent (2 uplinks) | %.1f /s |\n", float64(probes)/secs)
	if probes > 0 {
		fmt.Printf("| agent CPU per probe (whole process, idle Nebula included) | %.0f µs |\n",
			float64((c1-c0).Microseconds())/float64(probes))
	}
	fmt.Printf("| agent CPU | %.2f %% of one core |\n", 100*(c1-c0).Seconds()/secs)
	return nil
}
