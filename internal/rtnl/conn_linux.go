//go:build linux

package rtnl

import (
	"context"
	"errors"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// timeoutSec bounds each send and receive: the loops waiting on a request
// (and holding their locks) must not hang for good on a lost reply.
const timeoutSec = 10

// Conn holds the request sockets of one network namespace, one per
// netlink protocol, opened on first use. Requests on a socket are
// serialised by nl; opening a protocol's socket is not, so the first
// request of a protocol other than NETLINK_ROUTE must not race another.
//
// Its operations are functions, not methods: a *Conn field of a type that
// goes into an interface would keep every method's signature type in
// flash for reflection.
type Conn struct {
	ns    int
	socks map[int]*nl.SocketHandle // as nl.NetlinkRequest looks them up
}

// ns turns a netns file descriptor (0: the caller's namespace) into what
// nl opens sockets in.
func ns(fd int) netns.NsHandle {
	if fd == 0 {
		return netns.None()
	}
	return netns.NsHandle(fd)
}

// Open opens rtnetlink in the network namespace whose file descriptor is
// fd (0: the caller's).
func Open(fd int) (*Conn, error) {
	c := &Conn{ns: fd, socks: map[int]*nl.SocketHandle{}}
	if err := open(c, unix.NETLINK_ROUTE); err != nil {
		return nil, err
	}
	return c, nil
}

func open(c *Conn, proto int) error {
	s, err := nl.GetNetlinkSocketAt(ns(c.ns), netns.None(), proto)
	if err != nil {
		return errfmt.Errorf("open netlink protocol %d: %w", proto, err)
	}
	tv := unix.Timeval{Sec: timeoutSec}
	_ = s.SetSendTimeout(&tv)
	_ = s.SetReceiveTimeout(&tv)
	// Extended acks turn EINVAL into the kernel's own explanation, which
	// nl appends to the errno.
	_ = s.SetExtAck(true)
	c.socks[proto] = &nl.SocketHandle{Socket: s}
	return nil
}

// Close closes the sockets.
func Close(c *Conn) error {
	for _, s := range c.socks {
		s.Close()
	}
	return nil
}

// Do sends a request of type typ with body on the socket for proto and
// returns the bodies of the replies of type reply (0: all). flags are
// NLM_F_* besides NLM_F_REQUEST; with NLM_F_ACK an error comes back as
// its errno. A dump that raced a change is read again, up to three times
// in all, then returned with nl.ErrDumpInterrupted.
func Do(c *Conn, proto int, typ, flags uint16, body []byte, reply uint16) ([][]byte, error) {
	if c.socks[proto] == nil {
		if err := open(c, proto); err != nil {
			return nil, err
		}
	}
	for try := 1; ; try++ {
		req := nl.NewNetlinkRequest(int(typ), int(flags))
		req.Sockets = c.socks
		req.RawData = body
		msgs, err := req.Execute(proto, reply)
		if try == 3 || !errors.Is(err, nl.ErrDumpInterrupted) {
			return msgs, err
		}
	}
}

// LinkByName looks an interface up by name; missing, the error wraps
// notFound. Errors name the interface.
func LinkByName(c *Conn, name string, notFound error) (Link, error) {
	m := Msg(make([]byte, SizeIfinfomsg))
	m.Str(IflaIfname, name)
	msgs, err := Do(c, unix.NETLINK_ROUTE, unix.RTM_GETLINK, 0, m, unix.RTM_NEWLINK)
	if errors.Is(err, unix.ENODEV) || err == nil && len(msgs) == 0 {
		err = notFound
	}
	var l Link
	if err == nil {
		l, err = DecodeLink(msgs[0])
	}
	if err != nil {
		return Link{}, errfmt.Errorf("%s: %w", name, err)
	}
	return l, nil
}

// What Listen hands its callback besides the kernel's messages.
const (
	Lost  = unix.NLMSG_OVERRUN // the socket overflowed: messages were lost
	Ended = unix.NLMSG_DONE    // listening ended: the last call
)

// Listen joins the rtnetlink multicast groups of the namespace and, until
// ctx ends, hands f each message the kernel sends there; f returns false
// to stop. When the socket overflowed and messages were lost, f gets type
// Lost and no body. A receive error other than the overflow ends
// listening (after that call to f), as does ctx; f's last call, whatever
// ended listening, has type Ended.
func Listen(ctx context.Context, c *Conn, f func(typ uint16, body []byte) bool, groups ...uint) error {
	s, err := nl.SubscribeAt(ns(c.ns), netns.None(), unix.NETLINK_ROUTE, groups...)
	if err != nil {
		return errfmt.Errorf("subscribe to rtnetlink: %w", err)
	}
	go func() {
		<-ctx.Done()
		s.Close() // unblocks Receive below
	}()
	go func() {
		defer f(Ended, nil)
		for {
			msgs, from, err := s.Receive()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// ENOBUFS: the kernel dropped messages, the state must be
				// read again. Anything else is the socket broken for good.
				if !f(Lost, nil) || !errors.Is(err, unix.ENOBUFS) {
					return
				}
				continue
			}
			if from.Pid != nl.PidKernel {
				continue
			}
			for _, m := range msgs {
				if !f(m.Header.Type, m.Data) {
					return
				}
			}
		}
	}()
	return nil
}

// Events listens as Listen does and delivers what decode makes of each
// message on the returned channel, until ctx ends or listening fails; the
// channel is closed then. decode returns false for messages to skip.
func Events[E any](ctx context.Context, c *Conn, decode func(typ uint16, body []byte) (E, bool), groups ...uint) (<-chan E, error) {
	ch := make(chan E, 64)
	send := func(typ uint16, body []byte) bool {
		if typ == Ended {
			close(ch)
			return false
		}
		ev, ok := decode(typ, body)
		if !ok {
			return true
		}
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if err := Listen(ctx, c, send, groups...); err != nil {
		return nil, err
	}
	return ch, nil
}
