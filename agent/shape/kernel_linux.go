//go:build linux

package shape

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/rtnl"
	"golang.org/x/sys/unix"
)

// NetlinkKernel is the Kernel of a network namespace, over rtnetlink
// (internal/rtnl); tcmsg.go encodes and decodes the messages.
type NetlinkKernel struct {
	netns int
	c     *rtnl.Conn
}

// OpenKernel opens an rtnetlink socket in the network namespace whose file
// descriptor is netns (0: the caller's namespace).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	c, err := rtnl.Open(netns)
	if err != nil {
		return nil, err
	}
	return &NetlinkKernel{netns: netns, c: c}, nil
}

// Close closes the socket.
func (k *NetlinkKernel) Close() error { return rtnl.Close(k.c) }

// change sends a request that modifies the kernel and waits for its
// acknowledgement.
func (k *NetlinkKernel) change(typ, flags uint16, body []byte) error {
	_, err := rtnl.Do(k.c, unix.NETLINK_ROUTE, typ, flags|unix.NLM_F_ACK, body, 0)
	return err
}

// dump reads a table.
func (k *NetlinkKernel) dump(typ uint16, body []byte, reply uint16) ([][]byte, error) {
	return rtnl.Do(k.c, unix.NETLINK_ROUTE, typ, unix.NLM_F_DUMP, body, reply)
}

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (LinkInfo, error) {
	l, err := rtnl.LinkByName(k.c, name, ErrNoDevice)
	return linkInfo(l), err
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
	m.Str(rtnl.IflaIfname, name)
	n := m.Nest(iflaLinkinfo)
	m.Str(iflaInfoKind, "ifb")
	m.End(n)
	err := k.change(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, m)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return LinkInfo{}, errfmt.Errorf("create ifb %s: %w", name, err)
	}
	li, err := k.Link(name)
	if err != nil {
		return LinkInfo{}, err
	}
	if !li.Up {
		if err := k.change(unix.RTM_NEWLINK, 0, newIfinfomsg(li.Index, unix.IFF_UP, unix.IFF_UP)); err != nil {
			return LinkInfo{}, errfmt.Errorf("set ifb %s up: %w", name, err)
		}
		li.Up = true
	}
	return li, nil
}

// DeleteLink implements Kernel.
func (k *NetlinkKernel) DeleteLink(index uint32) error {
	return k.change(unix.RTM_DELLINK, 0, newIfinfomsg(index, 0, 0))
}

// Qdiscs implements Kernel.
func (k *NetlinkKernel) Qdiscs(ifindex uint32) ([]Qdisc, error) {
	msgs, err := k.dump(unix.RTM_GETQDISC, newTcmsg(ifindex, 0, 0, 0), unix.RTM_NEWQDISC)
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
	msgs, err := k.dump(unix.RTM_GETTCLASS, newTcmsg(ifindex, 0, 0, 0), unix.RTM_NEWTCLASS)
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
	msgs, err := k.dump(unix.RTM_GETTFILTER, newTcmsg(ifindex, 0, parent, 0), unix.RTM_NEWTFILTER)
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
	return rtnl.Events(ctx, k.c, decodeEvent, unix.RTNLGRP_LINK, unix.RTNLGRP_TC)
}

// decodeEvent turns a multicast message into an Event (rtnl.Lost: events
// were lost); ok is false for messages the shaper ignores (new qdiscs,
// classes, filters, addresses).
func decodeEvent(typ uint16, data []byte) (Event, bool) {
	switch typ {
	case rtnl.Lost:
		return Event{Kind: EventsLost}, true
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
