// Package rtnl is the netlink plumbing agent/wan and agent/shape share on
// top of vishvananda/netlink/nl (linked by Nebula anyway): message bodies
// built as bytes, attributes read with length checks, one socket per
// protocol in a network namespace, and link events. Each package keeps
// only its own messages; one copy of the rest is less flash.
//
// Netlink is host byte order. This file is portable, so the codecs built
// on it can be tested anywhere.
package rtnl

import (
	"encoding/binary"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// Attribute type flags (linux/netlink.h).
const (
	Nested   = 0x8000 // NLA_F_NESTED
	typeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// Fixed structures and attributes of links (linux/if_link.h, rtnetlink.h).
const (
	SizeIfinfomsg = 16 // struct ifinfomsg
	IflaIfname    = 3  // IFLA_IFNAME
	iflaMTU       = 4  // IFLA_MTU
)

// Words lays out a C struct made of 32-bit host-order fields.
//
//go:noinline
func Words(v ...uint32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, w := range v {
		b = binary.NativeEndian.AppendUint32(b, w)
	}
	return b
}

// U32 reads the host-order 32-bit field at off. Like the builders below
// it is not inlined: messages are built and read rarely, from dozens of
// places, and each inlined copy costs MIPS flash.
//
//go:noinline
func U32(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }

// Msg is a message body being built: a fixed header, then attributes.
// The header's length must be a multiple of 4.
type Msg []byte

// Attr appends an attribute holding v, padded to 4 bytes. Not inlined:
// it is called from many places, and flash matters more than speed.
//
//go:noinline
func (m *Msg) Attr(typ uint16, v []byte) {
	b := binary.NativeEndian.AppendUint16(*m, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	*m = b
}

// U32 appends a 32-bit host-order attribute.
//
//go:noinline
func (m *Msg) U32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m.Attr(typ, b[:])
}

// U64 appends a 64-bit host-order attribute.
//
//go:noinline
func (m *Msg) U64(typ uint16, v uint64) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	m.Attr(typ, b[:])
}

// Str appends a NUL-terminated string attribute.
//
//go:noinline
func (m *Msg) Str(typ uint16, s string) { m.Attr(typ, append([]byte(s), 0)) }

// Nest opens a nested attribute; End closes it.
//
//go:noinline
func (m *Msg) Nest(typ uint16) int {
	at := len(*m)
	m.Attr(typ|Nested, nil)
	return at
}

// End sets the length of the nested attribute Nest opened at at.
//
//go:noinline
func (m *Msg) End(at int) { binary.NativeEndian.PutUint16((*m)[at:], uint16(len(*m)-at)) }

// Attrs iterates over a run of attributes, stopping with Err at the first
// one that does not fit: the kernel's answers are trusted no further than
// their lengths.
type Attrs struct {
	b    []byte
	Type uint16 // without its flags
	Val  []byte
	Err  error
}

// Parse starts iterating over the attributes in b.
func Parse(b []byte) Attrs { return Attrs{b: b} }

// Next moves to the next attribute; false at the end or on an error.
func (a *Attrs) Next() bool {
	if a.Err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < 4 {
		a.Err = errfmt.Errorf("%d stray bytes after the attributes", len(a.b))
		return false
	}
	l := int(binary.NativeEndian.Uint16(a.b))
	a.Type = binary.NativeEndian.Uint16(a.b[2:]) & typeMask
	if l < 4 || l > len(a.b) {
		a.Err = errfmt.Errorf("attribute %d: length %d, %d bytes left", a.Type, l, len(a.b))
		return false
	}
	a.Val = a.b[4:l]
	// The last attribute's padding may be missing.
	a.b = a.b[min((l+3)&^3, len(a.b)):]
	return true
}

// Need fails unless the current attribute holds at least n bytes.
//
//go:noinline
func (a *Attrs) Need(n int) bool {
	if len(a.Val) < n {
		a.Err = errfmt.Errorf("attribute %d: %d bytes, want %d", a.Type, len(a.Val), n)
		return false
	}
	return true
}

// U32 is the current attribute's value as a host-order uint32; call
// Need(4) first.
func (a *Attrs) U32() uint32 { return U32(a.Val, 0) }

// U64 is the current attribute's value as a host-order uint64; call
// Need(8) first.
//
//go:noinline
func (a *Attrs) U64() uint64 { return binary.NativeEndian.Uint64(a.Val) }

// Str is the current attribute's value up to its NUL.
//
//go:noinline
func (a *Attrs) Str() string {
	s, _, _ := strings.Cut(string(a.Val), "\x00")
	return s
}

// Link is an RTM_NEWLINK or RTM_DELLINK reduced to what the agent uses.
type Link struct {
	Index uint32
	Flags uint32 // IFF_*
	MTU   uint32
	Name  string
}

// DecodeLink decodes an RTM_NEWLINK or RTM_DELLINK body; errors start with
// "link".
func DecodeLink(b []byte) (Link, error) {
	if len(b) < SizeIfinfomsg {
		return Link{}, errfmt.Errorf("link: %d bytes, shorter than struct ifinfomsg", len(b))
	}
	l := Link{Index: U32(b, 4), Flags: U32(b, 8)}
	a := Parse(b[SizeIfinfomsg:])
	for a.Next() {
		switch {
		case a.Type == IflaIfname:
			l.Name = a.Str()
		case a.Type == iflaMTU && a.Need(4):
			l.MTU = a.U32()
		}
	}
	if a.Err != nil {
		return l, errfmt.Errorf("link %d %q: %w", l.Index, l.Name, a.Err)
	}
	return l, nil
}
