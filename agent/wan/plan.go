package wan

import (
	"net/netip"
	"slices"
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
func (v view) routable() bool {
	if v.ifindex == 0 {
		return false
	}
	return v.cfg.Kind == config.UplinkOverlay || v.gateway.IsValid() || v.ptp
}

func (v view) hop() Nexthop {
	h := Nexthop{Ifindex: v.ifindex, Weight: v.cfg.Weight}
	if v.cfg.Kind == config.UplinkWAN {
		h.Gateway = v.gateway
	}
	return h
}

// choose returns the indexes of the uplinks that carry traffic and the
// class they were chosen from. only, when set, limits the choice to
// uplinks of that kind.
func choose(vs []view, only string) ([]int, string) {
	classes := []struct {
		name string
		in   func(v view) bool
	}{
		{ClassUp, func(v view) bool { return v.state == Up }},
		{ClassDamped, func(v view) bool { return v.state == Damped }},
		{ClassProbing, func(v view) bool { return v.state == Probing && v.carrier }},
		{ClassLastResort, func(v view) bool { return v.carrier }},
	}
	for _, c := range classes {
		best := 0
		var sel []int
		for i, v := range vs {
			if (only != "" && v.cfg.Kind != only) || !v.routable() || !c.in(v) {
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
	p := Plan{Healthy: map[netip.Addr]int{}}
	p.Selected, p.Class = choose(vs, "")
	p.Main = Route{Table: fo.Table}
	tun := Nexthop{}
	for _, i := range p.Selected {
		v := vs[i]
		if v.cfg.Kind == config.UplinkOverlay {
			// All overlay uplinks share the tun device: one kernel nexthop
			// carrying their summed weight, split again by Nebula.
			tun.Ifindex = v.ifindex
			tun.Weight += v.cfg.Weight
			p.Healthy[v.cfg.Gateway] = v.cfg.Weight
			continue
		}
		p.Main.Hops = append(p.Main.Hops, v.hop())
	}
	if tun.Ifindex != 0 {
		tun.Weight = min(tun.Weight, 256)
		p.Main.Hops = append(p.Main.Hops, tun)
	}
	sortHops(p.Main.Hops)

	if slices.ContainsFunc(vs, func(v view) bool { return v.cfg.Kind == config.UplinkOverlay }) {
		u := Route{Table: fo.Table + 1}
		sel, _ := choose(vs, config.UplinkWAN)
		for _, i := range sel {
			u.Hops = append(u.Hops, vs[i].hop())
		}
		sortHops(u.Hops)
		p.Underlay = &u
	}

	for i, v := range vs {
		r := Route{Table: probeTable(fo, i)}
		if v.routable() {
			h := v.hop()
			h.Weight = 1
			r.Hops = []Nexthop{h}
		}
		p.Probes = append(p.Probes, r)
	}
	return p
}

// sortHops uses sort.Slice: a slices.SortFunc per struct type costs
// ~13 KB of generic sort code on MIPS.
func sortHops(h []Nexthop) {
	sort.Slice(h, func(i, j int) bool {
		if h[i].Ifindex != h[j].Ifindex {
			return h[i].Ifindex < h[j].Ifindex
		}
		return h[i].Gateway.Less(h[j].Gateway)
	})
}

func probeTable(fo config.Failover, i int) int { return fo.Table + 2 + i }

// rules returns the ip rules for n uplinks. port is the overlay's UDP
// port (0: none to steer).
func rules(fo config.Failover, n int, overlay bool, port int) []Rule {
	var rs []Rule
	for i := range n {
		// Probes first: their mark picks their uplink's own table.
		rs = append(rs, Rule{Priority: fo.Priority, Table: probeTable(fo, i), Mark: fo.Mark + uint32(i), SuppressPrefixLen: -1})
	}
	// Everything but default routes from main as usual (LAN, mesh,
	// overlay); netifd's default routes are ignored so ours decide.
	rs = append(rs, Rule{Priority: fo.Priority + 1, Table: mainTable, SuppressPrefixLen: 0})
	if overlay && port != 0 {
		// The overlay's own UDP must not follow a default route into the
		// overlay: it takes the chosen WANs, else netifd's default.
		rs = append(rs,
			Rule{Priority: fo.Priority + 2, Table: fo.Table + 1, IPProto: ipprotoUDP, Sport: uint16(port), SuppressPrefixLen: -1},
			Rule{Priority: fo.Priority + 3, Table: mainTable, IPProto: ipprotoUDP, Sport: uint16(port), SuppressPrefixLen: -1})
	}
	rs = append(rs, Rule{Priority: fo.Priority + 4, Table: fo.Table, SuppressPrefixLen: -1})
	return rs
}

const (
	mainTable  = 254
	ipprotoUDP = 17
)
