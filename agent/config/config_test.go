package config

import (
	"strings"
	"testing"
)

const base = `
config overlay 'overlay'
	option role 'client'
	option address '10.0.4.130/24'

config lighthouse 'hub'
	option address '10.0.4.1'
	list endpoint '192.0.2.1:4242'
`

func TestDefaults(t *testing.T) {
	c, err := Parse("/etc/config/meshnode", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cipher != "chachapoly" || c.Port != 0 || c.MetricsPort != 0 || c.MTU != 1300 ||
		c.MemoryLimit != DefaultMemoryLimit || c.Key != "/etc/meshnode/node.key" || !c.Punch {
		t.Errorf("unexpected defaults: %+v", c)
	}
	hub, err := Parse("x", []byte("config overlay 'overlay'\n\toption role 'hub'\n\toption address '10.0.4.1/24'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if hub.Port != DefaultPort || hub.MetricsPort != DefaultMetricsPort || !hub.ServeLighthouse {
		t.Errorf("hub defaults: port %d metrics %d lighthouse %v", hub.Port, hub.MetricsPort, hub.ServeLighthouse)
	}
	if c.ServeLighthouse {
		t.Error("a client is not a lighthouse")
	}
	for v, want := range map[string]bool{"": false, "\toption lighthouse '1'\n": true, "\toption lighthouse '0'\n": false} {
		relay, err := Parse("x", []byte("config overlay 'overlay'\n\toption role 'relay'\n\toption address '10.0.4.33/24'\n"+v+
			"config lighthouse\n\toption address '10.0.4.1'\n\tlist endpoint '192.0.2.1:4242'\n"))
		if err != nil {
			t.Fatal(err)
		}
		if relay.ServeLighthouse != want {
			t.Errorf("relay with %q: lighthouse %v, want %v", v, relay.ServeLighthouse, want)
		}
	}
}

// TestErrors covers every validation error: each must name the file,
// the section and the option.
func TestErrors(t *testing.T) {
	ov := func(opt, val string) string {
		return base + "\nconfig overlay 'overlay'\n\toption " + opt + " '" + val + "'\n"
	}
	for _, tc := range []struct{ text, want string }{
		{"config lighthouse\n", `/etc/config/meshnode: no 'config overlay' section`},
		{base + "config overlay\n", `section '@overlay[1]': more than one`},
		{ov("cipher", "aes256"), `/etc/config/meshnode: section 'overlay' option 'cipher': "aes256" is not aes or chachapoly`},
		{ov("role", "gateway"), `section 'overlay' option 'role': "gateway" is not hub, relay, uplink or client`},
		{"config overlay 'overlay'\n\toption role 'relay'\nconfig lighthouse\n\toption address '10.0.4.1'\n\tlist endpoint 'a:1'\n", `option 'address': missing`},
		{ov("address", "10.0.4.300/24"), `option 'address': "10.0.4.300/24" is not an IPv4 network`},
		{ov("ca", "etc/ca.crt"), `option 'ca': "etc/ca.crt" is not an absolute path`},
		{ov("cert", "x"), `option 'cert'`},
		{ov("key", "x"), `option 'key'`},
		{ov("port", "70000"), `option 'port': "70000" is not a number from 0 to 65535`},
		{ov("mtu", "100"), `option 'mtu'`},
		{ov("device", "a-very-long-interface-name"), `option 'device'`},
		{ov("relay", "relay1"), `option 'relay': "relay1" is not an IPv4 address`},
		{ov("dns_port", "0"), `option 'dns_port'`},
		{ov("lighthouse_interval", "0"), `option 'lighthouse_interval'`},
		{ov("lighthouse", "1"), `section 'overlay' option 'lighthouse': only a relay (or the hub) can be a lighthouse`},
		{ov("lighthouse", "perhaps"), `option 'lighthouse': "perhaps" is not a boolean`},
		{"config overlay 'overlay'\n\toption role 'hub'\n\toption address '10.0.4.1/24'\n\toption lighthouse '0'\n", `option 'lighthouse': "0": a hub is always a lighthouse`},
		{"config overlay 'overlay'\n\toption role 'relay'\n\toption address '10.0.4.33/24'\n\toption lighthouse '1'\n\toption port '0'\n", `section 'overlay' option 'port': a lighthouse needs a fixed port`},
		{ov("punch", "maybe"), `option 'punch': "maybe" is not a boolean`},
		{ov("metrics_port", "-1"), `option 'metrics_port'`},
		{ov("memory_limit", "lots"), `option 'memory_limit': "lots" is not a size`},
		{ov("memory_limit", "1M"), `option 'memory_limit': "1M" is below 4M`},
		{ov("memory_limit", "99999999999G"), `option 'memory_limit': "99999999999G" is too large`},
		{ov("log_level", "loud"), `option 'log_level'`},
		{ov("state_dir", "run"), `option 'state_dir'`},
		{"config overlay 'overlay'\n\toption address '10.0.4.130/24'\n", `section 'lighthouse': no 'config lighthouse' section`},
		{base + "config lighthouse\n\tlist endpoint 'a:1'\n", `section '@lighthouse[1]' option 'address': missing`},
		{base + "config lighthouse\n\toption address '10.0.4.2'\n", `section '@lighthouse[1]' option 'endpoint': missing`},
		{base + "config lighthouse\n\toption address '10.0.4.2'\n\tlist endpoint 'no port'\n", `option 'endpoint': "no port" is not host:port`},
		{base + "config lighthouse\n\toption address '10.0.4.130'\n\tlist endpoint 'a:1'\n", `is this node's own address`},
		{base + "config route\n\tlist via '10.0.4.64'\n", `section '@route[0]' option 'target': missing`},
		{base + "config route\n\toption target '0.0.0.0/0'\n", `option 'via': missing`},
		{base + "config route\n\toption target '0.0.0.0/0'\n\tlist via '192.168.1.1'\n", `option 'via': 192.168.1.1 is not in the overlay network 10.0.4.0/24`},
		{base + "config route\n\toption target '0.0.0.0/0'\n\tlist via '10.0.4.64'\n\toption install 'x'\n", `option 'install'`},
		{base + "config rule\n\toption proto 'sctp'\n\toption host 'any'\n", `section '@rule[0]' option 'proto': "sctp" is not any, tcp, udp or icmp`},
		{base + "config rule\n\toption port '22,23'\n\toption host 'any'\n", `option 'port'`},
		{base + "config rule\n\toption group 'a b'\n", `option 'group'`},
		{base + "config rule\n\toption cidr '10.0.0.0'\n", `option 'cidr'`},
		{base + "config rule\n\toption host 'any'\n\toption local_cidr 'x'\n", `option 'local_cidr'`},
		{base + "config rule\n\toption proto 'tcp'\n", `section '@rule[0]' option 'host': a rule needs host, group or cidr`},
	} {
		_, err := Parse("/etc/config/meshnode", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v\n%s", tc.want, err, tc.text)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz", data)
		if err == nil && (c.Role == "" || !c.Address.IsValid()) {
			t.Fatalf("accepted without role or address: %+v", c)
		}
	})
}
