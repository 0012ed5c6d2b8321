package wan

import (
	"encoding/binary"
	"errors"
	"strings"
)

// DNS probes need one question and a glance at the reply: written out
// instead of linking a DNS library for it.

const (
	dnsTypeNS  = 2
	dnsClassIN = 1
)

// dnsQuery builds a recursive query for name's NS records ("." asks for
// the root servers, which every resolver can answer).
func dnsQuery(id uint16, name string) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], 1)      // QDCOUNT
	name = strings.TrimSuffix(name, ".")
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			if len(l) == 0 || len(l) > 63 {
				return nil, errors.New("bad DNS name " + name)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0, 0, dnsTypeNS, 0, dnsClassIN)
	if len(b) > 12+255+4 {
		return nil, errors.New("DNS name too long")
	}
	return b, nil
}

// dnsAnswers reports whether msg is a response to query id, with its
// response code. Any response counts as a live path, even an error
// (REFUSED, SERVFAIL): the server was reached through the uplink.
func dnsAnswers(msg []byte, id uint16) (ok bool, rcode int) {
	if len(msg) < 12 {
		return false, 0
	}
	if binary.BigEndian.Uint16(msg[0:]) != id {
		return false, 0
	}
	flags := binary.BigEndian.Uint16(msg[2:])
	if flags&0x8000 == 0 { // QR: a query, not an answer
		return false, 0
	}
	if flags>>11&0xf != 0 { // opcode must be QUERY
		return false, 0
	}
	return true, int(flags & 0xf)
}
