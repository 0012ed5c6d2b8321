package daemon

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/agent/lora"
)

// loraHTTP is lora-bridge's API relayed over HTTP: on the status socket
// (always), on loopback and on the overlay address (config lora, access
// rule in agent/config's LoRa).
type loraHTTP struct {
	mu      sync.Mutex
	cfg     config.LoRa
	servers map[string]*http.Server // by listen address
}

func (d *Daemon) loraSocket() string {
	d.lora.mu.Lock()
	defer d.lora.mu.Unlock()
	return d.lora.cfg.Socket
}

// loraStatus is the snapshot's "lora" section.
func (d *Daemon) loraStatus() json.RawMessage {
	return lora.StatusJSON(context.Background(), d.loraSocket())
}

// loraRelay serves POST /lora/<method>; allow nil lets every caller in.
func (d *Daemon) loraRelay(allow func(*http.Request) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/lora/", lora.Relay{Socket: d.loraSocket, Allow: allow})
	return mux
}

// overlayGroups looks an overlay address up: a peer's certificate groups
// from Nebula's host map, or this node's own.
func (d *Daemon) overlayGroups(a netip.Addr) ([]string, bool) {
	st := d.runner.State()
	if st.Config != nil && st.Config.Address.Addr() == a {
		return st.Cert.Groups, true
	}
	for _, p := range st.Peers {
		if p.Address == a {
			return p.Groups, true
		}
	}
	return nil, false
}

// startLoRa applies cfg's LoRa section: the socket the snapshot and the
// relay use, and the loopback and overlay listeners (restarted only when
// their address changed).
func (d *Daemon) startLoRa(cfg *config.Config) {
	l := &d.lora
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg.LoRa
	l.cfg.Groups = slices.Clone(cfg.LoRa.Groups)
	want := map[string]func(*http.Request) error{}
	if cfg.LoRa.Loopback {
		want[hostPort("127.0.0.1", cfg.LoRa.Port)] = nil
	}
	if cfg.LoRa.Overlay {
		want[hostPort(cfg.Address.Addr().String(), cfg.LoRa.Port)] = func(r *http.Request) error {
			// Read at request time: a reload may change the groups
			// without moving the listener.
			l.mu.Lock()
			g := l.cfg.Groups
			l.mu.Unlock()
			return lora.GroupRule(g, d.overlayGroups)(r)
		}
	}
	if l.servers == nil {
		l.servers = map[string]*http.Server{}
	}
	for addr, srv := range l.servers {
		if _, ok := want[addr]; !ok {
			_ = srv.Close()
			delete(l.servers, addr)
		}
	}
	for addr, allow := range want {
		if _, ok := l.servers[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			// Like metrics: not worth stopping the overlay for.
			d.opt.Log.Warn("LoRa API not served", "address", addr, "error", err)
			continue
		}
		srv := &http.Server{Handler: d.loraRelay(allow), ReadHeaderTimeout: 5 * time.Second}
		l.servers[addr] = srv
		go func() { _ = srv.Serve(ln) }()
		d.opt.Log.Info("LoRa API relayed", "address", addr, "socket", l.cfg.Socket)
	}
}

func (d *Daemon) stopLoRa() {
	l := &d.lora
	l.mu.Lock()
	defer l.mu.Unlock()
	for addr, srv := range l.servers {
		_ = srv.Close()
		delete(l.servers, addr)
	}
}
