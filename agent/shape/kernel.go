package shape

import (
	"context"
	"errors"

	"github.com/florianl/go-tc"
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

	Qdiscs(ifindex uint32) ([]tc.Object, error)
	Classes(ifindex uint32) ([]tc.Object, error)
	Filters(ifindex, parent uint32) ([]tc.Object, error)
	// ReplaceQdisc creates the qdisc or replaces whatever sits at its parent.
	ReplaceQdisc(o *tc.Object) error
	DeleteQdisc(o *tc.Object) error
	// ReplaceClass creates or changes a class.
	ReplaceClass(o *tc.Object) error
	DeleteClass(o *tc.Object) error
	AddFilter(o *tc.Object) error
	// DeleteFilter deletes every filter at the object's priority and protocol.
	DeleteFilter(o *tc.Object) error

	// Events delivers link and qdisc changes until ctx ends, then closes
	// the channel.
	Events(ctx context.Context) (<-chan Event, error)
}
