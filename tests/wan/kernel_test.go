package wan

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	agentwan "github.com/meshnode/meshnode/agent/wan"
	"github.com/meshnode/meshnode/tests/overlay"
)

// TestNetlinkKernel runs agent/wan's NetlinkKernel against the kernel, in
// a namespace of its own opened by file descriptor: what the unit tests
// check as bytes, here with the kernel's answers, errnos and events.
func TestNetlinkKernel(t *testing.T) {
	needRoot(t)
	nss := &overlay.Namespaces{Prefix: prefix() + "k"}
	t.Cleanup(nss.Close)
	ns, err := nss.Add("node")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{
		// veth pairs inside the namespace: the test kernel may lack dummy.
		"link add d1 type veth peer name d1p", "link add d2 type veth peer name d2p", "link add lan type veth peer name lanp",
		"link set d1p up", "link set d2p up", "link set lanp up",
		"link set d1 up", "link set d2 up", "link set lan up",
		"addr add 192.0.2.2/24 dev d1", "addr add 198.51.100.2/24 dev d2", "addr add 10.50.0.1/24 dev lan",
		"route add default via 192.0.2.1 dev d1 metric 10",
		"route add default via 198.51.100.1 dev d2 metric 20",
		"route add default via 192.0.2.9 dev d1 metric 30",
	} {
		if err := NS(ns, append([]string{"ip"}, strings.Fields(c)...)...); err != nil {
			t.Fatal(err)
		}
	}
	ip := func(args ...string) string {
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k, err := agentwan.OpenKernel(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := k.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Links, gateways, addresses.
	d1, err := k.Link("d1")
	if err != nil || d1.Name != "d1" || !d1.Up || d1.Index == 0 || d1.PointToPoint {
		t.Fatalf("d1: %+v %v", d1, err)
	}
	d2, err := k.Link("d2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Link("nosuch0"); !errors.Is(err, agentwan.ErrNoLink) || !strings.Contains(err.Error(), "nosuch0") {
		t.Fatalf("missing link: %v", err)
	}
	gws, err := k.Gateways()
	if err != nil || len(gws) != 2 || gws[d1.Index] != netip.MustParseAddr("192.0.2.1") ||
		gws[d2.Index] != netip.MustParseAddr("198.51.100.1") {
		t.Fatalf("gateways %v %v", gws, err)
	}
	if a, err := k.Addrs(d2.Index); err != nil || len(a) != 1 || a[0] != netip.MustParseAddr("198.51.100.2") {
		t.Fatalf("addresses of d2: %v %v", a, err)
	}

	// Routes: multipath, replaced by one hop, unreachable, deleted twice.
	gw1, gw2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	table := func(n string) string { return ip("-d", "route", "show", "table", n) }
	steps := []struct {
		r    agentwan.Route
		want []string
	}{
		{agentwan.Route{Table: 4200, Hops: []agentwan.Nexthop{{Gateway: gw1, Ifindex: d1.Index, Weight: 3}, {Gateway: gw2, Ifindex: d2.Index, Weight: 1}}},
			[]string{"proto 77", "nexthop via 192.0.2.1 dev d1 weight 3", "nexthop via 198.51.100.1 dev d2 weight 1"}},
		{agentwan.Route{Table: 4200, Hops: []agentwan.Nexthop{{Gateway: gw2, Ifindex: d2.Index, Weight: 1}}},
			[]string{"default via 198.51.100.1 dev d2 proto 77"}},
		{agentwan.Route{Table: 4200, Hops: []agentwan.Nexthop{{Ifindex: d1.Index, Weight: 1}}},
			[]string{"default dev d1 proto 77"}},
		{agentwan.Route{Table: 4200, Unreachable: true}, []string{"unreachable default proto 77"}},
		{agentwan.Route{Table: 4200}, nil},
		{agentwan.Route{Table: 4200}, nil}, // already gone: no error
	}
	for _, s := range steps {
		if err := k.SetRoute(s.r); err != nil {
			t.Fatalf("%s: %v", s.r, err)
		}
		got := table("4200")
		for _, w := range s.want {
			if !strings.Contains(got, w) {
				t.Fatalf("after %s: table 4200 is %q, want %q in it", s.r, got, w)
			}
		}
		if s.want == nil && strings.TrimSpace(got) != "" {
			t.Fatalf("after %s: table 4200 is %q", s.r, got)
		}
	}
	if err := k.SetRoute(agentwan.Route{Table: 100, Hops: []agentwan.Nexthop{{Gateway: gw1, Ifindex: d1.Index, Weight: 1}}}); err != nil ||
		!strings.Contains(table("100"), "default via 192.0.2.1 dev d1") {
		t.Fatalf("table 100: %v %q", err, table("100"))
	}
	// A gateway off every link: the error names the route and carries the
	// kernel's own explanation.
	err = k.SetRoute(agentwan.Route{Table: 4200, Hops: []agentwan.Nexthop{{Gateway: netip.MustParseAddr("203.0.113.1"), Ifindex: d1.Index, Weight: 1}}})
	if err == nil || !strings.Contains(err.Error(), "table 4200") || !strings.Contains(err.Error(), "via 203.0.113.1") {
		t.Fatalf("bad gateway: %v", err)
	}
	t.Logf("bad gateway: %v", err)

	// Rules: adding twice and deleting twice are no errors.
	rules := []agentwan.Rule{
		{Priority: 1234, Table: 4200, Mark: 0x42, SuppressPrefixLen: -1, IPProto: 17, Sport: 4242},
		{Priority: 1235, Table: 254, SuppressPrefixLen: 0},
	}
	for _, r := range rules {
		for range 2 {
			if err := k.AddRule(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := ip("rule", "show")
	for _, w := range []string{"1234:\tfrom all fwmark 0x42 ipproto udp sport 4242 lookup 4200", "1235:\tfrom all lookup main suppress_prefixlength 0"} {
		if !strings.Contains(got, w) {
			t.Fatalf("rules %q, want %q", got, w)
		}
	}
	if strings.Count(got, "1234:") != 1 {
		t.Fatalf("rule added twice: %q", got)
	}
	for _, r := range rules {
		for range 2 {
			if err := k.DelRule(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := ip("rule", "show"); strings.Contains(got, "1234:") || strings.Contains(got, "1235:") {
		t.Fatalf("rules left: %q", got)
	}

	// NAT flush: a flow from the LAN masqueraded to d1's address goes, the
	// router's own flow from that address stays.
	if err := NS(ns, "nft", `add table ip nat; add chain ip nat post { type nat hook postrouting priority 100 ; }; add rule ip nat post oifname "d1" snat to 192.0.2.2`); err != nil {
		t.Fatal(err)
	}
	send := func(src string, port int) {
		err := overlay.InNS(ns, func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("203.0.113.10"), Port: port})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("x"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send("10.50.0.1", 7000)
	send("192.0.2.2", 7001)
	wan1 := []netip.Addr{netip.MustParseAddr("192.0.2.2")}
	if n, err := k.FlushNAT(wan1); n != 1 || err != nil {
		t.Fatalf("flush: %d %v", n, err)
	}
	if n, err := k.FlushNAT(wan1); n != 0 || err != nil {
		t.Fatalf("second flush: %d %v", n, err)
	}

	// Events: carrier, netifd's routes, removal.
	next := func(what string, ok func(agentwan.Event) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ev, open := <-events:
				if !open {
					t.Fatalf("events ended waiting for %s", what)
				}
				if ok(ev) {
					return
				}
			case <-deadline:
				t.Fatalf("no event for %s", what)
			}
		}
	}
	ip("link", "set", "d2", "down")
	next("d2 down", func(ev agentwan.Event) bool {
		return ev.Kind == agentwan.LinkChanged && ev.Link == agentwan.Link{Index: d2.Index, Name: "d2"}
	})
	ip("route", "del", "default", "via", "192.0.2.9", "dev", "d1", "metric", "30")
	next("main table default removed", func(ev agentwan.Event) bool { return ev.Kind == agentwan.RoutesChanged })
	ip("link", "del", "d2")
	next("d2 removed", func(ev agentwan.Event) bool { return ev.Kind == agentwan.LinkRemoved && ev.Link.Index == d2.Index })

	// Overflow: nobody reads while the link flaps, the socket overflows,
	// the loss is reported and events keep coming.
	var batch strings.Builder
	for range 1000 {
		batch.WriteString("link set lan down\nlink set lan up\n")
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v: %s", err, out)
	}
	next("the loss", func(ev agentwan.Event) bool { return ev.Kind == agentwan.EventsLost })
	// The kernel drops what comes while the queue is still congested, so
	// the next change is made once the backlog has been read.
	for quiet := false; !quiet; {
		select {
		case <-events:
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	ip("link", "add", "d3", "type", "veth", "peer", "name", "d3p")
	next("d3 after the loss", func(ev agentwan.Event) bool { return ev.Kind == agentwan.LinkChanged && ev.Link.Name == "d3" })

	cancel()
	deadline := time.After(5 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-events:
		case <-deadline:
			t.Fatal("events go on after the context ended")
		}
	}
}
