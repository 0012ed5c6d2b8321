// Command lora prints lora-bridge benchmarks as a markdown table: binary
// size for mipsel_24kc (raw and xz -9e as in a squashfs image), journal
// throughput with batched and with per-message syncs, and, on the real
// process with a simulated radio on a pty, the latency the bridge adds
// (API post to frame read on the radio's pty, airtime excluded) and its
// peak RSS (VmHWM) under load. Run with `go run ./tests/bench/lora`.
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/meshpb"
	"github.com/meshnode/meshnode/lora-bridge/message"
	"github.com/meshnode/meshnode/lora-bridge/simradio"
)

func main() {
	dir, err := os.MkdirTemp("", "lora-bench")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	fmt.Println("| lora-bridge | value | target |")
	fmt.Println("|---|---|---|")
	size(dir)
	journalThroughput(dir)
	if err := process(dir); err != nil {
		fmt.Printf("| process benchmarks | failed: %v | |\n", err)
	}
}

func size(dir string) {
	bin := filepath.Join(dir, "lora-bridge.mipsel")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/lora-bridge")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=mipsle", "GOMIPS=softfloat")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("| mipsel_24kc binary | build failed: %v | |\n", err)
		return
	}
	st, _ := os.Stat(bin)
	fmt.Printf("| mipsel_24kc binary, raw | %.2f MB | |\n", float64(st.Size())/1e6)
	if out, err := exec.Command("sh", "-c", "xz -9e -c "+bin+" | wc -c").Output(); err == nil {
		var n int64
		fmt.Sscan(string(out), &n)
		fmt.Printf("| mipsel_24kc binary, xz -9e | %.2f MB | ≤ 1.00 MB |\n", float64(n)/1e6)
	}
}

func journalThroughput(dir string) {
	run := func(name string, n int, every time.Duration) {
		j, err := journal.Open(filepath.Join(dir, name), journal.Options{})
		if err != nil {
			panic(err)
		}
		t0 := time.Now()
		lastSync := t0
		for i := 0; i < n; i++ {
			m := message.Message{Key: message.Key{Origin: 1, ID: uint32(i + 1)}, Kind: message.Text, Body: "a typical short message of about sixty bytes in length ok"}
			if _, err := j.Accept(m, []string{"radio"}); err != nil {
				panic(err)
			}
			j.Done(m.Key, "radio")
			if every == 0 || time.Since(lastSync) > every {
				j.Sync()
				lastSync = time.Now()
			}
		}
		j.Sync()
		d := time.Since(t0)
		label := "fsync per message"
		if every > 0 {
			label = fmt.Sprintf("%v batched fsync", every)
		}
		fmt.Printf("| journal accept+deliver, %s | %.0f msg/s (%d syncs for %d msgs) | |\n", label, float64(n)/d.Seconds(), j.Stats().Syncs, n)
		j.Close()
	}
	run("batched", 20000, 200*time.Millisecond) // the bridge's batch interval
	run("each", 2000, 0)
}

// process runs the real binary (host architecture) against a simulated
// radio: latency first, on an idle bridge, then RSS under load.
func process(dir string) error {
	bin := filepath.Join(dir, "lora-bridge")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/lora-bridge")
	// Static, as the packages are built (internal/build: CGO off): a cgo
	// build maps libc and ld.so, about 1.4 MB of RSS the router never sees.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	r, err := simradio.New(simradio.Config{NodeNum: 0x5eed0001, Link: filepath.Join(dir, "ttyUSB0"),
		OnAir: func(p meshpb.MeshPacket) {
			mu.Lock()
			seen[string(p.Decoded.Payload)] = time.Now()
			mu.Unlock()
		}})
	if err != nil {
		return err
	}
	defer r.Close()
	sock := filepath.Join(dir, "api.sock")
	// A peer nobody answers: messages stay pending for it, retransmitted,
	// so the load includes the journal filling up to its bound.
	cfg := fmt.Sprintf(`config bridge 'main'
	option port '%s'
	option region 'US'
	option preset 'SHORT_TURBO'
	option airtime_share '100'
	option journal '%s'
	option socket '%s'
	option listen '127.0.0.1:0'
	option node_id '0000beef'
	option text_interval '0'
	option alert_interval '0'
	option grace '1'

config peer
	option name 'silent'
	option address '127.0.0.1:9'
`, r.Path(), filepath.Join(dir, "journal"), sock)
	cfgPath := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	p := exec.Command(bin, "run", "-c", cfgPath)
	// Run it as procd does: with the environment the init script sets.
	p.Env = append(os.Environ(), shippedEnv()...)
	p.Stderr = os.Stderr
	if err := p.Start(); err != nil {
		return err
	}
	defer func() { p.Process.Kill(); p.Wait() }()
	end := time.Now().Add(10 * time.Second)
	for !r.Attached() {
		if time.Now().After(end) {
			return fmt.Errorf("bridge did not connect to the simulated radio")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Latency: one message at a time on an idle bridge.
	var lat []time.Duration
	for i := 0; i < 300; i++ {
		text := fmt.Sprintf("latency probe %d", i)
		t0 := time.Now()
		if _, err := bridge.Call(sock, bridge.Request{Method: "send", Text: text}); err != nil {
			return err
		}
		for {
			mu.Lock()
			t1, ok := seen[text]
			mu.Unlock()
			if ok {
				lat = append(lat, t1.Sub(t0))
				break
			}
			if time.Since(t0) > 5*time.Second {
				return fmt.Errorf("%q never reached the radio", text)
			}
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(5 * time.Millisecond) // the grace for a NAK ends
	}
	slices.Sort(lat)
	q := func(f float64) string {
		return fmt.Sprintf("%.1f", float64(lat[int(f*float64(len(lat)-1))].Microseconds())/1000)
	}
	fmt.Printf("| latency API post → frame on the radio's pty (n=%d) | p50 %s ms, p99 %s ms, max %s ms | ≤ 10 ms |\n",
		len(lat), q(0.5), q(0.99), q(1))

	// Load: 4 API clients and traffic heard on the radio, for 5 s.
	var posted, refused atomic.Int64
	stop := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for c := 0; c < 4; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				_, err := bridge.Call(sock, bridge.Request{Method: "send", Sender: "bench", Text: strings.Repeat("load ", 20) + fmt.Sprint(c, i)})
				if err != nil {
					refused.Add(1) // journal full of undelivered messages: refused, by design
				} else {
					posted.Add(1)
				}
			}
		}()
	}
	heard := 0
	for time.Now().Before(stop) {
		for k := 0; k < 20; k++ {
			r.Type(0x1000+uint32(k), fmt.Sprintf("heard on the mesh %d", heard))
			heard++
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	hwm, rss := procStatus(p.Process.Pid)
	fmt.Printf("| RSS under load, static host build, env %v (5 s: %d posts accepted, %d refused as journal full; %d packets heard) | VmHWM %s, VmRSS %s | ≤ 10 MB |\n",
		shippedEnv(), posted.Load(), refused.Load(), heard, hwm, rss)
	return nil
}

func procStatus(pid int) (hwm, rss string) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?", "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		case "VmRSS":
			rss = strings.TrimSpace(v)
		}
	}
	return hwm, rss
}

// shippedEnv is the environment packages/lora-bridge/files/lora-bridge.init
// gives the process (procd_set_param env ...), so the RSS row measures what
// a router runs.
func shippedEnv() []string {
	data, err := os.ReadFile(filepath.Join("packages", "lora-bridge", "files", "lora-bridge.init"))
	if err != nil {
		return nil
	}
	var env []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "procd_set_param" && f[1] == "env" {
			env = append(env, f[2:]...)
		}
	}
	return env
}
