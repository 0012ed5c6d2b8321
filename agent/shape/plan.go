package shape

import "time"

// Handles. The root qdisc is 1:, the interface class 1:1, the three
// classes 1:10, 1:20, 1:30 with leaf qdiscs 10:, 20:, 30:.
const (
	rootMajor     = 1
	ingressHandle = 0xffff0000
	// tickNS is the kernel's psched tick (PSCHED_SHIFT 6, fixed since
	// Linux 3.x): HTB buffers are given in ticks.
	tickNS = 64
	// l2Header is the Ethernet header the kernel counts in packet length
	// on Ethernet devices.
	l2Header = 14
	// maxQuantum is where HTB starts warning that quantum is too big.
	maxQuantum = 200000
)

// EtherTypes as filter protocols.
const (
	ethPAll  = 0x0003
	ethPIP   = 0x0800
	ethPIPv6 = 0x86dd
)

func handle(major, minor uint32) uint32 { return major<<16 | minor }
func classID(i int) uint32              { return handle(rootMajor, uint32(i+1)*0x10) }
func leafHandle(i int) uint32           { return handle(uint32(i+1)*0x10, 0) }
func rootClassID() uint32               { return handle(rootMajor, 1) }
func rootHandle() uint32                { return handle(rootMajor, 0) }

// HTBParams are the HTB numbers for one class, derived from its rate.
type HTBParams struct {
	RateBps, CeilBps uint64 // bytes per second
	Burst, Cburst    uint32 // bytes
	Quantum          uint32 // bytes
}

// ComputeHTB derives burst, cburst and quantum from the rates (kbit/s):
// burst is the larger of one burst time (l.Burst, 1 ms by default) at the
// rate and one full-size packet; quantum is 1 ms at the rate, at least one
// packet and at most HTB's 200000. Too small a burst holds HTB at 65-70 %
// of its rate (facts-performance.md §3).
func ComputeHTB(rateKbit, ceilKbit int64, l *Link, mtu int) HTBParams {
	pkt := uint64(mtu + l2Header + l.Overhead)
	p := HTBParams{RateBps: uint64(rateKbit) * 125, CeilBps: uint64(ceilKbit) * 125}
	burstOf := func(bps uint64) uint32 {
		b := max(bps*uint64(l.Burst)/uint64(time.Second), pkt)
		return uint32(min(b, 1<<30))
	}
	p.Burst, p.Cburst = burstOf(p.RateBps), burstOf(p.CeilBps)
	p.Quantum = uint32(min(max(p.RateBps/1000, pkt), maxQuantum))
	return p
}

// ticks converts a burst in bytes at bps into psched ticks.
func ticks(bytes uint32, bps uint64) uint32 {
	if bps == 0 {
		return 0
	}
	return uint32(min(uint64(bytes)*uint64(time.Second)/bps/tickNS, 1<<32-1))
}

func rateSpec(bps uint64, l *Link) RateSpec {
	rs := RateSpec{Rate: bps, Linklayer: 1, Overhead: uint16(l.Overhead), MPU: uint16(l.MPU)} // TC_LINKLAYER_ETHERNET
	if l.ATM {
		rs.Linklayer = 2 // TC_LINKLAYER_ATM
	}
	return rs
}

func htbClass(ifindex, parent, handle uint32, rateKbit, ceilKbit int64, prio uint32, l *Link, mtu int) TCClass {
	p := ComputeHTB(rateKbit, ceilKbit, l, mtu)
	return TCClass{Ifindex: ifindex, Handle: handle, Parent: parent, Kind: "htb", HTB: HTBClass{
		Rate: rateSpec(p.RateBps, l), Ceil: rateSpec(p.CeilBps, l),
		Buffer: ticks(p.Burst, p.RateBps), Cbuffer: ticks(p.Cburst, p.CeilBps),
		Quantum: p.Quantum, Prio: prio,
	}}
}

// tree is the desired HTB tree on one device's egress.
type tree struct {
	Direction string // "upload" or "download"
	Dev       string // device whose egress carries the tree (the WAN or its IFB)
	Ifindex   uint32
	Limit     int64 // kbit/s
	MTU       int
	Root      Qdisc
	Classes   []TCClass // 1:1, then the three leaves' classes
	Filters   []Filter
	LeafCeil  [3]uint64 // bytes/s, to size FIFO leaves
}

// buildTree computes the desired tree. download selects the IFB side,
// where ports are matched with the roles of source and destination
// swapped and marks are unavailable (no firewall has run yet).
func buildTree(l *Link, download bool, dev string, ifindex uint32, limit int64, mtu int) tree {
	t := tree{Direction: "upload", Dev: dev, Ifindex: ifindex, Limit: limit, MTU: mtu}
	if download {
		t.Direction = "download"
	}
	// Unclassified traffic is bulk.
	t.Root = Qdisc{Ifindex: ifindex, Handle: rootHandle(), Parent: tcHRoot, Kind: "htb", Defcls: 0x30}
	t.Classes = append(t.Classes, htbClass(ifindex, tcHRoot, rootClassID(), limit, limit, 0, l, mtu))
	for i := range l.Classes {
		c := &l.Classes[i]
		rate, ceil := c.Rate.Of(limit), c.Ceil.Of(limit)
		t.Classes = append(t.Classes, htbClass(ifindex, rootClassID(), classID(i), rate, ceil, uint32(i), l, mtu))
		t.LeafCeil[i] = uint64(ceil) * 125
	}
	t.Filters = classFilters(l, download, ifindex)
	return t
}

// match is one u32 filter: keys that must all hold, optionally a mark.
type match struct {
	proto uint16 // EtherType
	keys  []U32Key
	mark  U32Mark
}

// appendMatch appends a match on keys to ms. One out-of-line append
// instead of one per caller saves flash on MIPS.
//
//go:noinline
func appendMatch(ms []match, proto uint16, mark U32Mark, keys ...U32Key) []match {
	return append(ms, match{proto: proto, keys: keys, mark: mark})
}

func key(off int32, val, mask uint32) U32Key {
	return U32Key{Off: off, Val: val & mask, Mask: mask}
}

// Header offsets. IPv4 matches on the transport header require IHL 5
// (no options), as tc's own "match ip dport" assumes; IPv6 matches
// assume no extension headers. Packets that are neither fall to bulk.
var v4IHL5 = key(0, 0x05000000, 0x0f000000)

func v4Proto(p Proto) U32Key { return key(8, uint32(p)<<16, 0x00ff0000) }
func v6Next(p Proto) U32Key  { return key(4, uint32(p)<<8, 0x0000ff00) }
func v4DSCP(d uint8) U32Key  { return key(0, uint32(d)<<18, 0x00fc0000) }
func v6DSCP(d uint8) U32Key  { return key(0, uint32(d)<<22, 0x0fc00000) }

// l4Offset is where the transport header starts in a family's packets.
func l4Offset(fam uint16) int32 {
	if fam == ethPIP {
		return 20
	}
	return 40
}

func protoKey(fam uint16, p Proto) []U32Key {
	if fam == ethPIP {
		return []U32Key{v4IHL5, v4Proto(p)}
	}
	return []U32Key{v6Next(p)}
}

// portMatches expands a port spec for one family: per protocol, per
// aligned block, once for the local side's port.
func portMatches(fam uint16, p PortSpec, src bool) []match {
	protos := []Proto{p.Proto}
	if p.Proto == ProtoAny {
		protos = []Proto{ProtoTCP, ProtoUDP}
	}
	var out []match
	for _, pr := range protos {
		for _, vm := range portMasks(p.From, p.To) {
			k := key(l4Offset(fam), uint32(vm.Val), uint32(vm.Mask))
			if src {
				k = key(l4Offset(fam), uint32(vm.Val)<<16, uint32(vm.Mask)<<16)
			}
			out = appendMatch(out, fam, U32Mark{}, append(protoKey(fam, pr), k)...)
		}
	}
	return out
}

// nebulaTypes are the Nebula header types (low nibble of the first
// payload byte) that keep tunnels alive: handshake, lighthouse, test.
// Data (type 1) stays in bulk with the traffic it carries.
var nebulaTypes = []uint32{0, 3, 4}

// classFilters returns every classifying filter. Priorities: class i,
// family f (IPv4, IPv6, any) gets pref i*3+f+1, so emergency is tested
// first and a difference can be repaired one priority at a time.
func classFilters(l *Link, download bool, ifindex uint32) []Filter {
	var out []Filter
	for i := range l.Classes {
		for f, fam := range [...]uint16{ethPIP, ethPIPv6, ethPAll} {
			for _, m := range classMatches(l, &l.Classes[i], fam, download) {
				out = append(out, u32Filter(ifindex, rootHandle(), uint16(i*3+f+1), m, classID(i), nil))
			}
		}
	}
	return out
}

// classMatches returns the matches of class c for one family; ethPAll
// has the mark matches, which only the upload side has (no firewall has
// run yet on the download side).
func classMatches(l *Link, c *Class, fam uint16, download bool) []match {
	var ms []match
	if fam == ethPAll {
		if !download {
			for _, mk := range c.Marks {
				ms = appendMatch(ms, ethPAll, U32Mark{Val: mk.Val, Mask: mk.Mask}, key(0, 0, 0))
			}
		}
		return ms
	}
	dscp, icmp := v4DSCP, ProtoICMP
	if fam == ethPIPv6 {
		dscp, icmp = v6DSCP, ProtoICMPv6
	}
	for _, d := range c.DSCP {
		ms = appendMatch(ms, fam, U32Mark{}, dscp(d))
	}
	for _, p := range c.Ports {
		// Both ends: our query to port 53 and the answer from it.
		for _, src := range [...]bool{false, true} {
			ms = append(ms, portMatches(fam, p, src)...)
		}
	}
	if c.Builtin {
		ms = appendMatch(ms, fam, U32Mark{}, protoKey(fam, icmp)...)
		// Our Nebula port is the source going out and the
		// destination coming in.
		np := PortSpec{Proto: ProtoUDP, From: l.NebulaPort, To: l.NebulaPort}
		for _, pm := range portMatches(fam, np, !download) {
			for _, t := range nebulaTypes {
				// Clipped, so that each match gets its own keys.
				keys := append(pm.keys[:len(pm.keys):len(pm.keys)], key(l4Offset(fam)+8, t<<24, 0x0f000000))
				ms = appendMatch(ms, fam, U32Mark{}, keys...)
			}
		}
	}
	return ms
}

// Not inlined: a Filter literal with its U32 costs half a kilobyte of
// MIPS code at each caller.
//
//go:noinline
func u32Filter(ifindex, parent uint32, prio uint16, m match, classid uint32, actions []Action) Filter {
	return Filter{Ifindex: ifindex, Parent: parent, Prio: prio, Protocol: m.proto, Kind: "u32",
		U32: &U32{ClassID: classid, Keys: append([]U32Key(nil), m.keys...), Mark: m.mark, Actions: actions}}
}

// ingressQdisc and redirectFilter send everything arriving on the WAN
// through the IFB's egress, where HTB can queue it: shaping a queue
// instead of policing (facts-performance.md §3: an ingress policer
// delivers under 30 % of its setting).
func ingressQdisc(ifindex uint32) Qdisc {
	return Qdisc{Ifindex: ifindex, Handle: ingressHandle, Parent: tcHIngress, Kind: "ingress"}
}

func redirectFilter(ifindex, ifbIndex uint32) Filter {
	act := Action{Kind: "mirred", Verdict: tcActStolen, Eaction: tcEgressRedir, Ifindex: ifbIndex}
	m := match{proto: ethPAll, keys: []U32Key{key(0, 0, 0)}}
	return u32Filter(ifindex, ingressHandle, 1, m, 0, []Action{act})
}

// leafQdisc returns the leaf of class i with the given kind. FIFOs hold
// 100 ms at the class ceiling, at least 4 full GSO packets, so TCP can
// fill the class.
// cake gets no options here: the codec gives it an unlimited base rate,
// since HTB above does the rate limiting.
func leafQdisc(kind string, ifindex uint32, i int, ceilBps uint64) Qdisc {
	q := Qdisc{Ifindex: ifindex, Handle: leafHandle(i), Parent: classID(i), Kind: kind}
	switch kind {
	case "fq_codel":
		q.Limit = 1001 // sqm-scripts' LIMIT: bounds memory on 64 MB routers
	case "sfq":
		q.Perturb = 10
	case "pfifo":
		q.Limit = uint32(max(ceilBps/10/1514, 128))
	case "bfifo":
		q.Limit = uint32(min(max(ceilBps/10, 4*65536), 1<<30))
	}
	return q
}
