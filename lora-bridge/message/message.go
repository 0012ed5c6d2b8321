// Package message is the bridge's unit of store and forward: a text or
// alert with a globally unique key (origin node, id), its binary encoding
// (shared by the journal and the peer protocol), and the split of long
// text into numbered radio-sized parts and their reassembly.
package message

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kinds.
const (
	Text  = 1
	Alert = 2
)

// Key identifies a message everywhere: de-duplication is by key.
type Key struct{ Origin, ID uint32 }

func (k Key) String() string { return fmt.Sprintf("%08x/%08x", k.Origin, k.ID) }

// Message is one text or alert.
type Message struct {
	Key      Key
	Kind     uint8
	Verified bool   // alerts: signature checked against a trusted key
	Time     int64  // unix seconds when first accepted
	RadioID  uint32 // packet id used on the radio, fixed at acceptance so a resend is deduplicated by the mesh
	Sender   string // shown name; IP-side senders are named in the text
	Body     string // sanitised UTF-8
}

// MaxBody bounds a message's body (a few radio parts, not a file).
const MaxBody = 2048

var errShort = errors.New("message: truncated")

// Append appends m's binary encoding to b.
func Append(b []byte, m *Message) []byte {
	b = binary.BigEndian.AppendUint32(b, m.Key.Origin)
	b = binary.BigEndian.AppendUint32(b, m.Key.ID)
	var flags byte
	if m.Verified {
		flags = 1
	}
	b = append(b, m.Kind, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time))
	b = binary.BigEndian.AppendUint32(b, m.RadioID)
	b = appendStr(b, m.Sender)
	return appendStr(b, m.Body)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// Decode parses one encoded message from b and returns the rest.
func Decode(b []byte) (Message, []byte, error) {
	var m Message
	if len(b) < 22 {
		return m, nil, errShort
	}
	m.Key = Key{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])}
	m.Kind, m.Verified = b[8], b[9]&1 != 0
	m.Time = int64(binary.BigEndian.Uint64(b[10:]))
	m.RadioID = binary.BigEndian.Uint32(b[18:])
	b = b[22:]
	var err error
	if m.Sender, b, err = str(b); err != nil {
		return m, nil, err
	}
	if m.Body, b, err = str(b); err != nil {
		return m, nil, err
	}
	if m.Kind != Text && m.Kind != Alert {
		return m, nil, fmt.Errorf("message: unknown kind %d", m.Kind)
	}
	if len(m.Body) > MaxBody || len(m.Sender) > 64 {
		return m, nil, errors.New("message: too long")
	}
	return m, b, nil
}

func str(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, errShort
	}
	return Sanitize(b[2 : 2+n]), b[2+n:], nil
}

// Sanitize turns radio bytes into printable UTF-8: invalid sequences
// become U+FFFD and control characters other than newline and tab are
// dropped, so they cannot reach logs or LuCI as escape sequences.
func Sanitize(b []byte) string {
	if clean(b) {
		return string(b) // the usual case: one exact-size copy
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n == 1:
			sb.WriteRune(utf8.RuneError)
		case r < 0x20 && r != '\n' && r != '\t', r == 0x7f, r >= 0x80 && r < 0xa0:
		default:
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// clean reports whether Sanitize would return b unchanged.
func clean(b []byte) bool {
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
				return false
			}
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 || r >= 0x80 && r < 0xa0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// PartID is the radio packet id of part i of a message whose first part
// has id first: deterministic, so a resend after a restart reuses it.
func PartID(first uint32, i int) uint32 {
	if i == 0 {
		return first
	}
	id := first ^ (uint32(i) * 0x9E3779B9)
	if id == 0 {
		id = 1
	}
	return id
}

// Split cuts text into radio payloads of at most max bytes, on UTF-8
// boundaries. Text that fits goes unchanged; longer text is cut into parts
// prefixed "[i/n tag] " (tag: 6 hex digits) that Reassemble joins.
func Split(text string, max int, tag uint32) []string {
	if len(text) <= max {
		return []string{text}
	}
	t := fmt.Sprintf("%06x", tag&0xffffff)
	var parts []string
	// Prefix length depends on the digit count of n: find n by iteration.
	for n := 2; ; n++ {
		parts = parts[:0]
		rest := text
		for i := 1; rest != ""; i++ {
			prefix := fmt.Sprintf("[%d/%d %s] ", i, n, t)
			room := max - len(prefix)
			cut := min(room, len(rest))
			for cut > 0 && cut < len(rest) && !utf8.RuneStart(rest[cut]) {
				cut--
			}
			parts = append(parts, prefix+rest[:cut])
			rest = rest[cut:]
		}
		if len(parts) == n {
			return parts
		}
		if len(parts) < n {
			// Fewer parts than announced: renumber with the real count.
			n = len(parts) - 1
		}
	}
}

// Part is a parsed "[i/n tag] " prefix.
type Part struct {
	I, N int
	Tag  uint32
	Body string
}

// ParsePart recognises a part prefix; ok is false for ordinary text.
func ParsePart(s string) (p Part, ok bool) {
	if !strings.HasPrefix(s, "[") {
		return p, false
	}
	end := strings.Index(s, "] ")
	if end < 0 || end > 20 {
		return p, false
	}
	f := strings.Fields(s[1:end])
	if len(f) != 2 || len(f[1]) != 6 {
		return p, false
	}
	in := strings.SplitN(f[0], "/", 2)
	if len(in) != 2 {
		return p, false
	}
	i, e1 := strconv.Atoi(in[0])
	n, e2 := strconv.Atoi(in[1])
	tag, e3 := strconv.ParseUint(f[1], 16, 32)
	if e1 != nil || e2 != nil || e3 != nil || n < 2 || n > 16 || i < 1 || i > n {
		return p, false
	}
	return Part{I: i, N: n, Tag: uint32(tag), Body: s[end+2:]}, true
}
