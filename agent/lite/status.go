// Package lite is the meshnode agent for boards whose flash cannot hold
// Nebula (8 MiB NanoStation M XW as a LoRa relay or a point-to-point link):
// `meshnode status`, the rpcd plugin and `meshnode config check`, built by
// cmd/meshnode with the 'lite' tag.
//
// It links neither Nebula nor net, net/http, encoding/json, fmt nor the
// full agent's packages: Go's runtime alone is ~430 KiB of the ~490 KiB
// the package may take in the image, so everything here is written
// against os, strconv and syscall. A test guards the dependency list.
//
// There is no daemon: every call reads the state afresh (sysfs, /proc,
// lora-bridge's socket), so nothing runs or uses RAM between calls.
package lite

import (
	"io"
	"strconv"
	"strings"
)

// Role is what status reports as the node's role.
const Role = "lite"

// Default router paths; Options.Root is prepended to each.
const (
	DefaultConfig     = "/etc/config/meshnode"
	LoRaConfig        = "/etc/config/lora-bridge"
	DefaultLoRaSocket = "/var/run/lora-bridge.sock"
	SysNet            = "/sys/class/net"
	ProcUptime        = "/proc/uptime"
)

// Options say where to look. Root (for tests: a fake router tree) is
// prepended to every router path, not to paths given explicitly.
type Options struct {
	Root       string
	Config     string // UCI file; default Root+DefaultConfig
	LoRaSocket string // default: the lite section's lora_socket, lora-bridge's socket option, DefaultLoRaSocket
	Version    string
}

func (o Options) configPath() string {
	if o.Config != "" {
		return o.Config
	}
	return o.Root + DefaultConfig
}

// Link is one network interface.
type Link struct {
	Name    string
	State   string // sysfs operstate: up, down, dormant, lowerlayerdown, unknown, ...
	Up      bool
	Carrier bool
	Kind    string // wireless, bridge, ethernet, other
	RxBytes uint64
	TxBytes uint64
}

// Status is the lite agent's snapshot: the fields of the full agent's
// (agent/status.Snapshot) that mean something without an overlay, and the
// links. Overlay fields (nebula, address, certificate, lighthouses, peers,
// routed) are absent, which LuCI shows as "not reported".
type Status struct {
	Version       string
	UptimeSeconds int64 // the node's: there is no agent process to time
	Links         []Link
	LoRa          *LoRa // nil when no lora-bridge is configured
	Problems      []string
}

// Gather reads the node's state.
func Gather(o Options) *Status {
	s := &Status{Version: o.Version}
	cfg, err := LoadSettings(o)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	if up, err := readUptime(o.Root + ProcUptime); err == nil {
		s.UptimeSeconds = up
	} else {
		s.Problems = append(s.Problems, err.Error())
	}
	links, err := ReadLinks(o.Root+SysNet, cfg.Interfaces)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	s.Links = links
	if cfg.LoRaSocket != "" {
		l := QueryLoRa(cfg.LoRaSocket)
		if l.Err != nil && !cfg.LoRaEnabled {
			l.Err = &Error{File: cfg.LoRaFrom, Msg: "lora-bridge is not enabled (option enabled '0')"}
		}
		s.LoRa = &l
	}
	return s
}

func readUptime(path string) (int64, error) {
	b, err := readFile(path)
	if err != nil {
		return 0, err
	}
	f := string(b)
	if i := strings.IndexAny(f, ". \n"); i >= 0 {
		f = f[:i]
	}
	n, ok := parseUint(f, 10)
	if !ok || n > 1<<62 {
		return 0, &Error{File: path, Msg: "not an uptime"}
	}
	return int64(n), nil
}

// ReadLinks reads the interfaces in dir (/sys/class/net): the named ones,
// or every one but lo when names is empty. A named interface that does not
// exist is reported down with state "absent".
func ReadLinks(dir string, names []string) ([]Link, error) {
	if len(names) == 0 {
		all, err := listDir(dir)
		if err != nil {
			return nil, err
		}
		for _, n := range all {
			if n != "lo" {
				names = append(names, n)
			}
		}
	}
	var out []Link
	for _, n := range names {
		out = append(out, readLink(dir+"/"+n, n))
	}
	return out, nil
}

func readLink(dir, name string) Link {
	l := Link{Name: name, Kind: "other"}
	read := func(f string) string {
		b, err := readFile(dir + "/" + f)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if !exists(dir) {
		l.State = "absent"
		return l
	}
	l.State = read("operstate")
	if l.State == "" {
		l.State = "unknown"
	}
	l.Carrier = read("carrier") == "1" // unreadable while the interface is down
	// Tunnels and some Wi-Fi drivers say "unknown" while they pass traffic.
	l.Up = l.State == "up" || l.State == "unknown" && l.Carrier
	switch {
	case exists(dir + "/wireless"), exists(dir + "/phy80211"):
		l.Kind = "wireless"
	case exists(dir + "/bridge"):
		l.Kind = "bridge"
	case read("type") == "1":
		l.Kind = "ethernet"
	}
	l.RxBytes, _ = parseUint(read("statistics/rx_bytes"), 10)
	l.TxBytes, _ = parseUint(read("statistics/tx_bytes"), 10)
	return l
}

// JSON is the snapshot as the full agent's API spells it, plus links.
func (s *Status) JSON() []byte {
	var o object
	o.str("version", s.Version)
	o.str("role", Role)
	o.num("uptime_seconds", s.UptimeSeconds)
	var links []byte
	links = append(links, '[')
	for i, l := range s.Links {
		if i > 0 {
			links = append(links, ',')
		}
		var lo object
		lo.str("name", l.Name)
		lo.str("state", l.State)
		lo.boolean("up", l.Up)
		lo.boolean("carrier", l.Carrier)
		lo.str("kind", l.Kind)
		lo.unum("rx_bytes", l.RxBytes)
		lo.unum("tx_bytes", l.TxBytes)
		links = append(links, lo.bytes()...)
	}
	links = append(links, ']')
	o.raw("links", links)
	if s.LoRa != nil {
		var lo object
		lo.str("socket", s.LoRa.Socket)
		lo.boolean("running", s.LoRa.Err == nil)
		if s.LoRa.Err != nil {
			lo.str("error", s.LoRa.Err.Error())
		} else {
			lo.raw("status", s.LoRa.Status)
		}
		o.raw("lora", lo.bytes())
	}
	if len(s.Problems) > 0 {
		p := []byte{'['}
		for i, x := range s.Problems {
			if i > 0 {
				p = append(p, ',')
			}
			p = appendString(p, x)
		}
		o.raw("problems", append(p, ']'))
	}
	return append(o.bytes(), '\n')
}

// WriteText prints s for a person.
func (s *Status) WriteText(w io.Writer) error {
	var b []byte
	line := func(k, v string) {
		b = append(b, k...)
		for i := len(k); i < 12; i++ {
			b = append(b, ' ')
		}
		b = append(b, v...)
		b = append(b, '\n')
	}
	line("role", Role+" (meshnode-lite: no overlay)")
	line("version", s.Version)
	line("uptime", duration(s.UptimeSeconds)+" (the node's)")
	for _, l := range s.Links {
		state := "down"
		if l.Up {
			state = "up"
		}
		line("link", pad(l.Name, 10)+pad(state, 5)+pad(l.Kind, 9)+"rx "+human(l.RxBytes)+", tx "+human(l.TxBytes)+" ("+l.State+")")
	}
	if s.LoRa != nil {
		line("lora", s.LoRa.Text())
	}
	for _, p := range s.Problems {
		line("problem", p)
	}
	_, err := w.Write(b)
	return err
}

// Text is the bridge's state in a line.
func (l *LoRa) Text() string {
	if l.Err != nil {
		return "no answer: " + l.Err.Error()
	}
	f, err := objectFields(l.Status)
	if err != nil {
		return "bridge running"
	}
	out := "bridge running"
	if n := jsonString(f["node"]); n != "" {
		out += ", node " + n
	}
	if r, err := objectFields(f["radio"]); err == nil {
		c := r["Connected"]
		if c == nil {
			c = r["connected"]
		}
		switch string(c) {
		case "true":
			out += ", radio connected"
		case "false":
			out += ", radio NOT connected"
			if e := jsonString(r["LastError"]); e != "" {
				out += " (" + e + ")"
			}
		}
	}
	return out
}

// duration formats seconds as 3d 4h 5m 6s.
func duration(sec int64) string {
	if sec < 0 {
		sec = 0
	}
	out := ""
	for _, u := range []struct {
		n    int64
		unit string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}} {
		if sec >= u.n || out != "" {
			out += strconv.FormatInt(sec/u.n, 10) + u.unit + " "
			sec %= u.n
		}
	}
	return out + strconv.FormatInt(sec, 10) + "s"
}

// parseUint parses digits in base 10 or 16 without strconv's errors
// (their Error method quotes with unicode tables).
func parseUint(s string, base uint64) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s + " "
}

// human formats a byte count like agent/status: 1023 B, 1.5 KiB, ...
func human(n uint64) string {
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(1024), 0
	for x := n / 1024; x >= 1024; x /= 1024 {
		div *= 1024
		exp++
	}
	tenths := (n*10 + div/2) / div
	return strconv.FormatUint(tenths/10, 10) + "." + strconv.FormatUint(tenths%10, 10) + " " + "KMGTPE"[exp:exp+1] + "iB"
}
