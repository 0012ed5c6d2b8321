//go:build linux

package wan

import (
	"errors"
	"net/netip"
	"slices"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/rtnl"
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

func ctType(msg uint16) uint16 { return unix.NFNL_SUBSYS_CTNETLINK<<8 | msg }

// nfgenmsg is struct nfgenmsg for IPv4.
func nfgenmsg() rtnl.Msg { return rtnl.Msg{unix.AF_INET, unix.NFNETLINK_V0, 0, 0} }

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
	a := rtnl.Parse(data[nl.SizeofNfgenmsg:])
	for a.Next() {
		switch a.Type {
		case ctaTupleOrig:
			e.orig = a.Val
			e.origSrc, _, a.Err = tupleAddrs(e.orig)
		case ctaTupleReply:
			_, e.replyDst, a.Err = tupleAddrs(a.Val)
		case ctaID:
			e.id = a.Val
		case ctaZone:
			e.zone = a.Val
		}
	}
	return e, a.Err
}

// tupleAddrs reads the IPv4 source and destination of a tuple.
func tupleAddrs(b []byte) (src, dst netip.Addr, err error) {
	a := rtnl.Parse(b)
	for a.Next() {
		if a.Type != ctaTupleIP {
			continue
		}
		ip := rtnl.Parse(a.Val)
		for ip.Next() {
			v, ok := netip.AddrFromSlice(ip.Val)
			switch {
			case !ok:
			case ip.Type == ctaIPv4Src:
				src = v
			case ip.Type == ctaIPv4Dst:
				dst = v
			}
		}
		if ip.Err != nil {
			return src, dst, ip.Err
		}
	}
	return src, dst, a.Err
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

// ctDeleteRequest is the body of IPCTNL_MSG_CT_DELETE for the entry e was
// read from.
func ctDeleteRequest(e ctEntry) []byte {
	m := nfgenmsg()
	m.Attr(rtnl.Nested|ctaTupleOrig, e.orig)
	if e.zone != nil {
		m.Attr(ctaZone, e.zone)
	}
	if e.id != nil {
		// The same flow, not a new one that reused the tuple.
		m.Attr(ctaID, e.id)
	}
	return m
}

// FlushNAT implements Kernel.
func (k *NetlinkKernel) FlushNAT(addrs []netip.Addr) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	msgs, err := rtnl.Do(k.c, unix.NETLINK_NETFILTER, ctType(ctMsgGet), unix.NLM_F_DUMP, nfgenmsg(), 0)
	if err != nil {
		return 0, errfmt.Errorf("reading conntrack entries: %w", err)
	}
	n := 0
	for _, e := range natEntries(msgs, addrs) {
		_, err := rtnl.Do(k.c, unix.NETLINK_NETFILTER, ctType(ctMsgDelete), unix.NLM_F_ACK, ctDeleteRequest(e), 0)
		if errors.Is(err, unix.ENOENT) {
			continue // ended meanwhile
		}
		if err != nil {
			return n, errfmt.Errorf("deleting a conntrack entry: %w", err)
		}
		n++
	}
	return n, nil
}

// Addrs implements Kernel.
func (k *NetlinkKernel) Addrs(ifindex int) ([]netip.Addr, error) {
	req := make([]byte, unix.SizeofIfAddrmsg)
	req[0] = unix.AF_INET
	msgs, err := rtnl.Do(k.c, unix.NETLINK_ROUTE, unix.RTM_GETADDR, unix.NLM_F_DUMP, req, unix.RTM_NEWADDR)
	if err != nil {
		return nil, errfmt.Errorf("reading addresses: %w", err)
	}
	return addrsOf(msgs, ifindex), nil
}

// addrsOf picks the IPv4 addresses of one interface out of an address
// dump.
func addrsOf(msgs [][]byte, ifindex int) []netip.Addr {
	var out []netip.Addr
	for _, d := range msgs {
		if len(d) < unix.SizeofIfAddrmsg || d[0] != unix.AF_INET || rtnl.U32(d, 4) != uint32(ifindex) {
			continue
		}
		var local, addr []byte
		a := rtnl.Parse(d[unix.SizeofIfAddrmsg:])
		for a.Next() {
			switch a.Type {
			case unix.IFA_LOCAL:
				local = a.Val
			case unix.IFA_ADDRESS:
				addr = a.Val
			}
		}
		// On point-to-point links IFA_ADDRESS is the peer.
		if len(local) != 4 {
			local = addr
		}
		if a.Err == nil && len(local) == 4 {
			out = append(out, netip.AddrFrom4([4]byte(local)))
		}
	}
	return out
}
