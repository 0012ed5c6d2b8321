package ca_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/tests/overlay"
)

// hubEndpoint is the hub's public address on tests/overlay's "internet"
// bridge: the CA's lighthouse list names it, so the nodes' configuration
// comes from the import unchanged.
const hubEndpoint = "192.0.2.1:4242"

func TestMain(m *testing.M) {
	overlay.PingMain() // the ping helper runs this binary inside a namespace
	os.Exit(m.Run())
}

// defaultConfig is the meshnode package's /etc/config/meshnode before
// enrollment, with the node's directory in place of /etc/meshnode (and
// shorter lighthouse updates, DNS off port 53, as in tests/overlay).
// Role, address and lighthouses come from `enroll --import`.
func defaultConfig(dir string) string {
	return fmt.Sprintf(`config overlay 'overlay'
	option role 'client'
	option address '10.0.4.130/24'
	option ca '%[1]s/ca.crt'
	option cert '%[1]s/node.crt'
	option key '%[1]s/node.key'
	option blocklist '%[1]s/blocklist'
	option lighthouse_interval '2'
	option dns_port '5353'
`, dir)
}

type meshNode struct {
	n    *enroll.Node
	name string
	slot string // the tests/overlay node whose namespace it runs in
}

type mesh struct {
	topo  *overlay.Topology
	nodes map[string]*overlay.Node // by enrolled name
	cert  map[string]string        // overlay address by name
	sock  map[string]string
	dir   map[string]string
}

// startMesh builds tests/overlay's namespaces and runs the agent on each
// node with the configuration and certificates enroll installed. It
// skips st when the machine cannot run namespace tests. Failures go to st;
// everything is removed when top ends (the agents run on for later steps),
// failed or not.
func startMesh(top, t *testing.T, tmp string, nodes []meshNode) *mesh {
	if why := overlay.CanRun(); why != "" {
		t.Skip(why)
	}
	bin, err := overlay.BuildAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Names are global: the pid keeps parallel runs (and other packages'
	// namespace tests) apart.
	prefix := fmt.Sprintf("mnca%d-", os.Getpid()%100000)
	topo, err := overlay.Build(prefix, bin, filepath.Join(tmp, "ns"))
	top.Cleanup(topo.Close)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{topo: topo, nodes: map[string]*overlay.Node{}, cert: map[string]string{}, sock: map[string]string{}, dir: map[string]string{}}
	top.Cleanup(func() { m.logs(top) })
	for _, nd := range nodes {
		on := topo.Nodes[nd.slot]
		run := filepath.Join(tmp, nd.name, "run")
		if err := topo.RunWith(on, nd.n.Config, run); err != nil {
			t.Fatal(err)
		}
		m.nodes[nd.name] = on
		m.sock[nd.name] = filepath.Join(run, "meshnode.sock")
		m.dir[nd.name] = nd.n.Dir
	}
	for _, nd := range nodes {
		s, err := overlay.WaitStatus(m.sock[nd.name], 20*time.Second, func(s status.Snapshot) bool { return s.Certificate.Name == nd.name })
		if err != nil {
			t.Errorf("%s: agent not running with its enrolled certificate: %v", nd.name, err)
			continue
		}
		m.cert[nd.name] = strings.Split(s.Address, "/")[0]
		// No lora-bridge on these nodes: the section says so.
		var lr struct {
			Running *bool  `json:"running"`
			Error   string `json:"error"`
		}
		if err := json.Unmarshal(s.LoRa, &lr); err != nil || lr.Running == nil || *lr.Running || !strings.Contains(lr.Error, "not running") {
			t.Errorf("%s: lora section without a bridge: %s %v", nd.name, s.LoRa, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func (m *mesh) logs(t *testing.T) {
	if !t.Failed() {
		return
	}
	for name, n := range m.nodes {
		b, _ := os.ReadFile(filepath.Join(n.Dir, "agent.log"))
		lines := strings.Split(string(b), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		t.Logf("--- %s agent.log (tail)\n%s", name, strings.Join(lines, "\n"))
	}
}

// pingAll pings every pair, both ways, over the overlay.
func (m *mesh) pingAll(t *testing.T) {
	var names []string
	for n := range m.nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	var wg sync.WaitGroup
	errs := make(chan error, len(names)*len(names))
	for _, a := range names {
		for _, b := range names {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := overlay.PingFrom(m.nodes[a].NS, m.cert[b], 20*time.Second); err != nil {
					errs <- fmt.Errorf("%s -> %s (%s): %v", a, b, m.cert[b], err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// revoke checks the hub's reload with a blocklist: a malformed file is
// rejected (file and line named, old configuration kept); the real one,
// installed by importBlocklist, is applied in place and the revoked
// node's tunnel is torn down and stays refused.
func (m *mesh) revoke(t *testing.T, revoked string, importBlocklist func() error) {
	hubSock := status.Client{Socket: m.sock["hub"]}
	bl := filepath.Join(m.dir["hub"], enroll.BlocklistFile)

	if err := os.WriteFile(bl, []byte("# hand-edited\nnot-a-fingerprint\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := hubSock.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || !strings.Contains(r.Error, "option 'blocklist': "+bl+": line 2:") {
		t.Fatalf("malformed blocklist: %+v", r)
	}
	if err := overlay.PingFrom(m.nodes[revoked].NS, m.cert["hub"], 10*time.Second); err != nil {
		t.Fatalf("after the rejected reload the old configuration must still run: %v", err)
	}
	os.Remove(bl)

	if err := importBlocklist(); err != nil {
		t.Fatal(err)
	}
	if r, err = hubSock.Reload(); err != nil || !r.OK || r.Restarted {
		t.Fatalf("reload with the blocklist: %+v %v (want applied in place)", r, err)
	}
	if _, err := overlay.WaitStatus(m.sock["hub"], 20*time.Second, func(s status.Snapshot) bool {
		return !slices.ContainsFunc(s.Peers, func(p status.Peer) bool { return p.Name == revoked })
	}); err != nil {
		t.Fatalf("the hub kept the revoked node's tunnel: %v", err)
	}
	if err := overlay.PingFrom(m.nodes[revoked].NS, m.cert["hub"], 5*time.Second); err == nil {
		t.Fatalf("%s still reaches the hub after revocation", revoked)
	}
	if s, _ := hubSock.Status(); slices.ContainsFunc(s.Peers, func(p status.Peer) bool { return p.Name == revoked }) {
		t.Fatalf("the revoked node's new handshake was accepted: %+v", s.Peers)
	}
	for name := range m.nodes {
		if name != revoked && name != "hub" {
			if err := overlay.PingFrom(m.nodes[name].NS, m.cert["hub"], 10*time.Second); err != nil {
				t.Errorf("%s lost the hub: %v", name, err)
			}
		}
	}
}
