//go:build linux

package shape

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetlinkKernel is the Kernel of a network namespace, over rtnetlink:
// vishvananda/netlink's nl package (linked in by Nebula already) carries
// the messages that tcmsg.go encodes and decodes.
type NetlinkKernel struct {
	netns   int
	sockets map[int]*nl.SocketHandle // what nl.NetlinkRequest wants for a socket of our own
}

// nsHandle maps the netns file descriptor (0: ours) to nl's notation.
func nsHandle(fd int) netns.NsHandle {
	if fd == 0 {
		return netns.None()
	}
	return netns.NsHandle(fd)
}

// OpenKernel opens an rtnetlink socket in the network namespace whose file
// descriptor is netns (0: the caller's namespace).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	s, err := nl.GetNetlinkSocketAt(nsHandle(netns), nsHandle(0), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	// Extended acks turn EINVAL into the kernel's own explanation, which
	// Execute appends to the errno.
	_ = s.SetExtAck(true)
	// A lost reply must not hold the reconcile loop (and its lock) forever.
	timeout := unix.Timeval{Sec: 10}
	_ = s.SetSendTimeout(&timeout)
	_ = s.SetReceiveTimeout(&timeout)
	return &NetlinkKernel{netns: netns, sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}}, nil
}

// Close closes the socket.
func (k *NetlinkKernel) Close() error {
	k.sockets[unix.NETLINK_ROUTE].Close()
	return nil
}

// request sends one message and returns the bodies of the replies of
// type reply (0: none expected beyond the acknowledgement).
func (k *NetlinkKernel) request(typ uint16, flags int, body []byte, reply uint16) ([][]byte, error) {
	req := nl.NewNetlinkRequest(int(typ), flags)
	req.Sockets = k.sockets
	req.AddRawData(body)
	return req.Execute(unix.NETLINK_ROUTE, reply)
}

// change sends a request that modifies the kernel and waits for its
// acknowledgement.
func (k *NetlinkKernel) change(typ uint16, flags int, body []byte) error {
	_, err := k.request(typ, flags|unix.NLM_F_ACK, body, 0)
	return err
}

// dump reads a table, starting over if it changed while being read.
func (k *NetlinkKernel) dump(typ uint16, body []byte, reply uint16) ([][]byte, error) {
	for range 3 {
		msgs, err := k.request(typ, unix.NLM_F_DUMP, body, reply)
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			return msgs, err
		}
	}
	return nil, nl.ErrDumpInterrupted
}

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (LinkInfo, error) {
	m := newIfinfomsg(0, 0, 0)
	m.str(iflaIfname, name)
	msgs, err := k.request(unix.RTM_GETLINK, 0, m.b, unix.RTM_NEWLINK)
	if errors.Is(err, unix.ENODEV) {
		return LinkInfo{}, fmt.Errorf("%s: %w", name, ErrNoDevice)
	}
	if err != nil {
		return LinkInfo{}, fmt.Errorf("look up %s: %w", name, err)
	}
	if len(msgs) != 1 {
		return LinkInfo{}, fmt.Errorf("look up %s: %d replies", name, len(msgs))
	}
	return decodeLink(msgs[0])
}

// LinkSpeed implements Kernel. sysfs shows the namespace it was mounted
// in, so the speed is only read for the agent's own namespace.
func (k *NetlinkKernel) LinkSpeed(name string) int64 {
	if k.netns != 0 || strings.ContainsAny(name, "/") {
		return 0
	}
	b, err := os.ReadFile("/sys/class/net/" + name + "/speed")
	if err != nil {
		return 0
	}
	mbit, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || mbit <= 0 {
		return 0 // -1 when the driver does not know (wireless, down)
	}
	return mbit * 1000
}

// AddIFB implements Kernel.
func (k *NetlinkKernel) AddIFB(name string) (LinkInfo, error) {
	m := newIfinfomsg(0, 0, 0)
	m.str(iflaIfname, name)
	n := m.nest(iflaLinkinfo)
	m.str(iflaInfoKind, "ifb")
	m.end(n)
	err := k.change(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, m.b)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return LinkInfo{}, fmt.Errorf("create ifb %s: %w", name, err)
	}
	li, err := k.Link(name)
	if err != nil {
		return LinkInfo{}, err
	}
	if !li.Up {
		if err := k.change(unix.RTM_NEWLINK, 0, newIfinfomsg(li.Index, unix.IFF_UP, unix.IFF_UP).b); err != nil {
			return LinkInfo{}, fmt.Errorf("set ifb %s up: %w", name, err)
		}
		li.Up = true
	}
	return li, nil
}

// DeleteLink implements Kernel.
func (k *NetlinkKernel) DeleteLink(index uint32) error {
	return k.change(unix.RTM_DELLINK, 0, newIfinfomsg(index, 0, 0).b)
}

// Qdiscs implements Kernel.
func (k *NetlinkKernel) Qdiscs(ifindex uint32) ([]Qdisc, error) {
	msgs, err := k.dump(unix.RTM_GETQDISC, newTcmsg(ifindex, 0, 0, 0).b, unix.RTM_NEWQDISC)
	if err != nil {
		return nil, err
	}
	var out []Qdisc
	for _, b := range msgs {
		// The kernel dumps every device's qdiscs; only ours are decoded.
		if len(b) >= sizeTcmsg && u32at(b, 4) != ifindex {
			continue
		}
		q, err := decodeQdisc(b)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}

// Classes implements Kernel.
func (k *NetlinkKernel) Classes(ifindex uint32) ([]TCClass, error) {
	msgs, err := k.dump(unix.RTM_GETTCLASS, newTcmsg(ifindex, 0, 0, 0).b, unix.RTM_NEWTCLASS)
	if err != nil {
		return nil, err
	}
	out := make([]TCClass, 0, len(msgs))
	for _, b := range msgs {
		c, err := decodeClass(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Filters implements Kernel.
func (k *NetlinkKernel) Filters(ifindex, parent uint32) ([]Filter, error) {
	msgs, err := k.dump(unix.RTM_GETTFILTER, newTcmsg(ifindex, 0, parent, 0).b, unix.RTM_NEWTFILTER)
	if err != nil {
		return nil, err
	}
	out := make([]Filter, 0, len(msgs))
	for _, b := range msgs {
		f, err := decodeFilter(b)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ReplaceQdisc implements Kernel.
func (k *NetlinkKernel) ReplaceQdisc(q *Qdisc) error {
	return k.change(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, encodeQdisc(q))
}

// DeleteQdisc implements Kernel.
func (k *NetlinkKernel) DeleteQdisc(q *Qdisc) error {
	return k.change(unix.RTM_DELQDISC, 0, encodeDelete(q.Ifindex, q.Handle, q.Parent, 0, q.Kind))
}

// ReplaceClass implements Kernel.
func (k *NetlinkKernel) ReplaceClass(c *TCClass) error {
	return k.change(unix.RTM_NEWTCLASS, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, encodeClass(c))
}

// DeleteClass implements Kernel.
func (k *NetlinkKernel) DeleteClass(c *TCClass) error {
	return k.change(unix.RTM_DELTCLASS, 0, encodeDelete(c.Ifindex, c.Handle, c.Parent, 0, c.Kind))
}

// AddFilter implements Kernel.
func (k *NetlinkKernel) AddFilter(f *Filter) error {
	return k.change(unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL, encodeFilter(f))
}

// DeleteFilter implements Kernel: handle 0 removes the whole priority.
func (k *NetlinkKernel) DeleteFilter(f *Filter) error {
	return k.change(unix.RTM_DELTFILTER, 0, encodeDelete(f.Ifindex, 0, f.Parent, filterInfo(f), f.Kind))
}

// Events implements Kernel: one socket joined to the link and tc groups.
func (k *NetlinkKernel) Events(ctx context.Context) (<-chan Event, error) {
	s, err := nl.SubscribeAt(nsHandle(k.netns), nsHandle(0), unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_TC)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink events: %w", err)
	}
	ch := make(chan Event, 64)
	go func() {
		<-ctx.Done()
		s.Close() // unblocks Receive below
	}()
	go func() {
		defer close(ch)
		send := func(ev Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			msgs, _, err := s.Receive()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// ENOBUFS: the kernel dropped events; the caller resyncs.
				if !send(Event{Kind: EventsLost}) {
					return
				}
				if !errors.Is(err, unix.ENOBUFS) {
					select { // a broken socket must not spin
					case <-time.After(time.Second):
					case <-ctx.Done():
						return
					}
				}
				continue
			}
			for _, m := range msgs {
				if ev, ok := decodeEvent(m.Header.Type, m.Data); ok && !send(ev) {
					return
				}
			}
		}
	}()
	return ch, nil
}

// decodeEvent turns a multicast message into an Event; ok is false for
// messages the shaper ignores (new qdiscs, classes, filters, addresses).
func decodeEvent(typ uint16, data []byte) (Event, bool) {
	switch typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		li, err := decodeLink(data)
		if err != nil {
			return Event{}, false
		}
		kind := LinkChanged
		if typ == unix.RTM_DELLINK {
			kind = LinkRemoved
		}
		return Event{Kind: kind, Ifindex: li.Index, Name: li.Name}, true
	case unix.RTM_DELQDISC:
		if len(data) < sizeTcmsg {
			return Event{}, false
		}
		return Event{Kind: QdiscDeleted, Ifindex: u32at(data, 4)}, true
	}
	return Event{}, false
}
