package overlay

import (
	"errors"
	"net/netip"
	"slices"
	"sort"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/internal/errfmt"
)

// gatewayOverride is what agent/wan decided about the unsafe routes:
// which uplink nodes are healthy, and which probe targets go through
// which uplink node.
type gatewayOverride struct {
	managed []netip.Addr
	healthy map[netip.Addr]int
	pinned  map[netip.Prefix]netip.Addr
}

// SetGateways makes the configured unsafe routes go through the healthy
// uplink nodes with their weights (Nebula balances flows across a weighted
// gateway list), applied in place by a reload: tunnels stay up. Gateways
// not in managed are left as configured; with no healthy one, every
// configured gateway is kept (Nebula needs at least one, and nothing is
// routed into the overlay then). Each pinned prefix (a probe target) gets a
// route through exactly one uplink node, not installed in the kernel:
// the probe's socket picks the overlay device itself.
func (r *Runner) SetGateways(managed []netip.Addr, healthy map[netip.Addr]int, pinned map[netip.Prefix]netip.Addr) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.nc == nil {
		return errors.New("overlay is stopped")
	}
	prev := r.gw
	r.gw = &gatewayOverride{managed: managed, healthy: healthy, pinned: pinned}
	settings := r.withGateways(r.cfg, r.settings)
	text, err := YAML(settings)
	if err == nil {
		err = r.nc.ReloadConfigString(text)
	}
	if err != nil {
		r.gw = prev
		return errfmt.Errorf("nebula rejected the gateways: %w", err)
	}
	r.settings = settings
	return nil
}

// withGateways returns settings with the unsafe routes rebuilt from cfg
// and the override; settings itself is not changed (the running one may
// still be compared against it).
func (r *Runner) withGateways(cfg *config.Config, settings map[string]any) map[string]any {
	if r.gw == nil {
		return settings
	}
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		out[k] = v
	}
	tun := m{}
	if t, ok := settings["tun"].(m); ok {
		for k, v := range t {
			tun[k] = v
		}
	}
	routes := unsafeRoutes(cfg.Routes, r.gw)
	if len(routes) == 0 {
		delete(tun, "unsafe_routes")
	} else {
		tun["unsafe_routes"] = routes
	}
	out["tun"] = tun
	return out
}

// unsafeRoutes renders Nebula's tun.unsafe_routes for the configured
// routes under an override.
func unsafeRoutes(routes []config.Route, g *gatewayOverride) []any {
	var out []any
	taken := map[netip.Prefix]bool{}
	for i := range routes {
		rt := &routes[i]
		taken[rt.Target] = true
		// With none of its gateways chosen, a route keeps them all.
		all := true
		for _, v := range rt.Via {
			if _, ok := g.weight(v); ok {
				all = false
			}
		}
		var gws []any
		for _, v := range rt.Via {
			w, ok := g.weight(v)
			if all {
				w, ok = 1, true
			}
			if ok {
				gws = append(gws, kv("gateway", v.String(), "weight", w))
			}
		}
		e := kv("route", rt.Target.String(), "install", rt.Install, "via", gws)
		if rt.Metric != 0 {
			e["metric"] = rt.Metric
		}
		if len(gws) == 1 && gws[0].(m)["weight"] == 1 {
			// One gateway at weight 1: Nebula's plain form.
			e["via"] = gws[0].(m)["gateway"]
		}
		out = append(out, e)
	}
	pins := make([]netip.Prefix, 0, len(g.pinned))
	for p := range g.pinned {
		if !taken[p] {
			pins = append(pins, p)
		}
	}
	// Pinned prefixes are /32s, so their addresses order them fully.
	// sort.Slice, not slices.SortFunc: smaller at the call site on MIPS.
	sort.Slice(pins, func(i, j int) bool { return pins[i].Addr().Less(pins[j].Addr()) })
	for _, p := range pins {
		out = append(out, kv("route", p.String(), "via", g.pinned[p].String(), "install", false))
	}
	return out
}

// weight is gateway v's weight under g; ok is false for a managed
// gateway that is not healthy. Not inlined: unsafeRoutes calls it twice.
//
//go:noinline
func (g *gatewayOverride) weight(v netip.Addr) (w int, ok bool) {
	if !slices.Contains(g.managed, v) {
		return 1, true
	}
	w, ok = g.healthy[v]
	return w, ok
}
