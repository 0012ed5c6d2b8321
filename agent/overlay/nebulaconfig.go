// Package overlay runs the embedded Nebula overlay: it turns the agent's
// configuration into Nebula's, checks the node's certificate before Nebula
// sees it, starts Nebula in-process, applies reloads in place where Nebula
// can, and reports peers for the status snapshot.
package overlay

import (
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/meshnode/meshnode/agent/config"
)

// Material is the PEM text of the node's PKI files. Nebula gets it inline,
// so what the agent checked is exactly what Nebula runs with.
type Material struct {
	CA, Cert, Key string
	// Blocklist: fingerprints of revoked certificates (pki.blocklist).
	Blocklist []string
}

// Redacted replaces the private key in a Nebula settings map.
const Redacted = "<redacted: private key>"

type m = map[string]any

// Settings builds Nebula's configuration for c as the map Nebula reads.
func Settings(c *config.Config, pem Material) map[string]any {
	pki := kv("ca", pem.CA, "cert", pem.Cert, "key", pem.Key,
		// A revoked or expired peer is dropped on reload, not at its
		// next handshake.
		"disconnect_invalid", true)
	if len(pem.Blocklist) > 0 {
		// Revocations from the CA: Nebula refuses these certificates and,
		// on a reload, tears down their tunnels.
		bl := make([]any, 0, len(pem.Blocklist))
		for _, fp := range pem.Blocklist {
			bl = append(bl, fp)
		}
		pki["blocklist"] = bl
	}

	tun := kv("dev", c.Device, "mtu", c.MTU, "drop_local_broadcast", true, "drop_multicast", true)
	if len(c.Routes) > 0 {
		// With no override every configured gateway is used, weight 1.
		tun["unsafe_routes"] = unsafeRoutes(c.Routes, &gatewayOverride{})
	}

	lh := kv("am_lighthouse", c.ServeLighthouse, "interval", c.LighthouseInterval)
	if c.Role == config.RoleHub {
		lh["serve_dns"] = true
		lh["dns"] = kv("host", c.Address.Addr().String(), "port", c.DNSPort)
	}
	hosts := []any{}
	shm := m{}
	for _, l := range c.Lighthouses {
		hosts = append(hosts, l.Address.String())
		eps := []any{}
		for _, e := range l.Endpoints {
			eps = append(eps, e)
		}
		shm[l.Address.String()] = eps
	}
	// A lighthouse lists the other lighthouses too: Nebula's lighthouses
	// never report to each other, so the Runner pushes this node's
	// addresses and relays to them (PushesUpdates). That is how a relay
	// that is a lighthouse learns which relays reach the hub. Nebula logs a
	// warning about "upstream lighthouses" once per load; it is expected.
	if !c.ServeLighthouse || len(hosts) > 0 {
		lh["hosts"] = hosts
	}

	relays := []any{}
	for _, r := range c.Relays {
		relays = append(relays, r.String())
	}

	return kv(
		"pki", pki,
		// Nebula cannot change the cipher of a running process and peers
		// with different ciphers cannot talk: it is the mesh's, not the node's.
		"cipher", c.Cipher,
		"listen", kv("host", "0.0.0.0", "port", c.Port,
			// Tell a peer whose tunnel we lost at once, so it re-handshakes
			// instead of waiting for its connection timeout.
			"send_recv_error", "always"),
		"punchy", kv("punch", c.Punch, "respond", c.Punch),
		"tun", tun,
		"handshakes", kv("try_interval", "100ms", "retries", 10),
		"logging", kv("level", c.LogLevel, "format", "text"),
		"firewall", firewall(c),
		"lighthouse", lh,
		"static_host_map", shm,
		"relay", kv("am_relay", c.Role == config.RoleRelay, "use_relays", true, "relays", relays),
	)
}

// kv builds a settings map from key, value pairs. Not inlined: a map
// literal costs a map assignment per key at each site on MIPS.
//
//go:noinline
func kv(pairs ...any) m {
	r := make(m, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		r[pairs[i].(string)] = pairs[i+1]
	}
	return r
}

// PushesUpdates reports whether Nebula, running settings, is a lighthouse
// that lists other lighthouses: Nebula sends such a node's host updates
// only when asked (Control.RebindUDPServer), so the Runner asks every
// lighthouse interval.
func PushesUpdates(settings map[string]any) bool {
	lh, _ := settings["lighthouse"].(m)
	am, _ := lh["am_lighthouse"].(bool)
	hosts, _ := lh["hosts"].([]any)
	return am && len(hosts) > 0
}

// firewall gives each role the inbound rules it needs to do its job; the
// node's own fw4 zone still decides what reaches the router itself.
func firewall(c *config.Config) m {
	in := []any{fwRule("icmp", "any", "host", "any")}
	switch c.Role {
	case config.RoleHub:
		in = append(in,
			fwRule("udp", strconv.Itoa(c.DNSPort), "host", "any"),
			fwRule("tcp", "80", "host", "any")) // the opkg feed, served on the hub
	case config.RoleUplink:
		// Exit traffic is addressed to the internet, not to us: Nebula only
		// lets it through with a local_cidr covering the destination.
		in = append(in, fwRule("any", "any", "host", "any", "local_cidr", "0.0.0.0/0"))
	}
	if c.MetricsPort != 0 {
		in = append(in, fwRule("tcp", strconv.Itoa(c.MetricsPort), "host", "any"))
	}
	if c.LoRa.Overlay {
		// lora-bridge's API relayed by the agent: only the allowed groups
		// (the agent checks the caller's certificate again).
		port := strconv.Itoa(c.LoRa.Port)
		for _, g := range c.LoRa.Groups {
			in = append(in, fwRule("tcp", port, "group", g))
		}
	}
	for _, r := range c.Rules {
		in = append(in, fwRule(r.Proto, r.Port, "host", r.Host, "group", r.Group, "cidr", r.CIDR, "local_cidr", r.LocalCIDR))
	}
	return kv(
		"outbound_action", "drop",
		"inbound_action", "drop",
		"conntrack", kv("tcp_timeout", "12m", "udp_timeout", "3m", "default_timeout", "10m"),
		"outbound", []any{fwRule("any", "any", "host", "any")},
		"inbound", in,
	)
}

// YAML renders settings the way Nebula's config loader reads them.
func YAML(settings map[string]any) (string, error) {
	b, err := yaml.Marshal(settings)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Redact returns a copy of settings safe to print: no private key. Not
// inlined: its map copies would be duplicated at each caller.
//
//go:noinline
func Redact(settings map[string]any) map[string]any {
	out := make(map[string]any, len(settings))
	for k, v := range settings {
		out[k] = v
	}
	if pki, ok := settings["pki"].(m); ok {
		p := make(m, len(pki))
		for k, v := range pki {
			p[k] = v
		}
		p["key"] = Redacted
		out["pki"] = p
	}
	return out
}

// reloadable lists the settings Nebula applies to a running process
// (those its reload callbacks watch). Anything else needs a restart.
var reloadable = []string{
	"pki.ca", "pki.cert", "pki.key", "pki.disconnect_invalid", "pki.blocklist",
	"firewall", "lighthouse.hosts", "lighthouse.interval", "static_host_map",
	"punchy", "relay", "tun.mtu", "tun.unsafe_routes", "logging",
	"listen.send_recv_error",
}

// NeedsRestart lists the settings that differ between old and new and
// that Nebula cannot change in place, sorted; empty means reload in place.
func NeedsRestart(old, new map[string]any) []string {
	var out []string
	diffPaths("", old, new, &out)
	var hard []string
	for _, p := range out {
		ok := slices.ContainsFunc(reloadable, func(r string) bool {
			return p == r || strings.HasPrefix(p, r+".")
		})
		if !ok {
			hard = append(hard, p)
		}
	}
	slices.Sort(hard)
	return hard
}

// diffPaths appends the dotted paths of the leaves (or non-map values)
// that differ between a and b.
func diffPaths(prefix string, a, b any, out *[]string) {
	am, aok := a.(m)
	bm, bok := b.(m)
	if !aok || !bok {
		ay, _ := yaml.Marshal(a)
		by, _ := yaml.Marshal(b)
		if string(ay) != string(by) {
			*out = append(*out, prefix)
		}
		return
	}
	keys := map[string]bool{}
	for k := range am {
		keys[k] = true
	}
	for k := range bm {
		keys[k] = true
	}
	for k := range keys {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		diffPaths(p, am[k], bm[k], out)
	}
}

// fwRule is one Nebula firewall rule; kv are further key, value pairs,
// those with an empty value left out. Not inlined: a copy at each of its
// call sites costs flash on MIPS.
//
//go:noinline
func fwRule(proto, port string, kv ...string) m {
	r := m{"proto": proto, "port": port}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			r[kv[i]] = kv[i+1]
		}
	}
	return r
}
