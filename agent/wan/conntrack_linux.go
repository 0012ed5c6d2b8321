//go:build linux

package wan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink/nl"
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

func ctType(msg int) int { return unix.NFNL_SUBSYS_CTNETLINK<<8 | msg }

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
	if len(data) < nl.SizeofNfgenmsg {
		return e, errors.New("short nfgenmsg")
	}
	if data[0] != unix.AF_INET {
		return e, nil
	}
	as, err := attrs(data[nl.SizeofNfgenmsg:])
	if err != nil {
		return e, err
	}
	for _, a := range as {
		switch a.Attr.Type {
		case ctaTupleOrig:
			e.orig = a.Value
			e.origSrc, _, err = tupleAddrs(e.orig)
		case ctaTupleReply:
			_, e.replyDst, err = tupleAddrs(a.Value)
		case ctaID:
			e.id = a.Value
		case ctaZone:
			e.zone = a.Value
		}
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

// tupleAddrs reads the IPv4 source and destination of a tuple.
func tupleAddrs(b []byte) (src, dst netip.Addr, err error) {
	as, err := attrs(b)
	if err != nil {
		return src, dst, err
	}
	for _, a := range as {
		if a.Attr.Type != ctaTupleIP {
			continue
		}
		ips, err := attrs(a.Value)
		if err != nil {
			return src, dst, err
		}
		for _, ip := range ips {
			v, ok := netip.AddrFromSlice(ip.Value)
			switch {
			case !ok:
			case ip.Attr.Type == ctaIPv4Src:
				src = v
			case ip.Attr.Type == ctaIPv4Dst:
				dst = v
			}
		}
	}
	return src, dst, nil
}

// natEntries decodes a conntrack dump and keeps the flows masqueraded to
// one of addrs.
func natEntries(msgs [][]byte, addrs []netip.Addr) []ctEntry {
	var out []ctEntry
	for _, m := range msgs {
		if e, err := decodeCT(m); err == nil && e.natTo(addrs) {
			out = append(out, e)
		}
	}
	return out
}

// ctDeleteRequest deletes the entry e was read from.
func ctDeleteRequest(e ctEntry) *nl.NetlinkRequest {
	b := appendAttr(nfgenmsg(), unix.NLA_F_NESTED|ctaTupleOrig, e.orig)
	if e.zone != nil {
		b = appendAttr(b, ctaZone, e.zone)
	}
	if e.id != nil {
		// The same flow, not a new one that reused the tuple.
		b = appendAttr(b, ctaID, e.id)
	}
	return request(ctType(ctMsgDelete), unix.NLM_F_ACK, b)
}

// FlushNAT implements Kernel.
func (k *NetlinkKernel) FlushNAT(addrs []netip.Addr) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	if k.socks[unix.NETLINK_NETFILTER] == nil {
		s, err := openSocket(k.netns, unix.NETLINK_NETFILTER)
		if err != nil {
			return 0, fmt.Errorf("open ctnetlink: %w", err)
		}
		k.socks[unix.NETLINK_NETFILTER] = s
	}
	msgs, err := k.exec(unix.NETLINK_NETFILTER, request(ctType(ctMsgGet), unix.NLM_F_DUMP, nfgenmsg()), 0)
	if err != nil {
		return 0, fmt.Errorf("reading conntrack entries: %w", err)
	}
	n := 0
	for _, e := range natEntries(msgs, addrs) {
		_, err := k.exec(unix.NETLINK_NETFILTER, ctDeleteRequest(e), 0)
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
	msgs, err := k.exec(unix.NETLINK_ROUTE, request(unix.RTM_GETADDR, unix.NLM_F_DUMP, req), unix.RTM_NEWADDR)
	if err != nil {
		return nil, fmt.Errorf("reading addresses: %w", err)
	}
	return addrsOf(msgs, ifindex), nil
}

// addrsOf picks the IPv4 addresses of one interface out of an address
// dump.
func addrsOf(msgs [][]byte, ifindex int) []netip.Addr {
	var out []netip.Addr
	for _, d := range msgs {
		if len(d) < unix.SizeofIfAddrmsg || d[0] != unix.AF_INET ||
			int(binary.NativeEndian.Uint32(d[4:8])) != ifindex {
			continue
		}
		as, err := attrs(d[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		var local, addr netip.Addr
		for _, a := range as {
			v, ok := netip.AddrFromSlice(a.Value)
			switch {
			case !ok:
			case a.Attr.Type == unix.IFA_LOCAL:
				local = v
			case a.Attr.Type == unix.IFA_ADDRESS:
				addr = v
			}
		}
		// On point-to-point links IFA_ADDRESS is the peer.
		if local.IsValid() {
			out = append(out, local)
		} else if addr.IsValid() {
			out = append(out, addr)
		}
	}
	return out
}
