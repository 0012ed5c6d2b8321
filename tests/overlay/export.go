package overlay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/meshnode/meshnode/agent/status"
	"golang.org/x/sys/unix"
)

// Helpers for other integration tests (tests/ca, tests/lora) that build
// this topology but bring their own certificates and configuration.

// BuildAgent builds cmd/meshnode into dir and returns the binary's path.
func BuildAgent(dir string) (string, error) {
	bin := filepath.Join(dir, "meshnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/meshnode/meshnode/cmd/meshnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build meshnode: %v\n%s", err, out)
	}
	return bin, nil
}

// CanRun says why namespace tests cannot run here ("" when they can):
// they need root, ip and /dev/net/tun.
func CanRun() string {
	if os.Geteuid() != 0 {
		return "needs root: creates network namespaces and TUN devices (run `make test` as root)"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "no /dev/net/tun"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's ip"
	}
	return ""
}

// PingFrom pings dst from namespace ns until it answers or timeout ends.
// The calling test binary must call PingMain first thing in TestMain: it
// runs itself in the namespace as the ping helper.
func PingFrom(ns, dst string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		// -test.run=^$: a binary that forgot PingMain runs no tests (and
		// starts no namespaces) in the child; its "PASS" is caught below.
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), PingEnv+"="+dst)
		out, err := cmd.CombinedOutput()
		if err == nil && len(out) > 0 {
			return fmt.Errorf("ping helper: the test binary does not call overlay.PingMain in TestMain: %s", out)
		}
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%v %s", err, out)
	}
	return fmt.Errorf("%s -> %s: %v", ns, dst, last)
}

// WaitStatus polls the agent's status socket until ok holds.
func WaitStatus(socket string, timeout time.Duration, ok func(status.Snapshot) bool) (status.Snapshot, error) {
	c := status.Client{Socket: socket}
	deadline := time.Now().Add(timeout)
	var s status.Snapshot
	var err error
	for time.Now().Before(deadline) {
		s, err = c.Status()
		if err == nil && ok(s) {
			return s, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil {
		err = fmt.Errorf("condition not met; last snapshot: %+v", s)
	}
	return s, fmt.Errorf("%s: %w", socket, err)
}

// RunWith starts the node's agent in its namespace with the configuration
// file at config (written by the caller, e.g. by enroll's import) and the
// status socket in stateDir; it logs to n.Dir/agent.log.
func (t *Topology) RunWith(n *Node, config, stateDir string) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(n.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", n.NS, t.Bin, "run", "--config", config, "--state-dir", stateDir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	n.Cmd = cmd
	go func() { _ = cmd.Wait(); log.Close() }()
	return nil
}

// InNS runs f on a thread switched into namespace ns; sockets f opens stay
// in ns after it returns.
func InNS(ns string, f func() error) error {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other code in the wrong namespace.
		return fmt.Errorf("restoring the namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
