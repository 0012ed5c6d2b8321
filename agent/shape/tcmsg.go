package shape

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
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

	iflaIfname   = 3 // IFLA_*
	iflaMTU      = 4
	iflaLinkinfo = 18
	iflaInfoKind = 1
)

// Sizes of the fixed structures.
const (
	sizeTcmsg     = 20 // struct tcmsg
	sizeIfinfomsg = 16 // struct ifinfomsg
	sizeHTBOpt    = 44 // struct tc_htb_opt
	sizeHTBGlob   = 20 // struct tc_htb_glob
	sizeU32Sel    = 16 // struct tc_u32_sel without keys
	sizeU32Key    = 16 // struct tc_u32_key
	sizeU32Mark   = 12 // struct tc_u32_mark
	sizeMirred    = 28 // struct tc_mirred
	sizeSfqQopt   = 20 // struct tc_sfq_qopt
)

// Other kernel constants.
const (
	tcHRoot       = 0xffffffff // TC_H_ROOT
	tcHIngress    = 0xfffffff1 // TC_H_INGRESS
	tcActStolen   = 4          // TC_ACT_STOLEN
	tcEgressRedir = 1          // TCA_EGRESS_REDIR
	u32Terminal   = 1          // TC_U32_TERMINAL
	htbVersion    = 3          // TC_HTB_PROTOVER
	nlaNested     = 0x8000     // NLA_F_NESTED
	nlaTypeMask   = 0x3fff     // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
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

// words lays out a C struct made of 32-bit host-order fields.
func words(v ...uint32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, w := range v {
		b = binary.NativeEndian.AppendUint32(b, w)
	}
	return b
}

func u16at(b []byte, off int) uint16 { return binary.NativeEndian.Uint16(b[off:]) }
func u32at(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }

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

// msg builds a netlink message body.
type msg struct{ b []byte }

// newTcmsg starts a message with struct tcmsg (family AF_UNSPEC).
func newTcmsg(ifindex, handle, parent, info uint32) *msg {
	return &msg{b: words(0, ifindex, handle, parent, info)}
}

// newIfinfomsg starts a message with struct ifinfomsg (family AF_UNSPEC).
func newIfinfomsg(index, flags, change uint32) *msg {
	return &msg{b: words(0, index, flags, change)}
}

// attr appends an attribute holding v, padded to 4 bytes. Not inlined:
// it is called often, and the binary's size on routers matters more.
//
//go:noinline
func (m *msg) attr(typ uint16, v []byte) {
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(4+len(v)))
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = append(m.b, v...)
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *msg) u32(typ uint16, v uint32) { m.attr(typ, words(v)) }
func (m *msg) u64(typ uint16, v uint64) { m.attr(typ, binary.NativeEndian.AppendUint64(nil, v)) }
func (m *msg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

// nest opens a nested attribute; end closes it.
func (m *msg) nest(typ uint16) int {
	at := len(m.b)
	m.b = binary.NativeEndian.AppendUint16(m.b, 0)
	m.b = binary.NativeEndian.AppendUint16(m.b, typ|nlaNested)
	return at
}

func (m *msg) end(at int) { binary.NativeEndian.PutUint16(m.b[at:], uint16(len(m.b)-at)) }

// encodeDelete is the body of RTM_DELQDISC, RTM_DELTCLASS or
// RTM_DELTFILTER: the object's address, and its kind if known, which the
// kernel checks.
func encodeDelete(ifindex, handle, parent, info uint32, kind string) []byte {
	m := newTcmsg(ifindex, handle, parent, info)
	if kind != "" {
		m.str(tcaKind, kind)
	}
	return m.b
}

// encodeQdisc is the body of RTM_NEWQDISC.
func encodeQdisc(q *Qdisc) []byte {
	m := newTcmsg(q.Ifindex, q.Handle, q.Parent, 0)
	m.str(tcaKind, q.Kind)
	switch q.Kind {
	case "htb":
		// struct tc_htb_glob; rate2quantum is tc's default, and moot as
		// every class sets its quantum.
		n := m.nest(tcaOptions)
		m.attr(htbInit, words(htbVersion, 10, q.Defcls, 0, 0))
		m.end(n)
	case "fq_codel":
		if q.Limit != 0 {
			n := m.nest(tcaOptions)
			m.u32(fqCodelLimit, q.Limit)
			m.end(n)
		}
	case "cake":
		// Base rate 0 is unlimited: HTB above does the rate limiting.
		n := m.nest(tcaOptions)
		m.u64(cakeBaseRate, 0)
		m.end(n)
	case "sfq":
		// struct tc_sfq_qopt, not nested; zeros keep the kernel's defaults
		m.attr(tcaOptions, words(0, uint32(q.Perturb), 0, 0, 0))
	case "pfifo", "bfifo":
		m.u32(tcaOptions, q.Limit) // struct tc_fifo_qopt, not nested
	}
	return m.b
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
	m.str(tcaKind, c.Kind)
	if c.Kind != "htb" {
		return m.b
	}
	h := c.HTB
	// struct tc_htb_opt: rate, ceil, buffer, cbuffer, quantum, level, prio
	o := appendRatespec(appendRatespec(make([]byte, 0, sizeHTBOpt), h.Rate), h.Ceil)
	o = append(o, words(h.Buffer, h.Cbuffer, h.Quantum, 0, h.Prio)...)
	n := m.nest(tcaOptions)
	m.attr(htbParms, o)
	// The 32-bit fields saturate at 34 Gbit/s; the kernel takes the
	// larger of them and the 64-bit attribute.
	if h.Rate.Rate >= 1<<32 {
		m.u64(htbRate64, h.Rate.Rate)
	}
	if h.Ceil.Rate >= 1<<32 {
		m.u64(htbCeil64, h.Ceil.Rate)
	}
	m.end(n)
	return m.b
}

// filterInfo is tcm_info of a filter: priority and protocol.
func filterInfo(f *Filter) uint32 { return uint32(f.Prio)<<16 | uint32(be16(f.Protocol)) }

// encodeFilter is the body of RTM_NEWTFILTER.
func encodeFilter(f *Filter) []byte {
	m := newTcmsg(f.Ifindex, f.Handle, f.Parent, filterInfo(f))
	m.str(tcaKind, f.Kind)
	u := f.U32
	if f.Kind != "u32" || u == nil {
		return m.b
	}
	n := m.nest(tcaOptions)
	if u.ClassID != 0 {
		m.u32(u32ClassID, u.ClassID)
	}
	sel := make([]byte, sizeU32Sel, sizeU32Sel+sizeU32Key*len(u.Keys))
	sel[0] = u32Terminal
	sel[2] = uint8(len(u.Keys))
	for _, k := range u.Keys {
		sel = binary.BigEndian.AppendUint32(sel, k.Mask)
		sel = binary.BigEndian.AppendUint32(sel, k.Val)
		sel = append(sel, words(uint32(k.Off), 0)...) // off, offmask
	}
	m.attr(u32Sel, sel)
	if u.Mark != (U32Mark{}) {
		m.attr(u32Mark, words(u.Mark.Val, u.Mark.Mask, 0)) // struct tc_u32_mark
	}
	if len(u.Actions) > 0 {
		acts := m.nest(u32Act)
		for i, a := range u.Actions {
			an := m.nest(uint16(i + 1)) // the position is the action's order
			m.str(actKind, a.Kind)
			if a.Kind == "mirred" {
				// struct tc_mirred: tc_gen's index, capab, action, refcnt,
				// bindcnt, then eaction and ifindex.
				on := m.nest(actOptions)
				m.attr(mirredParm, words(0, 0, uint32(a.Verdict), 0, 0, uint32(a.Eaction), a.Ifindex))
				m.end(on)
			}
			m.end(an)
		}
		m.end(acts)
	}
	m.end(n)
	return m.b
}

// attrs iterates over netlink attributes, stopping with an error at the
// first one that does not fit.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

func (a *attrs) next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < 4 {
		a.err = fmt.Errorf("%d stray bytes after the attributes", len(a.b))
		return false
	}
	l := int(u16at(a.b, 0))
	a.typ = u16at(a.b, 2) & nlaTypeMask
	if l < 4 || l > len(a.b) {
		a.err = fmt.Errorf("attribute %d: length %d, %d bytes left", a.typ, l, len(a.b))
		return false
	}
	a.val = a.b[4:l]
	a.b = a.b[min((l+3)&^3, len(a.b)):]
	return true
}

// need fails unless the current attribute holds at least n bytes.
func (a *attrs) need(n int) bool {
	if len(a.val) < n {
		a.err = fmt.Errorf("attribute %d: %d bytes, want %d", a.typ, len(a.val), n)
		return false
	}
	return true
}

func (a *attrs) u32() uint32 { return u32at(a.val, 0) }
func (a *attrs) u64() uint64 { return binary.NativeEndian.Uint64(a.val) }

// kind reads a TCA_KIND string.
func (a *attrs) kind() string {
	s, _, _ := strings.Cut(string(a.val), "\x00")
	if len(s) > kindMax {
		a.err = fmt.Errorf("kind %.20q longer than %d bytes", s, kindMax)
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
		return h, fmt.Errorf("%s: %d bytes, shorter than struct tcmsg", what, len(b))
	}
	h.ifindex, h.handle, h.parent, h.info = u32at(b, 4), u32at(b, 8), u32at(b, 12), u32at(b, 16)
	a := attrs{b: b[sizeTcmsg:]}
	for a.next() {
		switch a.typ {
		case tcaKind:
			h.kind = a.kind()
		case tcaOptions:
			h.options = a.val
		case tcaStats2:
			h.stats2 = a.val
		}
	}
	if a.err == nil && h.kind == "" {
		a.err = errors.New("no kind")
	}
	if a.err != nil {
		return h, h.wrap(what, a.err)
	}
	return h, nil
}

// wrap names the object an error is about.
func (h tcHead) wrap(what string, err error) error {
	k := ""
	if h.kind != "" {
		k = " " + h.kind
	}
	return fmt.Errorf("%s%s %s parent %s on ifindex %d: %w", what, k, fmtHandle(h.handle), fmtHandle(h.parent), h.ifindex, err)
}

// decodeQdisc decodes an RTM_NEWQDISC body.
func decodeQdisc(b []byte) (Qdisc, error) {
	h, err := decodeHead("qdisc", b)
	q := Qdisc{Ifindex: h.ifindex, Handle: h.handle, Parent: h.parent, Kind: h.kind}
	if err != nil {
		return q, err
	}
	a := attrs{b: h.options}
	switch q.Kind {
	case "htb":
		for a.next() {
			if a.typ == htbInit && a.need(sizeHTBGlob) {
				q.Defcls = u32at(a.val, 8)
			}
		}
	case "fq_codel":
		for a.next() {
			if a.typ == fqCodelLimit && a.need(4) {
				q.Limit = a.u32()
			}
		}
	case "sfq":
		// struct tc_sfq_qopt, not nested (the kernel sends the longer v1)
		if len(h.options) >= sizeSfqQopt {
			q.Perturb = int32(u32at(h.options, 4))
		} else if len(h.options) > 0 {
			a.err = fmt.Errorf("%d bytes, want %d", len(h.options), sizeSfqQopt)
		}
	case "pfifo", "bfifo":
		// struct tc_fifo_qopt, not nested
		if len(h.options) >= 4 {
			q.Limit = u32at(h.options, 0)
		} else if len(h.options) > 0 {
			a.err = fmt.Errorf("%d bytes, want 4", len(h.options))
		}
	}
	if a.err != nil {
		return q, h.wrap("qdisc", fmt.Errorf("options: %w", a.err))
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
	a := attrs{b: h.options}
	if c.Kind == "htb" {
		var r64, c64 uint64
		for a.next() {
			switch {
			case a.typ == htbParms && a.need(sizeHTBOpt):
				o := a.val
				c.HTB = HTBClass{Rate: ratespec(o[0:]), Ceil: ratespec(o[12:]), Buffer: u32at(o, 24),
					Cbuffer: u32at(o, 28), Quantum: u32at(o, 32), Prio: u32at(o, 40)}
			case a.typ == htbRate64 && a.need(8):
				r64 = a.u64()
			case a.typ == htbCeil64 && a.need(8):
				c64 = a.u64()
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
	if a.err != nil {
		return c, h.wrap("class", fmt.Errorf("options: %w", a.err))
	}
	s := attrs{b: h.stats2}
	var pkt64 uint64
	for s.next() {
		switch {
		case s.typ == statsBasic && s.need(12): // struct gnet_stats_basic
			c.Stats.Bytes, c.Stats.Packets = s.u64(), uint64(u32at(s.val, 8))
		case s.typ == statsQueue && s.need(20): // struct gnet_stats_queue
			v := s.val
			c.Stats.Qlen, c.Stats.Backlog = u32at(v, 0), u32at(v, 4)
			c.Stats.Drops, c.Stats.Overlimits = u32at(v, 8), u32at(v, 16)
		case s.typ == statsPkt64 && s.need(8):
			pkt64 = s.u64() // the full count where the basic one wraps at 2^32
		}
	}
	if pkt64 != 0 {
		c.Stats.Packets = pkt64
	}
	if s.err != nil {
		return c, h.wrap("class", fmt.Errorf("statistics: %w", s.err))
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
	a := attrs{b: h.options}
	for a.next() {
		switch {
		case a.typ == u32ClassID && a.need(4):
			u.ClassID = a.u32()
		case a.typ == u32Sel && a.need(sizeU32Sel):
			n := int(a.val[2])
			if !a.need(sizeU32Sel + n*sizeU32Key) {
				break
			}
			sel, u.Keys = true, nil
			for i := range n {
				k := a.val[sizeU32Sel+i*sizeU32Key:]
				u.Keys = append(u.Keys, U32Key{Mask: binary.BigEndian.Uint32(k),
					Val: binary.BigEndian.Uint32(k[4:]), Off: int32(u32at(k, 8))})
			}
		case a.typ == u32Mark && a.need(sizeU32Mark):
			u.Mark = U32Mark{Val: a.u32(), Mask: u32at(a.val, 4)}
		case a.typ == u32Act:
			u.Actions, a.err = decodeActions(a.val)
		}
	}
	if a.err != nil {
		return f, h.wrap("filter", fmt.Errorf("options: %w", a.err))
	}
	if sel {
		f.U32 = &u
	}
	return f, nil
}

// decodeActions decodes a TCA_U32_ACT list, in the order given.
func decodeActions(b []byte) ([]Action, error) {
	var out []Action
	l := attrs{b: b}
	for l.next() {
		if len(out) == actMaxPrio {
			return nil, fmt.Errorf("more than %d actions", actMaxPrio)
		}
		var act Action
		var opts []byte
		a := attrs{b: l.val}
		for a.next() {
			switch a.typ {
			case actKind:
				act.Kind = a.kind()
			case actOptions:
				opts = a.val
			}
		}
		if a.err == nil && act.Kind == "" {
			a.err = errors.New("no kind")
		}
		if a.err == nil && act.Kind == "mirred" {
			o := attrs{b: opts}
			for o.next() {
				if o.typ == mirredParm && o.need(sizeMirred) {
					act.Verdict, act.Eaction = int32(u32at(o.val, 8)), int32(u32at(o.val, 20))
					act.Ifindex = u32at(o.val, 24)
				}
			}
			a.err = o.err
		}
		if a.err != nil {
			return nil, fmt.Errorf("action %d: %w", len(out)+1, a.err)
		}
		out = append(out, act)
	}
	return out, l.err
}

// decodeLink decodes an RTM_NEWLINK or RTM_DELLINK body.
func decodeLink(b []byte) (LinkInfo, error) {
	if len(b) < sizeIfinfomsg {
		return LinkInfo{}, fmt.Errorf("link: %d bytes, shorter than struct ifinfomsg", len(b))
	}
	li := LinkInfo{Index: u32at(b, 4), Up: u32at(b, 8)&1 != 0} // IFF_UP
	a := attrs{b: b[sizeIfinfomsg:]}
	for a.next() {
		switch {
		case a.typ == iflaIfname:
			li.Name, _, _ = strings.Cut(string(a.val), "\x00")
		case a.typ == iflaMTU && a.need(4):
			li.MTU = int(a.u32())
		}
	}
	if a.err != nil {
		return li, fmt.Errorf("link %d %q: %w", li.Index, li.Name, a.err)
	}
	return li, nil
}
