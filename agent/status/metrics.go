package status

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
)

// WriteMetrics writes s in the Prometheus text exposition format. Written
// by hand: the format is simple and a registry would only copy the
// snapshot once more.
func WriteMetrics(w io.Writer, s Snapshot) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	e := func(name, help, typ string) { metricHeader(w, name, help, typ) }

	e("meshnode_info", "Agent version, role and overlay address.", "gauge")
	fmt.Fprintf(w, "meshnode_info{version=%s,nebula=%s,role=%s,address=%s,name=%s} 1\n",
		q(s.Version), q(s.Nebula), q(s.Role), q(s.Address), q(s.Certificate.Name))
	e("meshnode_uptime_seconds", "Seconds since Nebula was (re)started.", "gauge")
	fmt.Fprintf(w, "meshnode_uptime_seconds %d\n", s.UptimeSeconds)
	e("meshnode_certificate_expiry_timestamp_seconds", "When the node certificate expires.", "gauge")
	fmt.Fprintf(w, "meshnode_certificate_expiry_timestamp_seconds %d\n", s.Certificate.NotAfter.Unix())
	e("meshnode_lighthouse_reachable", "1 if a tunnel to the lighthouse is up.", "gauge")
	for _, l := range s.Lighthouses {
		v := 0
		if l.Reachable {
			v = 1
		}
		fmt.Fprintf(w, "meshnode_lighthouse_reachable{lighthouse=%s} %d\n", q(l.Address), v)
	}
	e("meshnode_peers", "Established tunnels.", "gauge")
	fmt.Fprintf(w, "meshnode_peers %d\n", len(s.Peers))
	e("meshnode_peer_received_bytes_total", "Bytes received from a peer (IP packets, before encryption).", "counter")
	for _, p := range s.Peers {
		fmt.Fprintf(w, "meshnode_peer_received_bytes_total{peer=%s,name=%s} %d\n", q(p.Address), q(p.Name), p.BytesIn)
	}
	e("meshnode_peer_sent_bytes_total", "Bytes sent to a peer (IP packets, before encryption).", "counter")
	for _, p := range s.Peers {
		fmt.Fprintf(w, "meshnode_peer_sent_bytes_total{peer=%s,name=%s} %d\n", q(p.Address), q(p.Name), p.BytesOut)
	}
	e("meshnode_peer_relayed", "1 if the tunnel to the peer goes through a relay.", "gauge")
	for _, p := range s.Peers {
		v := 0
		if len(p.Relays) > 0 {
			v = 1
		}
		fmt.Fprintf(w, "meshnode_peer_relayed{peer=%s,name=%s} %d\n", q(p.Address), q(p.Name), v)
	}
	e("meshnode_routed_received_bytes_total", "Bytes from addresses outside the overlay (exit traffic).", "counter")
	fmt.Fprintf(w, "meshnode_routed_received_bytes_total %d\n", s.Routed.BytesIn)
	e("meshnode_routed_sent_bytes_total", "Bytes to addresses outside the overlay (exit traffic).", "counter")
	fmt.Fprintf(w, "meshnode_routed_sent_bytes_total %d\n", s.Routed.BytesOut)
	e("meshnode_go_heap_bytes", "Go heap in use; compare with the memory_limit option.", "gauge")
	fmt.Fprintf(w, "meshnode_go_heap_bytes %d\n", mem.HeapInuse)
	e("meshnode_go_sys_bytes", "Memory the Go runtime got from the kernel.", "gauge")
	fmt.Fprintf(w, "meshnode_go_sys_bytes %d\n", mem.Sys)
}

// q quotes a label value as the exposition format wants.
func q(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// MetricsHandler serves GET /metrics.
func MetricsHandler(a Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		WriteMetrics(w, a.Snapshot())
	})
	return mux
}

// metricHeader writes a metric's HELP and TYPE lines. Not inlined: it is
// called for every metric, and a copy at each costs flash on MIPS.
//
//go:noinline
func metricHeader(w io.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}
