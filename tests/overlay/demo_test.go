package overlay

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestDemo is `make demo`: it only runs with MESHNODE_DEMO=1.
func TestDemo(t *testing.T) {
	if os.Getenv("MESHNODE_DEMO") == "" {
		t.Skip("MESHNODE_DEMO not set (use tests/overlay/demo/demo.sh)")
	}
	needRoot(t)
	bin := buildAgent(t)
	topo, err := Build("mndemo-", bin, t.TempDir())
	t.Cleanup(topo.Close)
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Certify(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hub", "relay", "uplink1", "uplink2", "client", "client2"} {
		if err := topo.Start(topo.Nodes[name]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	hub, cl := topo.Nodes["hub"], topo.Nodes["client"]
	fmt.Printf(`
meshnode demo is up. Try, in another terminal:

  %[1]s status --socket %[2]s
  %[1]s status --json --socket %[3]s
  ip netns exec %[4]s ping 10.0.4.65                # client -> uplink2 (behind NAT)
  ip netns exec %[4]s %[1]s config show --config %[5]s/meshnode
  curl -s http://10.0.4.1:9642/metrics  (inside: ip netns exec %[6]s curl ...)
  logs: %[7]s/*/agent.log

Ctrl-C removes every namespace.
`, bin, hub.Socket(), cl.Socket(), cl.NS, cl.Dir, hub.NS, topo.Dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Println("removing the demo namespaces")
}
