//go:build linux

package wan

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/rtnl"
	"golang.org/x/sys/unix"
)

// rtprotMeshnode marks the routes the agent installs, so `ip route show
// table all proto 77` lists them (any unused protocol number would do).
const rtprotMeshnode = 77

// NetlinkKernel is the Kernel of a network namespace over rtnetlink and
// ctnetlink, with the few messages failover needs written out by hand on
// internal/rtnl: no second netlink library in flash.
type NetlinkKernel struct {
	netns int
	c     *rtnl.Conn
}

// OpenKernel opens rtnetlink in the network namespace whose file
// descriptor is netns (0: the caller's).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	c, err := rtnl.Open(netns)
	if err != nil {
		return nil, err
	}
	return &NetlinkKernel{netns: netns, c: c}, nil
}

// Close closes the sockets.
func (k *NetlinkKernel) Close() error { return rtnl.Close(k.c) }

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (Link, error) {
	l, err := rtnl.LinkByName(k.c, name, ErrNoLink)
	return toLink(l), err
}

func toLink(l rtnl.Link) Link {
	return Link{
		Index:        int(int32(l.Index)),
		Name:         l.Name,
		Up:           l.Flags&unix.IFF_UP != 0 && l.Flags&unix.IFF_LOWER_UP != 0,
		PointToPoint: l.Flags&unix.IFF_POINTOPOINT != 0,
	}
}

// rtmsg is struct rtmsg for an IPv4 default route.
func rtmsg(table int, proto, scope, typ uint8) rtnl.Msg {
	b := make(rtnl.Msg, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	if table < 256 {
		b[4] = uint8(table)
	} else {
		b[4] = unix.RT_TABLE_UNSPEC // the real one goes in RTA_TABLE
	}
	b[5], b[6], b[7] = proto, scope, typ
	return b
}

// parsedRoute is a default route read back from the kernel.
type parsedRoute struct {
	table, oif, metric int
	gateway            netip.Addr
	typ                uint8
	dstLen             int
}

func decodeRoute(data []byte) (parsedRoute, error) {
	if len(data) < unix.SizeofRtMsg {
		return parsedRoute{}, errors.New("short rtmsg")
	}
	r := parsedRoute{dstLen: int(data[1]), table: int(data[4]), typ: data[7]}
	if data[0] != unix.AF_INET {
		r.dstLen = -1 // not ours to look at
		return r, nil
	}
	a := rtnl.Parse(data[unix.SizeofRtMsg:])
	for a.Next() {
		switch a.Type {
		case unix.RTA_TABLE, unix.RTA_OIF, unix.RTA_PRIORITY:
			if len(a.Val) < 4 {
				continue
			}
			v := int(a.U32())
			switch a.Type {
			case unix.RTA_TABLE:
				r.table = v
			case unix.RTA_OIF:
				r.oif = v
			default:
				r.metric = v
			}
		case unix.RTA_GATEWAY:
			if g, ok := netip.AddrFromSlice(a.Val); ok {
				r.gateway = g.Unmap()
			}
		}
	}
	return r, a.Err
}

// Gateways implements Kernel.
func (k *NetlinkKernel) Gateways() (map[int]netip.Addr, error) {
	msgs, err := rtnl.Do(k.c, unix.NETLINK_ROUTE, unix.RTM_GETROUTE, unix.NLM_F_DUMP, rtmsg(0, 0, 0, 0), unix.RTM_NEWROUTE)
	if err != nil {
		return nil, errfmt.Errorf("reading routes: %w", err)
	}
	return gateways(msgs), nil
}

// gateways picks, per interface, the gateway of the main table's default
// route with the lowest metric out of a route dump.
func gateways(msgs [][]byte) map[int]netip.Addr {
	gw := map[int]netip.Addr{}
	best := map[int]int{}
	for _, m := range msgs {
		r, err := decodeRoute(m)
		if err != nil || r.dstLen != 0 || r.table != unix.RT_TABLE_MAIN || r.typ != unix.RTN_UNICAST ||
			!r.gateway.IsValid() || r.oif == 0 {
			continue
		}
		// netifd gives each WAN its own metric; the lowest is the one in use.
		if m, ok := best[r.oif]; !ok || r.metric < m {
			best[r.oif], gw[r.oif] = r.metric, r.gateway
		}
	}
	return gw
}

// routeRequest makes r the default route of its table (RTM_NEWROUTE), or
// deletes that route when r is empty (RTM_DELROUTE).
func routeRequest(r Route) (typ, flags uint16, body []byte) {
	if r.Empty() {
		m := rtmsg(r.Table, 0, unix.RT_SCOPE_NOWHERE, 0)
		m.U32(unix.RTA_TABLE, uint32(r.Table))
		return unix.RTM_DELROUTE, unix.NLM_F_ACK, m
	}
	typ8 := uint8(unix.RTN_UNICAST)
	if r.Unreachable {
		typ8 = unix.RTN_UNREACHABLE
	}
	m := rtmsg(r.Table, rtprotMeshnode, unix.RT_SCOPE_UNIVERSE, typ8)
	m.U32(unix.RTA_TABLE, uint32(r.Table))
	switch {
	case r.Unreachable:
	case len(r.Hops) == 1:
		h := r.Hops[0]
		m.U32(unix.RTA_OIF, uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			m.Attr(unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
	default:
		m.Attr(unix.RTA_MULTIPATH, multipath(r.Hops))
	}
	return unix.RTM_NEWROUTE, unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE, m
}

// multipath encodes RTA_MULTIPATH's value: rtnexthop headers, each
// followed by its own attributes.
func multipath(hops []Nexthop) []byte {
	var m rtnl.Msg
	for _, h := range hops {
		start := len(m)
		m = append(m, make([]byte, unix.SizeofRtNexthop)...)
		e := m[start:]
		e[3] = uint8(max(h.Weight, 1) - 1) // rtnh_hops is weight-1
		binary.NativeEndian.PutUint32(e[4:], uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			m.Attr(unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
		binary.NativeEndian.PutUint16(m[start:], uint16(len(m)-start)) // rtnh_len
	}
	return m
}

// SetRoute implements Kernel.
func (k *NetlinkKernel) SetRoute(r Route) error {
	typ, flags, body := routeRequest(r)
	_, err := rtnl.Do(k.c, unix.NETLINK_ROUTE, typ, flags, body, 0)
	switch {
	case err == nil:
	case r.Empty() && errors.Is(err, unix.ESRCH):
		// Already gone.
	case r.Empty():
		return errfmt.Errorf("deleting the default route of table %d: %w", r.Table, err)
	default:
		return errfmt.Errorf("setting %s: %w", r, err)
	}
	return nil
}

// ruleRequest is the body of an ip rule message for r.
func ruleRequest(r Rule) []byte {
	m := make(rtnl.Msg, 12) // struct fib_rule_hdr
	m[0] = unix.AF_INET
	m[7] = unix.FR_ACT_TO_TBL
	m.U32(unix.FRA_PRIORITY, uint32(r.Priority))
	m.U32(unix.FRA_TABLE, uint32(r.Table))
	if r.Mark != 0 {
		m.U32(unix.FRA_FWMARK, r.Mark)
		m.U32(unix.FRA_FWMASK, 0xffffffff)
	}
	if r.SuppressPrefixLen >= 0 {
		m.U32(unix.FRA_SUPPRESS_PREFIXLEN, uint32(r.SuppressPrefixLen))
	}
	if r.IPProto != 0 {
		m.Attr(unix.FRA_IP_PROTO, []byte{r.IPProto})
	}
	if r.Sport != 0 {
		// struct fib_rule_port_range: first and last port, host order.
		m.U32(unix.FRA_SPORT_RANGE, uint32(r.Sport)*0x10001)
	}
	return m
}

// AddRule implements Kernel.
func (k *NetlinkKernel) AddRule(r Rule) error {
	return k.rule(unix.RTM_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, r, unix.EEXIST, "adding")
}

// DelRule implements Kernel.
func (k *NetlinkKernel) DelRule(r Rule) error {
	return k.rule(unix.RTM_DELRULE, 0, r, unix.ENOENT, "deleting")
}

// rule sends an ip rule message for r; the errno done means there is
// nothing to do (the rule is there already, or gone).
func (k *NetlinkKernel) rule(typ, flags uint16, r Rule, done unix.Errno, verb string) error {
	_, err := rtnl.Do(k.c, unix.NETLINK_ROUTE, typ, flags|unix.NLM_F_ACK, ruleRequest(r), 0)
	if err != nil && !errors.Is(err, done) {
		return errfmt.Errorf("%s ip rule priority %d table %d: %w", verb, r.Priority, r.Table, err)
	}
	return nil
}

// Events implements Kernel.
func (k *NetlinkKernel) Events(ctx context.Context) (<-chan Event, error) {
	return rtnl.Events(ctx, k.c, toEvent, unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_ROUTE)
}

// toEvent reduces a netlink message to an Event (rtnl.Lost: events
// were lost), deciding in one place what failover ignores.
func toEvent(typ uint16, data []byte) (Event, bool) {
	switch typ {
	case rtnl.Lost:
		return Event{Kind: EventsLost}, true
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		l, err := rtnl.DecodeLink(data)
		if err != nil {
			return Event{}, false
		}
		kind := LinkChanged
		if typ == unix.RTM_DELLINK {
			kind = LinkRemoved
		}
		return Event{Kind: kind, Link: toLink(l)}, true
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		r, err := decodeRoute(data)
		// Only netifd's default routes matter (gateway learning); ours
		// live in other tables.
		if err != nil || r.dstLen != 0 || r.table != unix.RT_TABLE_MAIN {
			return Event{}, false
		}
		return Event{Kind: RoutesChanged}, true
	}
	return Event{}, false
}

// LooseRPFilter implements Kernel. Strict filtering (1) drops the probe
// replies of a standby WAN: their source is routed via the active one.
// The kernel uses the larger of conf/all and conf/<dev>, so 2 on the
// device is enough.
func (k *NetlinkKernel) LooseRPFilter(dev string) (bool, error) {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	devPath := "/proc/sys/net/ipv4/conf/" + dev + "/rp_filter"
	all, cur := read("/proc/sys/net/ipv4/conf/all/rp_filter"), read(devPath)
	if all == "2" || cur == "2" || (all != "1" && cur != "1") {
		return false, nil
	}
	if k.netns != 0 {
		// /proc/sys shows the caller's namespace, not this one.
		return false, nil
	}
	if err := os.WriteFile(devPath, []byte("2"), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
