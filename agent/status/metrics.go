package status

import (
	"fmt"
	"io"
	"runtime"
	"strings"
)

// WriteMetrics writes s in the Prometheus text exposition format. Written
// by hand: the format is simple and a registry would only copy the
// snapshot once more.
func WriteMetrics(w io.Writer, s Snapshot) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	metricHeader(w, "meshnode_info", "Agent version, role and overlay address.", "gauge")
	fmt.Fprintf(w, "meshnode_info{version=%s,nebula=%s,role=%s,address=%s,name=%s} 1\n",
		q(s.Version), q(s.Nebula), q(s.Role), q(s.Address), q(s.Certificate.Name))
	metric(w, "meshnode_uptime_seconds", "Seconds since Nebula was (re)started.", "gauge", s.UptimeSeconds)
	metric(w, "meshnode_certificate_expiry_timestamp_seconds", "When the node certificate expires.", "gauge", s.Certificate.NotAfter.Unix())
	metricHeader(w, "meshnode_lighthouse_reachable", "1 if a tunnel to the lighthouse is up.", "gauge")
	for _, l := range s.Lighthouses {
		v := 0
		if l.Reachable {
			v = 1
		}
		fmt.Fprintf(w, "meshnode_lighthouse_reachable{lighthouse=%s} %d\n", q(l.Address), v)
	}
	metric(w, "meshnode_peers", "Established tunnels.", "gauge", len(s.Peers))
	for i, sr := range peerSeries {
		metricHeader(w, sr.name, sr.help, sr.typ)
		for j := range s.Peers {
			p := &s.Peers[j]
			v := [...]uint64{p.BytesIn, p.BytesOut, 0}[i]
			if i == 2 && len(p.Relays) > 0 {
				v = 1
			}
			fmt.Fprintf(w, "%s{peer=%s,name=%s} %d\n", sr.name, q(p.Address), q(p.Name), v)
		}
	}
	metric(w, "meshnode_routed_received_bytes_total", "Bytes from addresses outside the overlay (exit traffic).", "counter", s.Routed.BytesIn)
	metric(w, "meshnode_routed_sent_bytes_total", "Bytes to addresses outside the overlay (exit traffic).", "counter", s.Routed.BytesOut)
	metric(w, "meshnode_go_heap_bytes", "Go heap in use; compare with the memory_limit option.", "gauge", mem.HeapInuse)
	metric(w, "meshnode_go_sys_bytes", "Memory the Go runtime got from the kernel.", "gauge", mem.Sys)
}

// peerSeries are the per-peer metrics, in WriteMetrics' order: bytes in,
// bytes out, relayed.
var peerSeries = [...]struct{ name, help, typ string }{
	{"meshnode_peer_received_bytes_total", "Bytes received from a peer (IP packets, before encryption).", "counter"},
	{"meshnode_peer_sent_bytes_total", "Bytes sent to a peer (IP packets, before encryption).", "counter"},
	{"meshnode_peer_relayed", "1 if the tunnel to the peer goes through a relay.", "gauge"},
}

// q quotes a label value as the exposition format wants.
func q(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// metricHeader writes a metric's HELP and TYPE lines. Not inlined: it is
// called for every metric, and a copy at each costs flash on MIPS.
//
//go:noinline
func metricHeader(w io.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// metric writes a metric without labels: its header and its value (an
// integer).
func metric(w io.Writer, name, help, typ string, value any) {
	metricHeader(w, name, help, typ)
	fmt.Fprintf(w, "%s %d\n", name, value)
}
