// Package config reads and validates the agent's UCI configuration,
// /etc/config/meshnode.
//
// Parse turns the file into a Config, the desired state every concern of
// the agent works from. Every error names the file, the section and the
// option, so a node host can fix it with `uci set` or an editor.
package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/uci"
)

// DefaultPath is where OpenWrt keeps the agent's configuration.
const DefaultPath = "/etc/config/meshnode"

// Roles a node can have.
const (
	RoleHub    = "hub"    // lighthouse, DNS for overlay names, gateway for its clients
	RoleRelay  = "relay"  // relays for nodes behind hard NATs
	RoleUplink = "uplink" // exit: forwards mesh traffic out of its own WAN
	RoleClient = "client" // member only
)

// Defaults. MemoryLimit: a 64 MB router has ~40 MB free after boot;
// Nebula's live heap is ~10 MB, so 20 MiB leaves room without letting the
// GC run constantly.
const (
	DefaultPort        = 4242
	DefaultCipher      = "chachapoly"
	DefaultMTU         = 1300
	DefaultDevice      = "meshnode0"
	DefaultMetricsPort = 9642
	DefaultMemoryLimit = 20 << 20
	DefaultStateDir    = "/var/run/meshnode"
	DefaultLHInterval  = 10
	DefaultBlocklist   = "/etc/meshnode/blocklist"
)

// Config is the desired state read from /etc/config/meshnode.
type Config struct {
	File string // path, for messages

	Role    string
	Address netip.Prefix // overlay address and network, e.g. 10.0.4.1/24
	CA      string       // paths of PEM files
	Cert    string
	Key     string
	Port    int // UDP listen port; 0 = any (clients behind NAT)
	Cipher  string
	MTU     int
	Device  string
	// Relays this node asks peers to use to reach it (overlay addresses).
	Relays []netip.Addr
	// DNSPort is where a hub answers overlay-name queries (on its overlay address).
	DNSPort int
	// ServeLighthouse makes a relay a lighthouse too, so nodes that cannot
	// reach the hub can still learn where their peers are and which relays
	// reach them. A hub is always a lighthouse.
	ServeLighthouse    bool
	LighthouseInterval int // seconds
	Punch              bool
	MetricsPort        int   // 0 = off
	MemoryLimit        int64 // bytes; 0 = no limit
	LogLevel           string
	StateDir           string // holds the status socket
	// Blocklist is the file of revoked certificate fingerprints (one per
	// line, as the CA writes it), Nebula's pki.blocklist; a missing file
	// is an empty list.
	Blocklist string

	Lighthouses []Lighthouse
	Routes      []Route
	Rules       []Rule

	// Uplinks and Failover: agent/wan's probing and failover (uplink.go).
	Uplinks  []Uplink
	Failover Failover

	// LoRa: the agent's side of lora-bridge (lora.go).
	LoRa LoRa
}

// Lighthouse is a node (the hub, or a relay with option lighthouse '1')
// that every node tells where it is and asks where its peers are.
type Lighthouse struct {
	Address   netip.Addr
	Endpoints []string // public host:port
}

// Route sends traffic for Target into the overlay towards one of Via
// (Nebula unsafe_routes, ECMP when several).
type Route struct {
	Target  netip.Prefix
	Via     []netip.Addr
	Metric  int
	Install bool // add the kernel route (off when agent/wan manages routes)
}

// Rule is one inbound Nebula firewall rule added to the role's defaults.
type Rule struct {
	Proto     string // any, tcp, udp, icmp
	Port      string // any, N or N-M
	Host      string
	Group     string
	CIDR      string
	LocalCIDR string
}

// Error names what is wrong and where.
type Error struct {
	File, Section, Option string
	Msg                   string
}

func (e *Error) Error() string {
	s := e.File
	if e.Section != "" {
		s += ": section '" + e.Section + "'"
	}
	if e.Option != "" {
		s += " option '" + e.Option + "'"
	}
	return s + ": " + e.Msg
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	f, err := uci.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return FromUCI(f)
}

// Parse validates UCI text; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	f, err := uci.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return FromUCI(f)
}

// reader collects values from one section and remembers the first error,
// so the conversion code reads as a list of options.
type reader struct {
	file string
	sec  *uci.Section
	err  error
}

func (r *reader) fail(opt, format string, args ...any) {
	if r.err == nil {
		r.err = &Error{File: r.file, Section: r.sec.Ref(), Option: opt, Msg: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) str(opt, def string) string {
	if v, ok := r.sec.Get(opt); ok {
		return v
	}
	return def
}

func (r *reader) num(opt string, def, lo, hi int) int {
	v, ok := r.sec.Get(opt)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(opt, "%q is not a number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

// boolWords are the spellings uci's config_get_bool accepts: five for
// true, then five for false.
var boolWords = [...]string{"1", "on", "true", "yes", "enabled", "0", "off", "false", "no", "disabled"}

func (r *reader) boolean(opt string, def bool) bool {
	v, ok := r.sec.Get(opt)
	if !ok {
		return def
	}
	for i, w := range boolWords {
		if v == w {
			return i < 5
		}
	}
	r.fail(opt, "%q is not a boolean (1/0, on/off, true/false, yes/no)", v)
	return def
}

// enum reads an option that must be one of choices; text lists them
// for the error ("hub, relay, uplink or client").
func (r *reader) enum(opt, def, text string, choices ...string) string {
	v := r.str(opt, def)
	for _, c := range choices {
		if v == c {
			return v
		}
	}
	r.fail(opt, "%q is not "+text, v)
	return v
}

func (r *reader) addr(opt, v string) netip.Addr {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		r.fail(opt, "%q is not an IPv4 address", v)
	}
	return a
}

func (r *reader) prefix(opt, v string) netip.Prefix {
	p, err := netip.ParsePrefix(v)
	if err != nil || !p.Addr().Is4() {
		r.fail(opt, "%q is not an IPv4 network like 10.0.4.0/24", v)
		return netip.Prefix{}
	}
	return p
}

// match fails opt unless v matches re; format has one %q, for v.
func (r *reader) match(opt string, re *regexp.Regexp, v, format string) {
	if !re.MatchString(v) {
		r.fail(opt, format, v)
	}
}

// name checks a certificate name or group of a rule ("" is unset).
func (r *reader) name(opt, v string) {
	if v != "" {
		r.match(opt, nameRe, v, "%q has characters a certificate name or group cannot have")
	}
}

// outside fails opt if a is outside the overlay network of the node's
// address (when that is set).
func (r *reader) outside(c *Config, opt string, a netip.Addr) bool {
	if n := c.Address.Masked(); c.Address.IsValid() && !n.Contains(a) {
		r.fail(opt, "%s is not in the overlay network %s", a, n)
		return true
	}
	return false
}

func (r *reader) path(opt, def string) string {
	v := r.str(opt, def)
	if !strings.HasPrefix(v, "/") {
		r.fail(opt, "%q is not an absolute path", v)
	}
	return v
}

var (
	deviceRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`) // IFNAMSIZ-1
	endpointRe = regexp.MustCompile(`^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}$`)
	portRe     = regexp.MustCompile(`^(any|[0-9]{1,5}(-[0-9]{1,5})?)$`)
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9_.@:-]+$`)
	memRe      = regexp.MustCompile(`^([0-9]+)([KMG]?)(i?B)?$`)
)

// FromUCI validates a parsed file.
func FromUCI(f *uci.File) (*Config, error) {
	c := &Config{File: f.Name}
	ov, err := single(f, "overlay")
	if err != nil {
		return nil, err
	}
	if ov == nil {
		return nil, &Error{File: f.Name, Msg: "no 'config overlay' section"}
	}
	r := &reader{file: f.Name, sec: ov}

	c.Role = r.enum("role", RoleClient, "hub, relay, uplink or client", RoleHub, RoleRelay, RoleUplink, RoleClient)
	if v, ok := r.sec.Get("address"); !ok {
		r.fail("address", "missing: the node's overlay address with its network, e.g. 10.0.4.130/24")
	} else {
		c.Address = r.prefix("address", v)
	}
	c.CA = r.path("ca", "/etc/meshnode/ca.crt")
	c.Cert = r.path("cert", "/etc/meshnode/node.crt")
	c.Key = r.path("key", "/etc/meshnode/node.key")
	c.Blocklist = r.path("blocklist", DefaultBlocklist)
	defPort := DefaultPort
	if c.Role == RoleClient {
		// Clients are dialled through the lighthouse's punching; a random
		// port avoids collisions when two sit behind one NAT.
		defPort = 0
	}
	c.Port = r.num("port", defPort, 0, 65535)
	c.Cipher = r.enum("cipher", DefaultCipher, "aes or chachapoly", "aes", "chachapoly")
	c.MTU = r.num("mtu", DefaultMTU, 576, 9000)
	c.Device = r.str("device", DefaultDevice)
	r.match("device", deviceRe, c.Device, "%q is not an interface name (up to 15 letters, digits, _ . -)")
	for _, v := range r.sec.List("relay") {
		c.Relays = append(c.Relays, r.addr("relay", v))
	}
	c.DNSPort = r.num("dns_port", 53, 1, 65535)
	c.ServeLighthouse = c.Role == RoleHub
	if v, ok := r.sec.Get("lighthouse"); ok {
		on := r.boolean("lighthouse", false)
		switch {
		case r.err != nil:
		case c.Role == RoleHub && !on:
			r.fail("lighthouse", "%q: a hub is always a lighthouse", v)
		case c.Role != RoleHub && c.Role != RoleRelay && on:
			r.fail("lighthouse", "only a relay (or the hub) can be a lighthouse: it needs a public address every node can reach")
		case c.Role == RoleRelay:
			c.ServeLighthouse = on
		}
	}
	c.LighthouseInterval = r.num("lighthouse_interval", DefaultLHInterval, 1, 3600)
	c.Punch = r.boolean("punch", true)
	defMetrics := DefaultMetricsPort
	if c.Role == RoleClient {
		defMetrics = 0 // members' routers are not scraped unless they opt in
	}
	c.MetricsPort = r.num("metrics_port", defMetrics, 0, 65535)
	c.MemoryLimit = DefaultMemoryLimit
	if v, ok := r.sec.Get("memory_limit"); ok {
		c.MemoryLimit = parseMem(r, v)
	}
	c.LogLevel = r.enum("log_level", "info", "debug, info, warning or error", "debug", "info", "warning", "error")
	c.StateDir = r.path("state_dir", DefaultStateDir)
	if r.err == nil && c.ServeLighthouse && c.Port == 0 {
		// Nebula refuses it too, with a message that names no option.
		r.fail("port", "a lighthouse needs a fixed port that the other nodes list as its endpoint")
	}
	if r.err != nil {
		return nil, r.err
	}

	for _, s := range f.SectionsOfType("lighthouse") {
		r := &reader{file: f.Name, sec: s}
		var lh Lighthouse
		if v, ok := s.Get("address"); ok {
			lh.Address = r.addr("address", v)
		} else {
			r.fail("address", "missing: the lighthouse's overlay address")
		}
		for _, e := range s.List("endpoint") {
			r.match("endpoint", endpointRe, e, "%q is not host:port")
			lh.Endpoints = append(lh.Endpoints, e)
		}
		if len(lh.Endpoints) == 0 {
			r.fail("endpoint", "missing: the lighthouse's public host:port")
		}
		if r.err == nil && lh.Address == c.Address.Addr() {
			r.fail("address", "%s is this node's own address; a lighthouse does not list itself", lh.Address)
		}
		if r.err != nil {
			return nil, r.err
		}
		c.Lighthouses = append(c.Lighthouses, lh)
	}
	if c.Role != RoleHub && len(c.Lighthouses) == 0 {
		return nil, &Error{File: f.Name, Section: "lighthouse",
			Msg: "no 'config lighthouse' section: every role but hub needs at least one"}
	}

	for _, s := range f.SectionsOfType("route") {
		r := &reader{file: f.Name, sec: s}
		var rt Route
		if v, ok := s.Get("target"); ok {
			rt.Target = r.prefix("target", v)
		} else {
			r.fail("target", "missing: the network to route, e.g. 0.0.0.0/0")
		}
		for _, v := range s.List("via") {
			a := r.addr("via", v)
			if r.err == nil {
				r.outside(c, "via", a)
			}
			rt.Via = append(rt.Via, a)
		}
		if len(rt.Via) == 0 {
			r.fail("via", "missing: the overlay address of the node that forwards it")
		}
		rt.Metric = r.num("metric", 0, 0, 1<<31-1)
		rt.Install = r.boolean("install", true)
		if r.err != nil {
			return nil, r.err
		}
		c.Routes = append(c.Routes, rt)
	}

	for _, s := range f.SectionsOfType("rule") {
		r := &reader{file: f.Name, sec: s}
		ru := Rule{Proto: r.enum("proto", "any", "any, tcp, udp or icmp", "any", "tcp", "udp", "icmp"),
			Port: r.str("port", "any"), Host: r.str("host", ""), Group: r.str("group", ""),
			CIDR: r.str("cidr", ""), LocalCIDR: r.str("local_cidr", "")}
		r.match("port", portRe, ru.Port, "%q is not any, a port or a range like 1000-2000")
		r.name("host", ru.Host)
		r.name("group", ru.Group)
		if ru.CIDR != "" {
			r.prefix("cidr", ru.CIDR)
		}
		if ru.LocalCIDR != "" {
			r.prefix("local_cidr", ru.LocalCIDR)
		}
		if ru.Host == "" && ru.Group == "" && ru.CIDR == "" {
			r.fail("host", "a rule needs host, group or cidr (host 'any' allows everyone)")
		}
		if r.err != nil {
			return nil, r.err
		}
		c.Rules = append(c.Rules, ru)
	}
	if err := parseUplinks(f, c); err != nil {
		return nil, err
	}
	if err := parseLoRa(f, c); err != nil {
		return nil, err
	}
	return c, nil
}

// single returns the file's section of type typ, nil if it has none, and
// an error if it has more than one.
func single(f *uci.File, typ string) (*uci.Section, error) {
	secs := f.SectionsOfType(typ)
	switch len(secs) {
	case 0:
		return nil, nil
	case 1:
		return secs[0], nil
	}
	return nil, &Error{File: f.Name, Section: secs[1].Ref(), Msg: "more than one 'config " + typ + "' section"}
}

func parseMem(r *reader, v string) int64 {
	if v == "0" || v == "off" {
		return 0
	}
	m := memRe.FindStringSubmatch(v)
	if m == nil {
		r.fail("memory_limit", "%q is not a size like 20M (or off)", v)
		return 0
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	shift := 10 * uint(strings.Index(" KMG", m[2])) // "", K, M, G: 0, 10, 20, 30
	if err != nil || n > 1<<40>>shift {
		r.fail("memory_limit", "%q is too large", v)
		return 0
	}
	n <<= shift
	if n < 4<<20 {
		// Below this the GC runs continuously and the agent starves the router.
		r.fail("memory_limit", "%q is below 4M", v)
	}
	return n
}

// SocketPath is where the status API listens.
func (c *Config) SocketPath() string { return c.StateDir + "/meshnode.sock" }
