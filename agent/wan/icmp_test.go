package wan

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestICMPEcho checks the encoding against a request whose checksum was
// worked out apart (RFC 1071: 0x0800+0x1c46+0x0001+"abcdefgh" as words,
// folded, complemented) and that garbled replies are refused.
func TestICMPEcho(t *testing.T) {
	want := []byte{8, 0, 0x4a, 0x23, 0x1c, 0x46, 0, 1, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
	got := icmpEcho(icmpEchoRequest, 0x1c46, 1, []byte("abcdefgh"))
	if !bytes.Equal(got, want) {
		t.Fatalf("request % x, want % x", got, want)
	}
	if _, _, _, ok := parseEchoReply(got); ok {
		t.Fatal("a request parsed as a reply")
	}
	reply := icmpEcho(icmpEchoReply, 0x1c46, 1, []byte("abcdefg")) // odd length
	id, seq, data, ok := parseEchoReply(reply)
	if !ok || id != 0x1c46 || seq != 1 || string(data) != "abcdefg" {
		t.Fatalf("reply: %x %d %q %v", id, seq, data, ok)
	}
	for i := range reply {
		bad := bytes.Clone(reply)
		bad[i] ^= 0x10
		if _, _, _, ok := parseEchoReply(bad); ok {
			t.Errorf("flipping a bit of byte %d went unnoticed", i)
		}
	}
	if _, _, _, ok := parseEchoReply(reply[:7]); ok {
		t.Error("a short reply parsed")
	}
}

// FuzzEchoReply: whatever the socket hands over, the parser does not
// panic, and what it accepts is an intact echo reply that encodes back.
func FuzzEchoReply(f *testing.F) {
	f.Add(icmpEcho(icmpEchoReply, 7, 9, []byte("token123")))
	f.Add(icmpEcho(icmpEchoRequest, 7, 9, nil))
	f.Add([]byte{0, 0, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, seq, data, ok := parseEchoReply(b)
		if !ok {
			return
		}
		if len(b) < 8 || b[0] != icmpEchoReply || b[1] != 0 ||
			id != binary.BigEndian.Uint16(b[4:]) || seq != binary.BigEndian.Uint16(b[6:]) || !bytes.Equal(data, b[8:]) {
			t.Fatalf("accepted % x as id %d seq %d data % x", b, id, seq, data)
		}
		// The checksum field may differ: 0x0000 and 0xffff are both
		// zero in one's complement.
		again := icmpEcho(icmpEchoReply, id, seq, data)
		if !bytes.Equal(again[4:], b[4:]) {
			t.Fatalf("% x encodes back as % x", b, again)
		}
		if _, _, _, ok := parseEchoReply(again); !ok {
			t.Fatalf("% x re-encoded does not parse", b)
		}
	})
}
