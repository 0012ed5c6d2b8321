// Package frame splits the Meshtastic serial stream into protobuf frames
// and the log text the radio prints between them.
//
// A frame is 0x94 0xC3, a 16-bit big-endian length (at most 512), then the
// payload. There is no checksum, so a candidate frame is only accepted when
// the caller's validator accepts its payload; otherwise scanning resumes at
// the byte after the candidate's 0x94, as the firmware's own parser does.
package frame

import "encoding/binary"

const (
	Start1 = 0x94
	Start2 = 0xC3
	// MaxPayload is the firmware's limit; longer headers are garbage.
	MaxPayload  = 512
	HeaderLen   = 4
	MaxFrameLen = HeaderLen + MaxPayload
	// maxText bounds one text chunk handed to the caller, so a radio that
	// prints without newlines cannot grow memory.
	maxText = 256
)

// Append appends the framed payload to dst. It panics on payloads over
// MaxPayload: callers encode messages whose size they control.
func Append(dst, payload []byte) []byte {
	if len(payload) > MaxPayload {
		panic("frame: payload over 512 bytes")
	}
	dst = append(dst, Start1, Start2, 0, 0)
	binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(payload)))
	return append(dst, payload...)
}

// Handler receives what the Splitter finds. Slices are only valid during
// the call: the Splitter reuses its buffers.
type Handler interface {
	// Frame is offered a candidate payload and reports whether it is a
	// valid message. Returning false makes the Splitter treat the 0x94 as
	// text and rescan from the next byte.
	Frame(payload []byte) bool
	// Text receives log text between frames, at most maxText bytes at a
	// time, split at newlines where possible. It is raw bytes: the radio's
	// log may be invalid UTF-8.
	Text(text []byte)
}

// Stats counts what the splitter saw, for status output.
type Stats struct {
	Frames    uint64 // accepted frames
	Rejected  uint64 // candidates whose header or payload was refused
	TextBytes uint64
}

// Splitter is a bounded stream parser: it never holds more than one
// maximum frame plus one text chunk, whatever the input.
type Splitter struct {
	h     Handler
	buf   [MaxFrameLen]byte
	n     int
	text  [maxText]byte
	tn    int
	Stats Stats
}

// NewSplitter returns a Splitter calling h.
func NewSplitter(h Handler) *Splitter { return &Splitter{h: h} }

// Write feeds bytes read from the radio. It never fails.
func (s *Splitter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		c := copy(s.buf[s.n:], p)
		s.n += c
		p = p[c:]
		s.scan()
	}
	return total, nil
}

// Flush hands buffered text and a stalled partial frame to the caller as
// text. Call it when the line has been idle: a false header inside log
// text must not hold back the text behind it forever.
func (s *Splitter) Flush() {
	for s.n > 0 {
		s.textByte(s.buf[0])
		s.consume(1)
		s.scan()
	}
	s.flushText()
}

// Reset drops everything buffered, for a new connection.
func (s *Splitter) Reset() { s.n, s.tn = 0, 0 }

func (s *Splitter) scan() {
	for s.n > 0 {
		b := s.buf[:s.n]
		if b[0] != Start1 {
			// Hand over text up to the next possible frame start.
			i := 1
			for i < len(b) && b[i] != Start1 {
				i++
			}
			for _, c := range b[:i] {
				s.textByte(c)
			}
			s.consume(i)
			continue
		}
		if len(b) < 2 {
			return
		}
		if b[1] != Start2 {
			s.reject()
			continue
		}
		if len(b) < HeaderLen {
			return
		}
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l > MaxPayload {
			s.reject()
			continue
		}
		if len(b) < HeaderLen+l {
			return
		}
		// Text before a frame goes out first so logs stay in order.
		s.flushText()
		if !s.h.Frame(b[HeaderLen : HeaderLen+l]) {
			s.reject()
			continue
		}
		s.Stats.Frames++
		s.consume(HeaderLen + l)
	}
}

// reject treats the 0x94 that began a failed candidate as text and resumes
// at the next byte: a real frame may start inside the bogus one.
func (s *Splitter) reject() {
	s.Stats.Rejected++
	s.textByte(s.buf[0])
	s.consume(1)
}

func (s *Splitter) consume(k int) {
	copy(s.buf[:], s.buf[k:s.n])
	s.n -= k
}

func (s *Splitter) textByte(c byte) {
	s.Stats.TextBytes++
	s.text[s.tn] = c
	s.tn++
	if c == '\n' || s.tn == len(s.text) {
		s.flushText()
	}
}

func (s *Splitter) flushText() {
	if s.tn > 0 {
		s.h.Text(s.text[:s.tn])
		s.tn = 0
	}
}
