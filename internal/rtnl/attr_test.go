package rtnl

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// hdr is an attribute header claiming length l, in host order, then rest.
func hdr(l, typ uint16, rest ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, l)
	return append(binary.NativeEndian.AppendUint16(b, typ), rest...)
}

// TestMsg: attributes are padded, nests get their length, and the bytes
// are host order (the cross run on big-endian MIPS checks that too).
func TestMsg(t *testing.T) {
	m := Msg(Words(7))
	m.Str(3, "eth0")
	n := m.Nest(18)
	m.U32(1, 0x01020304)
	m.U64(2, 5)
	m.End(n)
	m.Attr(9, []byte{1})
	want := Words(7)
	want = append(want, hdr(9, 3, 'e', 't', 'h', '0', 0, 0, 0, 0)...)
	want = append(want, hdr(4+8+12, 18|Nested)...)
	want = append(want, hdr(8, 1)...)
	want = binary.NativeEndian.AppendUint32(want, 0x01020304)
	want = append(want, hdr(12, 2)...)
	want = binary.NativeEndian.AppendUint64(want, 5)
	want = append(want, hdr(5, 9, 1, 0, 0, 0)...)
	if !bytes.Equal(m, want) {
		t.Fatalf("got  % x\nwant % x", []byte(m), want)
	}

	a := Parse(m[4:])
	var got []string
	for a.Next() {
		switch a.Type {
		case 3:
			got = append(got, a.Str())
		case 18:
			in := Parse(a.Val)
			for in.Next() {
				if in.Type == 1 && in.Need(4) && in.U32() != 0x01020304 || in.Type == 2 && in.Need(8) && in.U64() != 5 {
					t.Errorf("nested %d: % x", in.Type, in.Val)
				}
			}
			if in.Err != nil {
				t.Error(in.Err)
			}
			got = append(got, "nest")
		case 9:
			got = append(got, string(a.Val))
		}
	}
	if a.Err != nil || strings.Join(got, ",") != "eth0,nest,\x01" {
		t.Fatalf("%q %v", got, a.Err)
	}
}

// TestAttrsGarbled: a run cut short or with a lying length is an error
// naming the attribute, never a panic.
func TestAttrsGarbled(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{hdr(5, 3, 'x', 0, 0, 0, 9, 0), "2 stray bytes after the attributes"},
		{hdr(0xff, 1, 0, 0), "attribute 1: length 255, 6 bytes left"},
		{hdr(2, 1), "attribute 1: length 2, 4 bytes left"},
		{hdr(8, 1, 1, 2, 3), "attribute 1: length 8, 7 bytes left"},
		{[]byte{1, 2, 3}, "3 stray bytes after the attributes"},
	} {
		a := Parse(tc.b)
		for a.Next() {
		}
		if a.Err == nil || a.Err.Error() != tc.want {
			t.Errorf("% x: %v, want %s", tc.b, a.Err, tc.want)
		}
	}
	// Flags are not part of the type; the last attribute may lack its
	// padding.
	a := Parse(hdr(5, 3|Nested|0x4000, 'x'))
	if !a.Next() || a.Type != 3 || string(a.Val) != "x" || a.Next() || a.Err != nil {
		t.Fatalf("flags and padding: %d % x %v", a.Type, a.Val, a.Err)
	}
	a = Parse(hdr(6, 4, 1, 2))
	if !a.Next() || a.Need(4) || a.Err == nil || a.Err.Error() != "attribute 4: 2 bytes, want 4" {
		t.Fatalf("need: %v", a.Err)
	}
}

func TestDecodeLink(t *testing.T) {
	m := Msg(Words(0, 3, 0x10043, 0))
	m.U32(iflaMTU, 1500)
	m.Str(IflaIfname, "eth0")
	l, err := DecodeLink(m)
	if err != nil || l != (Link{Index: 3, Flags: 0x10043, MTU: 1500, Name: "eth0"}) {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := DecodeLink(m[:15]); err == nil || err.Error() != "link: 15 bytes, shorter than struct ifinfomsg" {
		t.Errorf("short: %v", err)
	}
	if _, err := DecodeLink(append(m, 1, 2)); err == nil || err.Error() != `link 3 "eth0": 2 stray bytes after the attributes` {
		t.Errorf("garbled: %v", err)
	}
}

// FuzzAttrs: no input makes the iterator or DecodeLink panic; what the
// iterator accepts encodes back to the same bytes, padding aside.
func FuzzAttrs(f *testing.F) {
	m := Msg(Words(0, 3, 1, 0))
	m.Str(IflaIfname, "eth0")
	n := m.Nest(18)
	m.Str(1, "ifb")
	m.End(n)
	m.U32(iflaMTU, 1500)
	f.Add([]byte(m))
	f.Add(hdr(5, 3, 'x'))
	f.Add(hdr(0xff, 1, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := DecodeLink(b); err != nil {
			if !strings.HasPrefix(err.Error(), "link") {
				t.Fatalf("error does not name the link: %v", err)
			}
		} else if len(b) < SizeIfinfomsg || l.Index != U32(b, 4) {
			t.Fatalf("% x decoded as %+v", b, l)
		}
		roundTrip(t, b)
		if len(b) >= SizeIfinfomsg {
			roundTrip(t, b[SizeIfinfomsg:]) // a link's attributes
		}
	})
}

// roundTrip checks that the attributes in b, if they parse, encode back
// to the same types and values; flags and padding bytes are not kept.
func roundTrip(t *testing.T, b []byte) {
	var back Msg
	a := Parse(b)
	for a.Next() {
		back.Attr(a.Type, a.Val)
	}
	if a.Err != nil {
		return
	}
	a, c := Parse(b), Parse(back)
	for a.Next() {
		if !c.Next() || c.Type != a.Type || !bytes.Equal(c.Val, a.Val) {
			t.Fatalf("% x re-encodes as % x", b, []byte(back))
		}
	}
	if c.Next() || c.Err != nil {
		t.Fatalf("% x re-encodes as % x", b, []byte(back))
	}
}
