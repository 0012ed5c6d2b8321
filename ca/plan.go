package ca

import (
	"fmt"
	"net/netip"
	"slices"
)

// Plan says which overlay addresses each role gets.
type Plan struct {
	Network netip.Prefix            // the whole overlay, e.g. 10.0.4.0/24
	Pools   map[string]netip.Prefix // role -> pool inside Network
}

// DefaultPlan is the pilot's plan: hub 10.0.4.1, relays 10.0.4.32/27,
// uplinks 10.0.4.64/26, clients 10.0.4.128/25.
func DefaultPlan() Plan {
	return Plan{
		Network: netip.MustParsePrefix("10.0.4.0/24"),
		Pools: map[string]netip.Prefix{
			"hub":    netip.MustParsePrefix("10.0.4.1/32"),
			"relay":  netip.MustParsePrefix("10.0.4.32/27"),
			"uplink": netip.MustParsePrefix("10.0.4.64/26"),
			"client": netip.MustParsePrefix("10.0.4.128/25"),
		},
	}
}

// Validate checks that every role has an IPv4 pool inside the network and
// that no two pools overlap, so one address can never belong to two roles.
func (p Plan) Validate() error {
	if !p.Network.IsValid() || !p.Network.Addr().Is4() || p.Network.Masked() != p.Network {
		return fmt.Errorf("plan: network %s is not an IPv4 network such as 10.0.4.0/24", p.Network)
	}
	for _, r := range Roles {
		pool, ok := p.Pools[r]
		if !ok {
			return fmt.Errorf("plan: no pool for role %s", r)
		}
		if !pool.IsValid() || pool.Masked() != pool || !pool.Addr().Is4() {
			return fmt.Errorf("plan: %s pool %s is not an IPv4 prefix such as 10.0.4.64/26", r, pool)
		}
		if pool.Bits() < p.Network.Bits() || !p.Network.Contains(pool.Addr()) {
			return fmt.Errorf("plan: %s pool %s is not inside %s", r, pool, p.Network)
		}
		for _, o := range Roles {
			if o != r && p.Pools[o].IsValid() && p.Pools[o].Overlaps(pool) {
				return fmt.Errorf("plan: %s pool %s overlaps %s pool %s", r, pool, o, p.Pools[o])
			}
		}
	}
	for r := range p.Pools {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("plan: unknown role %q", r)
		}
	}
	return nil
}

// RoleOf returns the role whose pool holds a, or "".
func (p Plan) RoleOf(a netip.Addr) string {
	for _, r := range Roles {
		if p.Pools[r].Contains(a) {
			return r
		}
	}
	return ""
}

// usable reports whether a may be handed to a node: the network's own
// address and its broadcast address never are.
func (p Plan) usable(a netip.Addr) bool {
	if a == p.Network.Addr() {
		return false
	}
	return p.Network.Contains(a) && (p.Network.Bits() == 32 || a != lastAddr(p.Network))
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// next returns the lowest usable address of role's pool for which used is
// false.
func (p Plan) next(role string, used func(netip.Addr) bool) (netip.Addr, error) {
	pool, ok := p.Pools[role]
	if !ok {
		return netip.Addr{}, fmt.Errorf("unknown role %q: want one of hub, relay, uplink, client", role)
	}
	last := lastAddr(pool)
	for a := pool.Addr(); ; a = a.Next() {
		if p.usable(a) && !used(a) {
			return a, nil
		}
		if a == last {
			break
		}
	}
	return netip.Addr{}, &PoolFullError{Role: role, Pool: pool}
}

// PoolFullError says a role's pool has no address that was never handed out.
type PoolFullError struct {
	Role string
	Pool netip.Prefix
}

func (e *PoolFullError) Error() string {
	return fmt.Sprintf("address pool for role %s (%s) is full: every address was handed out before (revoked addresses are never reused); widen the pool in ca.conf", e.Role, e.Pool)
}
