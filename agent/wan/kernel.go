package wan

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// ErrNoLink is returned by Kernel.Link for an interface that does not exist.
var ErrNoLink = errors.New("no such network interface")

// Link is what failover needs to know about an interface.
type Link struct {
	Index int
	Name  string
	// Up: administratively up and with carrier (IFF_UP and IFF_LOWER_UP).
	Up           bool
	PointToPoint bool // PPP, tun: routes need no gateway
}

// Nexthop is one path of a route. Without Gateway the destination is
// reached directly on the device (tun, PPP).
type Nexthop struct {
	Gateway netip.Addr
	Ifindex int
	Weight  int // 1-256
}

// Route is the default route of one table. No hops and not Unreachable
// means no route.
type Route struct {
	Table       int
	Hops        []Nexthop
	Unreachable bool
}

// Empty reports whether r removes the route.
func (r Route) Empty() bool { return len(r.Hops) == 0 && !r.Unreachable }

func (r Route) String() string {
	s := "unreachable default"
	if !r.Unreachable {
		s = "no default"
		if len(r.Hops) > 0 {
			s = "default"
		}
		for i, h := range r.Hops {
			sep, gw := ", ", ""
			if i == 0 {
				sep = " "
			}
			if h.Gateway.IsValid() {
				gw = "via " + h.Gateway.String() + " "
			}
			s += fmt.Sprintf("%s%sdev#%d weight %d", sep, gw, h.Ifindex, h.Weight)
		}
	}
	return fmt.Sprintf("table %d: %s", r.Table, s)
}

// Rule is an ip rule the agent owns.
type Rule struct {
	Priority int
	Table    int
	Mark     uint32 // fwmark to match (0: none)
	// SuppressPrefixLen 0 makes a lookup ignore default routes (-1: unset).
	SuppressPrefixLen int
	// IPProto and Sport match the overlay's own UDP packets.
	IPProto uint8
	Sport   uint16
}

// EventKind says what changed in the kernel.
type EventKind int

// Kernel events.
const (
	LinkChanged   EventKind = iota // appeared, came up, lost carrier, ...
	LinkRemoved                    // went away
	RoutesChanged                  // a default route of the main table changed (netifd's gateway)
	EventsLost                     // the event socket overflowed: re-read everything
)

// Event is a kernel change reduced to what failover decides on; the rest
// of the package never parses netlink.
type Event struct {
	Kind EventKind
	Link Link
}

// Kernel is failover's seam to the kernel: links, routes and rules of one
// network namespace. NetlinkKernel is the real one; tests use a fake.
type Kernel interface {
	// Link looks an interface up by name; ErrNoLink if absent.
	Link(name string) (Link, error)
	// Gateways returns the gateways of the main table's default routes
	// by interface index: what netifd learned from DHCP or configuration.
	Gateways() (map[int]netip.Addr, error)
	// SetRoute makes r the default route of r.Table (deleting it when
	// r is empty).
	SetRoute(r Route) error
	// AddRule adds r; an identical rule already there is not an error.
	AddRule(r Rule) error
	// DelRule removes r; a missing rule is not an error.
	DelRule(r Rule) error
	// Addrs returns the IPv4 addresses of the interface with index
	// ifindex.
	Addrs(ifindex int) ([]netip.Addr, error)
	// FlushNAT deletes the connection-tracking entries of flows
	// masqueraded to one of addrs (reply destination one of them, original
	// source not) and returns how many. Such a flow keeps its mapping to
	// a WAN the default route has left, so its packets leave another WAN
	// with the old source and the replies never come (mwan3 #11406);
	// without the entry its next packet is masqueraded afresh.
	FlushNAT(addrs []netip.Addr) (int, error)
	// LooseRPFilter makes reverse-path filtering on dev loose when it is
	// strict, and says whether it changed anything.
	LooseRPFilter(dev string) (bool, error)
	// Events delivers link and route changes until ctx ends.
	Events(ctx context.Context) (<-chan Event, error)
	Close() error
}
