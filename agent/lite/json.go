package lite

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// JSON without encoding/json: the lite agent writes a few fixed shapes and
// reads two fields of lora-bridge's reply, and reflect-based encoding would
// cost it more than all of its own code.

// appendString appends s as a JSON string, escaped as encoding/json does
// (invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// quote is s in double quotes for messages (JSON escaping, close to %q).
func quote(s string) string { return string(appendString(nil, s)) }

// object builds one JSON object.
type object struct{ b []byte }

func (o *object) key(k string) {
	if len(o.b) == 0 {
		o.b = append(o.b, '{')
	} else {
		o.b = append(o.b, ',')
	}
	o.b = appendString(o.b, k)
	o.b = append(o.b, ':')
}

func (o *object) str(k, v string) { o.key(k); o.b = appendString(o.b, v) }
func (o *object) num(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}
func (o *object) unum(k string, v uint64) {
	o.key(k)
	o.b = strconv.AppendUint(o.b, v, 10)
}
func (o *object) boolean(k string, v bool) { o.key(k); o.b = strconv.AppendBool(o.b, v) }
func (o *object) raw(k string, v []byte)   { o.key(k); o.b = append(o.b, v...) }

func (o *object) bytes() []byte {
	if len(o.b) == 0 {
		return []byte("{}")
	}
	return append(o.b, '}')
}

var errSyntax = errors.New("invalid JSON")

// scanner checks JSON and finds values without decoding them.
type scanner struct {
	d     []byte
	p     int
	depth int
}

func (s *scanner) ws() {
	for s.p < len(s.d) {
		switch s.d[s.p] {
		case ' ', '\t', '\n', '\r':
			s.p++
		default:
			return
		}
	}
}

// value skips one value and returns its span.
func (s *scanner) value() (int, int, error) {
	s.ws()
	if s.p >= len(s.d) {
		return 0, 0, errSyntax
	}
	start := s.p
	var err error
	switch c := s.d[s.p]; {
	case c == '{' || c == '[':
		err = s.compound(c)
	case c == '"':
		_, err = s.str()
	case c == 't':
		err = s.lit("true")
	case c == 'f':
		err = s.lit("false")
	case c == 'n':
		err = s.lit("null")
	default:
		err = s.number()
	}
	return start, s.p, err
}

func (s *scanner) lit(w string) error {
	if len(s.d)-s.p < len(w) || string(s.d[s.p:s.p+len(w)]) != w {
		return errSyntax
	}
	s.p += len(w)
	return nil
}

// number checks the JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d := s.d
	digits := func() bool {
		start := s.p
		for s.p < len(d) && d[s.p] >= '0' && d[s.p] <= '9' {
			s.p++
		}
		return s.p > start
	}
	if s.p < len(d) && d[s.p] == '-' {
		s.p++
	}
	if s.p < len(d) && d[s.p] == '0' {
		s.p++
	} else if !digits() {
		return errSyntax
	}
	if s.p < len(d) && d[s.p] == '.' {
		s.p++
		if !digits() {
			return errSyntax
		}
	}
	if s.p < len(d) && (d[s.p] == 'e' || d[s.p] == 'E') {
		s.p++
		if s.p < len(d) && (d[s.p] == '+' || d[s.p] == '-') {
			s.p++
		}
		if !digits() {
			return errSyntax
		}
	}
	return nil
}

// str reads a string and returns it decoded.
func (s *scanner) str() (string, error) {
	s.p++ // opening quote
	var b []byte
	for s.p < len(s.d) {
		c := s.d[s.p]
		s.p++
		switch {
		case c == '"':
			return string(b), nil
		case c < 0x20:
			return "", errSyntax
		case c == '\\':
			if s.p >= len(s.d) {
				return "", errSyntax
			}
			e := s.d[s.p]
			s.p++
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				if len(s.d)-s.p < 4 {
					return "", errSyntax
				}
				n, ok := parseUint(string(s.d[s.p:s.p+4]), 16)
				if !ok {
					return "", errSyntax
				}
				s.p += 4
				b = utf8.AppendRune(b, rune(n)) // surrogates become U+FFFD: only shown to people
			default:
				return "", errSyntax
			}
		default:
			b = append(b, c)
		}
	}
	return "", errSyntax
}

func (s *scanner) compound(open byte) error {
	if s.depth++; s.depth > 64 {
		return errSyntax
	}
	defer func() { s.depth-- }()
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	s.p++
	s.ws()
	if s.p < len(s.d) && s.d[s.p] == closer {
		s.p++
		return nil
	}
	for {
		if open == '{' {
			s.ws()
			if s.p >= len(s.d) || s.d[s.p] != '"' {
				return errSyntax
			}
			if _, err := s.str(); err != nil {
				return err
			}
			s.ws()
			if s.p >= len(s.d) || s.d[s.p] != ':' {
				return errSyntax
			}
			s.p++
		}
		if _, _, err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.p >= len(s.d) {
			return errSyntax
		}
		switch s.d[s.p] {
		case ',':
			s.p++
		case closer:
			s.p++
			return nil
		default:
			return errSyntax
		}
	}
}

// objectFields checks that data is exactly one JSON object and returns its
// members as raw values (the last of repeated keys wins).
func objectFields(data []byte) (map[string][]byte, error) {
	s := &scanner{d: data}
	s.ws()
	if s.p >= len(data) || data[s.p] != '{' {
		return nil, errSyntax
	}
	out := map[string][]byte{}
	s.p++
	s.ws()
	if s.p < len(data) && data[s.p] == '}' {
		s.p++
	} else {
		for {
			s.ws()
			if s.p >= len(data) || data[s.p] != '"' {
				return nil, errSyntax
			}
			k, err := s.str()
			if err != nil {
				return nil, err
			}
			s.ws()
			if s.p >= len(data) || data[s.p] != ':' {
				return nil, errSyntax
			}
			s.p++
			a, b, err := s.value()
			if err != nil {
				return nil, err
			}
			out[k] = data[a:b]
			s.ws()
			if s.p >= len(data) {
				return nil, errSyntax
			}
			if data[s.p] == '}' {
				s.p++
				break
			}
			if data[s.p] != ',' {
				return nil, errSyntax
			}
			s.p++
		}
	}
	s.ws()
	if s.p != len(data) {
		return nil, errSyntax
	}
	return out, nil
}

// jsonString decodes a raw JSON string value ("" if it is not one).
func jsonString(raw []byte) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	s := &scanner{d: raw}
	v, _ := s.str()
	return v
}
