// Package daemon is `meshnode run`: it reads the configuration, starts the
// overlay, serves status, and turns SIGHUP and SIGTERM into reload and
// clean shutdown. Each concern (overlay, later wan and shape) keeps its
// own package; this one only wires them.
package daemon

import (
	"context"
	"encoding/json"
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
	"github.com/meshnode/meshnode/agent/shape"
	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/agent/wan"
	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/uci"
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
	wan    *wan.Manager  // nil when rtnetlink could not be opened
	shaper *shape.Shaper // nil when tc netlink could not be opened

	mu         sync.Mutex
	lastReload *status.Reload
	metrics    *http.Server
	metricsKey string
	lora       loraHTTP // lora-bridge's API relayed (lora.go)
}

// Run runs the agent until ctx ends or SIGTERM/SIGINT; it returns an error
// for a configuration that cannot start (procd then logs it and gives up
// after its respawn threshold instead of looping silently).
func Run(ctx context.Context, opt Options) error {
	cfg, shapeCfg, err := load(opt.ConfigPath, opt.StateDir)
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
	d.startLoRa(cfg)
	defer d.stopLoRa()
	if d.opt.LoRa == nil {
		d.opt.LoRa = d.loraStatus
	}

	ln, err := status.Listen(cfg.SocketPath())
	if err != nil {
		return err
	}
	defer os.Remove(cfg.SocketPath())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stop := d.startWAN(ctx, cfg); stop != nil {
		// Before the overlay stops: failover's routes and rules go first.
		defer stop()
	}
	if stop := d.startShaping(ctx, shapeCfg); stop != nil {
		defer stop()
	}
	go func() {
		if err := status.Serve(ctx, ln, d.handler()); err != nil {
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
			return errfmt.Errorf("nebula stopped: %w", err)
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

// load reads and validates the whole configuration file: the overlay and
// failover settings and the shaping sections. Any error rejects all of it,
// so a reload never applies half a configuration.
func load(path, stateDir string) (*config.Config, shape.Config, error) {
	f, err := uci.ReadFile(path)
	if err != nil {
		return nil, shape.Config{}, err
	}
	cfg, err := config.FromUCI(f)
	if err != nil {
		return nil, shape.Config{}, err
	}
	shapeCfg, err := shape.ParseConfig(f)
	if err != nil {
		return nil, shape.Config{}, err
	}
	if stateDir != "" {
		cfg.StateDir = stateDir
	}
	return cfg, shapeCfg, nil
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
	cfg, shapeCfg, err := load(d.opt.ConfigPath, d.opt.StateDir)
	if err == nil {
		res.Restarted, err = d.runner.Reload(cfg)
	}
	if err != nil {
		res.Error = err.Error()
		d.opt.Log.Error("configuration rejected, keeping the running one", "error", err)
	} else {
		res.OK = true
		if d.wan != nil {
			d.wan.Reload(cfg)
		}
		if d.shaper != nil {
			// Validated in load; what can still fail is the kernel (an
			// interface that is not there yet). The shaper retries on the
			// next link event, so the rest of the reload stands.
			if err := d.shaper.Apply(context.Background(), shapeCfg); err != nil {
				res.Error = "shaping: " + err.Error()
			}
		}
		applyRuntime(cfg, d.opt)
		d.startMetrics(cfg)
		d.startLoRa(cfg)
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
		key = hostPort(cfg.Address.Addr().String(), cfg.MetricsPort)
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
	srv := &http.Server{Handler: d.metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
	d.metrics = srv
	go func() { _ = srv.Serve(ln) }()
}

// hostPort is a listen address. Not inlined: net.JoinHostPort is, at
// each of three sites.
//
//go:noinline
func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
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
	// The same load as run and reload, so `config check` also validates
	// the shaping sections.
	cfg, _, err := load(path, "")
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
	return "# Nebula configuration generated from " + path + " (role " + cfg.Role + ")\n" + text, nil
}

// startWAN starts uplink failover; the returned func stops it and waits
// until its routes and rules are removed.
func (d *Daemon) startWAN(ctx context.Context, cfg *config.Config) (stop func()) {
	k, err := wan.OpenKernel(0)
	if err != nil {
		d.opt.Log.Warn("uplink failover off: cannot open rtnetlink", "error", err)
		return nil
	}
	d.wan = wan.New(cfg, wan.Options{Log: d.opt.Log, Kernel: k, Overlay: d.runner})
	if d.opt.Uplinks == nil {
		d.opt.Uplinks = d.wan.StatusJSON
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer k.Close()
		if err := d.wan.Run(ctx); err != nil {
			d.opt.Log.Error("uplink failover stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// startShaping starts the shaper with cfg and keeps it in place; the
// returned func removes every qdisc and IFB it made.
func (d *Daemon) startShaping(ctx context.Context, cfg shape.Config) (stop func()) {
	k, err := shape.OpenKernel(0)
	if err != nil {
		d.opt.Log.Warn("shaping off: cannot open netlink for tc", "error", err)
		return nil
	}
	d.shaper = shape.New(k, shape.SystemClock{}, d.opt.Log)
	if d.opt.Shaping == nil {
		d.opt.Shaping = func() json.RawMessage {
			b, err := json.Marshal(d.shaper.Status())
			if err != nil {
				return nil
			}
			return b
		}
	}
	if err := d.shaper.Apply(ctx, cfg); err != nil {
		d.opt.Log.Error("shaping not applied yet; retrying on link events", "error", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.shaper.Run(ctx); err != nil && ctx.Err() == nil {
			d.opt.Log.Error("shaping stopped", "error", err)
		}
	}()
	return func() {
		cancel()
		<-done
		if err := d.shaper.Stop(); err != nil {
			d.opt.Log.Warn("removing shaping", "error", err)
		}
		k.Close()
	}
}

// handler is the status API plus the hotplug events for failover.
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", status.Handler(d))
	mux.Handle("POST /lora/", d.loraRelay(nil))
	if d.wan != nil {
		mux.Handle("POST "+wan.EventPath, d.wan.EventHandler())
	}
	return mux
}

// metricsHandler serves the snapshot's metrics and failover's.
func (d *Daemon) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		status.WriteMetrics(w, d.Snapshot())
		if d.wan != nil {
			d.wan.WriteMetrics(w)
		}
		if d.shaper != nil {
			shape.WriteMetrics(w, d.shaper.Status())
		}
	})
	return mux
}
