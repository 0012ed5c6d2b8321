package config

import (
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/uci"
)

// Uplink kinds.
const (
	UplinkWAN     = "wan"     // an interface of this router with its own upstream
	UplinkOverlay = "overlay" // an uplink node reached through the overlay
)

// Probe methods.
const (
	ProbeICMP = "icmp" // echo request to each target
	ProbeTCP  = "tcp"  // connect to ip:port (a refusal counts: the far end answered)
	ProbeDNS  = "dns"  // one query to a resolver, any answer counts
	ProbeHTTP = "http" // HEAD, any status counts
)

// Uplink defaults: rounds overlap, so three failed rounds 250 ms apart
// end one timeout after the third starts: detection in 1.25-1.5 s, under
// the 2 s target; five good rounds (~1.25 s) before an uplink carries
// traffic again. A geostationary satellite (RTT ~600 ms) wants a longer
// timeout.
const (
	DefaultProbeInterval = 250 * time.Millisecond
	DefaultProbeTimeout  = 750 * time.Millisecond
	DefaultUpRounds      = 5
	DefaultDownRounds    = 3
	MaxUplinks           = 32
)

// Uplink is one `config uplink` section: a path to the internet the agent
// probes and routes over.
type Uplink struct {
	Name string // section name, also the label in status and metrics
	Kind string // UplinkWAN or UplinkOverlay
	// Interface is netifd's logical name that hotplug events carry
	// (INTERFACE); defaults to the section name.
	Interface string
	// Device is the kernel interface: for a WAN its device (learned from
	// the hotplug ifup event when empty), for an overlay uplink the
	// overlay's tun device.
	Device string
	// Gateway: for a WAN the next hop (learned from netifd's default route
	// when unset); for an overlay uplink the uplink node's overlay address.
	Gateway     netip.Addr
	Probe       string
	Targets     []string // ip, ip:port or http://ip[:port]/path by probe method
	DNSName     string   // name asked by dns probes
	Interval    time.Duration
	Timeout     time.Duration
	Up, Down    int // good rounds in a row to come back, bad rounds to fail
	Reliability int // targets that must answer for a round to be good
	Weight      int // share of new flows among uplinks of one tier
	Tier        int // 1 is used first; a higher tier only when every lower one is down
}

// Failover is the `config failover` section: where the agent puts its
// routes and how it damps flapping uplinks.
type Failover struct {
	// Table holds the default route the agent chooses; Table+1 the route
	// for the overlay's own UDP packets (local WANs only), Table+2+i the
	// path of uplink i, used by its probes.
	Table int
	// Priority of the first ip rule; the agent uses Priority..Priority+4.
	Priority int
	// Mark+i marks the probes of uplink i.
	Mark uint32
	// An uplink that goes down DampAfter times, each time within Stable of
	// coming up, is held back for DampHold, doubling per further flap up
	// to DampMax.
	DampAfter int
	DampHold  time.Duration
	DampMax   time.Duration
	Stable    time.Duration
	// FlushConntrack: when a WAN stops carrying the default route, forget
	// the NAT mappings of flows masqueraded to it, so they are masqueraded
	// again on the new route instead of stalling.
	FlushConntrack bool
}

// Failover defaults. The table and priorities sit above what netifd and
// mwan3 use (mwan3: tables 1-250, rules 1000-3999).
const (
	DefaultFailoverTable    = 4200
	DefaultFailoverPriority = 9000
	DefaultFailoverMark     = 0x4d4e0000
)

var (
	uplinkNameRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)
	dnsNameRe    = regexp.MustCompile(`^(\.|([A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?)$`)
)

// duration reads "300ms", "2s" or a bare number of seconds.
func (r *reader) duration(opt string, def, lo, hi time.Duration) time.Duration {
	v, ok := r.sec.Get(opt)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, err2 := strconv.Atoi(v)
		if err2 != nil {
			r.fail(opt, "%q is not a duration like 300ms or 2s", v)
			return def
		}
		d = time.Duration(n) * time.Second
	}
	if d < lo || d > hi {
		r.fail(opt, "%q is not between %s and %s", v, lo, hi)
		return def
	}
	return d
}

// parseUplinks reads the failover and uplink sections into c.
func parseUplinks(f *uci.File, c *Config) error {
	c.Failover = Failover{Table: DefaultFailoverTable, Priority: DefaultFailoverPriority,
		Mark: DefaultFailoverMark, DampAfter: 3, DampHold: 10 * time.Second,
		DampMax: 10 * time.Minute, Stable: time.Minute, FlushConntrack: true}
	fo, err := single(f, "failover")
	if err != nil {
		return err
	}
	if fo != nil {
		r := &reader{file: f.Name, sec: fo}
		c.Failover.Table = r.num("table", DefaultFailoverTable, 256, 1<<30)
		c.Failover.Priority = r.num("priority", DefaultFailoverPriority, 1, 32000)
		if v, ok := r.sec.Get("mark"); ok {
			m, err := strconv.ParseUint(v, 0, 32)
			if err != nil || m == 0 || m > 1<<32-1-MaxUplinks {
				r.fail("mark", "%q is not a firewall mark like 0x4d4e0000", v)
			}
			c.Failover.Mark = uint32(m)
		}
		c.Failover.DampAfter = r.num("damp_after", 3, 1, 100)
		c.Failover.DampHold = r.duration("damp_hold", 10*time.Second, time.Second, time.Hour)
		c.Failover.DampMax = r.duration("damp_max", 10*time.Minute, time.Second, 24*time.Hour)
		c.Failover.Stable = r.duration("stable", time.Minute, time.Second, time.Hour)
		c.Failover.FlushConntrack = r.boolean("flush_conntrack", true)
		if r.err == nil && c.Failover.DampMax < c.Failover.DampHold {
			r.fail("damp_max", "%s is shorter than damp_hold %s", c.Failover.DampMax, c.Failover.DampHold)
		}
		if r.err != nil {
			return r.err
		}
	}

	secs := f.SectionsOfType("uplink")
	if len(secs) > MaxUplinks {
		return &Error{File: f.Name, Section: secs[MaxUplinks].Ref(), Msg: "more than 32 uplinks"}
	}
	names := map[string]bool{}
	targets := map[string]string{} // overlay probe target -> uplink
	for _, s := range secs {
		r := &reader{file: f.Name, sec: s}
		u := Uplink{Name: s.Name}
		if u.Name == "" {
			// Status, metrics and hotplug need a stable name.
			r.fail("", "give the section a name: config uplink 'fiber'")
			return r.err
		}
		if !uplinkNameRe.MatchString(u.Name) {
			r.fail("", "name %q: use up to 32 letters, digits and _", u.Name)
			return r.err
		}
		if names[u.Name] {
			r.fail("", "a second uplink named %q", u.Name)
			return r.err
		}
		names[u.Name] = true
		if !r.boolean("enabled", true) {
			if r.err != nil {
				return r.err
			}
			continue
		}
		u.Kind = r.str("kind", UplinkWAN)
		u.Interface = r.str("interface", u.Name)
		u.Device = r.str("device", "")
		if u.Device != "" {
			r.match("device", deviceRe, u.Device, "%q is not an interface name")
		}
		if v, ok := s.Get("gateway"); ok {
			u.Gateway = r.addr("gateway", v)
		}
		switch u.Kind {
		case UplinkWAN:
		case UplinkOverlay:
			switch {
			case !u.Gateway.IsValid():
				r.fail("gateway", "missing: the overlay address of the uplink node, e.g. 10.0.4.64")
			case r.outside(c, "gateway", u.Gateway): // reported
			case u.Gateway == c.Address.Addr():
				r.fail("gateway", "%s is this node's own address", u.Gateway)
			}
			if u.Device != "" && u.Device != c.Device {
				r.fail("device", "%q: an overlay uplink goes through the overlay device %s", u.Device, c.Device)
			}
			u.Device = c.Device
		default:
			r.fail("kind", "%q is not wan or overlay", u.Kind)
		}
		u.Probe = r.enum("probe", ProbeICMP, "icmp, tcp, dns or http", ProbeICMP, ProbeTCP, ProbeDNS, ProbeHTTP)
		for _, t := range s.List("target") {
			a, msg := checkTarget(u.Probe, t)
			if msg != "" {
				r.fail("target", "%q %s", t, msg)
				continue
			}
			if u.Kind == UplinkOverlay {
				if c.Address.IsValid() && c.Address.Masked().Contains(a) {
					r.fail("target", "%s is inside the overlay network; probe an address beyond the uplink", a)
				}
				// The overlay routes a probe target through one uplink
				// node only, so two uplinks cannot share one.
				if other, dup := targets[a.String()]; dup {
					r.fail("target", "%s is already probed through uplink '%s'; overlay uplinks need distinct targets", a, other)
				}
				targets[a.String()] = u.Name
			}
			u.Targets = append(u.Targets, t)
		}
		if len(u.Targets) == 0 && r.err == nil {
			r.fail("target", "missing: addresses to probe through this uplink (IP addresses: a name cannot be resolved while the uplink that would resolve it is down)")
		}
		u.DNSName = r.str("dns_name", ".")
		if !dnsNameRe.MatchString(u.DNSName) || len(u.DNSName) > 253 {
			r.fail("dns_name", "%q is not a DNS name", u.DNSName)
		}
		u.Interval = r.duration("interval", DefaultProbeInterval, 50*time.Millisecond, time.Hour)
		u.Timeout = r.duration("timeout", DefaultProbeTimeout, 50*time.Millisecond, time.Minute)
		u.Up = r.num("up", DefaultUpRounds, 1, 1000)
		u.Down = r.num("down", DefaultDownRounds, 1, 1000)
		u.Reliability = r.num("reliability", 1, 1, 64)
		if r.err == nil && u.Reliability > len(u.Targets) {
			r.fail("reliability", "%d is more than the %d targets", u.Reliability, len(u.Targets))
		}
		// The kernel stores a nexthop's weight in one byte (1-256).
		u.Weight = r.num("weight", 1, 1, 256)
		u.Tier = r.num("tier", 1, 1, 99)
		if r.err != nil {
			return r.err
		}
		c.Uplinks = append(c.Uplinks, u)
	}
	return nil
}

// checkTarget validates one target for a probe method and returns its
// address, or a message saying what is wrong.
func checkTarget(probe, t string) (netip.Addr, string) {
	const noName = "is not an IPv4 address (names are not resolved: the resolver may sit behind the uplink being tested)"
	switch probe {
	case ProbeICMP:
		a, err := netip.ParseAddr(t)
		if err != nil || !a.Is4() {
			return a, noName
		}
		return a, ""
	case ProbeTCP:
		ap, err := netip.ParseAddrPort(t)
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
			return netip.Addr{}, "is not ip:port like 192.0.2.1:443"
		}
		return ap.Addr(), ""
	case ProbeDNS:
		if a, err := netip.ParseAddr(t); err == nil && a.Is4() {
			return a, ""
		}
		ap, err := netip.ParseAddrPort(t)
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 {
			return netip.Addr{}, "is not a resolver address like 192.0.2.53 or 192.0.2.53:53"
		}
		return ap.Addr(), ""
	case ProbeHTTP:
		u, err := url.Parse(t)
		if err != nil || u.Scheme != "http" || u.User != nil || u.Host == "" {
			return netip.Addr{}, "is not a URL like http://192.0.2.1/ (plain http: probes test reachability, not TLS)"
		}
		host := u.Hostname()
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() || strings.Contains(host, "%") {
			return netip.Addr{}, "has a host that " + noName
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return netip.Addr{}, "has a bad port"
			}
		}
		return a, ""
	}
	return netip.Addr{}, "cannot be checked: unknown probe method"
}

// UplinkTarget returns the address a validated target points at.
func UplinkTarget(probe, t string) netip.Addr {
	a, _ := checkTarget(probe, t)
	return a
}
