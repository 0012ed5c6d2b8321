package wan

import "encoding/binary"

// ICMP echo (RFC 792) by hand: the probe needs nothing else of ICMP.
// The layout is type, code, checksum, identifier, sequence number (all
// network byte order), then the data echoed back.
const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
	icmpEchoHeader  = 8
)

// icmpChecksum is the Internet checksum (RFC 1071) of b, not yet
// complemented: 0xffff over a message whose checksum field is right.
func icmpChecksum(b []byte) uint16 {
	var s uint64 // cannot overflow on any slice
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8 // an odd byte is padded with zero
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// icmpEcho encodes an echo message of type typ.
func icmpEcho(typ uint8, id, seq uint16, data []byte) []byte {
	b := make([]byte, icmpEchoHeader+len(data))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[icmpEchoHeader:], data)
	binary.BigEndian.PutUint16(b[2:], ^icmpChecksum(b))
	return b
}

// parseEchoReply decodes an ICMP message (without IP header) that must be
// an intact echo reply; anything else, short or with a wrong checksum, is
// refused.
func parseEchoReply(b []byte) (id, seq uint16, data []byte, ok bool) {
	if len(b) < icmpEchoHeader || b[0] != icmpEchoReply || b[1] != 0 || icmpChecksum(b) != 0xffff {
		return 0, 0, nil, false
	}
	return binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), b[icmpEchoHeader:], true
}
