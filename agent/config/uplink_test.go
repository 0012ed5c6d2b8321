package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const hubUplinks = `
config overlay 'overlay'
	option role 'hub'
	option address '10.0.4.1/24'

config failover 'failover'
	option damp_hold '5s'

config uplink 'alice'
	option kind 'overlay'
	option gateway '10.0.4.64'
	list target '198.51.100.1'
	option weight '2'

config uplink 'bob'
	option kind 'overlay'
	option gateway '10.0.4.65'
	option probe 'tcp'
	list target '198.51.100.2:443'

config uplink 'sat'
	option device 'eth1'
	option probe 'dns'
	list target '192.0.2.53'
	list target '192.0.2.54:5353'
	option reliability '2'
	option interval '1s'
	option timeout '1500ms'
	option tier '2'

config uplink 'lte'
	option enabled '0'
`

func TestUplinks(t *testing.T) {
	c, err := Parse("/etc/config/meshnode", []byte(hubUplinks))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Uplinks) != 3 {
		t.Fatalf("uplinks: %+v", c.Uplinks)
	}
	a, s := c.Uplinks[0], c.Uplinks[2]
	if a.Kind != UplinkOverlay || a.Device != DefaultDevice || a.Gateway != netip.MustParseAddr("10.0.4.64") ||
		a.Probe != ProbeICMP || a.Interval != DefaultProbeInterval || a.Up != 5 || a.Down != 3 || a.Weight != 2 || a.Tier != 1 {
		t.Errorf("alice: %+v", a)
	}
	if s.Kind != UplinkWAN || s.Interface != "sat" || s.Device != "eth1" || s.Reliability != 2 ||
		s.Interval != time.Second || s.Timeout != 1500*time.Millisecond || s.Tier != 2 || s.DNSName != "." {
		t.Errorf("sat: %+v", s)
	}
	if c.Failover.Table != DefaultFailoverTable || c.Failover.DampHold != 5*time.Second || c.Failover.DampAfter != 3 ||
		!c.Failover.FlushConntrack {
		t.Errorf("failover: %+v", c.Failover)
	}
	if UplinkTarget(ProbeTCP, "198.51.100.2:443") != netip.MustParseAddr("198.51.100.2") ||
		UplinkTarget(ProbeHTTP, "http://198.51.100.3:8080/x") != netip.MustParseAddr("198.51.100.3") {
		t.Error("UplinkTarget")
	}
}

func TestFlushConntrackOff(t *testing.T) {
	c, err := Parse("/etc/config/meshnode", []byte(hubUplinks+"\nconfig failover\n\toption flush_conntrack '0'\n"))
	if err == nil {
		t.Fatal("two failover sections accepted")
	}
	c, err = Parse("/etc/config/meshnode", []byte(strings.Replace(hubUplinks, "option damp_hold '5s'", "option flush_conntrack '0'", 1)))
	if err != nil || c.Failover.FlushConntrack {
		t.Fatalf("%+v %v", c.Failover, err)
	}
	c, err = Parse("/etc/config/meshnode", []byte("config overlay 'overlay'\n\toption role 'hub'\n\toption address '10.0.4.1/24'\n"))
	if err != nil || !c.Failover.FlushConntrack {
		t.Fatalf("default without a failover section: %+v %v", c.Failover, err)
	}
}

func TestUplinkErrors(t *testing.T) {
	hub := "config overlay 'overlay'\n\toption role 'hub'\n\toption address '10.0.4.1/24'\n"
	up := func(body string) string { return hub + "config uplink 'u'\n" + body }
	ov := "\toption kind 'overlay'\n\toption gateway '10.0.4.64'\n"
	for _, tc := range []struct{ text, want string }{
		{hub + "config uplink\n\tlist target '192.0.2.1'\n", `section '@uplink[0]': give the section a name`},
		{up(""), `/etc/config/meshnode: section 'u' option 'target': missing`},
		// Probe targets must be addresses: the error names file, section and option.
		{up("\tlist target 'one.one.one.one'\n"), `/etc/config/meshnode: section 'u' option 'target': "one.one.one.one" is not an IPv4 address (names are not resolved`},
		{up("\toption probe 'tcp'\n\tlist target 'dns.quad9.net:53'\n"), `/etc/config/meshnode: section 'u' option 'target': "dns.quad9.net:53" is not ip:port`},
		{up("\toption probe 'dns'\n\tlist target 'resolver'\n"), `section 'u' option 'target': "resolver" is not a resolver address`},
		{hub + "config failover\n\toption flush_conntrack 'maybe'\n", `section '@failover[0]' option 'flush_conntrack': "maybe" is not a boolean`},
		{up("\toption probe 'tcp'\n\tlist target '192.0.2.1'\n"), `"192.0.2.1" is not ip:port`},
		{up("\toption probe 'http'\n\tlist target 'https://192.0.2.1/'\n"), `is not a URL like http://`},
		{up("\toption probe 'http'\n\tlist target 'http://example.org/'\n"), `has a host that is not an IPv4 address`},
		{up("\toption probe 'dns'\n\tlist target '192.0.2.1:0'\n"), `is not a resolver address`},
		{up("\toption probe 'arp'\n\tlist target '192.0.2.1'\n"), `option 'probe': "arp" is not icmp, tcp, dns or http`},
		{up("\toption kind 'ppp'\n\tlist target '192.0.2.1'\n"), `option 'kind': "ppp" is not wan or overlay`},
		{up("\toption kind 'overlay'\n\tlist target '192.0.2.1'\n"), `option 'gateway': missing`},
		{up("\toption kind 'overlay'\n\toption gateway '192.168.1.1'\n\tlist target '192.0.2.1'\n"), `192.168.1.1 is not in the overlay network`},
		{up("\toption kind 'overlay'\n\toption gateway '10.0.4.1'\n\tlist target '192.0.2.1'\n"), `is this node's own address`},
		{up(ov + "\tlist target '10.0.4.9'\n"), `10.0.4.9 is inside the overlay network`},
		{up(ov+"\tlist target '192.0.2.1'\n") + "config uplink 'v'\n\toption kind 'overlay'\n\toption gateway '10.0.4.65'\n\tlist target '192.0.2.1'\n",
			`section 'v' option 'target': 192.0.2.1 is already probed through uplink 'u'`},
		{up(ov + "\toption device 'eth0'\n\tlist target '192.0.2.1'\n"), `an overlay uplink goes through the overlay device`},
		{up("\tlist target '192.0.2.1'\n\toption interval 'often'\n"), `option 'interval': "often" is not a duration`},
		{up("\tlist target '192.0.2.1'\n\toption timeout '10ms'\n"), `option 'timeout': "10ms" is not between 50ms and 1m0s`},
		{up("\tlist target '192.0.2.1'\n\toption reliability '2'\n"), `option 'reliability': 2 is more than the 1 targets`},
		{up("\tlist target '192.0.2.1'\n\toption weight '0'\n"), `option 'weight'`},
		{up("\tlist target '192.0.2.1'\n\toption tier '100'\n"), `option 'tier'`},
		{up("\tlist target '192.0.2.1'\n\toption device 'a b'\n"), `option 'device'`},
		{up("\tlist target '192.0.2.1'\n\toption dns_name 'a..b'\n"), `option 'dns_name'`},
		{hub + "config failover\n\toption mark 'x'\n", `section '@failover[0]' option 'mark'`},
		{hub + "config failover\n\toption damp_max '2s'\n", `option 'damp_max': 2s is shorter than damp_hold`},
		{hub + "config failover\nconfig failover\n", `more than one 'config failover'`},
	} {
		_, err := Parse("/etc/config/meshnode", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v\n%s", tc.want, err, tc.text)
		}
	}
}
