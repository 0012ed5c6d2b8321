package shape

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// maxKbit bounds every rate: 100 Gbit/s is beyond any router we ship to and
// keeps byte-per-second arithmetic far from overflow.
const maxKbit = 100_000_000

// ParseKbit parses a rate in kbit/s: a plain integer, or an integer with a
// unit suffix kbit, mbit or gbit (as tc writes them). Zero and negative
// rates are errors: the caller names the option.
func ParseKbit(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gbit", 1_000_000}, {"mbit", 1000}, {"kbit", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errfmt.Errorf("%q is not a rate in kbit/s (examples: 20000, 20mbit)", s)
	}
	if n <= 0 {
		return 0, errfmt.Errorf("rate must be above zero, got %d", n)
	}
	if n > maxKbit/mult {
		return 0, errfmt.Errorf("rate %d%s is above the 100 Gbit/s this shaper handles", n, unitName(mult))
	}
	return n * mult, nil
}

func unitName(mult int64) string {
	switch mult {
	case 1000:
		return "mbit"
	case 1_000_000:
		return "gbit"
	}
	return "kbit"
}

// Share is a class's guaranteed rate or ceiling: a percentage of the
// interface limit in force, or a fixed rate. Percentages follow schedule
// changes; fixed rates do not.
type Share struct {
	Percent int   `json:"percent,omitempty"` // 1..100, or 0 when Kbit is set
	Kbit    int64 `json:"kbit,omitempty"`
}

// Of returns the share in kbit/s of a limit in kbit/s; at least 1.
// Not inlined: 64-bit multiply and divide are long on 32-bit MIPS.
//
//go:noinline
func (s Share) Of(limit int64) int64 {
	v := s.Kbit
	if s.Percent > 0 {
		v = limit * int64(s.Percent) / 100
	}
	return max(v, 1)
}

func (s Share) String() string {
	if s.Percent > 0 {
		return strconv.Itoa(s.Percent) + "%"
	}
	return strconv.FormatInt(s.Kbit, 10)
}

// parseShare parses "25%" or a rate accepted by parseKbit.
func parseShare(s string) (Share, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 || n > 100 {
			return Share{}, errfmt.Errorf("%q: a percentage must be 1%% to 100%%", s)
		}
		return Share{Percent: n}, nil
	}
	k, err := ParseKbit(t)
	if err != nil {
		return Share{}, err
	}
	return Share{Kbit: k}, nil
}

// Window is one daily schedule entry: from Start to End (minutes after
// local midnight; End < Start wraps past midnight) the limits it names
// replace the section's. A zero Upload or Download keeps the section's.
type Window struct {
	Start    int   `json:"start_min"`
	End      int   `json:"end_min"`
	Upload   int64 `json:"upload_kbit,omitempty"`
	Download int64 `json:"download_kbit,omitempty"`
}

// Contains reports whether minute-of-day m falls in the window.
func (w Window) Contains(m int) bool {
	if w.Start < w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// overlaps reports whether two windows share any minute of the day.
func (w Window) overlaps(o Window) bool {
	return w.Contains(o.Start) || o.Contains(w.Start)
}

// parseWindow parses "HH:MM-HH:MM upload=RATE download=RATE" (at least one
// of the two). "00:00-24:00" is not accepted: a window covering the whole
// day is the section's own limit.
func parseWindow(s string) (Window, error) {
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return Window{}, errfmt.Errorf("%q: want \"HH:MM-HH:MM upload=RATE download=RATE\"", s)
	}
	from, to, ok := strings.Cut(fields[0], "-")
	if !ok {
		return Window{}, errfmt.Errorf("%q: time range must be HH:MM-HH:MM", fields[0])
	}
	var w Window
	var err error
	if w.Start, err = parseClock(from); err != nil {
		return Window{}, err
	}
	if w.End, err = parseClock(to); err != nil {
		return Window{}, err
	}
	if w.Start == w.End {
		return Window{}, errfmt.Errorf("%q: start and end are equal; a window must be shorter than a day", fields[0])
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Window{}, errfmt.Errorf("%q: want upload=RATE or download=RATE", f)
		}
		r, err := ParseKbit(v)
		if err != nil {
			return Window{}, errfmt.Errorf("%s: %w", k, err)
		}
		switch k {
		case "upload":
			if w.Upload != 0 {
				return Window{}, errors.New("upload given twice")
			}
			w.Upload = r
		case "download":
			if w.Download != 0 {
				return Window{}, errors.New("download given twice")
			}
			w.Download = r
		default:
			return Window{}, errfmt.Errorf("%q: unknown key (want upload or download)", k)
		}
	}
	return w, nil
}

// parseClock parses "H:MM" or "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(m) != 2 || len(h) < 1 || len(h) > 2 {
		return 0, errfmt.Errorf("%q: time must be HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || h[0] == '+' || h[0] == '-' || m[0] == '+' || m[0] == '-' ||
		hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, errfmt.Errorf("%q: time must be HH:MM between 00:00 and 23:59", s)
	}
	return hh*60 + mm, nil
}

// dscpNames are the standard code points (RFC 2474, 2597, 3246, 5865,
// 8622). A table, not a map: a map literal is built by init code.
var dscpNames = [...]struct {
	name string
	val  uint8
}{
	{"CS0", 0}, {"CS1", 8}, {"CS2", 16}, {"CS3", 24}, {"CS4", 32}, {"CS5", 40}, {"CS6", 48}, {"CS7", 56},
	{"AF11", 10}, {"AF12", 12}, {"AF13", 14}, {"AF21", 18}, {"AF22", 20}, {"AF23", 22},
	{"AF31", 26}, {"AF32", 28}, {"AF33", 30}, {"AF41", 34}, {"AF42", 36}, {"AF43", 38},
	{"EF", 46}, {"VA", 44}, {"LE", 1}, {"BE", 0},
}

// parseDSCP parses a DSCP name (EF, AF41, CS6, ...) or a number 0..63
// (decimal or 0x hex).
func parseDSCP(s string) (uint8, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	for _, d := range dscpNames {
		if d.name == t {
			return d.val, nil
		}
	}
	n, err := strconv.ParseUint(strings.ToLower(t), 0, 8)
	if err != nil || n > 63 {
		return 0, errfmt.Errorf("%q is not a DSCP name (EF, AF41, CS6, ...) or number 0-63", s)
	}
	return uint8(n), nil
}

// Proto selects the transport protocol of a port match.
type Proto uint8

// IP protocol numbers used in port and protocol matches.
const (
	ProtoAny    Proto = 0
	ProtoICMP   Proto = 1
	ProtoTCP    Proto = 6
	ProtoUDP    Proto = 17
	ProtoICMPv6 Proto = 58
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return "any"
}

// PortSpec matches a source or destination port range of TCP, UDP or both.
type PortSpec struct {
	Proto    Proto  `json:"proto"`
	From, To uint16 `json:"-"`
}

func (p PortSpec) String() string {
	s := strconv.Itoa(int(p.From))
	if p.To != p.From {
		s += "-" + strconv.Itoa(int(p.To))
	}
	if p.Proto != ProtoAny {
		s = p.Proto.String() + ":" + s
	}
	return s
}

// maxPortMasks bounds the u32 keys one range may expand to, so a typo like
// 1-65534 cannot create dozens of filters per packet path.
const maxPortMasks = 8

// parsePort parses "[tcp:|udp:]PORT[-PORT]".
func parsePort(s string) (PortSpec, error) {
	var p PortSpec
	t := strings.TrimSpace(s)
	if proto, rest, ok := strings.Cut(t, ":"); ok {
		switch strings.ToLower(proto) {
		case "tcp":
			p.Proto = ProtoTCP
		case "udp":
			p.Proto = ProtoUDP
		default:
			return PortSpec{}, errfmt.Errorf("%q: protocol must be tcp or udp", s)
		}
		t = rest
	}
	from, to, isRange := strings.Cut(t, "-")
	a, err := parsePortNum(from)
	if err != nil {
		return PortSpec{}, errfmt.Errorf("%q: %w", s, err)
	}
	b := a
	if isRange {
		if b, err = parsePortNum(to); err != nil {
			return PortSpec{}, errfmt.Errorf("%q: %w", s, err)
		}
	}
	if b < a {
		return PortSpec{}, errfmt.Errorf("%q: range ends before it starts", s)
	}
	p.From, p.To = a, b
	if n := len(portMasks(a, b)); n > maxPortMasks {
		return PortSpec{}, errfmt.Errorf("%q: range needs %d masks, more than %d; use an aligned range", s, n, maxPortMasks)
	}
	return p, nil
}

func parsePortNum(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || s[0] == '+' {
		return 0, errfmt.Errorf("%q is not a port 1-65535", s)
	}
	return uint16(n), nil
}

// valueMask is a value under a mask, as u32 and fw filters match.
type valueMask struct{ Val, Mask uint16 }

// portMasks splits [a, b] into the fewest aligned power-of-two blocks, each
// one value/mask pair a u32 key can test.
func portMasks(a, b uint16) []valueMask {
	var out []valueMask
	lo, hi := uint32(a), uint32(b)
	for lo <= hi {
		size := uint32(1)
		for lo%(size*2) == 0 && lo+size*2-1 <= hi && size < 1<<16 {
			size *= 2
		}
		out = append(out, valueMask{Val: uint16(lo), Mask: uint16(^(size - 1))})
		lo += size
	}
	return out
}

// MarkSpec matches the packet mark (set by the firewall) under a mask.
type MarkSpec struct {
	Val  uint32 `json:"val"`
	Mask uint32 `json:"mask"`
}

func (m MarkSpec) String() string { return fmt.Sprintf("0x%x/0x%x", m.Val, m.Mask) }

// parseMark parses "VALUE[/MASK]" (decimal or 0x hex); the mask defaults
// to all ones. A zero mask or a value outside the mask cannot match as
// written and is an error.
func parseMark(s string) (MarkSpec, error) {
	v, m, hasMask := strings.Cut(strings.TrimSpace(s), "/")
	val, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return MarkSpec{}, errfmt.Errorf("%q: mark must be a number, optionally /mask", s)
	}
	mask := uint64(0xffffffff)
	if hasMask {
		if mask, err = strconv.ParseUint(m, 0, 32); err != nil {
			return MarkSpec{}, errfmt.Errorf("%q: mask must be a number", s)
		}
	}
	if mask == 0 || val == 0 || val&^mask != 0 {
		return MarkSpec{}, errfmt.Errorf("%q: value must be non-zero and inside the mask", s)
	}
	return MarkSpec{Val: uint32(val), Mask: uint32(mask)}, nil
}
