//go:build linux

package wan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rtprotMeshnode marks the routes the agent installs, so `ip route show
// table all proto 77` lists them (any unused protocol number would do).
const rtprotMeshnode = 77

// NetlinkKernel is the Kernel of a network namespace over rtnetlink, with
// the few messages failover needs written out by hand (cheaper in flash
// than a route library on top of mdlayher/netlink).
type NetlinkKernel struct {
	netns int
	c     *netlink.Conn
	ct    *netlink.Conn // ctnetlink, opened on first use
}

// OpenKernel opens rtnetlink in the network namespace whose file
// descriptor is netns (0: the caller's).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	// Extended acks turn EINVAL into the kernel's own explanation.
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	return &NetlinkKernel{netns: netns, c: c}, nil
}

// newKernelConn wraps a connection (nltest's in unit tests).
func newKernelConn(c *netlink.Conn) *NetlinkKernel { return &NetlinkKernel{c: c} }

// Close closes the sockets.
func (k *NetlinkKernel) Close() error {
	if k.ct != nil {
		k.ct.Close()
	}
	return k.c.Close()
}

func (k *NetlinkKernel) exec(typ netlink.HeaderType, flags netlink.HeaderFlags, data []byte) ([]netlink.Message, error) {
	return k.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
		Data:   data,
	})
}

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (Link, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return Link{}, err
	}
	msgs, err := k.exec(unix.RTM_GETLINK, 0, append(make([]byte, unix.SizeofIfInfomsg), attrs...))
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
		}
		return Link{}, fmt.Errorf("%s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			return decodeLink(m.Data)
		}
	}
	return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
}

// decodeLink decodes an RTM_NEWLINK or RTM_DELLINK body.
func decodeLink(data []byte) (Link, error) {
	if len(data) < unix.SizeofIfInfomsg {
		return Link{}, errors.New("short ifinfomsg")
	}
	flags := binary.NativeEndian.Uint32(data[8:12])
	l := Link{
		Index:        int(int32(binary.NativeEndian.Uint32(data[4:8]))),
		Up:           flags&unix.IFF_UP != 0 && flags&unix.IFF_LOWER_UP != 0,
		PointToPoint: flags&unix.IFF_POINTOPOINT != 0,
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return Link{}, err
	}
	for ad.Next() {
		if ad.Type() == unix.IFLA_IFNAME {
			l.Name = ad.String()
		}
	}
	return l, ad.Err()
}

// rtmsg is struct rtmsg for an IPv4 default route.
func rtmsg(table int, proto, scope, typ uint8) []byte {
	b := make([]byte, unix.SizeofRtMsg)
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
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofRtMsg:])
	if err != nil {
		return r, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			r.table = int(ad.Uint32())
		case unix.RTA_OIF:
			r.oif = int(ad.Uint32())
		case unix.RTA_PRIORITY:
			r.metric = int(ad.Uint32())
		case unix.RTA_GATEWAY:
			if a, ok := netip.AddrFromSlice(ad.Bytes()); ok {
				r.gateway = a.Unmap()
			}
		}
	}
	return r, ad.Err()
}

// Gateways implements Kernel.
func (k *NetlinkKernel) Gateways() (map[int]netip.Addr, error) {
	msgs, err := k.exec(unix.RTM_GETROUTE, netlink.Dump, rtmsg(0, 0, 0, 0))
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
	}
	gw := map[int]netip.Addr{}
	best := map[int]int{}
	for _, m := range msgs {
		r, err := decodeRoute(m.Data)
		if err != nil || r.dstLen != 0 || r.table != unix.RT_TABLE_MAIN || r.typ != unix.RTN_UNICAST ||
			!r.gateway.IsValid() || r.oif == 0 {
			continue
		}
		// netifd gives each WAN its own metric; the lowest is the one in use.
		if m, ok := best[r.oif]; !ok || r.metric < m {
			best[r.oif], gw[r.oif] = r.metric, r.gateway
		}
	}
	return gw, nil
}

// SetRoute implements Kernel.
func (k *NetlinkKernel) SetRoute(r Route) error {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_TABLE, uint32(r.Table))
	if r.Empty() {
		_, err := k.exec(unix.RTM_DELROUTE, netlink.Acknowledge, append(rtmsg(r.Table, 0, unix.RT_SCOPE_NOWHERE, 0), mustEncode(ae)...))
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deleting the default route of table %d: %w", r.Table, err)
		}
		return nil
	}
	typ := uint8(unix.RTN_UNICAST)
	switch {
	case r.Unreachable:
		typ = unix.RTN_UNREACHABLE
	case len(r.Hops) == 1:
		h := r.Hops[0]
		ae.Uint32(unix.RTA_OIF, uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			ae.Bytes(unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
	default:
		ae.Bytes(unix.RTA_MULTIPATH, multipath(r.Hops))
	}
	body := append(rtmsg(r.Table, rtprotMeshnode, unix.RT_SCOPE_UNIVERSE, typ), mustEncode(ae)...)
	if _, err := k.exec(unix.RTM_NEWROUTE, netlink.Acknowledge|netlink.Create|netlink.Replace, body); err != nil {
		return fmt.Errorf("setting %s: %w", r, err)
	}
	return nil
}

// multipath encodes RTA_MULTIPATH: rtnexthop headers, each followed by
// its own attributes (not nlattr nesting, so built by hand).
func multipath(hops []Nexthop) []byte {
	var b []byte
	for _, h := range hops {
		n := unix.SizeofRtNexthop
		if h.Gateway.IsValid() {
			n += 8
		}
		e := make([]byte, n)
		binary.NativeEndian.PutUint16(e[0:], uint16(n))
		w := h.Weight
		if w < 1 {
			w = 1
		}
		e[3] = uint8(w - 1) // rtnh_hops is weight-1
		binary.NativeEndian.PutUint32(e[4:], uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			binary.NativeEndian.PutUint16(e[8:], 8)
			binary.NativeEndian.PutUint16(e[10:], unix.RTA_GATEWAY)
			copy(e[12:], h.Gateway.AsSlice())
		}
		b = append(b, e...)
	}
	return b
}

func mustEncode(ae *netlink.AttributeEncoder) []byte {
	b, err := ae.Encode()
	if err != nil {
		// Only fixed-size attributes are encoded here.
		panic(err)
	}
	return b
}

func ruleMsg(r Rule) []byte {
	h := make([]byte, 12) // struct fib_rule_hdr
	h[0] = unix.AF_INET
	h[7] = unix.FR_ACT_TO_TBL
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.FRA_PRIORITY, uint32(r.Priority))
	ae.Uint32(unix.FRA_TABLE, uint32(r.Table))
	if r.Mark != 0 {
		ae.Uint32(unix.FRA_FWMARK, r.Mark)
		ae.Uint32(unix.FRA_FWMASK, 0xffffffff)
	}
	if r.SuppressPrefixLen >= 0 {
		ae.Uint32(unix.FRA_SUPPRESS_PREFIXLEN, uint32(r.SuppressPrefixLen))
	}
	if r.IPProto != 0 {
		ae.Uint8(unix.FRA_IP_PROTO, r.IPProto)
	}
	if r.Sport != 0 {
		p := make([]byte, 4)
		binary.NativeEndian.PutUint16(p[0:], r.Sport)
		binary.NativeEndian.PutUint16(p[2:], r.Sport)
		ae.Bytes(unix.FRA_SPORT_RANGE, p)
	}
	return append(h, mustEncode(ae)...)
}

// AddRule implements Kernel.
func (k *NetlinkKernel) AddRule(r Rule) error {
	_, err := k.exec(unix.RTM_NEWRULE, netlink.Acknowledge|netlink.Create|netlink.Excl, ruleMsg(r))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding ip rule priority %d table %d: %w", r.Priority, r.Table, err)
	}
	return nil
}

// DelRule implements Kernel.
func (k *NetlinkKernel) DelRule(r Rule) error {
	_, err := k.exec(unix.RTM_DELRULE, netlink.Acknowledge, ruleMsg(r))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting ip rule priority %d table %d: %w", r.Priority, r.Table, err)
	}
	return nil
}

// Events implements Kernel.
func (k *NetlinkKernel) Events(ctx context.Context) (<-chan Event, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: k.netns,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_ROUTE})
	if err != nil {
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	ch := make(chan Event, 64)
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	go func() {
		defer close(ch)
		for {
			msgs, err := c.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, unix.ENOBUFS) {
					// Events were dropped: the state must be read again.
					ch <- Event{Kind: EventsLost}
					continue
				}
				ch <- Event{Kind: EventsLost}
				return
			}
			for _, m := range msgs {
				if ev, ok := toEvent(m); ok {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return ch, nil
}

// toEvent reduces a netlink message to an Event, deciding in one place
// what failover ignores.
func toEvent(m netlink.Message) (Event, bool) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		l, err := decodeLink(m.Data)
		if err != nil {
			return Event{}, false
		}
		if m.Header.Type == unix.RTM_DELLINK {
			return Event{Kind: LinkRemoved, Link: l}, true
		}
		return Event{Kind: LinkChanged, Link: l}, true
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		r, err := decodeRoute(m.Data)
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
