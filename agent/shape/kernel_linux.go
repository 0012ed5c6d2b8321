//go:build linux

package shape

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/florianl/go-tc"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkKernel is the Kernel of a network namespace, over rtnetlink:
// go-tc for traffic control, plain netlink messages for links.
type NetlinkKernel struct {
	netns int
	tc    *tc.Tc
	rt    *netlink.Conn
}

// OpenKernel opens rtnetlink sockets in the network namespace whose file
// descriptor is netns (0: the caller's namespace).
func OpenKernel(netns int) (*NetlinkKernel, error) {
	t, err := tc.Open(&tc.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink for tc: %w", err)
	}
	// Extended acks turn EINVAL into the kernel's own explanation.
	_ = t.SetOption(netlink.ExtendedAcknowledge, true)
	rt, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: netns})
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	_ = rt.SetOption(netlink.ExtendedAcknowledge, true)
	return &NetlinkKernel{netns: netns, tc: t, rt: rt}, nil
}

// Close closes the sockets.
func (k *NetlinkKernel) Close() error {
	return errors.Join(k.tc.Close(), k.rt.Close())
}

func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// decodeLink decodes an RTM_NEWLINK body.
func decodeLink(data []byte) (LinkInfo, error) {
	if len(data) < unix.SizeofIfInfomsg {
		return LinkInfo{}, errors.New("short ifinfomsg")
	}
	li := LinkInfo{
		Index: binary.NativeEndian.Uint32(data[4:8]),
		Up:    binary.NativeEndian.Uint32(data[8:12])&unix.IFF_UP != 0,
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return LinkInfo{}, err
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			li.Name = ad.String()
		case unix.IFLA_MTU:
			li.MTU = int(ad.Uint32())
		}
	}
	return li, ad.Err()
}

// Link implements Kernel.
func (k *NetlinkKernel) Link(name string) (LinkInfo, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return LinkInfo{}, err
	}
	msgs, err := k.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   append(ifinfomsg(0, 0, 0), attrs...),
	})
	if errors.Is(err, unix.ENODEV) {
		return LinkInfo{}, fmt.Errorf("%s: %w", name, ErrNoDevice)
	}
	if err != nil {
		return LinkInfo{}, fmt.Errorf("look up %s: %w", name, err)
	}
	if len(msgs) != 1 {
		return LinkInfo{}, fmt.Errorf("look up %s: %d replies", name, len(msgs))
	}
	return decodeLink(msgs[0].Data)
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
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
		nae.String(unix.IFLA_INFO_KIND, "ifb")
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return LinkInfo{}, err
	}
	_, err = k.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK,
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
		Data: append(ifinfomsg(0, 0, 0), attrs...),
	})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return LinkInfo{}, fmt.Errorf("create ifb %s: %w", name, err)
	}
	li, err := k.Link(name)
	if err != nil {
		return LinkInfo{}, err
	}
	if !li.Up {
		_, err = k.rt.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
			Data:   ifinfomsg(int32(li.Index), unix.IFF_UP, unix.IFF_UP),
		})
		if err != nil {
			return LinkInfo{}, fmt.Errorf("set ifb %s up: %w", name, err)
		}
		li.Up = true
	}
	return li, nil
}

// DeleteLink implements Kernel.
func (k *NetlinkKernel) DeleteLink(index uint32) error {
	_, err := k.rt.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_DELLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   ifinfomsg(int32(index), 0, 0),
	})
	return err
}

// Qdiscs implements Kernel.
func (k *NetlinkKernel) Qdiscs(ifindex uint32) ([]tc.Object, error) {
	all, err := k.tc.Qdisc().Get()
	if err != nil {
		return nil, err
	}
	var out []tc.Object
	for _, q := range all {
		if q.Ifindex == ifindex {
			out = append(out, q)
		}
	}
	return out, nil
}

// Classes implements Kernel.
func (k *NetlinkKernel) Classes(ifindex uint32) ([]tc.Object, error) {
	return k.tc.Class().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: ifindex})
}

// Filters implements Kernel.
func (k *NetlinkKernel) Filters(ifindex, parent uint32) ([]tc.Object, error) {
	return k.tc.Filter().Get(&tc.Msg{Family: unix.AF_UNSPEC, Ifindex: ifindex, Parent: parent})
}

// ReplaceQdisc implements Kernel.
func (k *NetlinkKernel) ReplaceQdisc(o *tc.Object) error { return k.tc.Qdisc().Replace(o) }

// DeleteQdisc implements Kernel.
func (k *NetlinkKernel) DeleteQdisc(o *tc.Object) error { return k.tc.Qdisc().Delete(o) }

// ReplaceClass implements Kernel.
func (k *NetlinkKernel) ReplaceClass(o *tc.Object) error { return k.tc.Class().Replace(o) }

// DeleteClass implements Kernel.
func (k *NetlinkKernel) DeleteClass(o *tc.Object) error { return k.tc.Class().Delete(o) }

// AddFilter implements Kernel.
func (k *NetlinkKernel) AddFilter(o *tc.Object) error { return k.tc.Filter().Add(o) }

// DeleteFilter implements Kernel.
func (k *NetlinkKernel) DeleteFilter(o *tc.Object) error {
	d := tc.Object{Msg: o.Msg, Attribute: tc.Attribute{Kind: o.Kind}}
	d.Handle = 0
	return k.tc.Filter().Delete(&d)
}

// Events implements Kernel: one socket joined to the link and tc groups.
func (k *NetlinkKernel) Events(ctx context.Context) (<-chan Event, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: k.netns})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink events: %w", err)
	}
	for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_TC} {
		if err := c.JoinGroup(g); err != nil {
			c.Close()
			return nil, fmt.Errorf("join rtnetlink group %d: %w", g, err)
		}
	}
	ch := make(chan Event, 64)
	go func() {
		<-ctx.Done()
		// Unblocks Receive below.
		_ = c.SetReadDeadline(time.Unix(1, 0))
	}()
	go func() {
		defer close(ch)
		defer c.Close()
		for ctx.Err() == nil {
			msgs, err := c.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// ENOBUFS: the kernel dropped events; the caller resyncs.
				select {
				case ch <- Event{Kind: EventsLost}:
				case <-ctx.Done():
					return
				}
				if !errors.Is(err, unix.ENOBUFS) {
					time.Sleep(time.Second) // a broken socket must not spin
				}
				continue
			}
			for _, m := range msgs {
				ev, ok := decodeEvent(m)
				if !ok {
					continue
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

// decodeEvent turns a multicast message into an Event; ok is false for
// messages the shaper ignores (new qdiscs, classes, filters, addresses).
func decodeEvent(m netlink.Message) (Event, bool) {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		li, err := decodeLink(m.Data)
		if err != nil {
			return Event{}, false
		}
		kind := LinkChanged
		if m.Header.Type == unix.RTM_DELLINK {
			kind = LinkRemoved
		}
		return Event{Kind: kind, Ifindex: li.Index, Name: li.Name}, true
	case unix.RTM_DELQDISC:
		if len(m.Data) < 20 {
			return Event{}, false
		}
		return Event{Kind: QdiscDeleted, Ifindex: binary.NativeEndian.Uint32(m.Data[4:8])}, true
	}
	return Event{}, false
}
