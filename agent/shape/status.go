package shape

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is the shaper's snapshot for the status API and LuCI.
type Status struct {
	Links         []LinkStatus  `json:"links"`
	Reconciles    uint64        `json:"reconciles"`
	LastReconcile time.Time     `json:"last_reconcile,omitzero"`
	LastChanges   int           `json:"last_changes"`
	LastDuration  time.Duration `json:"last_duration_ns"`
	LastError     string        `json:"last_error,omitempty"`
}

// LinkStatus is one shaped interface.
type LinkStatus struct {
	Device string `json:"device"`
	IFB    string `json:"ifb,omitempty"`
	Window string `json:"window"` // schedule window in force, or "default"
	// Leaf is the leaf qdisc in use; it differs from the first preference
	// when the kernel lacks that one.
	Leaf  string       `json:"leaf"`
	Trees []TreeStatus `json:"directions"`
}

// TreeStatus is one direction of a link.
type TreeStatus struct {
	Direction string        `json:"direction"` // upload or download
	Device    string        `json:"device"`    // where the HTB tree sits
	LimitKbit int64         `json:"limit_kbit"`
	Classes   []ClassStatus `json:"classes"`
}

// ClassStatus holds one class's settings and kernel counters.
type ClassStatus struct {
	Name     string `json:"name"`
	RateKbit int64  `json:"rate_kbit"`
	CeilKbit int64  `json:"ceil_kbit"`
	Bytes    uint64 `json:"bytes"`
	Packets  uint64 `json:"packets"`
	Drops    uint64 `json:"drops"`
	// Overlimits counts the times the class had to wait for tokens.
	Overlimits uint64 `json:"overlimits"`
	Backlog    uint64 `json:"backlog_bytes"`
	Qlen       uint64 `json:"qlen_packets"`
}

// Status reads the class counters from the kernel and returns a snapshot.
// A direction whose counters cannot be read is listed without classes.
func (s *Shaper) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stat
	st.Links = nil
	if s.cfg == nil {
		return st
	}
	for i := range s.cfg.Links {
		l := &s.cfg.Links[i]
		a, ok := s.applied[l.Device]
		if !ok {
			continue
		}
		ls := LinkStatus{Device: l.Device, IFB: a.ifb, Window: a.window, Leaf: a.leafKind}
		for j := range a.trees {
			t := &a.trees[j]
			ts := TreeStatus{Direction: t.Direction, Device: t.Dev, LimitKbit: t.Limit}
			cs, err := s.k.Classes(t.Ifindex)
			if err == nil {
				ts.Classes = classStatus(l, t, cs)
			}
			ls.Trees = append(ls.Trees, ts)
		}
		st.Links = append(st.Links, ls)
	}
	return st
}

func classStatus(l *Link, t *tree, cs []TCClass) []ClassStatus {
	var out []ClassStatus
	for i := range l.Classes {
		c := &l.Classes[i]
		st := ClassStatus{Name: c.Name, RateKbit: c.Rate.Of(t.Limit), CeilKbit: c.Ceil.Of(t.Limit)}
		for j := range cs {
			o := &cs[j]
			if o.Handle != classID(i) {
				continue
			}
			st.Bytes, st.Packets = o.Stats.Bytes, o.Stats.Packets
			st.Drops, st.Overlimits = uint64(o.Stats.Drops), uint64(o.Stats.Overlimits)
			st.Backlog, st.Qlen = uint64(o.Stats.Backlog), uint64(o.Stats.Qlen)
		}
		out = append(out, st)
	}
	return out
}

// classSeries are the per-class metrics, in the order of classValues.
var classSeries = [...]struct{ name, help, typ string }{
	{"meshnode_shape_class_rate_bits", "Guaranteed rate of the class in bits per second.", "gauge"},
	{"meshnode_shape_class_ceil_bits", "Ceiling of the class in bits per second.", "gauge"},
	{"meshnode_shape_class_bytes_total", "Bytes sent by the class.", "counter"},
	{"meshnode_shape_class_packets_total", "Packets sent by the class.", "counter"},
	{"meshnode_shape_class_drops_total", "Packets dropped by the class.", "counter"},
	{"meshnode_shape_class_overlimits_total", "Times the class waited for tokens.", "counter"},
	{"meshnode_shape_class_backlog_bytes", "Bytes queued in the class.", "gauge"},
}

// classValues returns the values of classSeries for c.
func classValues(c *ClassStatus) [len(classSeries)]float64 {
	return [...]float64{float64(c.RateKbit) * 1000, float64(c.CeilKbit) * 1000, float64(c.Bytes),
		float64(c.Packets), float64(c.Drops), float64(c.Overlimits), float64(c.Backlog)}
}

// WriteMetrics writes st in the Prometheus text exposition format
// (version 0.0.4). Metric names start with meshnode_shape_.
func WriteMetrics(w io.Writer, st Status) error {
	var b strings.Builder
	b.WriteString("# HELP meshnode_shape_limit_bits Shaped rate of the direction in bits per second.\n# TYPE meshnode_shape_limit_bits gauge\n")
	for i := range st.Links {
		l := &st.Links[i]
		for _, t := range l.Trees {
			fmt.Fprintf(&b, "meshnode_shape_limit_bits{device=%s,direction=%s,window=%s,leaf=%s} %d\n",
				label(l.Device), label(t.Direction), label(l.Window), label(l.Leaf), t.LimitKbit*1000)
		}
	}
	for i, sr := range classSeries {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", sr.name, sr.help, sr.name, sr.typ)
		for j := range st.Links {
			l := &st.Links[j]
			for _, t := range l.Trees {
				for k := range t.Classes {
					c := &t.Classes[k]
					fmt.Fprintf(&b, "%s{device=%s,direction=%s,class=%s} %g\n",
						sr.name, label(l.Device), label(t.Direction), label(c.Name), classValues(c)[i])
				}
			}
		}
	}
	fmt.Fprintf(&b, "# HELP meshnode_shape_reconciles_total Reconcile passes.\n# TYPE meshnode_shape_reconciles_total counter\nmeshnode_shape_reconciles_total %d\n", st.Reconciles)
	ok := 1
	if st.LastError != "" {
		ok = 0
	}
	fmt.Fprintf(&b, "# HELP meshnode_shape_ok 1 if the last reconcile applied everything.\n# TYPE meshnode_shape_ok gauge\nmeshnode_shape_ok %d\n", ok)
	_, err := io.WriteString(w, b.String())
	return err
}

// label quotes a label value as the exposition format wants: backslash,
// double quote and newline escaped.
func label(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}
