package config

import (
	"github.com/meshnode/meshnode/internal/uci"
)

// LoRa defaults.
const (
	DefaultLoRaSocket = "/var/run/lora-bridge.sock" // lora-bridge's own default
	DefaultLoRaPort   = 9643
	DefaultLoRaGroup  = RoleHub
)

// LoRa is the optional 'config lora' section: where lora-bridge's API
// socket is (for the status snapshot) and where the agent relays that API
// over HTTP (POST /lora/<method>).
//
// Access rule: on the unix status socket (root only) always; on
// 127.0.0.1:Port when Loopback (default on the hub only, for the hub's own
// services); on <overlay address>:Port when Overlay (default on hub, relay
// and uplink, off on clients), and there only to peers whose certificate
// carries one of Groups (default 'hub'): Nebula's firewall admits only
// those groups to the port, and the agent checks the caller's certificate
// again in its host map before relaying.
type LoRa struct {
	Socket   string
	Port     int
	Loopback bool
	Overlay  bool
	Groups   []string
}

func parseLoRa(f *uci.File, c *Config) error {
	c.LoRa = LoRa{Socket: DefaultLoRaSocket, Port: DefaultLoRaPort,
		Loopback: c.Role == RoleHub, Overlay: c.Role != RoleClient, Groups: []string{DefaultLoRaGroup}}
	sec, err := single(f, "lora")
	if sec == nil {
		return err
	}
	r := &reader{file: f.Name, sec: sec}
	l := &c.LoRa
	l.Socket = r.path("socket", DefaultLoRaSocket)
	l.Port = r.num("port", DefaultLoRaPort, 1, 65535)
	l.Loopback = r.boolean("loopback", l.Loopback)
	l.Overlay = r.boolean("overlay", l.Overlay)
	if gs := r.sec.List("allow_group"); len(gs) > 0 {
		l.Groups = nil
		for _, g := range gs {
			r.match("allow_group", nameRe, g, "%q has characters a certificate group cannot have")
			l.Groups = append(l.Groups, g)
		}
	}
	if r.err == nil && (l.Loopback || l.Overlay) && (l.Port == c.MetricsPort || l.Port == c.DNSPort && c.Role == RoleHub) {
		r.fail("port", "%d is already the metrics or DNS port", l.Port)
	}
	return r.err
}
