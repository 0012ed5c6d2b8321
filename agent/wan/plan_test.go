package wan

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/agent/config"
)

var fo = config.Failover{Table: 4200, Priority: 9000, Mark: 0x4d4e0000}

func wanView(name string, tier, weight, ifindex int, gw string, s State) view {
	return view{cfg: config.Uplink{Name: name, Kind: config.UplinkWAN, Tier: tier, Weight: weight},
		state: s, carrier: s != Down, ifindex: ifindex, gateway: netip.MustParseAddr(gw)}
}

func ovView(gw string, tier, weight int, s State) view {
	return view{cfg: config.Uplink{Name: gw, Kind: config.UplinkOverlay, Tier: tier, Weight: weight,
		Gateway: netip.MustParseAddr(gw)}, state: s, carrier: true, ifindex: 9}
}

func TestTiers(t *testing.T) {
	fiber := wanView("fiber", 1, 3, 2, "192.0.2.1", Up)
	lte := wanView("lte", 1, 1, 3, "198.51.100.1", Up)
	sat := wanView("sat", 2, 1, 4, "203.0.113.1", Up)

	p := plan(fo, []view{fiber, lte, sat})
	want := []Nexthop{{netip.MustParseAddr("192.0.2.1"), 2, 3}, {netip.MustParseAddr("198.51.100.1"), 3, 1}}
	if p.Class != ClassUp || !slices.Equal(p.Main.Hops, want) || p.Main.Table != 4200 {
		t.Fatalf("both tier-1 WANs weighted: %+v", p.Main)
	}
	fiber.state, fiber.carrier = Down, false
	p = plan(fo, []view{fiber, lte, sat})
	if len(p.Main.Hops) != 1 || p.Main.Hops[0].Ifindex != 3 {
		t.Fatalf("tier 1 partly down: %+v", p.Main)
	}
	lte.state = Probing // not judged yet: tier 2 is up, so it wins
	p = plan(fo, []view{fiber, lte, sat})
	if len(p.Main.Hops) != 1 || p.Main.Hops[0].Ifindex != 4 {
		t.Fatalf("tier 1 down: %+v", p.Main)
	}
	sat.state = Down
	sat.carrier = true
	p = plan(fo, []view{fiber, lte, sat})
	if p.Class != ClassProbing || p.Main.Hops[0].Ifindex != 3 {
		t.Fatalf("only a probing one: %s %+v", p.Class, p.Main)
	}
	lte.state, lte.carrier = Down, false
	p = plan(fo, []view{fiber, lte, sat})
	if p.Class != ClassLastResort || len(p.Main.Hops) != 1 || p.Main.Hops[0].Ifindex != 4 {
		t.Fatalf("all down, only sat has carrier: %s %+v", p.Class, p.Main)
	}
	sat.carrier = false
	p = plan(fo, []view{fiber, lte, sat})
	if p.Class != ClassNone || !p.Main.Empty() {
		t.Fatalf("nothing: %s %+v", p.Class, p.Main)
	}
	// Damped beats probing and last resort, loses to up.
	lte.state, lte.carrier = Damped, true
	p = plan(fo, []view{fiber, lte, sat})
	if p.Class != ClassDamped || p.Main.Hops[0].Ifindex != 3 {
		t.Fatalf("damped: %s %+v", p.Class, p.Main)
	}
	// Probe tables: one per uplink, each through its own gateway.
	if len(p.Probes) != 3 || p.Probes[2].Table != 4204 || p.Probes[2].Hops[0].Gateway != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("probe tables: %+v", p.Probes)
	}
	if p.Underlay != nil {
		t.Fatal("underlay route without overlay uplinks")
	}
}

func TestOverlayPlan(t *testing.T) {
	a := ovView("10.0.4.64", 1, 2, Up)
	b := ovView("10.0.4.65", 1, 1, Up)
	sat := wanView("sat", 2, 1, 4, "203.0.113.1", Up)
	p := plan(fo, []view{a, b, sat})
	if len(p.Main.Hops) != 1 || p.Main.Hops[0] != (Nexthop{Ifindex: 9, Weight: 3}) {
		t.Fatalf("one tun hop with the summed weight: %+v", p.Main)
	}
	if p.Healthy[a.cfg.Gateway] != 2 || p.Healthy[b.cfg.Gateway] != 1 || len(p.Healthy) != 2 {
		t.Fatalf("healthy: %v", p.Healthy)
	}
	if p.Underlay == nil || len(p.Underlay.Hops) != 1 || p.Underlay.Hops[0].Ifindex != 4 || p.Underlay.Table != 4201 {
		t.Fatalf("the overlay's own packets take the WAN: %+v", p.Underlay)
	}
	a.state = Down
	p = plan(fo, []view{a, b, sat})
	if len(p.Healthy) != 1 || p.Healthy[b.cfg.Gateway] != 1 || p.Main.Hops[0].Weight != 1 {
		t.Fatalf("a down: %v %+v", p.Healthy, p.Main)
	}
	b.state = Down
	p = plan(fo, []view{a, b, sat})
	if len(p.Healthy) != 0 || p.Main.Hops[0].Ifindex != 4 {
		t.Fatalf("all overlay uplinks down: backup WAN: %v %+v", p.Healthy, p.Main)
	}
	if p.Probes[0].Hops[0] != (Nexthop{Ifindex: 9, Weight: 1}) {
		t.Fatalf("overlay probes go into the tun: %+v", p.Probes[0])
	}
}

func TestRules(t *testing.T) {
	rs := rules(fo, 2, true, 4242)
	if len(rs) != 6 || rs[1].Mark != fo.Mark+1 || rs[1].Table != 4203 ||
		rs[2].SuppressPrefixLen != 0 || rs[3].Sport != 4242 || rs[5].Table != 4200 {
		t.Fatalf("%+v", rs)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Priority < rs[i-1].Priority {
			t.Fatal("rules out of order")
		}
	}
	if len(rules(fo, 1, true, 0)) != 3 {
		t.Fatal("no overlay port: no underlay rules")
	}
}
