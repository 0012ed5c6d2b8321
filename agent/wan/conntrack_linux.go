//go:build linux

package wan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctnetlink (linux/netfilter/nfnetlink_conntrack.h): the few messages the
// NAT flush needs, written out like the rtnetlink ones. A dump and a
// delete per matching entry work on every kernel OpenWrt ships; the
// kernel-side delete filter needs 6.8 or later.
const (
	ctMsgGet    = 1 // IPCTNL_MSG_CT_GET
	ctMsgDelete = 2 // IPCTNL_MSG_CT_DELETE

	ctaTupleOrig  = 1  // CTA_TUPLE_ORIG
	ctaTupleReply = 2  // CTA_TUPLE_REPLY
	ctaID         = 12 // CTA_ID
	ctaZone       = 18 // CTA_ZONE
	ctaTupleIP    = 1  // CTA_TUPLE_IP
	ctaIPv4Src    = 1  // CTA_IP_V4_SRC
	ctaIPv4Dst    = 2  // CTA_IP_V4_DST
)

func ctType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | msg)
}

// nfgenmsg is struct nfgenmsg for IPv4.
func nfgenmsg() []byte { return []byte{unix.AF_INET, unix.NFNETLINK_V0, 0, 0} }

// ctEntry is a conntrack entry reduced to what the flush decides on, and
// what deleting it takes.
type ctEntry struct {
	origSrc, replyDst netip.Addr
	orig              []byte // CTA_TUPLE_ORIG's payload, sent back to delete it
	id, zone          []byte
}

// natTo reports whether the entry is a flow masqueraded to one of addrs.
// The router's own flows from that address (original source = reply
// destination) carry no mapping and are left alone.
func (e ctEntry) natTo(addrs []netip.Addr) bool {
	return e.replyDst.IsValid() && e.origSrc != e.replyDst && slices.Contains(addrs, e.replyDst)
}

func decodeCT(data []byte) (ctEntry, error) {
	var e ctEntry
	if len(data) < 4 {
		return e, errors.New("short nfgenmsg")
	}
	if data[0] != unix.AF_INET {
		return e, nil
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return e, err
	}
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			e.orig = ad.Bytes()
			e.origSrc, _, err = tupleAddrs(e.orig)
		case ctaTupleReply:
			_, e.replyDst, err = tupleAddrs(ad.Bytes())
		case ctaID:
			e.id = ad.Bytes()
		case ctaZone:
			e.zone = ad.Bytes()
		}
		if err != nil {
			return e, err
		}
	}
	return e, ad.Err()
}

// tupleAddrs reads the IPv4 source and destination of a tuple.
func tupleAddrs(b []byte) (src, dst netip.Addr, err error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return src, dst, err
	}
	for ad.Next() {
		if ad.Type() != ctaTupleIP {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				a, ok := netip.AddrFromSlice(nad.Bytes())
				switch {
				case !ok:
				case nad.Type() == ctaIPv4Src:
					src = a
				case nad.Type() == ctaIPv4Dst:
					dst = a
				}
			}
			return nil
		})
	}
	return src, dst, ad.Err()
}

func (k *NetlinkKernel) conntrack() (*netlink.Conn, error) {
	if k.ct != nil {
		return k.ct, nil
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return nil, fmt.Errorf("open ctnetlink: %w", err)
	}
	k.ct = c
	return c, nil
}

// FlushNAT implements Kernel.
func (k *NetlinkKernel) FlushNAT(addrs []netip.Addr) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	c, err := k.conntrack()
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: ctType(ctMsgGet), Flags: netlink.Request | netlink.Dump},
		Data:   nfgenmsg(),
	})
	if err != nil {
		return 0, fmt.Errorf("reading conntrack entries: %w", err)
	}
	n := 0
	for _, m := range msgs {
		e, err := decodeCT(m.Data)
		if err != nil || !e.natTo(addrs) {
			continue
		}
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(netlink.Nested|ctaTupleOrig, e.orig)
		if e.zone != nil {
			ae.Bytes(ctaZone, e.zone)
		}
		if e.id != nil {
			// The same flow, not a new one that reused the tuple.
			ae.Bytes(ctaID, e.id)
		}
		_, err = c.Execute(netlink.Message{
			Header: netlink.Header{Type: ctType(ctMsgDelete), Flags: netlink.Request | netlink.Acknowledge},
			Data:   append(nfgenmsg(), mustEncode(ae)...),
		})
		if errors.Is(err, unix.ENOENT) {
			continue // ended meanwhile
		}
		if err != nil {
			return n, fmt.Errorf("deleting a conntrack entry: %w", err)
		}
		n++
	}
	return n, nil
}

// Addrs implements Kernel.
func (k *NetlinkKernel) Addrs(ifindex int) ([]netip.Addr, error) {
	req := make([]byte, unix.SizeofIfAddrmsg)
	req[0] = unix.AF_INET
	msgs, err := k.exec(unix.RTM_GETADDR, netlink.Dump, req)
	if err != nil {
		return nil, fmt.Errorf("reading addresses: %w", err)
	}
	var out []netip.Addr
	for _, m := range msgs {
		d := m.Data
		if len(d) < unix.SizeofIfAddrmsg || d[0] != unix.AF_INET ||
			int(binary.NativeEndian.Uint32(d[4:8])) != ifindex {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(d[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		var local, addr netip.Addr
		for ad.Next() {
			a, ok := netip.AddrFromSlice(ad.Bytes())
			switch {
			case !ok:
			case ad.Type() == unix.IFA_LOCAL:
				local = a
			case ad.Type() == unix.IFA_ADDRESS:
				addr = a
			}
		}
		// On point-to-point links IFA_ADDRESS is the peer.
		if local.IsValid() {
			out = append(out, local)
		} else if addr.IsValid() {
			out = append(out, addr)
		}
	}
	return out, nil
}
