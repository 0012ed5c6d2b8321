//go:build linux

package wan

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/meshnode/meshnode/internal/rtnl"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// The messages are checked as bytes (host order: the cross run on
// big-endian MIPS checks that too); the exchange with a real kernel, its
// errnos included, is tests/wan's TestNetlinkKernel.

// attrMap decodes a run of attributes by type, failing on garbage or
// missing padding.
func attrMap(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	if len(b)%4 != 0 {
		t.Fatalf("attributes not padded: % x", b)
	}
	as, err := nl.ParseRouteAttr(b)
	if err != nil {
		t.Fatalf("attributes % x: %v", b, err)
	}
	m := map[uint16][]byte{}
	for _, a := range as {
		m[a.Attr.Type] = a.Value
	}
	return m
}

func u32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

// attr encodes one attribute as the kernel would (nl's encoder, not ours).
func attr(typ int, v []byte) []byte { return nl.NewRtAttr(typ, v).Serialize() }

func TestSetRouteMultipath(t *testing.T) {
	r := Route{Table: 4200, Hops: []Nexthop{
		{Gateway: netip.MustParseAddr("192.0.2.1"), Ifindex: 2, Weight: 3},
		{Ifindex: 9, Weight: 1},
	}}
	typ, flags, d := routeRequest(r)
	if typ != unix.RTM_NEWROUTE || flags != unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_REPLACE {
		t.Fatalf("type %d flags %#x", typ, flags)
	}
	if d[0] != unix.AF_INET || d[1] != 0 || d[4] != unix.RT_TABLE_UNSPEC || d[5] != rtprotMeshnode ||
		d[6] != unix.RT_SCOPE_UNIVERSE || d[7] != unix.RTN_UNICAST {
		t.Fatalf("rtmsg % x", d[:12])
	}
	a := attrMap(t, d[unix.SizeofRtMsg:])
	mp := a[unix.RTA_MULTIPATH]
	if u32(a[unix.RTA_TABLE]) != 4200 || len(mp) != 16+8 || len(a) != 2 {
		t.Fatalf("attributes %v", a)
	}
	// First nexthop: len 16, hops = weight-1, ifindex 2, RTA_GATEWAY.
	if binary.NativeEndian.Uint16(mp) != 16 || mp[3] != 2 || binary.NativeEndian.Uint32(mp[4:]) != 2 ||
		binary.NativeEndian.Uint16(mp[8:]) != 8 || binary.NativeEndian.Uint16(mp[10:]) != unix.RTA_GATEWAY ||
		netip.AddrFrom4([4]byte(mp[12:16])) != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("first hop % x", mp[:16])
	}
	if binary.NativeEndian.Uint16(mp[16:]) != 8 || mp[19] != 0 || binary.NativeEndian.Uint32(mp[20:]) != 9 {
		t.Fatalf("second hop % x", mp[16:])
	}
}

func TestRouteRequests(t *testing.T) {
	// Deleting: table 100 fits the header and goes in RTA_TABLE too.
	typ, flags, d := routeRequest(Route{Table: 100})
	if typ != unix.RTM_DELROUTE || flags != unix.NLM_F_ACK ||
		d[4] != 100 || d[6] != unix.RT_SCOPE_NOWHERE || u32(attrMap(t, d[12:])[unix.RTA_TABLE]) != 100 {
		t.Fatalf("delete: %d %#x % x", typ, flags, d)
	}
	// One hop: RTA_OIF and RTA_GATEWAY, no RTA_MULTIPATH.
	_, _, d = routeRequest(Route{Table: 4200, Hops: []Nexthop{{Gateway: netip.MustParseAddr("198.51.100.1"), Ifindex: 7, Weight: 1}}})
	a := attrMap(t, d[12:])
	if u32(a[unix.RTA_OIF]) != 7 || netip.AddrFrom4([4]byte(a[unix.RTA_GATEWAY])) != netip.MustParseAddr("198.51.100.1") ||
		a[unix.RTA_MULTIPATH] != nil {
		t.Fatalf("one hop: %v", a)
	}
	// A device without gateway (tun, PPP).
	_, _, d = routeRequest(Route{Table: 4200, Hops: []Nexthop{{Ifindex: 5}}})
	if a := attrMap(t, d[12:]); u32(a[unix.RTA_OIF]) != 5 || a[unix.RTA_GATEWAY] != nil {
		t.Fatalf("device route: %v", a)
	}
	// Unreachable: the type says it all.
	_, _, d = routeRequest(Route{Table: 4200, Unreachable: true})
	if a := attrMap(t, d[12:]); d[7] != unix.RTN_UNREACHABLE || len(a) != 1 {
		t.Fatalf("unreachable: % x", d)
	}
}

func TestRuleRequest(t *testing.T) {
	r := Rule{Priority: 1000, Table: 4200, Mark: 0x4200, SuppressPrefixLen: 0, IPProto: unix.IPPROTO_UDP, Sport: 4242}
	d := ruleRequest(r)
	if d[0] != unix.AF_INET || d[7] != unix.FR_ACT_TO_TBL {
		t.Fatalf("% x", d[:12])
	}
	a := attrMap(t, d[12:])
	if u32(a[unix.FRA_PRIORITY]) != 1000 || u32(a[unix.FRA_TABLE]) != 4200 || u32(a[unix.FRA_FWMARK]) != 0x4200 ||
		u32(a[unix.FRA_FWMASK]) != 0xffffffff || len(a[unix.FRA_SUPPRESS_PREFIXLEN]) != 4 || u32(a[unix.FRA_SUPPRESS_PREFIXLEN]) != 0 ||
		string(a[unix.FRA_IP_PROTO]) != string([]byte{unix.IPPROTO_UDP}) ||
		binary.NativeEndian.Uint16(a[unix.FRA_SPORT_RANGE]) != 4242 || binary.NativeEndian.Uint16(a[unix.FRA_SPORT_RANGE][2:]) != 4242 {
		t.Fatalf("attributes %v", a)
	}
	// Unset fields stay out.
	d = ruleRequest(Rule{Priority: 1001, Table: 4201, SuppressPrefixLen: -1})
	if a := attrMap(t, d[12:]); len(a) != 2 {
		t.Fatalf("minimal rule: %v", a)
	}
}

func TestLinkAndGateways(t *testing.T) {
	link := func(typ uint16, idx int32, flags uint32, name string) (Event, bool) {
		b := make([]byte, unix.SizeofIfInfomsg)
		binary.NativeEndian.PutUint32(b[4:], uint32(idx))
		binary.NativeEndian.PutUint32(b[8:], flags)
		b = append(b, attr(unix.IFLA_MTU, nl.Uint32Attr(1500))...)
		return toEvent(typ, append(b, attr(unix.IFLA_IFNAME, append([]byte(name), 0))...))
	}
	if ev, ok := link(unix.RTM_NEWLINK, 2, unix.IFF_UP|unix.IFF_LOWER_UP, "eth1"); !ok ||
		ev != (Event{Kind: LinkChanged, Link: Link{Index: 2, Name: "eth1", Up: true}}) {
		t.Fatalf("%+v", ev)
	}
	if ev, ok := link(unix.RTM_NEWLINK, 3, unix.IFF_UP|unix.IFF_POINTOPOINT, "pppoe-wan"); !ok ||
		ev.Link != (Link{Index: 3, Name: "pppoe-wan", PointToPoint: true}) {
		t.Fatalf("up without carrier is down: %+v", ev)
	}
	if ev, ok := link(unix.RTM_DELLINK, 3, 0, "pppoe-wan"); !ok || ev.Kind != LinkRemoved || ev.Link.Index != 3 {
		t.Fatalf("%+v", ev)
	}

	route := func(table uint32, dstLen uint8, oif, metric uint32, gw string) []byte {
		b := rtmsg(0, 3, 0, unix.RTN_UNICAST)
		b[1] = dstLen
		b = append(b, attr(unix.RTA_TABLE, nl.Uint32Attr(table))...)
		b = append(b, attr(unix.RTA_OIF, nl.Uint32Attr(oif))...)
		b = append(b, attr(unix.RTA_PRIORITY, nl.Uint32Attr(metric))...)
		return append(b, attr(unix.RTA_GATEWAY, netip.MustParseAddr(gw).AsSlice())...)
	}
	dump := [][]byte{
		route(254, 0, 2, 20, "192.0.2.1"),
		route(254, 0, 2, 10, "192.0.2.9"),
		route(4200, 0, 3, 0, "198.51.100.1"),
		route(254, 24, 3, 0, "198.51.100.1"),
		{1, 2, 3},
	}
	gws := gateways(dump)
	if len(gws) != 1 || gws[2] != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("main-table defaults by lowest metric only: %v", gws)
	}
	for i, want := range []bool{true, true, false, false, false} {
		if _, ok := toEvent(unix.RTM_NEWROUTE, dump[i]); ok != want {
			t.Errorf("route %d: event %v, want %v", i, ok, want)
		}
	}
}

// TestDecodeGarbled: a message cut short or with a lying length is an
// error or ignored, never a panic (internal/rtnl tests the attributes).
func TestDecodeGarbled(t *testing.T) {
	if _, ok := toEvent(unix.RTM_NEWLINK, make([]byte, 4)); ok {
		t.Error("short ifinfomsg accepted")
	}
	if _, err := decodeRoute(make([]byte, 4)); err == nil {
		t.Error("short rtmsg accepted")
	}
	r := rtmsg(0, 0, 0, unix.RTN_UNICAST)
	if _, err := decodeRoute(append(r, 0xff, 0, 1, 0)); err == nil {
		t.Error("attribute overrun accepted")
	}
	if ev, ok := toEvent(rtnl.Lost, nil); !ok || ev.Kind != EventsLost {
		t.Errorf("loss: %+v", ev)
	}
}
