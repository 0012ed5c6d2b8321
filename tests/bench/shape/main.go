// Command shape benchmarks agent/shape on the real kernel and prints a
// markdown table (`make bench`, as root, iperf3 installed):
//   - accuracy: TCP rate through the shaper at several limits, upload and
//     download, beside the reference figures of facts-performance.md §3;
//   - CPU time of one reconcile that finds nothing to change, and of one
//     that installs everything from scratch;
//   - time from a configuration change (Apply) to the new rate read back
//     from the kernel.
//
// Everything runs in two private network namespaces joined by a veth pair,
// removed on exit; no packet leaves them. Figures are x86 proxies, not
// router hardware.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/agent/shape"
	"github.com/meshnode/meshnode/internal/uci"
)

const (
	nodeAddr = "192.0.2.1" // TEST-NET-1, never routed
	netAddr  = "192.0.2.2"
	wan      = "wan0"
)

func main() {
	rates := flag.String("rates", "5,20,50,100", "limits to measure, Mbit/s")
	secs := flag.Int("t", 4, "iperf3 seconds per measurement (first one omitted)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Println("shape bench: skipped (needs root for network namespaces)")
		return
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		fmt.Println("shape bench: skipped (iperf3 not installed)")
		return
	}
	if err := bench(*rates, *secs); err != nil {
		fmt.Fprintln(os.Stderr, "shape bench:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func bench(rateList string, secs int) error {
	id := fmt.Sprint(os.Getpid())
	node, inet := "mshape-bn-"+id, "mshape-bi-"+id
	cleanup := func() {
		_ = exec.Command("ip", "netns", "del", node).Run()
		_ = exec.Command("ip", "netns", "del", inet).Run()
	}
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; cleanup(); os.Exit(1) }()

	for _, c := range [][]string{
		{"ip", "netns", "add", node}, {"ip", "netns", "add", inet},
		{"ip", "-n", node, "link", "add", wan, "type", "veth", "peer", "name", "inet0", "netns", inet},
		{"ip", "-n", node, "addr", "add", nodeAddr + "/24", "dev", wan},
		{"ip", "-n", inet, "addr", "add", netAddr + "/24", "dev", "inet0"},
		{"ip", "-n", node, "link", "set", wan, "up"}, {"ip", "-n", inet, "link", "set", "inet0", "up"},
	} {
		if err := sh(c...); err != nil {
			return err
		}
	}
	srv := exec.Command("ip", "netns", "exec", inet, "iperf3", "-s", "-B", netAddr)
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	time.Sleep(300 * time.Millisecond)

	f, err := os.Open("/run/netns/" + node)
	if err != nil {
		return err
	}
	defer f.Close()
	k, err := shape.OpenKernel(int(f.Fd()))
	if err != nil {
		return err
	}
	defer k.Close()
	s := shape.New(k, shape.SystemClock{}, slog.New(slog.DiscardHandler))
	defer func() { _ = s.Stop() }()
	ctx := context.Background()

	fmt.Println("## Shaping (agent/shape, HTB + IFB, x86 proxy in network namespaces)")
	fmt.Println()
	fmt.Println("| limit | upload measured | upload % | download measured | download % |")
	fmt.Println("|---|---|---|---|---|")
	var leaf string
	for _, r := range strings.Split(rateList, ",") {
		var mbit int64
		if _, err := fmt.Sscan(r, &mbit); err != nil || mbit <= 0 {
			return fmt.Errorf("bad rate %q", r)
		}
		if err := s.Apply(ctx, config(mbit*1000, mbit*1000, "")); err != nil {
			return err
		}
		leaf = s.Status().Links[0].Leaf
		row := fmt.Sprintf("| %d Mbit/s", mbit)
		for _, rev := range []bool{false, true} {
			got, err := iperf(node, secs, rev)
			if err != nil {
				return err
			}
			row += fmt.Sprintf(" | %.2f Mbit/s | %.1f %%", got/1e6, 100*got/float64(mbit*1e6))
		}
		fmt.Println(row + " |")
	}
	fmt.Println()
	fmt.Printf("Measured: TCP goodput converted to the wire rate HTB counts (+66 B Ethernet/IPv4/TCP per MSS); leaf qdisc in use: %s.\n\n", leaf)
	fmt.Println("| reference (facts-performance.md §3) | achieved / configured |")
	fmt.Println("|---|---|")
	fmt.Println("| sqm-scripts HTB+fq_codel or cake, WNDR3800 24Kc, 90/8 Mbit/s | 92 % / 63 % |")
	fmt.Println("| Gluon simple-tc ingress policer, WR841N, 10 Mbit/s | < 30 % |")
	fmt.Println("| HTB with a 5 kB burst clamp | 65–70 % |")
	fmt.Println("| target for meshnode | 95–105 % both directions |")
	fmt.Println()

	// CPU time of reconciles.
	const n = 50
	cpu := func(fn func() error) (time.Duration, time.Duration, error) {
		c0, w0 := cpuTime(), time.Now()
		for range n {
			if err := fn(); err != nil {
				return 0, 0, err
			}
		}
		return (cpuTime() - c0) / n, time.Since(w0) / n, nil
	}
	if err := s.Apply(ctx, config(20000, 20000, "")); err != nil {
		return err
	}
	noopCPU, noopWall, err := cpu(func() error { return s.Reconcile("bench") })
	if err != nil {
		return err
	}
	fullCPU, fullWall, err := cpu(func() error {
		if err := s.Stop(); err != nil {
			return err
		}
		return s.Apply(ctx, config(20000, 20000, ""))
	})
	if err != nil {
		return err
	}
	// Config change to shaping applied, read back from the kernel.
	var change time.Duration
	for i := range n {
		mbit := int64(10 + i%2*10)
		start := time.Now()
		if err := s.Apply(ctx, config(mbit*1000, 20000, "")); err != nil {
			return err
		}
		for {
			st := s.Status()
			if len(st.Links) > 0 && st.Links[0].Trees[0].LimitKbit == mbit*1000 && rateIs(node, mbit) {
				break
			}
		}
		change += time.Since(start)
	}
	fmt.Println("| reconcile | CPU time (agent process) | wall time |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| nothing to change (read back, compare) | %v | %v |\n", noopCPU.Round(time.Microsecond), noopWall.Round(time.Microsecond))
	fmt.Printf("| remove all, install all (both directions, IFB, ~70 filters) | %v | %v |\n", fullCPU.Round(time.Microsecond), fullWall.Round(time.Microsecond))
	fmt.Printf("\nConfig change to new rate visible in `tc class show`: %v on average over %d changes (includes one tc exec per check).\n",
		(change / n).Round(time.Microsecond), n)
	return nil
}

func config(up, down int64, extra string) shape.Config {
	f, err := uci.Parse("/etc/config/meshnode", []byte(fmt.Sprintf(
		"config shape 'wan'\n\toption device '%s'\n\toption link_speed '10gbit'\n\toption upload '%d'\n\toption download '%d'\n%s",
		wan, up, down, extra)))
	if err != nil {
		panic(err)
	}
	cfg, err := shape.ParseConfig(f)
	if err != nil {
		panic(err)
	}
	return cfg
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rateIs checks with tc(8) that class 1:1 on the WAN has the rate.
func rateIs(node string, mbit int64) bool {
	out, err := exec.Command("ip", "netns", "exec", node, "tc", "class", "show", "dev", wan, "classid", "1:1").Output()
	return err == nil && strings.Contains(string(out), fmt.Sprintf("rate %dMbit", mbit))
}

func iperf(node string, secs int, reverse bool) (float64, error) {
	args := []string{"netns", "exec", node, "iperf3", "-c", netAddr, "-J", "-t", fmt.Sprint(secs), "-O", "1"}
	if reverse {
		args = append(args, "-R")
	}
	var r struct {
		Start struct {
			TCPMSS int `json:"tcp_mss_default"`
		} `json:"start"`
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("ip", args...).Output()
		if jerr := json.Unmarshal(out, &r); jerr != nil {
			return 0, fmt.Errorf("iperf3: %v %v", err, jerr)
		}
		if r.Error == "" {
			break
		}
		if attempt == 5 {
			return 0, fmt.Errorf("iperf3: %s", r.Error)
		}
		time.Sleep(300 * time.Millisecond)
	}
	mss := float64(max(r.Start.TCPMSS, 1))
	if r.Start.TCPMSS == 0 {
		mss = 1448
	}
	return r.End.SumReceived.BitsPerSecond * (mss + 66) / mss, nil
}
