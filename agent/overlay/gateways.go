package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/meshnode/meshnode/agent/config"
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
		return fmt.Errorf("nebula rejected the gateways: %w", err)
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
	for _, rt := range routes {
		taken[rt.Target] = true
		type gw struct {
			addr   netip.Addr
			weight int
		}
		var all, chosen []gw
		for _, v := range rt.Via {
			all = append(all, gw{v, 1})
			if !slices.Contains(g.managed, v) {
				chosen = append(chosen, gw{v, 1})
			} else if w, ok := g.healthy[v]; ok {
				chosen = append(chosen, gw{v, w})
			}
		}
		if len(chosen) == 0 {
			chosen = all
		}
		e := m{"route": rt.Target.String(), "install": rt.Install}
		if rt.Metric != 0 {
			e["metric"] = rt.Metric
		}
		if len(chosen) == 1 && chosen[0].weight == 1 {
			e["via"] = chosen[0].addr.String()
		} else {
			var gws []any
			for _, c := range chosen {
				gws = append(gws, m{"gateway": c.addr.String(), "weight": c.weight})
			}
			e["via"] = gws
		}
		out = append(out, e)
	}
	pins := make([]netip.Prefix, 0, len(g.pinned))
	for p := range g.pinned {
		if !taken[p] {
			pins = append(pins, p)
		}
	}
	slices.SortFunc(pins, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range pins {
		out = append(out, m{"route": p.String(), "via": g.pinned[p].String(), "install": false})
	}
	return out
}
