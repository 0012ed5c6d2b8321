package shape

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// everything is a link using every feature the codec carries: marks,
// ports, ATM, overhead and a rate above the 32-bit ratespec.
func everything(t testing.TB) *Link {
	cfg, err := parseText(t, base+"\toption link_speed '100gbit'\n\toption upload '40gbit'\n\toption download '50mbit'\n"+
		"\toption overhead '8'\n\toption mpu '64'\n\toption linklayer 'atm'\n\tlist interactive_port 'tcp:1000-1100'\n\tlist bulk_mark '0x10/0xff'\n")
	if err != nil {
		t.Fatal(err)
	}
	return &cfg.Links[0]
}

// TestCodecRoundTrip: every object the shaper builds decodes back to
// itself.
func TestCodecRoundTrip(t *testing.T) {
	l := everything(t)
	up := buildTree(l, false, "eth0", 2, l.Upload, 1500)
	down := buildTree(l, true, "ifb4eth0", 3, l.Download, 1500)
	qs := []Qdisc{up.Root, ingressQdisc(2)}
	for _, kind := range supportedLeaves {
		qs = append(qs, leafQdisc(kind, 2, 0, up.LeafCeil[0]))
	}
	for _, q := range qs {
		got, err := decodeQdisc(encodeQdisc(&q))
		if err != nil || got != q {
			t.Errorf("qdisc %+v: got %+v, %v", q, got, err)
		}
	}
	for _, tr := range []tree{up, down} {
		for _, c := range tr.Classes {
			got, err := decodeClass(encodeClass(&c))
			if err != nil || got != c {
				t.Errorf("class %+v: got %+v, %v", c, got, err)
			}
		}
	}
	if r := up.Classes[0].HTB.Rate.Rate; r < 1<<32 {
		t.Fatalf("root rate %d does not exercise TCA_HTB_RATE64", r)
	}
	fs := append(append(up.Filters, down.Filters...), redirectFilter(2, 3))
	for _, f := range fs {
		got, err := decodeFilter(encodeFilter(&f))
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("filter %s: got %s, %v", filterFP(f), filterFP(got), err)
		}
	}
}

// TestCodecByteOrder: the fields the kernel reads in network order are in
// network order whatever the host's order (run on mips too).
func TestCodecByteOrder(t *testing.T) {
	f := u32Filter(2, rootHandle(), 7, match{proto: ethPIP, keys: []U32Key{key(20, 0x00350000, 0xffff0000)}}, classID(0), nil)
	b := encodeFilter(&f)
	var proto [2]byte
	binary.NativeEndian.PutUint16(proto[:], uint16(binary.NativeEndian.Uint32(b[16:]))) // TC_H_MIN(tcm_info), compared with skb->protocol
	if proto != [2]byte{0x08, 0x00} {
		t.Errorf("protocol bytes % x", proto)
	}
	if binary.NativeEndian.Uint32(b[16:])>>16 != 7 {
		t.Errorf("priority %d", binary.NativeEndian.Uint32(b[16:])>>16)
	}
	// struct tc_u32_key: mask, val (both big-endian), off (host order).
	want := append([]byte{0xff, 0xff, 0, 0, 0, 0x35, 0, 0}, binary.NativeEndian.AppendUint32(nil, 20)...)
	if !bytes.Contains(b, want) {
		t.Errorf("no big-endian key % x in % x", want, b)
	}
}

// TestDecodeMalformed: damaged messages fail with an error naming the
// object, never a panic.
func TestDecodeMalformed(t *testing.T) {
	q := Qdisc{Ifindex: 2, Handle: rootHandle(), Parent: tcHRoot, Kind: "htb", Defcls: 0x30}
	good := encodeQdisc(&q)
	shortInit := append([]byte(nil), good...)
	// TCA_OPTIONS is the last attribute; shrink the TCA_HTB_INIT in it.
	opts := len(shortInit) - 4 - 4 - sizeHTBGlob
	binary.NativeEndian.PutUint16(shortInit[opts:], 4+4+8)
	binary.NativeEndian.PutUint16(shortInit[opts+4:], 4+8)
	shortInit = shortInit[:opts+4+4+8]

	f := redirectFilter(2, 3)
	fb := encodeFilter(&f)
	i := bytes.Index(fb, []byte("mirred\x00"))
	noKind := append([]byte(nil), fb...)
	copy(noKind[i-2:], []byte{9, 0}) // TCA_ACT_KIND becomes an unknown type 9

	sel := bytes.Index(fb, []byte{u32Terminal, 0, 1, 0}) // flags, offshift, nkeys
	manyKeys := append([]byte(nil), fb...)
	manyKeys[sel+2] = 5

	c := htbClass(2, rootClassID(), classID(0), 1000, 2000, 0, everything(t), 1500)
	cb := binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint16(encodeClass(&c), 8), tcaKind) // claims 4 bytes more than there are

	for _, tc := range []struct {
		name, want string
		decode     func([]byte) error
		b          []byte
	}{
		{"empty", "qdisc: 0 bytes, shorter than struct tcmsg", qdiscErr, nil},
		{"short tcmsg", "filter: 19 bytes", filterErr, fb[:19]},
		{"stray bytes", "qdisc htb 1:0 parent root on ifindex 2: 2 stray bytes", qdiscErr, append(good, 0, 0)},
		{"no kind", "qdisc 1:0 parent root on ifindex 2: no kind", qdiscErr, good[:sizeTcmsg]},
		{"short htb init", "qdisc htb 1:0 parent root on ifindex 2: options: attribute 2: 8 bytes, want 20", qdiscErr, shortInit},
		{"action kind", "filter u32 0:0 parent ffff:0 on ifindex 2: options: action 1: no kind", filterErr, noKind},
		{"keys", "filter u32 0:0 parent ffff:0 on ifindex 2: options: attribute 5: 32 bytes, want 96", filterErr, manyKeys},
		{"attribute overrun", "class htb 1:10 parent 1:1 on ifindex 2: attribute 1: length 8, 4 bytes left", classErr, cb},
		{"long kind", "qdisc 1:0 parent root on ifindex 2: kind \"abcdefghijklmnopq\" longer than 15 bytes",
			qdiscErr, encodeQdisc(&Qdisc{Ifindex: 2, Handle: rootHandle(), Parent: tcHRoot, Kind: "abcdefghijklmnopq"})},
	} {
		err := tc.decode(tc.b)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.want)
		}
	}
}

func qdiscErr(b []byte) error  { _, err := decodeQdisc(b); return err }
func classErr(b []byte) error  { _, err := decodeClass(b); return err }
func filterErr(b []byte) error { _, err := decodeFilter(b); return err }

// corpus reads a seed of FuzzDecode.
func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", name))
	if err != nil {
		t.Fatal(err)
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(string(b)), "go test fuzz v1\n[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}

// TestDecodeKernelDumps decodes messages captured from Linux 6.18 on
// x86-64 (the kernel-* seeds) with this configuration applied to eth0
// (ifindex 3, its IFB 4) and a ping sent; little-endian hosts only, as netlink is
// host order.
func TestDecodeKernelDumps(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("captured on a little-endian host")
	}
	cfg, err := parseText(t, base+"\toption link_speed '100gbit'\n\toption upload '40gbit'\n\toption download '50000'\n\tlist bulk_mark '0x10/0xff'\n\toption leaf 'pfifo'\n")
	if err != nil {
		t.Fatal(err)
	}
	l := &cfg.Links[0]
	want := buildTree(l, false, "eth0", 3, l.Upload, 1500)
	q, err := decodeQdisc(corpus(t, "kernel-qdisc-htb"))
	if err != nil || !rootOK(q) || q.Ifindex != 3 {
		t.Errorf("root qdisc %+v, %v", q, err)
	}
	q, err = decodeQdisc(corpus(t, "kernel-qdisc-pfifo"))
	if err != nil || q.Kind != "pfifo" || q.Limit == 0 {
		t.Errorf("leaf qdisc %+v, %v", q, err)
	}
	for i, name := range []string{"kernel-class-0", "kernel-class-1"} {
		c, err := decodeClass(corpus(t, name))
		w := want.Classes[i]
		if err != nil || classFP(c) != classFP(w) {
			t.Errorf("%s: got %q, want %q (%v)", name, classFP(c), classFP(w), err)
		}
	}
	// Counters of the packets sent while capturing.
	c, err := decodeClass(corpus(t, "kernel-class-0"))
	if err != nil || c.Stats != (Stats{Bytes: 308, Packets: 4}) {
		t.Errorf("statistics %+v, %v", c.Stats, err)
	}
	f, err := decodeFilter(corpus(t, "kernel-filter-hashtable"))
	if err != nil || f.Kind != "u32" || f.U32 != nil || filterFP(f) != "" {
		t.Errorf("hash table %+v, %v", f, err)
	}
	f, err = decodeFilter(corpus(t, "kernel-filter-ingress-mirred"))
	rf := redirectFilter(3, 4)
	if err != nil || filterFP(f) != filterFP(rf) {
		t.Errorf("redirect: got %q, want %q (%v)", filterFP(f), filterFP(rf), err)
	}
	li, err := decodeLink(corpus(t, "kernel-link"))
	if err != nil || li != (LinkInfo{Index: 3, Name: "eth0", MTU: 1500, Up: true}) {
		t.Errorf("link %+v, %v", li, err)
	}
}

// FuzzDecode: no input makes a decoder panic; errors name the object; what
// decodes encodes back to the same object.
func FuzzDecode(f *testing.F) {
	l := everything(f)
	tr := buildTree(l, false, "eth0", 2, l.Upload, 1500)
	f.Add(encodeQdisc(&tr.Root))
	f.Add(encodeQdisc(&Qdisc{Kind: "fq_codel", Limit: 1001}))
	f.Add(encodeQdisc(&Qdisc{Kind: "sfq", Perturb: 10}))
	f.Add(encodeClass(&tr.Classes[0]))
	f.Add(encodeFilter(&tr.Filters[0]))
	rf := redirectFilter(2, 3)
	f.Add(encodeFilter(&rf))
	f.Fuzz(func(t *testing.T, b []byte) {
		if q, err := decodeQdisc(b); err != nil {
			if !strings.HasPrefix(err.Error(), "qdisc") {
				t.Fatalf("error does not name the qdisc: %v", err)
			}
		} else if got, err := decodeQdisc(encodeQdisc(&q)); err != nil || got != q {
			t.Fatalf("qdisc %+v re-decodes as %+v, %v", q, got, err)
		}
		if c, err := decodeClass(b); err != nil {
			if !strings.HasPrefix(err.Error(), "class") {
				t.Fatalf("error does not name the class: %v", err)
			}
		} else {
			c.Stats = Stats{} // read-only
			if got, err := decodeClass(encodeClass(&c)); err != nil || got != c {
				t.Fatalf("class %+v re-decodes as %+v, %v", c, got, err)
			}
		}
		if fl, err := decodeFilter(b); err != nil {
			if !strings.HasPrefix(err.Error(), "filter") {
				t.Fatalf("error does not name the filter: %v", err)
			}
		} else if got, err := decodeFilter(encodeFilter(&fl)); err != nil || !reflect.DeepEqual(got, fl) {
			t.Fatalf("filter %+v re-decodes as %+v, %v", fl, got, err)
		}
		if _, err := decodeLink(b); err != nil && !strings.HasPrefix(err.Error(), "link") {
			t.Fatalf("error does not name the link: %v", err)
		}
	})
}
