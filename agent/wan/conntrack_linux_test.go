//go:build linux

package wan

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// tuple encodes a conntrack tuple as the kernel dumps it.
func tuple(src, dst string, sport, dport uint16) []byte {
	ip := nl.NewRtAttr(unix.NLA_F_NESTED|ctaTupleIP, nil)
	ip.AddRtAttr(ctaIPv4Src, netip.MustParseAddr(src).AsSlice())
	ip.AddRtAttr(ctaIPv4Dst, netip.MustParseAddr(dst).AsSlice())
	proto := nl.NewRtAttr(unix.NLA_F_NESTED|2, nil) // CTA_TUPLE_PROTO
	proto.AddRtAttr(1, []byte{unix.IPPROTO_UDP})
	proto.AddRtAttr(2, nl.BEUint16Attr(sport))
	proto.AddRtAttr(3, nl.BEUint16Attr(dport))
	return append(ip.Serialize(), proto.Serialize()...)
}

func ctMsg(orig, reply []byte, id uint32) []byte {
	b := append(nfgenmsg(), attr(unix.NLA_F_NESTED|ctaTupleOrig, orig)...)
	b = append(b, attr(unix.NLA_F_NESTED|ctaTupleReply, reply)...)
	return append(b, attr(ctaID, nl.BEUint32Attr(id))...)
}

// TestFlushNAT: of a dump, only flows masqueraded to the given address are
// deleted, each by its original tuple and id; the router's own flows from
// that address and flows masqueraded elsewhere stay.
func TestFlushNAT(t *testing.T) {
	natted := tuple("10.30.0.2", "203.0.113.10", 40000, 7000)
	natted2 := tuple("10.30.0.3", "203.0.113.10", 40001, 7000)
	dump := [][]byte{
		ctMsg(natted, tuple("203.0.113.10", "192.0.2.11", 7000, 40000), 1),
		ctMsg(tuple("192.0.2.11", "203.0.113.10", 4242, 4242), tuple("203.0.113.10", "192.0.2.11", 4242, 4242), 2), // the router's own
		ctMsg(tuple("10.30.0.2", "203.0.113.10", 40002, 7000), tuple("203.0.113.10", "10.40.0.2", 7000, 40002), 3), // another WAN
		{unix.AF_INET6, 0, 0, 0},
		{1, 2},
		ctMsg(natted2, tuple("203.0.113.10", "192.0.2.11", 7000, 40001), 4),
	}
	es := natEntries(dump, []netip.Addr{netip.MustParseAddr("192.0.2.11")})
	if len(es) != 2 {
		t.Fatalf("%d entries to delete", len(es))
	}
	var ids []uint32
	for i, e := range es {
		d := ctDeleteRequest(e)
		if !bytes.Equal(d[:4], []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0}) {
			t.Fatalf("nfgenmsg % x", d[:4])
		}
		as, err := nl.ParseRouteAttr(d[4:])
		if err != nil {
			t.Fatal(err)
		}
		var orig []byte
		for _, a := range as {
			switch a.Attr.Type &^ unix.NLA_F_NESTED {
			case ctaTupleOrig:
				if a.Attr.Type&unix.NLA_F_NESTED == 0 {
					t.Error("CTA_TUPLE_ORIG not marked nested")
				}
				orig = a.Value
			case ctaID:
				ids = append(ids, binary.BigEndian.Uint32(a.Value))
			default:
				t.Errorf("attribute %d", a.Attr.Type)
			}
		}
		if !bytes.Equal(orig, [][]byte{natted, natted2}[i]) {
			t.Errorf("entry %d deleted by % x", i, orig)
		}
	}
	if !slices.Equal(ids, []uint32{1, 4}) {
		t.Fatalf("ids %v", ids)
	}

	// A zone goes back with the delete; an entry without id is deleted by
	// its tuple alone.
	zone := append(nfgenmsg(), attr(unix.NLA_F_NESTED|ctaTupleOrig, natted)...)
	zone = append(zone, attr(unix.NLA_F_NESTED|ctaTupleReply, tuple("203.0.113.10", "192.0.2.11", 7000, 40000))...)
	zone = append(zone, attr(ctaZone, nl.BEUint16Attr(7))...)
	es = natEntries([][]byte{zone}, []netip.Addr{netip.MustParseAddr("192.0.2.11")})
	if len(es) != 1 {
		t.Fatal("zoned entry not found")
	}
	d := ctDeleteRequest(es[0])
	if a := attrMap(t, d[4:]); binary.BigEndian.Uint16(a[ctaZone]) != 7 || a[ctaID] != nil {
		t.Fatalf("zoned delete %v", a)
	}

	var k NetlinkKernel
	if n, err := k.FlushNAT(nil); n != 0 || err != nil {
		t.Fatalf("no addresses: %d %v", n, err)
	}
}

func TestAddrs(t *testing.T) {
	addr := func(idx uint32, local, peer string) []byte {
		b := make([]byte, unix.SizeofIfAddrmsg)
		b[0] = unix.AF_INET
		binary.NativeEndian.PutUint32(b[4:], idx)
		b = append(b, attr(unix.IFA_ADDRESS, netip.MustParseAddr(peer).AsSlice())...)
		if local != "" {
			b = append(b, attr(unix.IFA_LOCAL, netip.MustParseAddr(local).AsSlice())...)
		}
		return b
	}
	dump := [][]byte{
		addr(2, "192.0.2.2", "192.0.2.2"),
		addr(3, "100.64.0.5", "100.64.0.1"), // PPP: peer in IFA_ADDRESS
		addr(3, "", "198.51.100.9"),
		{unix.AF_INET, 0},
	}
	got := addrsOf(dump, 3)
	if !slices.Equal(got, []netip.Addr{netip.MustParseAddr("100.64.0.5"), netip.MustParseAddr("198.51.100.9")}) {
		t.Fatalf("%v", got)
	}
}
