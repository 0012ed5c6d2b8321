package wan

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Status is the "uplinks" section of the agent's status snapshot. Field
// names are API (LuCI, scripts): add, never rename.
type Status struct {
	// Active: the uplinks carrying the default route now.
	Active []string `json:"active"`
	// Class they were chosen from: up, damped, probing, last_resort, none.
	Class   string         `json:"class"`
	Uplinks []UplinkStatus `json:"uplinks"`
}

// UplinkStatus is one uplink's health.
type UplinkStatus struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	Interface string    `json:"interface,omitempty"`
	Device    string    `json:"device,omitempty"`
	Gateway   string    `json:"gateway,omitempty"`
	Probe     string    `json:"probe"`
	Targets   []string  `json:"targets"`
	Tier      int       `json:"tier"`
	Weight    int       `json:"weight"`
	State     string    `json:"state"` // up, down, probing, damped
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
	Active    bool      `json:"active"`
	Carrier   bool      `json:"carrier"`
	RTTms     float64   `json:"rtt_ms"`
	Loss      float64   `json:"loss"` // fraction of the last 32 probes unanswered
	Flaps     int       `json:"flaps"`
	// HeldUntil: when a damped uplink may come back.
	HeldUntil   *time.Time `json:"held_until,omitempty"`
	Changes     uint64     `json:"changes"`
	ProbesSent  uint64     `json:"probes_sent"`
	ProbesLost  uint64     `json:"probes_lost"`
	LastFailure string     `json:"last_failure,omitempty"`
	ProbeError  string     `json:"probe_error,omitempty"` // the prober could not start
}

// publish copies the loop's state for readers on other goroutines.
func (m *Manager) publish() {
	s := Status{Class: m.last.Class, Active: []string{}, Uplinks: make([]UplinkStatus, len(m.ups))}
	if s.Class == "" {
		s.Class = ClassNone
	}
	for _, i := range m.last.Selected {
		if i < len(m.ups) {
			s.Active = append(s.Active, m.ups[i].cfg.Name)
		}
	}
	for i, u := range m.ups {
		st, why, since := u.tr.State()
		us := UplinkStatus{Name: u.cfg.Name, Kind: u.cfg.Kind, Interface: u.cfg.Interface, Device: u.device,
			Probe: u.cfg.Probe, Targets: u.cfg.Targets, Tier: u.cfg.Tier, Weight: u.cfg.Weight,
			State: string(st), Reason: why, Since: since, Active: slices.Contains(s.Active, u.cfg.Name),
			Carrier: u.tr.Carrier(), RTTms: float64(u.st.RTT().Microseconds()) / 1000, Loss: u.st.Loss(),
			Flaps: u.tr.Flaps(), Changes: u.changes, ProbesSent: u.st.Sent, ProbesLost: u.st.Lost,
			LastFailure: u.lastFail, ProbeError: u.probeErr}
		if g := u.gateway(); g.IsValid() {
			us.Gateway = g.String()
		}
		if st == Damped {
			h := u.tr.HoldUntil()
			us.HeldUntil = &h
		}
		s.Uplinks[i] = us
	}
	m.mu.Lock()
	m.status = s
	m.mu.Unlock()
}

// Status returns the latest state.
func (m *Manager) Status() Status {
	m.mu.Lock()
	s := m.status
	m.mu.Unlock()
	return s
}

// StatusJSON is Status for daemon.Options.Uplinks.
func (m *Manager) StatusJSON() json.RawMessage {
	b, err := json.Marshal(m.Status())
	if err != nil {
		return nil
	}
	return b
}

// uplinkSeries are the metrics, in the order of uplinkValue. A table: a
// closure per metric costs flash.
var uplinkSeries = []struct{ name, help, typ string }{
	{"meshnode_uplink_state", "1 for the uplink's current state (up, down, probing, damped).", "gauge"},
	{"meshnode_uplink_active", "1 if the uplink carries the default route.", "gauge"},
	{"meshnode_uplink_carrier", "1 if the uplink's link is up (carrier, netifd).", "gauge"},
	{"meshnode_uplink_rtt_seconds", "Smoothed round-trip time of the uplink's probes.", "gauge"},
	{"meshnode_uplink_loss_ratio", "Share of the last 32 probes without an answer.", "gauge"},
	{"meshnode_uplink_probes_total", "Probes sent through the uplink.", "counter"},
	{"meshnode_uplink_probes_lost_total", "Probes through the uplink that got no answer.", "counter"},
	{"meshnode_uplink_state_changes_total", "State changes of the uplink.", "counter"},
	{"meshnode_uplink_flaps", "Recent flaps (down soon after up); damping starts at damp_after.", "gauge"},
	{"meshnode_uplink_last_change_timestamp_seconds", "When the uplink last changed state.", "gauge"},
}

// uplinkValue is u's value of uplinkSeries[i], printed with %v; the
// state metric has a series per state instead.
func uplinkValue(u *UplinkStatus, i int) any {
	return [...]any{nil, b2i(u.Active), b2i(u.Carrier), u.RTTms / 1000, u.Loss, u.ProbesSent, u.ProbesLost,
		u.Changes, u.Flaps, u.Since.Unix()}[i]
}

// states are the values of meshnode_uplink_state's state label.
var states = []State{Up, Down, Probing, Damped}

// WriteMetrics writes the uplinks in the Prometheus text format.
func (m *Manager) WriteMetrics(w io.Writer) {
	s := m.Status()
	if len(s.Uplinks) == 0 {
		return
	}
	for i, sr := range uplinkSeries {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", sr.name, sr.help, sr.name, sr.typ)
		for j := range s.Uplinks {
			u := &s.Uplinks[j]
			if i > 0 {
				fmt.Fprintf(w, "%s{uplink=%s} %v\n", sr.name, q(u.Name), uplinkValue(u, i))
				continue
			}
			for _, st := range states {
				fmt.Fprintf(w, "meshnode_uplink_state{uplink=%s,kind=%s,tier=\"%d\",state=%s} %d\n",
					q(u.Name), q(u.Kind), u.Tier, q(string(st)), b2i(u.State == string(st)))
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func q(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// WriteText prints the uplinks for `meshnode status`.
func (s *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nuplinks (default route: %s, from %s):\n", strings.Join(s.Active, ", "), s.Class)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tSTATE\tTIER\tWEIGHT\tRTT\tLOSS\tSINCE\tWHY")
	for _, u := range s.Uplinks {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%.1f ms\t%.0f%%\t%s\t%s\n", u.Name, u.State, u.Tier, u.Weight,
			u.RTTms, u.Loss*100, u.Since.Format(time.TimeOnly), u.Reason)
	}
	_ = tw.Flush()
}
