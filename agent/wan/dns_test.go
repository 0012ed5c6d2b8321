package wan

import (
	"encoding/binary"
	"testing"
)

func TestDNSQuery(t *testing.T) {
	q, err := dnsQuery(0x1234, "example.org.")
	if err != nil {
		t.Fatal(err)
	}
	want := "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\x02\x00\x01"
	if string(q) != want {
		t.Fatalf("%q", q)
	}
	if q, _ := dnsQuery(1, "."); len(q) != 17 || q[12] != 0 {
		t.Fatalf("root query %q", q)
	}
	if _, err := dnsQuery(1, "a..b"); err == nil {
		t.Fatal("empty label accepted")
	}
	// An answer: the query with QR set, any rcode counts.
	ans := append([]byte(nil), q...)
	binary.BigEndian.PutUint16(ans[2:], 0x8185) // QR RD RA, REFUSED
	if ok, rc := dnsAnswers(ans, 0x1234); !ok || rc != 5 {
		t.Fatalf("answer not recognised: %v %d", ok, rc)
	}
	if ok, _ := dnsAnswers(ans, 0x1235); ok {
		t.Fatal("wrong id accepted")
	}
	if ok, _ := dnsAnswers(q, 0x1234); ok {
		t.Fatal("a query taken for an answer")
	}
}

func FuzzDNSAnswers(f *testing.F) {
	q, _ := dnsQuery(7, ".")
	f.Add(q, uint16(7))
	a := append([]byte(nil), q...)
	a[2] |= 0x80
	f.Add(a, uint16(7))
	f.Add([]byte{0, 7, 0x80}, uint16(7))
	f.Fuzz(func(t *testing.T, msg []byte, id uint16) {
		ok, rc := dnsAnswers(msg, id)
		if ok && (len(msg) < 12 || binary.BigEndian.Uint16(msg) != id || msg[2]&0x80 == 0 || rc > 15) {
			t.Fatalf("accepted %x for id %d", msg, id)
		}
	})
}

func FuzzDNSQuery(f *testing.F) {
	for _, s := range []string{".", "example.org", "a.b.c.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q, err := dnsQuery(9, name)
		if err != nil {
			return
		}
		if len(q) < 17 || binary.BigEndian.Uint16(q) != 9 {
			t.Fatalf("%q -> %x", name, q)
		}
		// The question must parse back label by label to its end.
		i := 12
		for q[i] != 0 {
			i += int(q[i]) + 1
			if i >= len(q) {
				t.Fatalf("%q: labels run past the end: %x", name, q)
			}
		}
		if i+5 != len(q) {
			t.Fatalf("%q: %d bytes after the name", name, len(q)-i-1)
		}
	})
}
