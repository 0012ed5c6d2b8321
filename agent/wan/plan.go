package wan

import (
	"net/netip"
	"sort"

	"github.com/meshnode/meshnode/agent/config"
)

// Selection classes, best first: traffic goes to the best tier of the
// best class that has any uplink in it.
const (
	ClassUp         = "up"
	ClassDamped     = "damped"      // flapping but answering: better than nothing
	ClassProbing    = "probing"     // not judged yet (boot, carrier just back)
	ClassLastResort = "last_resort" // every uplink fails its probes: use those with a link, in case the probes are wrong
	ClassNone       = "none"
)

// view is one uplink as planning sees it.
type view struct {
	cfg     config.Uplink
	state   State
	carrier bool
	ifindex int        // 0: unknown
	gateway netip.Addr // resolved (configured or learned)
	ptp     bool
}

// routable says whether a route through the uplink can be written.
// view methods take pointers, and callers loop over indexes: a view is
// large, and copies of it cost flash on MIPS.
func (v *view) routable() bool {
	if v.ifindex == 0 {
		return false
	}
	return v.cfg.Kind == config.UplinkOverlay || v.gateway.IsValid() || v.ptp
}

func (v *view) hop(weight int) Nexthop {
	h := Nexthop{Ifindex: v.ifindex, Weight: weight}
	if v.cfg.Kind == config.UplinkWAN {
		h.Gateway = v.gateway
	}
	return h
}

// classes are the selection classes in the order they are tried. An
// uplink is in one when it is in its state ("": any) and, where carrier
// is set, has carrier.
var classes = []struct {
	name    string
	state   State
	carrier bool
}{
	{ClassUp, Up, false},
	{ClassDamped, Damped, false},
	{ClassProbing, Probing, true},
	{ClassLastResort, "", true},
}

// choose returns the indexes of the uplinks that carry traffic and the
// class they were chosen from. only, when set, limits the choice to
// uplinks of that kind.
func choose(vs []view, only string) ([]int, string) {
	for ci := range classes {
		c := &classes[ci]
		best := 0
		var sel []int
		for i := range vs {
			v := &vs[i]
			if (only != "" && v.cfg.Kind != only) || !v.routable() ||
				(c.state != "" && v.state != c.state) || (c.carrier && !v.carrier) {
				continue
			}
			switch {
			case best == 0 || v.cfg.Tier < best:
				best, sel = v.cfg.Tier, []int{i}
			case v.cfg.Tier == best:
				sel = append(sel, i)
			}
		}
		if len(sel) > 0 {
			return sel, c.name
		}
	}
	return nil, ClassNone
}

// Plan is the desired kernel and overlay state for a set of uplinks.
type Plan struct {
	Class    string
	Selected []int // uplink indexes carrying the default route
	Main     Route
	// Underlay is the route of the overlay's own UDP packets (WANs only),
	// present when overlay uplinks are configured.
	Underlay *Route
	Probes   []Route // per uplink, its own path
	// Healthy overlay gateways with their weights; empty: keep the
	// configured ones (the kernel sends nothing into the overlay then).
	Healthy map[netip.Addr]int
}

// plan computes the desired state. fo names the tables.
func plan(fo config.Failover, vs []view) Plan {
	p := Plan{Healthy: map[netip.Addr]int{}, Probes: make([]Route, len(vs))}
	p.Selected, p.Class = choose(vs, "")
	p.Main = Route{Table: fo.Table, Hops: hops(vs, p.Selected, p.Healthy)}
	overlay := false
	for i := range vs {
		v := &vs[i]
		overlay = overlay || v.cfg.Kind == config.UplinkOverlay
		r := &p.Probes[i]
		r.Table = probeTable(fo, i)
		if v.routable() {
			r.Hops = []Nexthop{v.hop(1)}
		}
	}
	if overlay {
		sel, _ := choose(vs, config.UplinkWAN)
		p.Underlay = &Route{Table: fo.Table + 1, Hops: hops(vs, sel, nil)}
	}
	return p
}

// hops returns the nexthops of the uplinks vs[sel], sorted. healthy
// gets the overlay uplinks among them.
func hops(vs []view, sel []int, healthy map[netip.Addr]int) []Nexthop {
	var hs []Nexthop
	tun := Nexthop{}
	for _, i := range sel {
		v := &vs[i]
		if v.cfg.Kind == config.UplinkOverlay {
			// All overlay uplinks share the tun device: one kernel nexthop
			// carrying their summed weight, split again by Nebula.
			tun.Ifindex = v.ifindex
			tun.Weight += v.cfg.Weight
			healthy[v.cfg.Gateway] = v.cfg.Weight
			continue
		}
		hs = append(hs, v.hop(v.cfg.Weight))
	}
	if tun.Ifindex != 0 {
		tun.Weight = min(tun.Weight, 256)
		hs = append(hs, tun)
	}
	// sort.Slice: a slices.SortFunc per struct type costs ~13 KB of
	// generic sort code on MIPS.
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].Ifindex != hs[j].Ifindex {
			return hs[i].Ifindex < hs[j].Ifindex
		}
		return hs[i].Gateway.Less(hs[j].Gateway)
	})
	return hs
}

func probeTable(fo config.Failover, i int) int { return fo.Table + 2 + i }

// rules returns the ip rules for n uplinks. port is the overlay's UDP
// port (0: none to steer).
func rules(fo config.Failover, n int, overlay bool, port int) []Rule {
	rs := make([]Rule, n, n+4)
	for i := range rs {
		// Probes first: their mark picks their uplink's own table.
		rs[i] = Rule{Priority: fo.Priority, Table: probeTable(fo, i), Mark: fo.Mark + uint32(i), SuppressPrefixLen: -1}
	}
	// Then these, their priorities offsets from fo.Priority (a table:
	// one append instead of one per rule):
	for _, r := range []Rule{
		// everything but default routes from main as usual (LAN, mesh,
		// overlay); netifd's default routes are ignored so ours decide;
		{Priority: 1, Table: mainTable, SuppressPrefixLen: 0},
		// the overlay's own UDP, which must not follow a default route
		// into the overlay: it takes the chosen WANs, else netifd's
		// default (only with overlay uplinks and a port);
		{Priority: 2, Table: fo.Table + 1, IPProto: ipprotoUDP, Sport: uint16(port), SuppressPrefixLen: -1},
		{Priority: 3, Table: mainTable, IPProto: ipprotoUDP, Sport: uint16(port), SuppressPrefixLen: -1},
		// our default route.
		{Priority: 4, Table: fo.Table, SuppressPrefixLen: -1},
	} {
		if r.IPProto == 0 || (overlay && port != 0) {
			r.Priority += fo.Priority
			rs = append(rs, r)
		}
	}
	return rs
}

const (
	mainTable  = 254
	ipprotoUDP = 17
)
