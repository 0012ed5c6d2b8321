// Package status is what the agent tells people and machines about itself:
// the Snapshot type, the local unix-socket API that serves it, the client
// `meshnode status` and the rpcd plugin use, and Prometheus metrics.
package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// CertWarnDays: below this many days left the certificate is flagged, so
// an operator has a month to carry a renewed one to the node.
const CertWarnDays = 30

// Snapshot is the agent's state at one moment. Field names are the JSON
// API (rpcd, LuCI, scripts): add fields, never rename them.
type Snapshot struct {
	Version       string       `json:"version"`
	Nebula        string       `json:"nebula"`
	Role          string       `json:"role"`
	Address       string       `json:"address"` // overlay address with prefix
	Device        string       `json:"device"`
	Port          int          `json:"port"`
	Started       time.Time    `json:"started"`
	UptimeSeconds int64        `json:"uptime_seconds"`
	Certificate   Certificate  `json:"certificate"`
	Lighthouses   []Lighthouse `json:"lighthouses"`
	Peers         []Peer       `json:"peers"`
	// Routed: traffic whose far end is outside the overlay (exit traffic).
	Routed Traffic `json:"routed"`
	// LastReload is the outcome of the last reload request, if any.
	LastReload *Reload `json:"last_reload,omitempty"`

	// Sections other concerns of the agent fill (agent/wan, agent/shape,
	// lora-bridge); each owns its JSON shape.
	Uplinks json.RawMessage `json:"uplinks,omitempty"`
	Shaping json.RawMessage `json:"shaping,omitempty"`
	LoRa    json.RawMessage `json:"lora,omitempty"`
}

// Certificate describes the node's own certificate.
type Certificate struct {
	Name     string    `json:"name"`
	Groups   []string  `json:"groups"`
	NotAfter time.Time `json:"not_after"`
	DaysLeft int       `json:"days_left"`
	Warning  string    `json:"warning,omitempty"`
}

// Lighthouse is one configured lighthouse and whether a tunnel to it is up.
type Lighthouse struct {
	Address   string   `json:"address"`
	Endpoints []string `json:"endpoints"`
	Reachable bool     `json:"reachable"`
}

// Peer is one established tunnel.
type Peer struct {
	Address       string    `json:"address"`
	Name          string    `json:"name"`
	Groups        []string  `json:"groups,omitempty"`
	Remote        string    `json:"remote,omitempty"` // ip:port, empty when relayed
	Relays        []string  `json:"relays,omitempty"` // relays the tunnel goes through
	LastHandshake time.Time `json:"last_handshake"`
	BytesIn       uint64    `json:"bytes_in"`
	BytesOut      uint64    `json:"bytes_out"`
}

// Traffic is a byte count pair.
type Traffic struct {
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// Reload is the result of applying a configuration.
type Reload struct {
	Time      time.Time `json:"time"`
	OK        bool      `json:"ok"`
	Restarted bool      `json:"restarted"` // Nebula was restarted, tunnels re-established
	Error     string    `json:"error,omitempty"`
}

// CertWarning returns the warning for a certificate valid until notAfter.
func CertWarning(now, notAfter time.Time) (daysLeft int, warning string) {
	daysLeft = int(notAfter.Sub(now).Hours() / 24)
	switch {
	case !now.Before(notAfter):
		return daysLeft, "certificate has expired: the node cannot join the mesh until it gets a new one"
	case daysLeft < CertWarnDays:
		return daysLeft, fmt.Sprintf("certificate expires in %d days: ask the CA for a new one", daysLeft)
	}
	return daysLeft, ""
}

// WriteText prints s for a person.
func (s *Snapshot) WriteText(w io.Writer) error {
	tw := newTable(w)
	row(tw, "role", s.Role)
	row(tw, "address", s.Address+" on "+s.Device)
	row(tw, "version", s.Version+" (nebula "+s.Nebula+")")
	row(tw, "uptime", (time.Duration(s.UptimeSeconds) * time.Second).String())
	row(tw, "certificate", s.Certificate.Name+", groups "+strings.Join(s.Certificate.Groups, ",")+", valid until "+
		s.Certificate.NotAfter.Format("2006-01-02")+" ("+strconv.Itoa(s.Certificate.DaysLeft)+" days)")
	if s.Certificate.Warning != "" {
		row(tw, "WARNING", s.Certificate.Warning)
	}
	for _, l := range s.Lighthouses {
		state := "unreachable"
		if l.Reachable {
			state = "reachable"
		}
		row(tw, "lighthouse", l.Address+" ("+strings.Join(l.Endpoints, " ")+") "+state)
	}
	if s.LastReload != nil {
		r := "ok"
		if !s.LastReload.OK {
			r = "REJECTED: " + s.LastReload.Error
		} else if s.LastReload.Restarted {
			r = "ok (nebula restarted)"
		}
		row(tw, "last reload", s.LastReload.Time.Format(time.RFC3339)+" "+r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\npeers (%d):\n", len(s.Peers))
	tw = newTable(w)
	_, _ = io.WriteString(tw, "  ADDRESS\tNAME\tREMOTE\tHANDSHAKE\tIN\tOUT\n")
	for _, pe := range s.Peers {
		remote := pe.Remote
		if len(pe.Relays) > 0 {
			remote = "via relay " + strings.Join(pe.Relays, ",")
		}
		ago := time.Since(pe.LastHandshake).Truncate(time.Second).String() + " ago"
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", pe.Address, pe.Name, remote, ago, bytesHuman(pe.BytesIn), bytesHuman(pe.BytesOut))
	}
	return tw.Flush()
}

// newTable is the tab writer of WriteText's two tables. Not inlined,
// like row.
//
//go:noinline
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// row writes one line of the summary table. Not inlined (nor a closure,
// which was): a copy at each of its dozen sites costs flash on MIPS.
//
//go:noinline
func row(tw io.Writer, k, v string) { _, _ = io.WriteString(tw, k+"\t"+v+"\n") }

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
