package overlay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/slackhq/nebula"
	nconfig "github.com/slackhq/nebula/config"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/internal/errfmt"
)

// Runner owns one embedded Nebula instance and the configuration it runs.
type Runner struct {
	log     *slog.Logger
	version string

	mu       sync.Mutex
	cfg      *config.Config
	settings map[string]any
	info     CertInfo
	nc       *nconfig.C
	ctrl     *nebula.Control
	traffic  *Traffic
	started  time.Time
	// handshakes remembers when each tunnel (by local index) was first
	// seen: Nebula does not expose handshake times.
	handshakes map[uint32]time.Time
	stopped    bool
	fatal      chan error
	gw         *gatewayOverride // agent/wan's gateways (gateways.go)
}

// Start checks cfg's certificate and starts Nebula with it.
func Start(cfg *config.Config, log *slog.Logger, version string) (*Runner, error) {
	r := &Runner{log: log, version: version, handshakes: map[uint32]time.Time{}, fatal: make(chan error, 1)}
	mat, info, err := LoadMaterial(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	if err := r.start(cfg, Settings(cfg, mat), info); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Runner) start(cfg *config.Config, settings map[string]any, info CertInfo) error {
	if err := checkPort(cfg); err != nil {
		return err
	}
	text, err := YAML(settings)
	if err != nil {
		return err
	}
	nc := nconfig.NewC(r.log)
	if err := nc.LoadString(text); err != nil {
		return errfmt.Errorf("nebula configuration: %w", err)
	}
	traffic := newTraffic(cfg.Address)
	ctrl, err := nebula.Main(nc, false, r.version, r.log.With("subsystem", "nebula"), countingFactory(traffic))
	if err != nil {
		return errfmt.Errorf("starting Nebula (device %s, port %d): %w", cfg.Device, cfg.Port, err)
	}
	if err := ctrl.Start(); err != nil {
		return errfmt.Errorf("starting Nebula: %w", err)
	}
	r.cfg, r.settings, r.info, r.nc, r.ctrl, r.traffic = cfg, settings, info, nc, ctrl, traffic
	r.started = time.Now()
	r.handshakes = map[uint32]time.Time{}
	go r.watch(ctrl)
	go r.pushUpdates(ctrl)
	return nil
}

// pushUpdates makes a lighthouse that lists other lighthouses report its
// addresses and relays to them every lighthouse interval, as any other
// node does: Nebula's own update loop does not run on lighthouses. On
// Linux RebindUDPServer does not touch the socket; it only sends the
// update (and makes tunnels re-query, which a lighthouse never does).
func (r *Runner) pushUpdates(ctrl *nebula.Control) {
	for {
		r.mu.Lock()
		if r.ctrl != ctrl {
			r.mu.Unlock()
			return
		}
		if PushesUpdates(r.settings) {
			ctrl.RebindUDPServer()
		}
		interval := time.Duration(r.cfg.LighthouseInterval) * time.Second
		r.mu.Unlock()
		time.Sleep(interval)
	}
}

// watch reports a Nebula that stopped without being asked to.
func (r *Runner) watch(ctrl *nebula.Control) {
	err := ctrl.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctrl != ctrl {
		return // stopped by Stop or a restarting reload
	}
	if err == nil {
		err = errors.New("nebula stopped")
	}
	select {
	case r.fatal <- err:
	default:
	}
}

// checkPort gives "port in use" a clear message before Nebula opens the
// TUN device; Nebula's own error names neither the port nor the option.
func checkPort(cfg *config.Config) error {
	if cfg.Port == 0 {
		return nil
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: cfg.Port})
	if errors.Is(err, syscall.EADDRINUSE) {
		return overlayError(cfg.File, "port", "UDP port %d is already in use by another program (another meshnode or nebula?)", cfg.Port)
	}
	if err != nil {
		return overlayError(cfg.File, "port", "%v", err)
	}
	return c.Close()
}

// Reload validates cfg and applies it: in place when Nebula can,
// otherwise by restarting Nebula inside this process. On any error the
// running configuration stays as it was.
func (r *Runner) Reload(cfg *config.Config) (restarted bool, err error) {
	mat, info, err := LoadMaterial(cfg, time.Now())
	if err != nil {
		return false, err
	}
	settings := Settings(cfg, mat)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false, errors.New("overlay is stopped")
	}
	settings = r.withGateways(cfg, settings)
	hard := NeedsRestart(r.settings, settings)
	if cfg.Address != r.cfg.Address {
		// Nebula refuses a certificate with other addresses on reload.
		hard = append(hard, "address")
	}
	if len(hard) == 0 {
		text, err := YAML(settings)
		if err != nil {
			return false, err
		}
		if err := r.nc.ReloadConfigString(text); err != nil {
			return false, errfmt.Errorf("nebula rejected the configuration: %w", err)
		}
		r.cfg, r.settings, r.info = cfg, settings, info
		return false, nil
	}
	r.log.Info("restarting Nebula: these settings cannot change in place", "settings", hard)
	oldCfg, oldSettings, oldInfo := r.cfg, r.settings, r.info
	r.stopLocked()
	if err := r.start(cfg, settings, info); err != nil {
		// The new configuration passed validation but Nebula refused it
		// (port taken, device busy): go back to the one that worked.
		if err2 := r.start(oldCfg, oldSettings, oldInfo); err2 != nil {
			return true, errfmt.Errorf("%w; restoring the previous configuration also failed: %v", err, err2)
		}
		return true, err
	}
	return true, nil
}

// Rebind re-opens Nebula's UDP socket and tells the lighthouses; the wan
// concern calls it after the uplink changes so peers learn the new path
// in ~0.1 s instead of tens of seconds.
func (r *Runner) Rebind() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ctrl != nil {
		r.ctrl.RebindUDPServer()
	}
}

// Stop closes every tunnel (telling peers) and the TUN device.
func (r *Runner) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
	r.stopped = true
}

func (r *Runner) stopLocked() {
	if r.ctrl == nil {
		return
	}
	r.ctrl.Stop()
	_ = r.ctrl.Wait()
	r.ctrl = nil
}

// Fatal receives an error when Nebula stops by itself (a fatal error on
// the TUN device or socket); the agent then exits and procd restarts it.
func (r *Runner) Fatal() <-chan error { return r.fatal }

// Peer is one established tunnel.
type Peer struct {
	Address       netip.Addr
	Name          string
	Groups        []string
	Remote        string // ip:port it is reached at, "" when relayed
	Relays        []netip.Addr
	LastHandshake time.Time
	BytesIn       uint64
	BytesOut      uint64
	Lighthouse    bool
}

// State is a consistent view of the overlay for the status snapshot.
type State struct {
	Config  *config.Config
	Cert    CertInfo
	Started time.Time
	Peers   []Peer
	// RoutedIn/Out: bytes to and from addresses outside the overlay.
	RoutedIn, RoutedOut uint64
}

// State reports the running configuration and the current tunnels.
func (r *Runner) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := State{Config: r.cfg, Cert: r.info, Started: r.started}
	if r.ctrl == nil {
		return st
	}
	lhs := map[netip.Addr]bool{}
	for _, l := range r.cfg.Lighthouses {
		lhs[l.Address] = true
	}
	now := time.Now()
	seen := map[uint32]bool{}
	for _, h := range r.ctrl.ListHostmapHosts(false) {
		if len(h.VpnAddrs) == 0 {
			continue
		}
		seen[h.LocalIndex] = true
		hs, ok := r.handshakes[h.LocalIndex]
		if !ok {
			hs = now
			r.handshakes[h.LocalIndex] = now
		}
		p := Peer{Address: h.VpnAddrs[0], LastHandshake: hs, Relays: h.CurrentRelaysToMe, Lighthouse: lhs[h.VpnAddrs[0]]}
		if h.CurrentRemote.IsValid() {
			p.Remote = h.CurrentRemote.String()
		}
		if h.Cert != nil {
			p.Name, p.Groups = h.Cert.Name(), h.Cert.Groups()
		}
		p.BytesIn, p.BytesOut = r.traffic.Bytes(p.Address)
		st.Peers = append(st.Peers, p)
	}
	for idx := range r.handshakes {
		if !seen[idx] {
			delete(r.handshakes, idx)
		}
	}
	// sort.Slice, not slices.SortFunc: on MIPS each struct element type
	// costs a fresh ~13 KB copy of the generic sort code.
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].Address.Less(st.Peers[j].Address) })
	st.RoutedIn, st.RoutedOut = r.traffic.RoutedBytes()
	return st
}
