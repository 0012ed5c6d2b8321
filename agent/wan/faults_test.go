package wan

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/config"
)

var (
	fiberAddr = netip.MustParseAddr("192.0.2.2")
	satAddr   = netip.MustParseAddr("203.0.113.2")
)

func withAddrs(flush bool) func(*config.Config, *fakeKernel) {
	return func(c *config.Config, k *fakeKernel) {
		c.Failover.FlushConntrack = flush
		k.addrs[2] = []netip.Addr{fiberAddr}
		k.addrs[3] = []netip.Addr{satAddr}
		k.addrs[9] = []netip.Addr{netip.MustParseAddr("10.0.4.1")}
	}
}

// TestForgetNAT: when the default route leaves a WAN, the NAT mappings to
// that WAN's address are forgotten, and only then; with the address gone
// from the device by then (netifd's ifdown), the one seen while it
// carried traffic is used.
func TestForgetNAT(t *testing.T) {
	r := startWith(t, withAddrs(true), testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1),
		testUplink("sat", config.UplinkWAN, "eth2", "", 2))
	r.until("fiber", active("fiber"))
	r.until("sat up", func(s Status) bool { return uplinkState(s, "sat").State == "up" })
	// At boot sat may carry traffic for a round before fiber is judged:
	// count from here.
	base := len(r.k.flushes())
	for range 10 {
		r.clock.Advance(100 * time.Millisecond)
		r.wait("fiber stays", active("fiber"))
	}
	if f := r.k.flushes(); len(f) != base {
		t.Fatalf("flushed while nothing moved: %v", f[base:])
	}
	r.probes.set("fiber", false)
	r.until("sat", active("sat"))
	f := r.k.flushes()[base:]
	if len(f) != 1 || !slices.Equal(f[0], []netip.Addr{fiberAddr}) {
		t.Fatalf("after the switch to sat: %v", f)
	}
	if l := r.log.String(); !strings.Contains(l, "flows masqueraded to the WAN the route left are mapped afresh") ||
		!strings.Contains(l, "addresses=[192.0.2.2]") {
		t.Errorf("log:\n%s", l)
	}
	r.probes.set("fiber", true)
	r.until("fiber back", active("fiber"))
	if f = r.k.flushes()[base:]; len(f) != 2 || !slices.Equal(f[1], []netip.Addr{satAddr}) {
		t.Fatalf("after the return to fiber: %v", f)
	}
	// netifd removes the address with ifdown; the carrier goes too.
	r.k.mu.Lock()
	delete(r.k.addrs, 2)
	r.k.mu.Unlock()
	r.k.setLink(Link{Index: 2, Name: "eth1"})
	r.wait("carrier loss", active("sat"))
	if f = r.k.flushes()[base:]; len(f) != 3 || !slices.Equal(f[2], []netip.Addr{fiberAddr}) {
		t.Fatalf("after carrier loss: %v", f)
	}
}

func TestForgetNATOff(t *testing.T) {
	r := startWith(t, withAddrs(false), testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1),
		testUplink("sat", config.UplinkWAN, "eth2", "", 2))
	r.until("fiber", active("fiber"))
	r.probes.set("fiber", false)
	r.until("sat", active("sat"))
	if f := r.k.flushes(); len(f) != 0 {
		t.Fatalf("flush_conntrack 0 but flushed: %v", f)
	}
}

// TestMissingInterface: an uplink whose device does not exist is down
// with the reason in status and log, the others carry traffic, and it is
// taken into use once the device appears.
func TestMissingInterface(t *testing.T) {
	r := start(t, testUplink("lte", config.UplinkWAN, "wwan0", "100.64.0.1", 1),
		testUplink("sat", config.UplinkWAN, "eth2", "", 2))
	r.until("sat carries", active("sat"))
	u := uplinkState(r.m.Status(), "lte")
	if u.State != "down" || u.Reason != "interface wwan0 does not exist" || u.Carrier {
		t.Fatalf("lte: %+v", u)
	}
	if l := r.log.String(); !strings.Contains(l, `msg="uplink down" concern=wan uplink=lte state=down`) ||
		!strings.Contains(l, `why="interface wwan0 does not exist"`) {
		t.Errorf("log:\n%s", l)
	}
	if rt := r.k.route(4200); len(rt.Hops) != 1 || rt.Hops[0].Ifindex != 3 {
		t.Fatalf("default route: %v", rt)
	}
	// The modem is plugged in.
	r.k.setLink(Link{Index: 7, Name: "wwan0", Up: true})
	r.wait("probing", func(s Status) bool { return uplinkState(s, "lte").State == "probing" })
	r.until("lte carries", active("lte"))
	if rt := r.k.route(4200); rt.Hops[0] != (Nexthop{Gateway: netip.MustParseAddr("100.64.0.1"), Ifindex: 7, Weight: 1}) {
		t.Fatalf("default route: %v", rt)
	}
	// And unplugged: back on the backup at once.
	r.k.mu.Lock()
	delete(r.k.links, "wwan0")
	r.k.mu.Unlock()
	r.k.events <- Event{Kind: LinkRemoved, Link: Link{Index: 7, Name: "wwan0"}}
	r.wait("unplugged", active("sat"))
}

// hubUplinks: a hub with two overlay uplinks and a satellite backup.
func hubUplinks() []config.Uplink {
	a := testUplink("a", config.UplinkOverlay, "meshnode0", "10.0.4.64", 1)
	b := testUplink("b", config.UplinkOverlay, "meshnode0", "10.0.4.65", 1)
	b.Targets = []string{"198.51.100.8"}
	return []config.Uplink{a, b, testUplink("sat", config.UplinkWAN, "eth2", "", 2)}
}

// TestBootAllUplinksDown: every uplink node fails from boot on; the hub
// stays on the backup, keeps probing them, and moves back when they
// answer. There is a default route at every step.
func TestBootAllUplinksDown(t *testing.T) {
	r := startWith(t, func(_ *config.Config, k *fakeKernel) {}, hubUplinks()...)
	r.probes.set("a", false)
	r.probes.set("b", false)
	r.until("backup", active("sat"))
	for _, n := range []string{"a", "b"} {
		if u := uplinkState(r.m.Status(), n); u.State != "down" || !strings.Contains(u.Reason, "probe rounds failed in a row: 198.51.100.") {
			t.Errorf("%s: %+v", n, u)
		}
	}
	if l := r.log.String(); !strings.Contains(l, `msg="default route" concern=wan uplinks=[sat] from=up`) {
		t.Errorf("log:\n%s", l)
	}
	rounds := func() int {
		r.probes.mu.Lock()
		defer r.probes.mu.Unlock()
		return r.probes.rounds["a"]
	}
	// Every interval on the backup still probes the uplink nodes.
	for i := range 20 {
		n := rounds()
		r.clock.Advance(100 * time.Millisecond)
		deadline := time.Now().Add(2 * time.Second)
		for rounds() == n {
			if time.Now().After(deadline) {
				t.Fatalf("interval %d on the backup: uplink a not probed", i)
			}
			time.Sleep(time.Millisecond)
		}
		r.wait("still on the backup", active("sat"))
		if rt := r.k.route(4200); len(rt.Hops) != 1 || rt.Hops[0].Ifindex != 3 {
			t.Fatalf("default route: %v", rt)
		}
	}
	r.probes.set("a", true)
	r.until("a answers", active("a"))
	if h, _ := r.ov.get(); len(h) != 1 || h[netip.MustParseAddr("10.0.4.64")] != 1 {
		t.Fatalf("healthy gateways: %v", h)
	}
}

// TestBackupDownToo: the uplink nodes and the backup all fail their
// probes: the node keeps a default route over what has a link (the
// probes may be what is wrong), says so, and with no link left at all
// hands the route back to netifd, saying that too.
func TestBackupDownToo(t *testing.T) {
	r := start(t, hubUplinks()...)
	r.until("uplinks", active("a", "b"))
	for _, n := range []string{"a", "b", "sat"} {
		r.probes.set(n, false)
	}
	r.until("last resort", func(s Status) bool { return s.Class == ClassLastResort })
	if s := r.m.Status(); !slices.Equal(s.Active, []string{"a", "b"}) || r.k.route(4200).Empty() {
		t.Fatalf("last resort: %+v route %v", s, r.k.route(4200))
	}
	if l := r.log.String(); !strings.Contains(l, `level=WARN msg="every uplink fails its probes: routing over those with a link, in case the probe targets are at fault" concern=wan uplinks="[a b]"`) {
		t.Errorf("log:\n%s", l)
	}
	// The satellite modem loses its link too: still a route via the overlay.
	r.k.setLink(Link{Index: 3, Name: "eth2"})
	r.wait("sat without carrier", func(s Status) bool {
		return strings.Contains(uplinkState(s, "sat").Reason, "no carrier on eth2")
	})
	if r.k.route(4200).Empty() {
		t.Fatal("no default route while the overlay device is up")
	}
	// The satellite comes back and answers: it carries traffic again.
	r.probes.set("sat", true)
	r.k.setLink(Link{Index: 3, Name: "eth2", Up: true})
	r.until("satellite", active("sat"))
	// Nothing has a link: the route is netifd's again, and the log says so.
	r.k.setLink(Link{Index: 3, Name: "eth2"})
	r.k.setLink(Link{Index: 9, Name: "meshnode0", PointToPoint: true})
	r.wait("none", func(s Status) bool { return s.Class == ClassNone && len(s.Active) == 0 })
	if !r.k.route(4200).Empty() {
		t.Fatalf("route kept without a link: %v", r.k.route(4200))
	}
	if l := r.log.String(); !strings.Contains(l, `level=ERROR msg="no uplink has a working path: the default route is left to netifd's"`) {
		t.Errorf("log:\n%s", l)
	}
}
