//go:build linux

package wan

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The kernel is faked at the socket (nltest): the real encoding runs.

func TestSetRouteMultipath(t *testing.T) {
	var got netlink.Message
	c := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		got = req[0]
		return nltest.Error(0, req)
	})
	k := newKernelConn(c)
	defer k.Close()
	r := Route{Table: 4200, Hops: []Nexthop{
		{Gateway: netip.MustParseAddr("192.0.2.1"), Ifindex: 2, Weight: 3},
		{Ifindex: 9, Weight: 1},
	}}
	if err := k.SetRoute(r); err != nil {
		t.Fatal(err)
	}
	if got.Header.Type != unix.RTM_NEWROUTE || got.Header.Flags&netlink.Replace == 0 {
		t.Fatalf("header %+v", got.Header)
	}
	d := got.Data
	if d[0] != unix.AF_INET || d[1] != 0 || d[4] != unix.RT_TABLE_UNSPEC || d[5] != rtprotMeshnode || d[7] != unix.RTN_UNICAST {
		t.Fatalf("rtmsg % x", d[:12])
	}
	ad, err := netlink.NewAttributeDecoder(d[12:])
	if err != nil {
		t.Fatal(err)
	}
	var table uint32
	var mp []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_TABLE:
			table = ad.Uint32()
		case unix.RTA_MULTIPATH:
			mp = ad.Bytes()
		}
	}
	if table != 4200 || len(mp) != 16+8 {
		t.Fatalf("table %d multipath % x", table, mp)
	}
	// First nexthop: len 16, hops = weight-1, ifindex 2, RTA_GATEWAY.
	if binary.NativeEndian.Uint16(mp) != 16 || mp[3] != 2 || binary.NativeEndian.Uint32(mp[4:]) != 2 ||
		binary.NativeEndian.Uint16(mp[10:]) != unix.RTA_GATEWAY || netip.AddrFrom4([4]byte(mp[12:16])) != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("first hop % x", mp[:16])
	}
	if binary.NativeEndian.Uint16(mp[16:]) != 8 || mp[19] != 0 || binary.NativeEndian.Uint32(mp[20:]) != 9 {
		t.Fatalf("second hop % x", mp[16:])
	}
}

func TestDeleteMissingRoute(t *testing.T) {
	c := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req[0].Header.Type != unix.RTM_DELROUTE {
			t.Errorf("type %d", req[0].Header.Type)
		}
		return nltest.Error(int(unix.ESRCH), req)
	})
	k := newKernelConn(c)
	defer k.Close()
	if err := k.SetRoute(Route{Table: 4200}); err != nil {
		t.Fatalf("a missing route is not an error: %v", err)
	}
}

func TestLinkAndGateways(t *testing.T) {
	link := func(idx int32, flags uint32, name string) []byte {
		b := make([]byte, unix.SizeofIfInfomsg)
		binary.NativeEndian.PutUint32(b[4:], uint32(idx))
		binary.NativeEndian.PutUint32(b[8:], flags)
		ae := netlink.NewAttributeEncoder()
		ae.String(unix.IFLA_IFNAME, name)
		return append(b, mustEncode(ae)...)
	}
	route := func(table uint32, dstLen uint8, oif, metric uint32, gw string) []byte {
		b := rtmsg(0, 3, 0, unix.RTN_UNICAST)
		b[1] = dstLen
		ae := netlink.NewAttributeEncoder()
		ae.Uint32(unix.RTA_TABLE, table)
		ae.Uint32(unix.RTA_OIF, oif)
		ae.Uint32(unix.RTA_PRIORITY, metric)
		ae.Bytes(unix.RTA_GATEWAY, netip.MustParseAddr(gw).AsSlice())
		return append(b, mustEncode(ae)...)
	}
	c := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		switch req[0].Header.Type {
		case unix.RTM_GETLINK:
			if string(req[0].Data[unix.SizeofIfInfomsg+4:unix.SizeofIfInfomsg+8]) == "gone" {
				return nltest.Error(int(unix.ENODEV), req)
			}
			return []netlink.Message{{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: req[0].Header.Sequence,
				PID: req[0].Header.PID}, Data: link(2, unix.IFF_UP|unix.IFF_LOWER_UP, "eth1")}}, nil
		case unix.RTM_GETROUTE:
			msgs := []netlink.Message{
				{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: route(254, 0, 2, 20, "192.0.2.1")},
				{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: route(254, 0, 2, 10, "192.0.2.9")},
				{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: route(4200, 0, 3, 0, "198.51.100.1")},
				{Header: netlink.Header{Type: unix.RTM_NEWROUTE}, Data: route(254, 24, 3, 0, "198.51.100.1")},
				{Data: make([]byte, 4)}, // NLMSG_DONE, error 0
			}
			for i := range msgs {
				msgs[i].Header.Sequence, msgs[i].Header.PID = req[0].Header.Sequence, req[0].Header.PID
			}
			return nltest.Multipart(msgs)
		}
		return nil, errors.New("unexpected")
	})
	k := newKernelConn(c)
	defer k.Close()
	l, err := k.Link("eth1")
	if err != nil || l != (Link{Index: 2, Name: "eth1", Up: true}) {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := k.Link("gone"); !errors.Is(err, ErrNoLink) {
		t.Fatalf("missing link: %v", err)
	}
	gws, err := k.Gateways()
	if err != nil || len(gws) != 1 || gws[2] != netip.MustParseAddr("192.0.2.9") {
		t.Fatalf("main-table defaults by lowest metric only: %v %v", gws, err)
	}
}
