//go:build linux

package wan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// tuple encodes a conntrack tuple as the kernel dumps it.
func tuple(src, dst string, sport, dport uint16) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(ctaTupleIP, func(nae *netlink.AttributeEncoder) error {
		nae.Bytes(ctaIPv4Src, netip.MustParseAddr(src).AsSlice())
		nae.Bytes(ctaIPv4Dst, netip.MustParseAddr(dst).AsSlice())
		return nil
	})
	ae.Nested(2, func(nae *netlink.AttributeEncoder) error { // CTA_TUPLE_PROTO
		nae.Uint8(1, unix.IPPROTO_UDP)
		nae.ByteOrder = binary.BigEndian
		nae.Uint16(2, sport)
		nae.Uint16(3, dport)
		return nil
	})
	return mustEncode(ae)
}

func ctMsg(orig, reply []byte, id uint32) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(netlink.Nested|ctaTupleOrig, orig)
	ae.Bytes(netlink.Nested|ctaTupleReply, reply)
	ae.ByteOrder = binary.BigEndian
	ae.Uint32(ctaID, id)
	return append(nfgenmsg(), mustEncode(ae)...)
}

// TestFlushNAT: of a dump, only flows masqueraded to the given address are
// deleted, each by its original tuple and id; the router's own flows from
// that address and flows masqueraded elsewhere stay; an entry that ended
// meanwhile is no error.
func TestFlushNAT(t *testing.T) {
	natted := tuple("10.30.0.2", "203.0.113.10", 40000, 7000)
	gone := tuple("10.30.0.3", "203.0.113.10", 40001, 7000)
	dump := [][]byte{
		ctMsg(natted, tuple("203.0.113.10", "192.0.2.11", 7000, 40000), 1),
		ctMsg(tuple("192.0.2.11", "203.0.113.10", 4242, 4242), tuple("203.0.113.10", "192.0.2.11", 4242, 4242), 2), // the router's own
		ctMsg(tuple("10.30.0.2", "203.0.113.10", 40002, 7000), tuple("203.0.113.10", "10.40.0.2", 7000, 40002), 3), // another WAN
		ctMsg(gone, tuple("203.0.113.10", "192.0.2.11", 7000, 40001), 4),
	}
	var deleted [][]byte
	var ids []uint32
	c := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		r := req[0]
		if r.Data[0] != unix.AF_INET {
			t.Errorf("family %d", r.Data[0])
		}
		switch r.Header.Type {
		case ctType(ctMsgGet):
			if r.Header.Flags&netlink.Dump == 0 {
				t.Error("get without dump")
			}
			var msgs []netlink.Message
			for _, d := range dump {
				msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: ctType(0)}, Data: d})
			}
			msgs = append(msgs, netlink.Message{Data: make([]byte, 4)})
			for i := range msgs {
				msgs[i].Header.Sequence, msgs[i].Header.PID = r.Header.Sequence, r.Header.PID
			}
			return nltest.Multipart(msgs)
		case ctType(ctMsgDelete):
			ad, err := netlink.NewAttributeDecoder(r.Data[4:])
			if err != nil {
				return nil, err
			}
			var orig []byte
			for ad.Next() {
				switch ad.Type() {
				case ctaTupleOrig:
					if ad.TypeFlags()&netlink.Nested == 0 {
						t.Error("CTA_TUPLE_ORIG not marked nested")
					}
					orig = ad.Bytes()
				case ctaID:
					ids = append(ids, binary.BigEndian.Uint32(ad.Bytes()))
				}
			}
			deleted = append(deleted, orig)
			if bytes.Equal(orig, gone) {
				return nltest.Error(int(unix.ENOENT), req)
			}
			return nltest.Error(0, req)
		}
		return nil, errors.New("unexpected message")
	})
	k := newKernelConn(c)
	defer k.Close()
	k.ct = c
	n, err := k.FlushNAT([]netip.Addr{netip.MustParseAddr("192.0.2.11")})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(deleted) != 2 || !bytes.Equal(deleted[0], natted) || !bytes.Equal(deleted[1], gone) ||
		!slices.Equal(ids, []uint32{1, 4}) {
		t.Fatalf("deleted %d: %d requests, ids %v", n, len(deleted), ids)
	}
	if n, err := k.FlushNAT(nil); n != 0 || err != nil {
		t.Fatalf("no addresses: %d %v", n, err)
	}
}

func TestAddrs(t *testing.T) {
	addr := func(idx uint32, local, peer string) []byte {
		b := make([]byte, unix.SizeofIfAddrmsg)
		b[0] = unix.AF_INET
		binary.NativeEndian.PutUint32(b[4:], idx)
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(unix.IFA_ADDRESS, netip.MustParseAddr(peer).AsSlice())
		if local != "" {
			ae.Bytes(unix.IFA_LOCAL, netip.MustParseAddr(local).AsSlice())
		}
		return append(b, mustEncode(ae)...)
	}
	c := nltest.Dial(func(req []netlink.Message) ([]netlink.Message, error) {
		msgs := []netlink.Message{
			{Header: netlink.Header{Type: unix.RTM_NEWADDR}, Data: addr(2, "192.0.2.2", "192.0.2.2")},
			{Header: netlink.Header{Type: unix.RTM_NEWADDR}, Data: addr(3, "100.64.0.5", "100.64.0.1")}, // PPP: peer in IFA_ADDRESS
			{Header: netlink.Header{Type: unix.RTM_NEWADDR}, Data: addr(3, "", "198.51.100.9")},
			{Data: make([]byte, 4)},
		}
		for i := range msgs {
			msgs[i].Header.Sequence, msgs[i].Header.PID = req[0].Header.Sequence, req[0].Header.PID
		}
		return nltest.Multipart(msgs)
	})
	k := newKernelConn(c)
	defer k.Close()
	got, err := k.Addrs(3)
	if err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("100.64.0.5"), netip.MustParseAddr("198.51.100.9")}) {
		t.Fatalf("%v %v", got, err)
	}
}
