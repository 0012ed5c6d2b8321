package shape

import (
	"context"
	"errors"
)

// ErrNoDevice is returned by Kernel.Link for an interface that does not
// exist.
var ErrNoDevice = errors.New("no such network interface")

// LinkInfo is what the shaper needs to know about an interface.
type LinkInfo struct {
	Index uint32
	Name  string
	MTU   int
	Up    bool
}

// EventKind says what changed in the kernel.
type EventKind int

// Kernel events the reconcile loop reacts to.
const (
	LinkChanged  EventKind = iota // an interface appeared, changed or came up
	LinkRemoved                   // an interface went away
	QdiscDeleted                  // a qdisc was removed (by us or anyone)
	EventsLost                    // the event socket overflowed: state unknown
)

// Event is a kernel change, reduced to what the shaper decides on.
type Event struct {
	Kind    EventKind
	Ifindex uint32
	Name    string // for link events
}

// Qdisc is a queueing discipline, reduced to what the shaper sets or
// checks. Handles and parents are major<<16 | minor, as in struct tcmsg.
type Qdisc struct {
	Ifindex uint32
	Handle  uint32
	Parent  uint32
	Kind    string
	// Defcls is the minor number of HTB's default class.
	Defcls uint32
	// Limit bounds the queue: packets for fq_codel and pfifo, bytes for
	// bfifo; 0 keeps the kernel's default.
	Limit uint32
	// Perturb is sfq's hash perturbation period in seconds.
	Perturb int32
}

// TCClass is a traffic class; the shaper makes HTB ones only.
type TCClass struct {
	Ifindex uint32
	Handle  uint32
	Parent  uint32
	Kind    string
	HTB     HTBClass
	Stats   Stats // read back only
}

// HTBClass holds struct tc_htb_opt's settable fields.
type HTBClass struct {
	Rate, Ceil      RateSpec
	Buffer, Cbuffer uint32 // psched ticks
	Quantum         uint32 // bytes
	Prio            uint32
}

// RateSpec is struct tc_ratespec with the rate widened to 64 bits; the
// codec moves rates of 2^32 bytes/s and more to TCA_HTB_RATE64/CEIL64.
type RateSpec struct {
	Rate      uint64 // bytes per second
	Linklayer uint8  // 1 Ethernet, 2 ATM
	Overhead  uint16
	MPU       uint16
}

// Stats are a class's counters (TCA_STATS2).
type Stats struct {
	Bytes, Packets                   uint64
	Drops, Overlimits, Backlog, Qlen uint32
}

// Filter is a classifier at one priority and protocol of a parent.
type Filter struct {
	Ifindex  uint32
	Parent   uint32
	Handle   uint32 // chosen by the kernel for u32; 0 when adding
	Prio     uint16
	Protocol uint16 // EtherType in host order
	Kind     string
	// U32 is nil for u32 hash tables (the kernel adds one per priority)
	// and for other kinds.
	U32 *U32
}

// U32 is a u32 match: all keys hold (and the mark, if any), then the
// packet goes to ClassID and through Actions.
type U32 struct {
	ClassID uint32 // 0: none
	Keys    []U32Key
	Mark    U32Mark // zero: no mark match
	Actions []Action
}

// U32Key compares 32 bits at Off bytes into the network header.
type U32Key struct {
	Off       int32
	Val, Mask uint32 // host order; network order on the wire
}

// U32Mark matches the firewall mark: mark & Mask == Val.
type U32Mark struct{ Val, Mask uint32 }

// Action is a filter action. The shaper makes mirred redirects only;
// other kinds are read back by kind so they show up as a difference.
type Action struct {
	Kind    string
	Verdict int32  // mirred's tc_gen action: TC_ACT_* once done
	Eaction int32  // mirred's TCA_EGRESS_REDIR and friends
	Ifindex uint32 // mirred's target device
}

// Kernel is the shaper's seam to the kernel: interfaces and traffic
// control objects. NetlinkKernel is the real one; tests use a fake.
type Kernel interface {
	// Link looks an interface up by name; ErrNoDevice if it is absent.
	Link(name string) (LinkInfo, error)
	// LinkSpeed returns the interface's speed in kbit/s, 0 if unknown.
	LinkSpeed(name string) int64
	// AddIFB creates an IFB device and sets it up.
	AddIFB(name string) (LinkInfo, error)
	// DeleteLink removes an interface.
	DeleteLink(index uint32) error

	Qdiscs(ifindex uint32) ([]Qdisc, error)
	Classes(ifindex uint32) ([]TCClass, error)
	Filters(ifindex, parent uint32) ([]Filter, error)
	// ReplaceQdisc creates the qdisc or replaces whatever sits at its parent.
	ReplaceQdisc(q *Qdisc) error
	DeleteQdisc(q *Qdisc) error
	// ReplaceClass creates or changes a class.
	ReplaceClass(c *TCClass) error
	DeleteClass(c *TCClass) error
	AddFilter(f *Filter) error
	// DeleteFilter deletes every filter at the filter's priority and
	// protocol (0: any).
	DeleteFilter(f *Filter) error

	// Events delivers link and qdisc changes until ctx ends, then closes
	// the channel.
	Events(ctx context.Context) (<-chan Event, error)
}
