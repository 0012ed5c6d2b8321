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
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtprotMeshnode marks the routes the agent installs, so `ip route show
// table all proto 77` lists them (any unused protocol number would do).
const rtprotMeshnode = 77

// nlTimeoutSec bounds each send and receive on the agent's netlink
// sockets: the failover loop waits on them and must not hang for good.
const nlTimeoutSec = 10

// NetlinkKernel is the Kernel of a network namespace over rtnetlink, with
// the few messages failover needs written out by hand on the netlink
// transport Nebula links anyway (vishvananda/netlink/nl): no second
// netlink library in flash.
type NetlinkKernel struct {
	netns int
	// socks holds the rtnetlink socket and, from the first NAT flush on,
	// the ctnetlink one, keyed by protocol as nl's requests look them up.
	socks map[int]*nl.SocketHandle
}

// nsHandle turns the netns file descriptor (0: the caller's namespace)
// into what nl opens sockets in.
func nsHandle(fd int) netns.NsHandle {
	if fd == 0 {
		return netns.None()
	}
	return netns.NsHandle(fd)
}

// openSocket opens a request socket for proto in the namespace.
func openSocket(ns, proto int) (*nl.SocketHandle, error) {
	s, err := nl.GetNetlinkSocketAt(nsHandle(ns), netns.None(), proto)
	if err != nil {
		return nil, err
	}
	tv := unix.Timeval{Sec: nlTimeoutSec}
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	// Extended acks turn EINVAL into the kernel's own explanation.
	_ = s.SetExtAck(true)
	return &nl.SocketHandle{Socket: s}, nil
}

// OpenKernel opens rtnetlink in the network namespace whose file
// descriptor is netns (0: the caller's).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	s, err := openSocket(netns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	return &NetlinkKernel{netns: netns, socks: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s}}, nil
}

// Close closes the sockets.
func (k *NetlinkKernel) Close() error {
	for _, s := range k.socks {
		s.Close()
	}
	return nil
}

// exec sends req on the namespace's socket for proto and returns the
// bodies of the replies of type want (0: all). An error reply comes back
// as its errno, with the kernel's extended-ack text when it gave one.
func (k *NetlinkKernel) exec(proto int, req *nl.NetlinkRequest, want uint16) ([][]byte, error) {
	req.Sockets = k.socks
	msgs, err := req.Execute(proto, want)
	if errors.Is(err, nl.ErrDumpInterrupted) {
		// A dump that raced a change is used as it is: link and route
		// changes arrive as events and cause a fresh read; addresses and
		// conntrack are read again at the next failover.
		err = nil
	}
	return msgs, err
}

// attrs splits a run of netlink attributes, types without their flag
// bits. The kernel pads every attribute, so a run whose length is not a
// multiple of 4 is garbled: dropping its ragged end makes the last
// attribute fail nl.ParseRouteAttr's length check instead of letting it
// slice past the end.
func attrs(b []byte) ([]syscall.NetlinkRouteAttr, error) {
	b = b[:len(b)&^3]
	as, err := nl.ParseRouteAttr(b)
	for i := range as {
		as[i].Attr.Type &^= unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER
	}
	return as, err
}

// request is a netlink request whose body (fixed header and attributes)
// is b. Bodies are built as bytes with appendAttr: smaller in flash than
// a tree of nl.RtAttr values.
func request(typ, flags int, b []byte) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	req.RawData = b
	return req
}

// appendAttr appends a netlink attribute to b (whose length is a multiple
// of 4), padded to 4 bytes. Not inlined: one copy is less flash.
//
//go:noinline
func appendAttr(b []byte, typ int, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, uint16(typ))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func appendU32(b []byte, typ int, v uint32) []byte {
	return appendAttr(b, typ, binary.NativeEndian.AppendUint32(nil, v))
}

// linkRequest asks for one interface by name.
func linkRequest(name string) *nl.NetlinkRequest {
	b := make([]byte, unix.SizeofIfInfomsg)
	return request(unix.RTM_GETLINK, 0, appendAttr(b, unix.IFLA_IFNAME, append([]byte(name), 0)))
}

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (Link, error) {
	msgs, err := k.exec(unix.NETLINK_ROUTE, linkRequest(name), unix.RTM_NEWLINK)
	if errors.Is(err, unix.ENODEV) || (err == nil && len(msgs) == 0) {
		return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
	}
	if err != nil {
		return Link{}, fmt.Errorf("%s: %w", name, err)
	}
	l, err := decodeLink(msgs[0])
	if err != nil {
		return Link{}, fmt.Errorf("%s: %w", name, err)
	}
	return l, nil
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
	as, err := attrs(data[unix.SizeofIfInfomsg:])
	for _, a := range as {
		if a.Attr.Type == unix.IFLA_IFNAME {
			l.Name = unix.ByteSliceToString(a.Value)
		}
	}
	return l, err
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
	as, err := attrs(data[unix.SizeofRtMsg:])
	for _, a := range as {
		switch a.Attr.Type {
		case unix.RTA_TABLE, unix.RTA_OIF, unix.RTA_PRIORITY:
			if len(a.Value) < 4 {
				continue
			}
			v := int(binary.NativeEndian.Uint32(a.Value))
			switch a.Attr.Type {
			case unix.RTA_TABLE:
				r.table = v
			case unix.RTA_OIF:
				r.oif = v
			default:
				r.metric = v
			}
		case unix.RTA_GATEWAY:
			if g, ok := netip.AddrFromSlice(a.Value); ok {
				r.gateway = g.Unmap()
			}
		}
	}
	return r, err
}

// Gateways implements Kernel.
func (k *NetlinkKernel) Gateways() (map[int]netip.Addr, error) {
	req := request(unix.RTM_GETROUTE, unix.NLM_F_DUMP, rtmsg(0, 0, 0, 0))
	msgs, err := k.exec(unix.NETLINK_ROUTE, req, unix.RTM_NEWROUTE)
	if err != nil {
		return nil, fmt.Errorf("reading routes: %w", err)
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

// routeRequest makes r the default route of its table, or deletes that
// route when r is empty.
func routeRequest(r Route) *nl.NetlinkRequest {
	if r.Empty() {
		b := appendU32(rtmsg(r.Table, 0, unix.RT_SCOPE_NOWHERE, 0), unix.RTA_TABLE, uint32(r.Table))
		return request(unix.RTM_DELROUTE, unix.NLM_F_ACK, b)
	}
	typ := uint8(unix.RTN_UNICAST)
	if r.Unreachable {
		typ = unix.RTN_UNREACHABLE
	}
	b := appendU32(rtmsg(r.Table, rtprotMeshnode, unix.RT_SCOPE_UNIVERSE, typ), unix.RTA_TABLE, uint32(r.Table))
	switch {
	case r.Unreachable:
	case len(r.Hops) == 1:
		h := r.Hops[0]
		b = appendU32(b, unix.RTA_OIF, uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			b = appendAttr(b, unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
	default:
		b = appendAttr(b, unix.RTA_MULTIPATH, multipath(r.Hops))
	}
	return request(unix.RTM_NEWROUTE, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE, b)
}

// multipath encodes RTA_MULTIPATH's value: rtnexthop headers, each
// followed by its own attributes.
func multipath(hops []Nexthop) []byte {
	var b []byte
	for _, h := range hops {
		start := len(b)
		b = append(b, make([]byte, unix.SizeofRtNexthop)...)
		e := b[start:]
		e[3] = uint8(max(h.Weight, 1) - 1) // rtnh_hops is weight-1
		binary.NativeEndian.PutUint32(e[4:], uint32(h.Ifindex))
		if h.Gateway.IsValid() {
			b = appendAttr(b, unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
		binary.NativeEndian.PutUint16(b[start:], uint16(len(b)-start)) // rtnh_len
	}
	return b
}

// SetRoute implements Kernel.
func (k *NetlinkKernel) SetRoute(r Route) error {
	_, err := k.exec(unix.NETLINK_ROUTE, routeRequest(r), 0)
	switch {
	case err == nil:
	case r.Empty() && errors.Is(err, unix.ESRCH):
		// Already gone.
	case r.Empty():
		return fmt.Errorf("deleting the default route of table %d: %w", r.Table, err)
	default:
		return fmt.Errorf("setting %s: %w", r, err)
	}
	return nil
}

// ruleRequest is an ip rule message of type typ (RTM_NEWRULE or
// RTM_DELRULE) for r.
func ruleRequest(typ, flags int, r Rule) *nl.NetlinkRequest {
	b := make([]byte, 12) // struct fib_rule_hdr
	b[0] = unix.AF_INET
	b[7] = unix.FR_ACT_TO_TBL
	b = appendU32(b, unix.FRA_PRIORITY, uint32(r.Priority))
	b = appendU32(b, unix.FRA_TABLE, uint32(r.Table))
	if r.Mark != 0 {
		b = appendU32(b, unix.FRA_FWMARK, r.Mark)
		b = appendU32(b, unix.FRA_FWMASK, 0xffffffff)
	}
	if r.SuppressPrefixLen >= 0 {
		b = appendU32(b, unix.FRA_SUPPRESS_PREFIXLEN, uint32(r.SuppressPrefixLen))
	}
	if r.IPProto != 0 {
		b = appendAttr(b, unix.FRA_IP_PROTO, []byte{r.IPProto})
	}
	if r.Sport != 0 {
		// struct fib_rule_port_range: first and last port, host order.
		p := binary.NativeEndian.AppendUint16(nil, r.Sport)
		b = appendAttr(b, unix.FRA_SPORT_RANGE, binary.NativeEndian.AppendUint16(p, r.Sport))
	}
	return request(typ, flags, b)
}

// AddRule implements Kernel.
func (k *NetlinkKernel) AddRule(r Rule) error {
	_, err := k.exec(unix.NETLINK_ROUTE, ruleRequest(unix.RTM_NEWRULE, unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL, r), 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding ip rule priority %d table %d: %w", r.Priority, r.Table, err)
	}
	return nil
}

// DelRule implements Kernel.
func (k *NetlinkKernel) DelRule(r Rule) error {
	_, err := k.exec(unix.NETLINK_ROUTE, ruleRequest(unix.RTM_DELRULE, unix.NLM_F_ACK, r), 0)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("deleting ip rule priority %d table %d: %w", r.Priority, r.Table, err)
	}
	return nil
}

// Events implements Kernel.
func (k *NetlinkKernel) Events(ctx context.Context) (<-chan Event, error) {
	s, err := nl.SubscribeAt(nsHandle(k.netns), netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	ch := make(chan Event, 64)
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	go func() {
		defer close(ch)
		for {
			msgs, from, err := s.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// ENOBUFS: the socket overflowed and events were dropped,
				// so the state must be read again. Any other error ends
				// the subscription; the state is read again all the same.
				select {
				case ch <- Event{Kind: EventsLost}:
				case <-ctx.Done():
					return
				}
				if errors.Is(err, unix.ENOBUFS) {
					continue
				}
				return
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				if ev, ok := toEvent(m.Header.Type, m.Data); ok {
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
func toEvent(typ uint16, data []byte) (Event, bool) {
	switch typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		l, err := decodeLink(data)
		if err != nil {
			return Event{}, false
		}
		if typ == unix.RTM_DELLINK {
			return Event{Kind: LinkRemoved, Link: l}, true
		}
		return Event{Kind: LinkChanged, Link: l}, true
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
