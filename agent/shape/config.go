package shape

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/uci"
)

// SectionType is the UCI section type read from /etc/config/meshnode.
const SectionType = "shape"

// Class names, in priority order.
const (
	Emergency   = "emergency"
	Interactive = "interactive"
	Bulk        = "bulk"
)

// classNames lists the three classes in priority order; index is the HTB
// prio and the minor handle is (index+1)*16 (1:10, 1:20, 1:30 in hex).
var classNames = [3]string{Emergency, Interactive, Bulk}

// DefaultLeaves is the leaf qdisc preference: fair queueing with AQM
// first, then a plain byte FIFO, which every kernel with HTB has.
var DefaultLeaves = []string{"fq_codel", "cake", "sfq", "bfifo"}

// supportedLeaves are the leaf kinds the shaper knows how to configure.
var supportedLeaves = []string{"fq_codel", "cake", "sfq", "pfifo", "bfifo"}

// Config is the shaping configuration: one Link per shaped interface.
type Config struct {
	File  string `json:"file"`
	Links []Link `json:"links"`
}

// Link shapes one WAN interface: upload on its egress, download on the
// egress of an IFB that its ingress is redirected to.
type Link struct {
	Section   string        `json:"section"`
	Device    string        `json:"device"`
	IFB       string        `json:"ifb,omitempty"`
	LinkSpeed int64         `json:"link_speed_kbit,omitempty"` // 0: read from the kernel at Apply
	Upload    int64         `json:"upload_kbit,omitempty"`     // 0: egress not shaped
	Download  int64         `json:"download_kbit,omitempty"`   // 0: ingress not shaped
	Overhead  int           `json:"overhead"`                  // bytes added to each packet for accounting
	MPU       int           `json:"mpu,omitempty"`             // minimum packet size for accounting
	ATM       bool          `json:"atm,omitempty"`             // ADSL: account in 53-byte cells
	Burst     time.Duration `json:"burst"`                     // burst as time at the class rate
	Leaves    []string      `json:"leaves"`
	Classes   [3]Class      `json:"classes"`
	Schedule  []Window      `json:"schedule,omitempty"`
	// NebulaPort is the node's Nebula UDP port; its control packets go to
	// the emergency class when Classes[0].Builtin is set.
	NebulaPort uint16 `json:"nebula_port"`

	file  string
	lines map[string]int // option name → line, for errors
}

// Class is one HTB class: its guarantee, ceiling and what traffic it gets.
type Class struct {
	Name  string     `json:"name"`
	Rate  Share      `json:"rate"`
	Ceil  Share      `json:"ceil"`
	DSCP  []uint8    `json:"dscp,omitempty"`
	Ports []PortSpec `json:"ports,omitempty"`
	Marks []MarkSpec `json:"marks,omitempty"`
	// Builtin adds ICMP, ICMPv6, DNS and Nebula handshake/lighthouse/test
	// packets (emergency class only).
	Builtin bool `json:"builtin,omitempty"`
}

// Defaults for classes when the section does not set them.
var defaultClasses = [3]Class{
	{Name: Emergency, Rate: Share{Percent: 10}, Ceil: Share{Percent: 100}, Builtin: true,
		DSCP: []uint8{46, 48, 56}}, // EF, CS6, CS7
	{Name: Interactive, Rate: Share{Percent: 30}, Ceil: Share{Percent: 100},
		DSCP: []uint8{34, 32, 24, 26}}, // AF41, CS4, CS3, AF31
	{Name: Bulk, Rate: Share{Percent: 60}, Ceil: Share{Percent: 100}},
}

// DefaultNebulaPort is the UDP port whose control packets go to emergency.
const DefaultNebulaPort = 4242

// options known in a shape section; anything else is a typo to report.
// The class options are <class>_rate, _ceil, _dscp, _port, _mark for each
// of classNames, in that order.
var knownOptions = []string{"enabled", "device", "ifb", "link_speed", "upload", "download", "overhead", "mpu",
	"linklayer", "burst_ms", "leaf", "schedule", "nebula_port",
	"emergency_rate", "emergency_ceil", "emergency_dscp", "emergency_port", "emergency_mark",
	"interactive_rate", "interactive_ceil", "interactive_dscp", "interactive_port", "interactive_mark",
	"bulk_rate", "bulk_ceil", "bulk_dscp", "bulk_port", "bulk_mark",
	"emergency_builtin"}

// The per-class options, parsed in this order; classSuffixes names them.
const (
	classRate = iota
	classCeil
	classDSCP
	classPort
	classMark
)

var classSuffixes = [...]string{classRate: "_rate", classCeil: "_ceil", classDSCP: "_dscp", classPort: "_port", classMark: "_mark"}

// ParseConfig reads every `config shape` section of f (see the package
// documentation for the options). Sections with enabled '0' are skipped.
// Errors are *uci.Error naming the file, section, option and line.
func ParseConfig(f *uci.File) (Config, error) {
	cfg := Config{File: f.Name}
	devices := map[string]string{}
	ifbs := map[string]string{}
	for _, s := range f.SectionsOfType(SectionType) {
		if v, ok := s.Get("enabled"); ok && v == "0" {
			continue
		}
		l, err := parseLink(f.Name, s)
		if err != nil {
			return Config{}, err
		}
		if prev, dup := devices[l.Device]; dup {
			return Config{}, l.errorf("device", "device %q is already shaped by section %q", l.Device, prev)
		}
		devices[l.Device] = l.Section
		if l.IFB != "" {
			if prev, dup := ifbs[l.IFB]; dup {
				return Config{}, l.errorf("ifb", "ifb %q is already used by section %q", l.IFB, prev)
			}
			if _, clash := devices[l.IFB]; clash {
				return Config{}, l.errorf("ifb", "ifb %q is a shaped device", l.IFB)
			}
			ifbs[l.IFB] = l.Section
		}
		cfg.Links = append(cfg.Links, *l)
	}
	for i := range cfg.Links {
		l := &cfg.Links[i]
		if prev, clash := ifbs[l.Device]; clash {
			return Config{}, l.errorf("device", "device %q is the ifb of section %q", l.Device, prev)
		}
	}
	return cfg, nil
}

// get returns an option's value, trimmed, and whether it is set.
func get(s *uci.Section, name string) (string, bool) {
	v, ok := s.Get(name)
	return strings.TrimSpace(v), ok
}

// list is s.List out of line: inlined, its search and copy cost flash at
// each of its callers.
//
//go:noinline
func list(s *uci.Section, name string) []string { return s.List(name) }

// parseLink returns a pointer: Link is large, and a zero Link returned
// by value from each error path costs flash on MIPS.
func parseLink(file string, s *uci.Section) (*Link, error) {
	l := &Link{Section: s.Ref(), file: file, lines: map[string]int{}, Classes: defaultClasses,
		Burst: time.Millisecond, Leaves: DefaultLeaves}
	for i := range l.Classes {
		l.Classes[i].DSCP = slices.Clone(l.Classes[i].DSCP)
	}
	for _, o := range s.Options() {
		l.lines[o.Name] = o.Line
		if !slices.Contains(knownOptions, o.Name) {
			return nil, l.errorf(o.Name, "unknown option (known: %s)", strings.Join(knownOptions, ", "))
		}
	}
	if err := l.parse(s); err != nil {
		return nil, err
	}
	return l, nil
}

// parse reads the options of s into l, which holds the defaults.
func (l *Link) parse(s *uci.Section) error {
	var ok bool
	if l.Device, ok = get(s, "device"); !ok || l.Device == "" {
		return l.errorf("device", "missing: name the kernel interface to shape, e.g. option device 'eth0'")
	}
	if err := checkIfName(l.Device); err != nil {
		return l.wrap("device", err)
	}
	for _, r := range [...]struct {
		name string
		dst  *int64
	}{{"upload", &l.Upload}, {"download", &l.Download}, {"link_speed", &l.LinkSpeed}} {
		if v, ok := get(s, r.name); ok {
			n, err := ParseKbit(v)
			if err != nil {
				return l.wrap(r.name, err)
			}
			*r.dst = n
		}
	}
	if l.Upload == 0 && l.Download == 0 {
		return l.errorf("upload", "neither upload nor download is set: nothing to shape (set enabled '0' to turn shaping off)")
	}
	if l.Download > 0 {
		l.IFB = ifbName(l.Device)
		if v, ok := get(s, "ifb"); ok {
			if err := checkIfName(v); err != nil {
				return l.wrap("ifb", err)
			}
			l.IFB = v
		}
		if l.IFB == l.Device {
			return l.errorf("ifb", "ifb must differ from device")
		}
	}
	burstMS := 1
	for _, o := range [...]struct {
		name   string
		lo, hi int
		dst    *int
	}{{"overhead", 0, 256, &l.Overhead}, {"mpu", 0, 256, &l.MPU}, {"burst_ms", 1, 50, &burstMS}} {
		if err := l.intOption(s, o.name, o.lo, o.hi, o.dst); err != nil {
			return err
		}
	}
	l.Burst = time.Duration(burstMS) * time.Millisecond
	if v, ok := get(s, "linklayer"); ok {
		switch v {
		case "ethernet":
		case "atm":
			l.ATM = true
		default:
			return l.errorf("linklayer", "%q: want ethernet or atm", v)
		}
	}
	if v := list(s, "leaf"); v != nil {
		leaves := splitItems(v)
		for _, k := range leaves {
			if !slices.Contains(supportedLeaves, k) {
				return l.errorf("leaf", "%q: unsupported leaf qdisc (supported: %s)", k, strings.Join(supportedLeaves, ", "))
			}
		}
		if len(leaves) == 0 {
			return l.errorf("leaf", "empty preference list")
		}
		l.Leaves = leaves
	}
	nebulaPort := DefaultNebulaPort
	if err := l.intOption(s, "nebula_port", 1, 65535, &nebulaPort); err != nil {
		return err
	}
	if err := l.parseClasses(s, nebulaPort); err != nil {
		return err
	}
	for _, item := range list(s, "schedule") {
		w, err := parseWindow(item)
		if err != nil {
			return l.wrap("schedule", err)
		}
		if w.Upload > 0 && l.Upload == 0 {
			return l.errorf("schedule", "%s sets upload but the section has no upload limit", w)
		}
		if w.Download > 0 && l.Download == 0 {
			return l.errorf("schedule", "%s sets download but the section has no download limit", w)
		}
		for _, o := range l.Schedule {
			if w.overlaps(o) {
				return l.errorf("schedule", "window %s overlaps window %s", w, o)
			}
		}
		l.Schedule = append(l.Schedule, w)
	}
	if err := l.checkRates(l.Upload, l.Download, "upload", "download"); err != nil {
		return err
	}
	if err := l.CheckLinkSpeed(l.LinkSpeed); err != nil {
		return err
	}
	for _, w := range l.Schedule {
		up, down := l.limits(w)
		if err := l.checkRates(up, down, "schedule", "schedule"); err != nil {
			return err
		}
	}
	return nil
}

// intOption sets *dst from a whole-number option in [lo, hi], if set.
func (l *Link) intOption(s *uci.Section, name string, lo, hi int, dst *int) error {
	v, ok := get(s, name)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return l.errorf(name, "%q: want a whole number from %d to %d", v, lo, hi)
	}
	*dst = n
	return nil
}

func (l *Link) parseClasses(s *uci.Section, nebulaPort int) error {
	for i := range l.Classes {
		for which := range classSuffixes {
			if err := l.parseClassOption(s, &l.Classes[i], which); err != nil {
				return err
			}
		}
	}
	if v, ok := get(s, "emergency_builtin"); ok {
		switch v {
		case "0":
			l.Classes[0].Builtin = false
		case "1":
		default:
			return l.errorf("emergency_builtin", "%q: want 0 or 1", v)
		}
	}
	if l.Classes[0].Builtin {
		l.Classes[0].Ports = append(l.Classes[0].Ports, PortSpec{Proto: ProtoAny, From: 53, To: 53})
	}
	l.NebulaPort = uint16(nebulaPort)
	return nil
}

// parseClassOption reads class option which (classRate, ...) into c.
func (l *Link) parseClassOption(s *uci.Section, c *Class, which int) error {
	opt := c.Name + classSuffixes[which]
	if which == classRate || which == classCeil {
		v, ok := get(s, opt)
		if !ok {
			return nil
		}
		sh, err := parseShare(v)
		if err != nil {
			return l.wrap(opt, err)
		}
		if which == classRate {
			c.Rate = sh
		} else {
			c.Ceil = sh
		}
		return nil
	}
	v := list(s, opt)
	if v != nil && which == classDSCP {
		c.DSCP = nil // the option replaces the defaults
	}
	for _, item := range splitItems(v) {
		var err error
		switch which {
		case classDSCP:
			var d uint8
			if d, err = parseDSCP(item); err == nil {
				c.DSCP = append(c.DSCP, d)
			}
		case classPort:
			var p PortSpec
			if p, err = parsePort(item); err == nil {
				c.Ports = append(c.Ports, p)
			}
		default: // classMark
			var m MarkSpec
			if m, err = parseMark(item); err == nil {
				c.Marks = append(c.Marks, m)
			}
		}
		if err != nil {
			return l.wrap(opt, err)
		}
	}
	return nil
}

// splitItems accepts both `list x 'a'` lines and `option x 'a b'`.
// Not inlined, like list: each copy costs flash on MIPS.
//
//go:noinline
func splitItems(v []string) []string {
	var out []string
	for _, s := range v {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

// checkRates checks that the class guarantees fit in the limits.
func (l *Link) checkRates(up, down int64, upOpt, downOpt string) error {
	for _, d := range []struct {
		limit int64
		opt   string
	}{{up, upOpt}, {down, downOpt}} {
		if d.limit == 0 {
			continue
		}
		var sum int64
		for i := range l.Classes {
			c := &l.Classes[i]
			r, ce := c.Rate.Of(d.limit), c.Ceil.Of(d.limit)
			if ce > d.limit {
				return l.errorf(c.Name+"_ceil", "ceiling %d kbit/s is above the %s limit of %d kbit/s", ce, d.opt, d.limit)
			}
			if r > ce {
				return l.errorf(c.Name+"_rate", "guaranteed rate %d kbit/s is above the class ceiling of %d kbit/s (at %s %d kbit/s)", r, ce, d.opt, d.limit)
			}
			sum += r
		}
		if sum > d.limit {
			return l.errorf(Emergency+"_rate", "class guarantees add up to %d kbit/s, above the %s limit of %d kbit/s", sum, d.opt, d.limit)
		}
	}
	return nil
}

// CheckLinkSpeed checks the limits, including every schedule window,
// against the link speed in kbit/s (0: unknown, not checked).
func (l *Link) CheckLinkSpeed(speed int64) error {
	if speed <= 0 {
		return nil
	}
	if l.Upload > speed {
		return l.errorf("upload", "%d kbit/s is above the link speed of %d kbit/s", l.Upload, speed)
	}
	if l.Download > speed {
		return l.errorf("download", "%d kbit/s is above the link speed of %d kbit/s", l.Download, speed)
	}
	for _, w := range l.Schedule {
		if w.Upload > speed || w.Download > speed {
			return l.errorf("schedule", "window %s: a limit is above the link speed of %d kbit/s", w, speed)
		}
	}
	return nil
}

// limits returns the upload and download limits with window w in force.
func (l *Link) limits(w Window) (up, down int64) {
	up, down = l.Upload, l.Download
	if w.Upload > 0 {
		up = w.Upload
	}
	if w.Download > 0 {
		down = w.Download
	}
	return up, down
}

// Active returns the schedule window in force at t (local time of t), if any.
func (l *Link) Active(t time.Time) (Window, bool) {
	h, m, _ := t.Clock()
	m += h * 60
	for _, w := range l.Schedule {
		if w.Contains(m) {
			return w, true
		}
	}
	return Window{}, false
}

// LimitsAt returns the upload and download limits in force at t.
func (l *Link) LimitsAt(t time.Time) (up, down int64) {
	w, _ := l.Active(t)
	return l.limits(w)
}

// NextBoundary returns the first window start or end strictly after t, or
// the zero time if the link has no schedule.
func (l *Link) NextBoundary(t time.Time) time.Time {
	var best time.Time
	y, mo, d := t.Date()
	for _, w := range l.Schedule {
		for _, m := range []int{w.Start, w.End} {
			for day := 0; day < 2; day++ {
				b := time.Date(y, mo, d+day, m/60, m%60, 0, 0, t.Location())
				if b.After(t) {
					if best.IsZero() || b.Before(best) {
						best = b
					}
					break
				}
			}
		}
	}
	return best
}

// Not inlined: it is called from dozens of error paths, and a copy at
// each costs flash on MIPS for no speed that matters.
//
//go:noinline
func (l *Link) errorf(option, format string, args ...any) error {
	return &uci.Error{File: l.file, Line: l.lines[option], Section: l.Section, Option: option,
		Msg: fmt.Sprintf(format, args...)}
}

// wrap is errorf(option, "%v", err), out of line for the same reason.
//
//go:noinline
func (l *Link) wrap(option string, err error) error {
	return l.errorf(option, "%v", err)
}

// ifbName derives the IFB name as sqm-scripts does (ifb4 + device),
// shortened to the kernel's 15-byte limit.
func ifbName(dev string) string {
	n := "ifb4" + dev
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

func checkIfName(s string) error {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return errfmt.Errorf("%q is not a valid interface name (1-15 characters)", s)
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return errfmt.Errorf("%q is not a valid interface name", s)
		}
	}
	return nil
}
