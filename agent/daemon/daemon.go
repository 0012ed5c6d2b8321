// Package daemon is `meshnode run`: it reads the configuration, starts the
// overlay, serves status, and turns SIGHUP and SIGTERM into reload and
// clean shutdown. Each concern (overlay, later wan and shape) keeps its
// own package; this one only wires them.
package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/agent/overlay"
	"github.com/meshnode/meshnode/agent/status"
)

// Options are the command-line overrides of `meshnode run`.
type Options struct {
	ConfigPath string
	StateDir   string // overrides the UCI state_dir (tests)
	Version    string
	Nebula     string
	Log        *slog.Logger
	Level      *slog.LevelVar
	// Sections other concerns add to the snapshot; nil ones are left out.
	Uplinks, Shaping, LoRa func() json.RawMessage
}

// Daemon is a running agent.
type Daemon struct {
	opt    Options
	runner *overlay.Runner

	mu         sync.Mutex
	lastReload *status.Reload
	metrics    *http.Server
	metricsKey string
}

// Run runs the agent until ctx ends or SIGTERM/SIGINT; it returns an error
// for a configuration that cannot start (procd then logs it and gives up
// after its respawn threshold instead of looping silently).
func Run(ctx context.Context, opt Options) error {
	cfg, err := load(opt)
	if err != nil {
		return err
	}
	applyRuntime(cfg, opt)
	r, err := overlay.Start(cfg, opt.Log, opt.Version)
	if err != nil {
		return err
	}
	d := &Daemon{opt: opt, runner: r}
	defer r.Stop()

	ln, err := status.Listen(cfg.SocketPath())
	if err != nil {
		return err
	}
	defer os.Remove(cfg.SocketPath())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if err := status.Serve(ctx, ln, status.Handler(d)); err != nil {
			opt.Log.Error("status API stopped", "error", err)
		}
	}()
	d.startMetrics(cfg)
	defer d.stopMetrics()
	opt.Log.Info("meshnode running", "role", cfg.Role, "address", cfg.Address, "device", cfg.Device,
		"port", cfg.Port, "socket", cfg.SocketPath(), "metrics_port", cfg.MetricsPort)

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	// Polling the hostmap now and then dates each new tunnel closely
	// enough for "last handshake".
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.State()
		case err := <-r.Fatal():
			return fmt.Errorf("nebula stopped: %w", err)
		case s := <-sig:
			if s == syscall.SIGHUP {
				d.Reload()
				continue
			}
			opt.Log.Info("shutting down", "signal", s.String())
			return nil
		}
	}
}

func load(opt Options) (*config.Config, error) {
	cfg, err := config.Load(opt.ConfigPath)
	if err != nil {
		return nil, err
	}
	if opt.StateDir != "" {
		cfg.StateDir = opt.StateDir
	}
	return cfg, nil
}

// applyRuntime sets what the Go runtime and logger take from the config.
func applyRuntime(cfg *config.Config, opt Options) {
	// An explicit GOMEMLIMIT in the environment (set by hand for a test)
	// wins over UCI, as it would for any Go program.
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := cfg.MemoryLimit
		if limit == 0 {
			limit = 1<<63 - 1
		}
		debug.SetMemoryLimit(limit)
	}
	if opt.Level != nil {
		lv := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
			"warning": slog.LevelWarn, "error": slog.LevelError}[cfg.LogLevel]
		opt.Level.Set(lv)
	}
}

// Reload re-reads the configuration and applies it; a rejected one leaves
// the running configuration in place and says why.
func (d *Daemon) Reload() status.Reload {
	res := status.Reload{Time: time.Now()}
	cfg, err := load(d.opt)
	if err == nil {
		res.Restarted, err = d.runner.Reload(cfg)
	}
	if err != nil {
		res.Error = err.Error()
		d.opt.Log.Error("configuration rejected, keeping the running one", "error", err)
	} else {
		res.OK = true
		applyRuntime(cfg, d.opt)
		d.startMetrics(cfg)
		d.opt.Log.Info("configuration applied", "nebula_restarted", res.Restarted)
	}
	d.mu.Lock()
	d.lastReload = &res
	d.mu.Unlock()
	return res
}

// Snapshot assembles the status snapshot.
func (d *Daemon) Snapshot() status.Snapshot {
	st := d.runner.State()
	now := time.Now()
	c := st.Config
	s := status.Snapshot{
		Version: d.opt.Version, Nebula: d.opt.Nebula,
		Role: c.Role, Address: c.Address.String(), Device: c.Device, Port: c.Port,
		Started: st.Started, UptimeSeconds: int64(now.Sub(st.Started).Seconds()),
		Lighthouses: []status.Lighthouse{}, Peers: []status.Peer{},
		Routed: status.Traffic{BytesIn: st.RoutedIn, BytesOut: st.RoutedOut},
	}
	s.Certificate = status.Certificate{Name: st.Cert.Name, Groups: st.Cert.Groups, NotAfter: st.Cert.NotAfter}
	s.Certificate.DaysLeft, s.Certificate.Warning = status.CertWarning(now, st.Cert.NotAfter)
	up := map[string]bool{}
	for _, p := range st.Peers {
		sp := status.Peer{Address: p.Address.String(), Name: p.Name, Groups: p.Groups, Remote: p.Remote,
			LastHandshake: p.LastHandshake, BytesIn: p.BytesIn, BytesOut: p.BytesOut}
		for _, r := range p.Relays {
			sp.Relays = append(sp.Relays, r.String())
		}
		s.Peers = append(s.Peers, sp)
		up[sp.Address] = true
	}
	for _, l := range c.Lighthouses {
		s.Lighthouses = append(s.Lighthouses, status.Lighthouse{Address: l.Address.String(),
			Endpoints: l.Endpoints, Reachable: up[l.Address.String()]})
	}
	d.mu.Lock()
	s.LastReload = d.lastReload
	d.mu.Unlock()
	if d.opt.Uplinks != nil {
		s.Uplinks = d.opt.Uplinks()
	}
	if d.opt.Shaping != nil {
		s.Shaping = d.opt.Shaping()
	}
	if d.opt.LoRa != nil {
		s.LoRa = d.opt.LoRa()
	}
	return s
}

// startMetrics (re)starts the Prometheus listener on the overlay address
// when its address changed. It binds the overlay address only, so
// metrics never show on the WAN.
func (d *Daemon) startMetrics(cfg *config.Config) {
	key := ""
	if cfg.MetricsPort != 0 {
		key = net.JoinHostPort(cfg.Address.Addr().String(), strconv.Itoa(cfg.MetricsPort))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if key == d.metricsKey {
		return
	}
	d.stopMetricsLocked()
	d.metricsKey = key
	if key == "" {
		return
	}
	ln, err := net.Listen("tcp", key)
	if err != nil {
		// Metrics are not worth stopping the overlay for.
		d.opt.Log.Warn("metrics not served", "address", key, "error", err)
		d.metricsKey = ""
		return
	}
	srv := &http.Server{Handler: status.MetricsHandler(d), ReadHeaderTimeout: 5 * time.Second}
	d.metrics = srv
	go func() { _ = srv.Serve(ln) }()
}

func (d *Daemon) stopMetrics() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopMetricsLocked()
}

func (d *Daemon) stopMetricsLocked() {
	if d.metrics != nil {
		_ = d.metrics.Close()
		d.metrics = nil
	}
}

// ShowConfig returns the Nebula configuration generated from the file at
// path, private key redacted, after the same checks `run` makes.
func ShowConfig(path string) (string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	mat, _, err := overlay.LoadMaterial(cfg, time.Now())
	if err != nil {
		return "", err
	}
	text, err := overlay.YAML(overlay.Redact(overlay.Settings(cfg, mat)))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("# Nebula configuration generated from %s (role %s)\n%s", path, cfg.Role, text), nil
}
