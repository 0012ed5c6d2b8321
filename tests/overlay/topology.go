// Package overlay holds the namespace integration tests of the meshnode
// overlay and the topology they (and the demo) build.
package overlay

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/agent/overlay/certtest"
)

// Node is one agent in a namespace.
type Node struct {
	Name, NS, Role string
	Overlay        string // 10.0.4.x
	Public         string // its address on the "internet" bridge or home LAN
	Dir            string // config, certificates, socket
	Cmd            *exec.Cmd
	Extra          string // appended to the UCI overlay section
	// Lighthouses names the nodes this one lists as lighthouses: the hub
	// and the relay (which is a lighthouse too), never itself.
	Lighthouses []string
}

// Topology is the test network: an "internet" namespace with a bridge,
// hub, relay and client on it, and two NATed homes with an uplink each.
type Topology struct {
	Prefix  string
	Bin     string
	Dir     string
	Nodes   map[string]*Node
	nss     Namespaces
	Logf    func(string, ...any)
	CA      *certtest.CA
	Started []*Node
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// NS runs a command in namespace ns.
func NS(ns string, args ...string) error {
	return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// Namespaces creates network namespaces and removes them again. Nothing
// in them is connected to the host's network unless a caller links it.
type Namespaces struct {
	Prefix string // unique per run, e.g. with the pid: names are global
	mu     sync.Mutex
	names  []string
}

// Add creates the namespace Prefix+name with loopback up and returns its name.
func (s *Namespaces) Add(name string) (string, error) {
	n := s.Prefix + name
	if err := sh("ip", "netns", "add", n); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.names = append(s.names, n)
	s.mu.Unlock()
	return n, NS(n, "ip", "link", "set", "lo", "up")
}

// Close removes every namespace Add made, newest first. Deleting a
// namespace also removes its veths and TUN devices. Safe to call twice.
func (s *Namespaces) Close() {
	s.mu.Lock()
	names := s.names
	s.names = nil
	s.mu.Unlock()
	for i := len(names) - 1; i >= 0; i-- {
		_ = sh("ip", "netns", "del", names[i])
	}
}

func (t *Topology) ns(name string) (string, error) { return t.nss.Add(name) }

// Veth links a device named an in namespace a with one named bn in b.
func Veth(a, an, b, bn string) error {
	tmp := fmt.Sprintf("v%d", time.Now().UnixNano()%1e9)
	if err := sh("ip", "link", "add", tmp+"a", "netns", a, "type", "veth", "peer", "name", tmp+"b", "netns", b); err != nil {
		return err
	}
	if err := NS(a, "ip", "link", "set", tmp+"a", "name", an); err != nil {
		return err
	}
	return NS(b, "ip", "link", "set", tmp+"b", "name", bn)
}

// Build creates the namespaces and links. Internet 192.0.2.0/24; home N
// is 192.168.N.0/24 behind 192.0.2.1N with masquerade.
func Build(prefix, bin, dir string) (*Topology, error) {
	t := &Topology{Prefix: prefix, Bin: bin, Dir: dir, Nodes: map[string]*Node{}, nss: Namespaces{Prefix: prefix}}
	inet, err := t.ns("inet")
	if err != nil {
		return t, err
	}
	if err := NS(inet, "ip", "link", "add", "br0", "type", "bridge"); err != nil {
		return t, err
	}
	if err := NS(inet, "ip", "link", "set", "br0", "up"); err != nil {
		return t, err
	}
	onInternet := func(name, addr string) (string, error) {
		n, err := t.ns(name)
		if err != nil {
			return "", err
		}
		if err := Veth(n, "wan", inet, name); err != nil {
			return "", err
		}
		for _, c := range [][]string{
			{inet, "ip", "link", "set", name, "master", "br0", "up"},
			{n, "ip", "addr", "add", addr + "/24", "dev", "wan"},
			{n, "ip", "link", "set", "wan", "up"},
		} {
			if err := NS(c[0], c[1:]...); err != nil {
				return "", err
			}
		}
		return n, nil
	}
	add := func(name, role, overlay, public, ns string) {
		n := &Node{Name: name, NS: ns, Role: role, Overlay: overlay, Public: public,
			Dir: filepath.Join(dir, name)}
		for _, lh := range []string{"hub", "relay"} {
			if lh != name {
				n.Lighthouses = append(n.Lighthouses, lh)
			}
		}
		t.Nodes[name] = n
	}
	for _, x := range []struct{ name, role, ov, pub string }{
		{"hub", "hub", "10.0.4.1", "192.0.2.1"},
		{"relay", "relay", "10.0.4.33", "192.0.2.2"},
		{"client", "client", "10.0.4.130", "192.0.2.5"},
		{"client2", "client", "10.0.4.131", "192.0.2.6"},
	} {
		n, err := onInternet(x.name, x.pub)
		if err != nil {
			return t, err
		}
		add(x.name, x.role, x.ov, x.pub, n)
	}
	for i, ov := range []string{"10.0.4.64", "10.0.4.65"} {
		home := fmt.Sprintf("home%d", i+1)
		r, err := onInternet(home, fmt.Sprintf("192.0.2.1%d", i+1))
		if err != nil {
			return t, err
		}
		name := fmt.Sprintf("uplink%d", i+1)
		u, err := t.ns(name)
		if err != nil {
			return t, err
		}
		if err := Veth(u, "wan", r, "lan"); err != nil {
			return t, err
		}
		lan := fmt.Sprintf("192.168.%d", i+1)
		for _, c := range [][]string{
			{r, "ip", "addr", "add", lan + ".1/24", "dev", "lan"},
			{r, "ip", "link", "set", "lan", "up"},
			{r, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
			{r, "nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100 ; } ; add rule ip nat post oifname \"wan\" masquerade"},
			{u, "ip", "addr", "add", lan + ".2/24", "dev", "wan"},
			{u, "ip", "link", "set", "wan", "up"},
			{u, "ip", "route", "add", "default", "via", lan + ".1"},
		} {
			if err := NS(c[0], c[1:]...); err != nil {
				return t, err
			}
		}
		add(name, "uplink", ov, lan+".2", u)
	}
	return t, nil
}

// Certify makes a CA and each node's certificate.
func (t *Topology) Certify() error {
	ca, err := certtest.NewCA("meshnode test", 48*time.Hour)
	if err != nil {
		return err
	}
	t.CA = ca
	for _, n := range t.Nodes {
		o := certtest.Opts{Name: n.Name, Address: n.Overlay + "/24", Groups: []string{n.Role}}
		if n.Role == "uplink" {
			o.Unsafe = []string{"0.0.0.0/0"}
		}
		c, err := ca.Sign(o)
		if err != nil {
			return err
		}
		if err := certtest.Write(n.Dir, ca, c); err != nil {
			return err
		}
	}
	return nil
}

// UCI is the node's /etc/config/meshnode.
func (t *Topology) UCI(n *Node) string {
	var b strings.Builder
	port := "4242"
	if n.Role == "client" {
		port = "0"
	}
	fmt.Fprintf(&b, "config overlay 'overlay'\n\toption role '%s'\n\toption address '%s/24'\n", n.Role, n.Overlay)
	fmt.Fprintf(&b, "\toption ca '%s/ca.crt'\n\toption cert '%s/node.crt'\n\toption key '%s/node.key'\n", n.Dir, n.Dir, n.Dir)
	fmt.Fprintf(&b, "\toption port '%s'\n\toption lighthouse_interval '2'\n\toption dns_port '5353'\n", port)
	if n.Role != "relay" {
		b.WriteString("\tlist relay '10.0.4.33'\n")
	} else {
		b.WriteString("\toption lighthouse '1'\n")
	}
	b.WriteString(n.Extra)
	for _, name := range n.Lighthouses {
		lh := t.Nodes[name]
		fmt.Fprintf(&b, "\nconfig lighthouse '%s'\n\toption address '%s'\n\tlist endpoint '%s:4242'\n", name, lh.Overlay, lh.Public)
	}
	return b.String()
}

// WriteConfig writes the node's UCI file and returns its path.
func (t *Topology) WriteConfig(n *Node) (string, error) {
	p := filepath.Join(n.Dir, "meshnode")
	return p, os.WriteFile(p, []byte(t.UCI(n)), 0o600)
}

// Start runs the node's agent in its namespace.
func (t *Topology) Start(n *Node) error {
	p, err := t.WriteConfig(n)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(n.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", n.NS, t.Bin, "run", "--config", p, "--state-dir", n.Dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	n.Cmd = cmd
	go func() { _ = cmd.Wait(); log.Close() }()
	return nil
}

// Socket is the node's status socket.
func (n *Node) Socket() string { return filepath.Join(n.Dir, "meshnode.sock") }

// Close stops every agent and removes every namespace.
func (t *Topology) Close() {
	for _, n := range t.Nodes {
		if n.Cmd != nil && n.Cmd.Process != nil {
			_ = n.Cmd.Process.Kill()
		}
	}
	t.nss.Close()
}
