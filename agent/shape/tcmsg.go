package shape

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/rtnl"
)

// The rtnetlink traffic control codec: struct tcmsg followed by
// attributes, laid out as in linux/rtnetlink.h, pkt_sched.h, pkt_cls.h,
// gen_stats.h and tc_act/tc_mirred.h. Netlink is host byte order; u32 key
// values and masks and the filter protocol are network byte order.

// Attribute types, by the enum they come from.
const (
	tcaKind    = 1 // TCA_*
	tcaOptions = 2
	tcaStats2  = 7

	htbParms  = 1 // TCA_HTB_*
	htbInit   = 2
	htbRate64 = 6
	htbCeil64 = 7

	fqCodelLimit = 2 // TCA_FQ_CODEL_LIMIT
	cakeBaseRate = 2 // TCA_CAKE_BASE_RATE64

	u32ClassID = 1 // TCA_U32_*
	u32Sel     = 5
	u32Act     = 7
	u32Mark    = 10

	actKind    = 1 // TCA_ACT_*
	actOptions = 2
	mirredParm = 2 // TCA_MIRRED_PARMS

	statsBasic = 1 // TCA_STATS_*
	statsQueue = 3
	statsPkt64 = 8

	iflaLinkinfo = 18 // IFLA_*
	iflaInfoKind = 1
)

// Sizes of the fixed structures.
const (
	sizeTcmsg   = 20 // struct tcmsg
	sizeHTBOpt  = 44 // struct tc_htb_opt
	sizeHTBGlob = 20 // struct tc_htb_glob
	sizeU32Sel  = 16 // struct tc_u32_sel without keys
	sizeU32Key  = 16 // struct tc_u32_key
	sizeU32Mark = 12 // struct tc_u32_mark
	sizeMirred  = 28 // struct tc_mirred
	sizeSfqQopt = 20 // struct tc_sfq_qopt
)

// Other kernel constants.
const (
	tcHRoot       = 0xffffffff // TC_H_ROOT
	tcHIngress    = 0xfffffff1 // TC_H_INGRESS
	tcActStolen   = 4          // TC_ACT_STOLEN
	tcEgressRedir = 1          // TCA_EGRESS_REDIR
	u32Terminal   = 1          // TC_U32_TERMINAL
	htbVersion    = 3          // TC_HTB_PROTOVER
	kindMax       = 15         // TCKINDSIZ less the NUL
	actMaxPrio    = 32         // TCA_ACT_MAX_PRIO
)

// be16 converts between host order and network order; the kernel keeps
// the filter protocol in network order in the low half of tcm_info.
func be16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func u16at(b []byte, off int) uint16 { return binary.NativeEndian.Uint16(b[off:]) }
func u32at(b []byte, off int) uint32 { return rtnl.U32(b, off) }

// fmtHandle prints a handle as tc(8) does, major:minor in hex.
func fmtHandle(h uint32) string {
	switch h {
	case tcHRoot:
		return "root"
	case tcHIngress:
		return "ingress"
	}
	return fmt.Sprintf("%x:%x", h>>16, h&0xffff)
}

// newTcmsg starts a message with struct tcmsg (family AF_UNSPEC).
func newTcmsg(ifindex, handle, parent, info uint32) rtnl.Msg {
	return rtnl.Words(0, ifindex, handle, parent, info)
}

// newIfinfomsg starts a message with struct ifinfomsg (family AF_UNSPEC).
func newIfinfomsg(index, flags, change uint32) rtnl.Msg {
	return rtnl.Words(0, index, flags, change)
}

// encodeDelete is the body of RTM_DELQDISC, RTM_DELTCLASS or
// RTM_DELTFILTER: the object's address, and its kind if known, which the
// kernel checks.
func encodeDelete(ifindex, handle, parent, info uint32, kind string) []byte {
	m := newTcmsg(ifindex, handle, parent, info)
	if kind != "" {
		m.Str(tcaKind, kind)
	}
	return m
}

// encodeQdisc is the body of RTM_NEWQDISC.
func encodeQdisc(q *Qdisc) []byte {
	m := newTcmsg(q.Ifindex, q.Handle, q.Parent, 0)
	m.Str(tcaKind, q.Kind)
	switch q.Kind {
	case "htb":
		// struct tc_htb_glob; rate2quantum is tc's default, and moot as
		// every class sets its quantum.
		n := m.Nest(tcaOptions)
		m.Attr(htbInit, rtnl.Words(htbVersion, 10, q.Defcls, 0, 0))
		m.End(n)
	case "fq_codel":
		if q.Limit != 0 {
			n := m.Nest(tcaOptions)
			m.U32(fqCodelLimit, q.Limit)
			m.End(n)
		}
	case "cake":
		// Base rate 0 is unlimited: HTB above does the rate limiting.
		n := m.Nest(tcaOptions)
		m.U64(cakeBaseRate, 0)
		m.End(n)
	case "sfq":
		// struct tc_sfq_qopt, not nested; zeros keep the kernel's defaults
		m.Attr(tcaOptions, rtnl.Words(0, uint32(q.Perturb), 0, 0, 0))
	case "pfifo", "bfifo":
		m.U32(tcaOptions, q.Limit) // struct tc_fifo_qopt, not nested
	}
	return m
}

// appendRatespec appends struct tc_ratespec: cell_log, linklayer,
// overhead, cell_align, mpu, rate.
func appendRatespec(b []byte, r RateSpec) []byte {
	b = append(b, 0, r.Linklayer)
	b = binary.NativeEndian.AppendUint16(b, r.Overhead)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint16(b, r.MPU)
	return binary.NativeEndian.AppendUint32(b, uint32(min(r.Rate, 1<<32-1)))
}

// encodeClass is the body of RTM_NEWTCLASS.
func encodeClass(c *TCClass) []byte {
	m := newTcmsg(c.Ifindex, c.Handle, c.Parent, 0)
	m.Str(tcaKind, c.Kind)
	if c.Kind != "htb" {
		return m
	}
	h := c.HTB
	// struct tc_htb_opt: rate, ceil, buffer, cbuffer, quantum, level, prio
	o := appendRatespec(appendRatespec(make([]byte, 0, sizeHTBOpt), h.Rate), h.Ceil)
	o = append(o, rtnl.Words(h.Buffer, h.Cbuffer, h.Quantum, 0, h.Prio)...)
	n := m.Nest(tcaOptions)
	m.Attr(htbParms, o)
	// The 32-bit fields saturate at 34 Gbit/s; the kernel takes the
	// larger of them and the 64-bit attribute.
	if h.Rate.Rate >= 1<<32 {
		m.U64(htbRate64, h.Rate.Rate)
	}
	if h.Ceil.Rate >= 1<<32 {
		m.U64(htbCeil64, h.Ceil.Rate)
	}
	m.End(n)
	return m
}

// filterInfo is tcm_info of a filter: priority and protocol.
func filterInfo(f *Filter) uint32 { return uint32(f.Prio)<<16 | uint32(be16(f.Protocol)) }

// encodeFilter is the body of RTM_NEWTFILTER.
func encodeFilter(f *Filter) []byte {
	m := newTcmsg(f.Ifindex, f.Handle, f.Parent, filterInfo(f))
	m.Str(tcaKind, f.Kind)
	u := f.U32
	if f.Kind != "u32" || u == nil {
		return m
	}
	n := m.Nest(tcaOptions)
	if u.ClassID != 0 {
		m.U32(u32ClassID, u.ClassID)
	}
	sel := make([]byte, sizeU32Sel, sizeU32Sel+sizeU32Key*len(u.Keys))
	sel[0] = u32Terminal
	sel[2] = uint8(len(u.Keys))
	for _, k := range u.Keys {
		sel = binary.BigEndian.AppendUint32(sel, k.Mask)
		sel = binary.BigEndian.AppendUint32(sel, k.Val)
		sel = append(sel, rtnl.Words(uint32(k.Off), 0)...) // off, offmask
	}
	m.Attr(u32Sel, sel)
	if u.Mark != (U32Mark{}) {
		m.Attr(u32Mark, rtnl.Words(u.Mark.Val, u.Mark.Mask, 0)) // struct tc_u32_mark
	}
	if len(u.Actions) > 0 {
		acts := m.Nest(u32Act)
		for i, a := range u.Actions {
			an := m.Nest(uint16(i + 1)) // the position is the action's order
			m.Str(actKind, a.Kind)
			if a.Kind == "mirred" {
				// struct tc_mirred: tc_gen's index, capab, action, refcnt,
				// bindcnt, then eaction and ifindex.
				on := m.Nest(actOptions)
				m.Attr(mirredParm, rtnl.Words(0, 0, uint32(a.Verdict), 0, 0, uint32(a.Eaction), a.Ifindex))
				m.End(on)
			}
			m.End(an)
		}
		m.End(acts)
	}
	m.End(n)
	return m
}

// kind reads a TCA_KIND string.
func kind(a *rtnl.Attrs) string {
	s := a.Str()
	if len(s) > kindMax {
		a.Err = errfmt.Errorf("kind %.20q longer than %d bytes", s, kindMax)
		return ""
	}
	return s
}

// tcHead splits a tc message into its tcmsg fields and attributes.
type tcHead struct {
	ifindex, handle, parent, info uint32
	kind                          string
	options, stats2               []byte
}

func decodeHead(what string, b []byte) (tcHead, error) {
	var h tcHead
	if len(b) < sizeTcmsg {
		return h, errfmt.Errorf("%s: %d bytes, shorter than struct tcmsg", what, len(b))
	}
	h.ifindex, h.handle, h.parent, h.info = u32at(b, 4), u32at(b, 8), u32at(b, 12), u32at(b, 16)
	a := rtnl.Parse(b[sizeTcmsg:])
	for a.Next() {
		switch a.Type {
		case tcaKind:
			h.kind = kind(&a)
		case tcaOptions:
			h.options = a.Val
		case tcaStats2:
			h.stats2 = a.Val
		}
	}
	if a.Err == nil && h.kind == "" {
		a.Err = errors.New("no kind")
	}
	if a.Err != nil {
		return h, h.wrap(what, "", a.Err)
	}
	return h, nil
}

// wrap names the object an error is about, and the part of it (with a
// trailing ": ") if any.
func (h tcHead) wrap(what, part string, err error) error {
	k := ""
	if h.kind != "" {
		k = " " + h.kind
	}
	return errfmt.Errorf("%s%s %s parent %s on ifindex %d: %s%w", what, k, fmtHandle(h.handle), fmtHandle(h.parent), h.ifindex, part, err)
}

// decodeQdisc decodes an RTM_NEWQDISC body.
func decodeQdisc(b []byte) (Qdisc, error) {
	h, err := decodeHead("qdisc", b)
	q := Qdisc{Ifindex: h.ifindex, Handle: h.handle, Parent: h.parent, Kind: h.kind}
	if err != nil {
		return q, err
	}
	a := rtnl.Parse(h.options)
	switch q.Kind {
	case "htb":
		for a.Next() {
			if a.Type == htbInit && a.Need(sizeHTBGlob) {
				q.Defcls = u32at(a.Val, 8)
			}
		}
	case "fq_codel":
		for a.Next() {
			if a.Type == fqCodelLimit && a.Need(4) {
				q.Limit = a.U32()
			}
		}
	case "sfq":
		// struct tc_sfq_qopt, not nested (the kernel sends the longer v1)
		if len(h.options) >= sizeSfqQopt {
			q.Perturb = int32(u32at(h.options, 4))
		} else if len(h.options) > 0 {
			a.Err = errfmt.Errorf("%d bytes, want %d", len(h.options), sizeSfqQopt)
		}
	case "pfifo", "bfifo":
		// struct tc_fifo_qopt, not nested
		if len(h.options) >= 4 {
			q.Limit = u32at(h.options, 0)
		} else if len(h.options) > 0 {
			a.Err = errfmt.Errorf("%d bytes, want 4", len(h.options))
		}
	}
	if a.Err != nil {
		return q, h.wrap("qdisc", "options: ", a.Err)
	}
	return q, nil
}

func ratespec(b []byte) RateSpec {
	return RateSpec{Linklayer: b[1], Overhead: u16at(b, 2), MPU: u16at(b, 6), Rate: uint64(u32at(b, 8))}
}

// decodeClass decodes an RTM_NEWTCLASS body.
func decodeClass(b []byte) (TCClass, error) {
	h, err := decodeHead("class", b)
	c := TCClass{Ifindex: h.ifindex, Handle: h.handle, Parent: h.parent, Kind: h.kind}
	if err != nil {
		return c, err
	}
	a := rtnl.Parse(h.options)
	if c.Kind == "htb" {
		var r64, c64 uint64
		for a.Next() {
			switch {
			case a.Type == htbParms && a.Need(sizeHTBOpt):
				o := a.Val
				c.HTB = HTBClass{Rate: ratespec(o[0:]), Ceil: ratespec(o[12:]), Buffer: u32at(o, 24),
					Cbuffer: u32at(o, 28), Quantum: u32at(o, 32), Prio: u32at(o, 40)}
			case a.Type == htbRate64 && a.Need(8):
				r64 = a.U64()
			case a.Type == htbCeil64 && a.Need(8):
				c64 = a.U64()
			}
		}
		// The kernel sends the 64-bit rates only when the 32-bit ones saturate.
		if r64 != 0 {
			c.HTB.Rate.Rate = r64
		}
		if c64 != 0 {
			c.HTB.Ceil.Rate = c64
		}
	}
	if a.Err != nil {
		return c, h.wrap("class", "options: ", a.Err)
	}
	s := rtnl.Parse(h.stats2)
	var pkt64 uint64
	for s.Next() {
		switch {
		case s.Type == statsBasic && s.Need(12): // struct gnet_stats_basic
			c.Stats.Bytes, c.Stats.Packets = s.U64(), uint64(u32at(s.Val, 8))
		case s.Type == statsQueue && s.Need(20): // struct gnet_stats_queue
			v := s.Val
			c.Stats.Qlen, c.Stats.Backlog = u32at(v, 0), u32at(v, 4)
			c.Stats.Drops, c.Stats.Overlimits = u32at(v, 8), u32at(v, 16)
		case s.Type == statsPkt64 && s.Need(8):
			pkt64 = s.U64() // the full count where the basic one wraps at 2^32
		}
	}
	if pkt64 != 0 {
		c.Stats.Packets = pkt64
	}
	if s.Err != nil {
		return c, h.wrap("class", "statistics: ", s.Err)
	}
	return c, nil
}

// decodeFilter decodes an RTM_NEWTFILTER body.
func decodeFilter(b []byte) (Filter, error) {
	h, err := decodeHead("filter", b)
	f := Filter{Ifindex: h.ifindex, Parent: h.parent, Handle: h.handle, Kind: h.kind,
		Prio: uint16(h.info >> 16), Protocol: be16(uint16(h.info))}
	if err != nil {
		return f, err
	}
	if f.Kind != "u32" {
		return f, nil
	}
	var u U32
	sel := false
	a := rtnl.Parse(h.options)
	for a.Next() {
		switch {
		case a.Type == u32ClassID && a.Need(4):
			u.ClassID = a.U32()
		case a.Type == u32Sel && a.Need(sizeU32Sel):
			n := int(a.Val[2])
			if !a.Need(sizeU32Sel + n*sizeU32Key) {
				break
			}
			sel, u.Keys = true, nil
			for i := range n {
				k := a.Val[sizeU32Sel+i*sizeU32Key:]
				u.Keys = append(u.Keys, U32Key{Mask: binary.BigEndian.Uint32(k),
					Val: binary.BigEndian.Uint32(k[4:]), Off: int32(u32at(k, 8))})
			}
		case a.Type == u32Mark && a.Need(sizeU32Mark):
			u.Mark = U32Mark{Val: a.U32(), Mask: u32at(a.Val, 4)}
		case a.Type == u32Act:
			u.Actions, a.Err = decodeActions(a.Val)
		}
	}
	if a.Err != nil {
		return f, h.wrap("filter", "options: ", a.Err)
	}
	if sel {
		f.U32 = &u
	}
	return f, nil
}

// decodeActions decodes a TCA_U32_ACT list, in the order given.
func decodeActions(b []byte) ([]Action, error) {
	var out []Action
	l := rtnl.Parse(b)
	for l.Next() {
		if len(out) == actMaxPrio {
			return nil, errfmt.Errorf("more than %d actions", actMaxPrio)
		}
		var act Action
		var opts []byte
		a := rtnl.Parse(l.Val)
		for a.Next() {
			switch a.Type {
			case actKind:
				act.Kind = kind(&a)
			case actOptions:
				opts = a.Val
			}
		}
		if a.Err == nil && act.Kind == "" {
			a.Err = errors.New("no kind")
		}
		if a.Err == nil && act.Kind == "mirred" {
			o := rtnl.Parse(opts)
			for o.Next() {
				if o.Type == mirredParm && o.Need(sizeMirred) {
					act.Verdict, act.Eaction = int32(u32at(o.Val, 8)), int32(u32at(o.Val, 20))
					act.Ifindex = u32at(o.Val, 24)
				}
			}
			a.Err = o.Err
		}
		if a.Err != nil {
			return nil, errfmt.Errorf("action %d: %w", len(out)+1, a.Err)
		}
		out = append(out, act)
	}
	return out, l.Err
}

// decodeLink decodes an RTM_NEWLINK or RTM_DELLINK body.
func decodeLink(b []byte) (LinkInfo, error) {
	l, err := rtnl.DecodeLink(b)
	return linkInfo(l), err
}

func linkInfo(l rtnl.Link) LinkInfo {
	return LinkInfo{Index: l.Index, Name: l.Name, MTU: int(l.MTU), Up: l.Flags&1 != 0} // IFF_UP
}
