// Package wan probes the node's uplinks and fails over between them: WAN
// interfaces of the router itself (fiber, satellite) through the default
// route, and uplink nodes reached through the overlay through Nebula's
// unsafe-route gateways.
//
// Each uplink is probed along its own path (its device and its own
// routing table, selected by a firewall mark), judged with hysteresis and
// flap damping (Tracker), and the healthy uplinks of the best tier carry
// the default route (plan). Link events act at once, without waiting for
// probes. Like the agent's other concerns it is a reconcile loop: desired
// state from configuration and probe results, applied to the kernel only
// where it differs.
package wan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/internal/errfmt"
)

// Overlay is the seam to the embedded Nebula (overlay.Runner).
type Overlay interface {
	// SetGateways makes the unsafe routes via the managed uplink nodes use
	// the healthy ones with their weights (all configured ones when none
	// is healthy), and routes each pinned prefix through one node only.
	SetGateways(managed []netip.Addr, healthy map[netip.Addr]int, pinned map[netip.Prefix]netip.Addr) error
	// Rebind re-opens the overlay's UDP socket after the underlay route
	// changed, so peers learn the new path at once.
	Rebind()
}

// Clock is the time source; tests pass a fake.
type Clock interface {
	Now() time.Time
	NewTicker(d time.Duration) Ticker
}

// Ticker is the part of time.Ticker the prober uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// realClock and realTicker have pointer receivers: value methods would
// get pointer wrappers as well, flash for nothing.
type realClock struct{}

func (*realClock) Now() time.Time { return time.Now() }
func (*realClock) NewTicker(d time.Duration) Ticker {
	return &realTicker{time.NewTicker(d)}
}

type realTicker struct{ t *time.Ticker }

func (t *realTicker) C() <-chan time.Time { return t.t.C }
func (t *realTicker) Stop()               { t.t.Stop() }

// Options are a Manager's collaborators; zero ones get the real thing
// where there is one.
type Options struct {
	Log     *slog.Logger
	Kernel  Kernel
	Prober  ProberFactory // default NewProber
	Overlay Overlay       // nil: no overlay to steer
	Clock   Clock         // default the system clock
}

// HotplugEvent is what netifd's hotplug tells the agent about an
// interface (ACTION, INTERFACE, DEVICE of /etc/hotplug.d/iface).
type HotplugEvent struct {
	_         [0]func() // not comparable: no equality function in the binary
	Action    string    `json:"action"`
	Interface string    `json:"interface"`
	Device    string    `json:"device,omitempty"`
}

// Manager runs failover for one node.
type Manager struct {
	log       *slog.Logger
	k         Kernel
	newProber ProberFactory
	ov        Overlay
	clock     Clock

	reqs    chan func()
	results chan roundResult

	// Owned by the Run loop.
	ctx      context.Context
	cfg      *config.Config
	ups      []*uplink
	rules    []Rule
	applied  map[int]Route
	gwKey    string
	underlay string
	selKey   string
	last     Plan
	// natAddrs: the addresses of the interfaces carrying the default
	// route, by ifindex, kept for when they leave it (an address may be
	// gone by then).
	natAddrs map[int][]netip.Addr

	mu     sync.Mutex
	status Status
}

// uplink is the loop's record of one configured uplink.
type uplink struct {
	cfg    config.Uplink
	idx    int
	device string
	link   Link // Index 0: not present
	kept

	prober  Prober
	cancel  context.CancelFunc
	gen     int
	next    uint64
	pending map[uint64]roundResult

	lastFail string
	probeErr string
}

// kept is the part of an uplink that a reload keeping its path keeps
// (one struct: copied at once, which is smaller on MIPS).
type kept struct {
	_       [0]func() // not comparable: no equality function in the binary
	tr      *Tracker
	st      Stats
	learned netip.Addr
	ifdown  bool // netifd reported ifdown
	changes uint64
}

// gateway is the uplink's next hop: configured, else learned. Not
// inlined: each copy costs flash at its three callers.
//
//go:noinline
func (u *uplink) gateway() netip.Addr {
	if u.cfg.Kind == config.UplinkOverlay || u.cfg.Gateway.IsValid() {
		return u.cfg.Gateway
	}
	return u.learned
}

type probeResult struct {
	_      [0]func() // not comparable: no equality function in the binary
	target string
	rtt    time.Duration
	err    error
}

type roundResult struct {
	idx, gen int
	seq      uint64
	probes   []probeResult
}

// New makes a Manager for cfg; Run starts it.
func New(cfg *config.Config, opt Options) *Manager {
	m := &Manager{log: opt.Log, k: opt.Kernel, newProber: opt.Prober, ov: opt.Overlay, clock: opt.Clock,
		reqs: make(chan func(), 16), results: make(chan roundResult, 64), cfg: cfg, applied: map[int]Route{},
		natAddrs: map[int][]netip.Addr{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.newProber == nil {
		m.newProber = NewProber
	}
	if m.clock == nil {
		m.clock = &realClock{}
	}
	m.log = m.log.With("concern", "wan")
	m.publish()
	return m
}

// Run probes and fails over until ctx ends, then removes its routes and
// rules, leaving the node to netifd's default routes.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.ctx = ctx
	events, err := m.k.Events(ctx)
	if err != nil {
		// Without events carrier loss waits for the probes (~1.5 s): worse,
		// not broken.
		m.logErr(slog.LevelWarn, "no link events from the kernel; carrier loss is noticed by probes only", err)
	}
	cfg := m.cfg
	m.cfg = &config.Config{}
	m.reload(cfg)
	defer m.cleanup()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.reqs:
			f()
		case r := <-m.results:
			m.onResult(r)
		case ev, ok := <-events:
			if !ok {
				events = nil
				if ctx.Err() == nil {
					m.log.Warn("kernel link events stopped; carrier loss is noticed by probes only")
				}
				continue
			}
			m.onEvent(ev)
		}
	}
}

// do runs f in the loop and waits for it, or gives up when the loop is
// gone.
func (m *Manager) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case m.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reload applies a new configuration; uplinks whose path is unchanged
// keep their state.
func (m *Manager) Reload(cfg *config.Config) {
	f := func() { m.reload(cfg) }
	select {
	case m.reqs <- f:
	default:
		// The loop is far behind; queue without blocking the caller.
		go func() { m.reqs <- f }()
	}
}

// hotplugActions are the ACTIONs Event takes: three that bring an
// interface up, three that take it down, and two that change nothing
// here. A slice, not a switch, which is large on MIPS.
var hotplugActions = []string{"ifup", "ifupdate", "update", "ifdown", "ifup-failed", "free", "reload", "create"}

// Event passes a hotplug event into the loop.
func (m *Manager) Event(ctx context.Context, ev HotplugEvent) error {
	if !slices.Contains(hotplugActions, ev.Action) {
		return errfmt.Errorf("unknown hotplug action %q", ev.Action)
	}
	if ev.Interface == "" {
		return errors.New("hotplug event without an interface")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return m.do(ctx, func() { m.onHotplug(ev) })
}

func samePath(a, b *config.Uplink) bool {
	return a.Kind == b.Kind && a.Device == b.Device && a.Gateway == b.Gateway && a.Interface == b.Interface &&
		a.Probe == b.Probe && slices.Equal(a.Targets, b.Targets)
}

func (m *Manager) reload(cfg *config.Config) {
	now := m.clock.Now()
	old := map[string]*uplink{}
	for _, u := range m.ups {
		m.stopProbes(u)
		old[u.cfg.Name] = u
	}
	oldRules := m.rules
	m.cfg = cfg
	m.ups = nil
	overlay := false
	fo := &cfg.Failover
	d := Damping{After: fo.DampAfter, Hold: fo.DampHold, Max: fo.DampMax, Stable: fo.Stable}
	// By index and pointer: a config.Uplink is large, copies of it cost
	// flash on MIPS.
	for i := range cfg.Uplinks {
		uc := &cfg.Uplinks[i]
		u := &uplink{cfg: *uc, idx: i, device: uc.Device}
		th := Thresholds{Up: uc.Up, Down: uc.Down}
		if o := old[uc.Name]; o != nil && samePath(&o.cfg, uc) {
			u.kept = o.kept
			if u.device == "" {
				u.device = o.device
			}
			u.tr.SetThresholds(th, d)
		} else {
			u.tr = NewTracker(th, d, now)
		}
		overlay = overlay || uc.Kind == config.UplinkOverlay
		m.ups = append(m.ups, u)
	}
	if len(m.ups) == 0 {
		m.rules = nil
	} else {
		m.rules = rules(cfg.Failover, len(m.ups), overlay, cfg.Port)
	}
	for _, r := range oldRules {
		if !slices.Contains(m.rules, r) {
			if err := m.k.DelRule(r); err != nil {
				m.logErr(slog.LevelError, "removing an old ip rule", err)
			}
		}
	}
	m.addRules()
	m.readGateways()
	for _, u := range m.ups {
		m.readLink(u)
		m.startProbes(u)
		m.refreshPath(u, now)
		if u.device == "" && m.ctx != nil {
			go func(iface string) {
				if ev, ok := askNetifd(m.ctx, iface); ok {
					select {
					case m.reqs <- func() { m.onHotplug(ev) }:
					case <-m.ctx.Done():
					}
				}
			}(u.cfg.Interface)
		}
	}
	if len(m.ups) > 0 {
		m.log.Info("uplinks configured", "uplinks", len(m.ups), "table", cfg.Failover.Table)
	}
	m.gwKey = ""
	m.reconcile(true)
}

func (m *Manager) addRules() {
	for _, r := range m.rules {
		if err := m.k.AddRule(r); err != nil {
			m.logErr(slog.LevelError, "cannot add ip rule: failover will not steer traffic", err)
		}
	}
}

func (m *Manager) readGateways() {
	gws, err := m.k.Gateways()
	if err != nil {
		m.logErr(slog.LevelWarn, "cannot read netifd's default routes to learn gateways", err)
		return
	}
	for _, u := range m.ups {
		if u.cfg.Kind == config.UplinkWAN && u.link.Index != 0 {
			u.learned = gws[u.link.Index]
		}
	}
}

func (m *Manager) readLink(u *uplink) {
	if u.device == "" {
		u.link = Link{}
		return
	}
	l, err := m.k.Link(u.device)
	if err != nil {
		if !errors.Is(err, ErrNoLink) {
			m.logUplinkErr(slog.LevelWarn, "cannot read interface", u, err)
		}
		u.link = Link{}
		return
	}
	u.link = l
	if u.cfg.Kind == config.UplinkWAN && !u.cfg.Gateway.IsValid() && !u.learned.IsValid() {
		if gws, err := m.k.Gateways(); err == nil {
			u.learned = gws[l.Index]
		}
	}
}

func (m *Manager) startProbes(u *uplink) {
	m.stopProbes(u)
	if u.link.Index == 0 {
		return
	}
	if u.cfg.Kind == config.UplinkWAN {
		if changed, err := m.k.LooseRPFilter(u.device); err != nil {
			m.logUplinkErr(slog.LevelWarn, "strict reverse-path filtering may drop this uplink's probe replies while it is on standby", u, err)
		} else if changed {
			m.log.Info("reverse-path filtering set to loose so a standby WAN's probe replies are accepted", "device", u.device)
		}
	}
	p, err := m.newProber(u.cfg, Path{Device: u.device, Mark: m.cfg.Failover.Mark + uint32(u.idx)})
	if err != nil {
		// Raw sockets need root; a missing device shows up as a link event.
		u.probeErr = err.Error()
		m.logUplinkErr(slog.LevelError, "cannot probe uplink", u, err)
		return
	}
	u.probeErr = ""
	u.prober = p
	u.gen++
	u.next = 0
	u.pending = map[uint64]roundResult{}
	ctx, cancel := context.WithCancel(m.ctx)
	u.cancel = cancel
	go m.probeLoop(ctx, u.idx, u.gen, &u.cfg, p)
}

func (m *Manager) stopProbes(u *uplink) {
	if u.cancel != nil {
		u.cancel()
		u.cancel = nil
	}
	if u.prober != nil {
		_ = u.prober.Close()
		u.prober = nil
	}
}

// probeLoop starts a round every interval. Rounds overlap when the
// timeout is longer than the interval, so a dead path is seen after
// (down-1) intervals plus one timeout, not down timeouts. u is the
// uplink's configuration, never changed once the uplink is made (a
// pointer: a copy per round costs flash).
func (m *Manager) probeLoop(ctx context.Context, idx, gen int, u *config.Uplink, p Prober) {
	t := m.clock.NewTicker(u.Interval)
	defer t.Stop()
	for seq := uint64(0); ; seq++ {
		go m.round(ctx, idx, gen, seq, u, p)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

func (m *Manager) round(ctx context.Context, idx, gen int, seq uint64, u *config.Uplink, p Prober) {
	r := roundResult{idx: idx, gen: gen, seq: seq, probes: make([]probeResult, len(u.Targets))}
	var wg sync.WaitGroup
	for i, t := range u.Targets {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, u.Timeout)
			defer cancel()
			rtt, err := p.Probe(pctx, t)
			r.probes[i] = probeResult{target: t, rtt: rtt, err: err}
		})
	}
	wg.Wait()
	select {
	case m.results <- r:
	case <-ctx.Done():
	}
}

// onResult takes rounds in the order they were started: a later round
// that answered fast must not overtake an earlier one still timing out.
func (m *Manager) onResult(r roundResult) {
	if r.idx >= len(m.ups) || m.ups[r.idx].gen != r.gen || m.ups[r.idx].cancel == nil {
		return
	}
	u := m.ups[r.idx]
	u.pending[r.seq] = r
	changed := false
	for {
		next, ok := u.pending[u.next]
		if !ok {
			break
		}
		delete(u.pending, u.next)
		u.next++
		if m.judge(u, next) {
			changed = true
		}
	}
	if changed {
		m.reconcile(false)
	} else {
		m.publish()
	}
}

func (m *Manager) judge(u *uplink, r roundResult) bool {
	good := 0
	fails := ""
	for _, p := range r.probes {
		ok := p.err == nil
		if u.tr.Carrier() {
			u.st.Add(ok, p.rtt)
		}
		if ok {
			good++
			continue
		}
		if fails != "" {
			fails += ", "
		}
		fails += p.target + " " + describe(p.err)
	}
	if fails != "" {
		u.lastFail = fails
	}
	prev, _, _ := u.tr.State()
	if !u.tr.Round(good >= u.cfg.Reliability, u.lastFail, m.clock.Now()) {
		return false
	}
	m.logChange(u, prev)
	return true
}

func (m *Manager) logChange(u *uplink, prev State) {
	u.changes++
	s, why, _ := u.tr.State()
	level := slog.LevelInfo
	if s == Down || s == Damped {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "uplink "+string(s), "uplink", u.cfg.Name, "state", string(s), "was", string(prev),
		"why", why, "rtt_ms", u.st.RTT().Milliseconds(), "loss", fmt.Sprintf("%.0f%%", u.st.Loss()*100))
}

// pathState says whether the uplink has a path to probe at all, and why not.
func (m *Manager) pathState(u *uplink) (bool, string) {
	// Concatenated, not Sprintf'd: smaller on MIPS.
	switch {
	case u.device == "":
		return false, "waiting for netifd's ifup of interface '" + u.cfg.Interface + "' to learn its device (or set option device)"
	case u.link.Index == 0:
		return false, "interface " + u.device + " does not exist"
	case !u.link.Up:
		return false, "no carrier on " + u.device + " (or it is down)"
	case u.ifdown:
		return false, "netifd reports interface '" + u.cfg.Interface + "' down"
	case u.cfg.Kind == config.UplinkWAN && !u.gateway().IsValid() && !u.link.PointToPoint:
		return false, "no gateway for " + u.device + ": set option gateway, or netifd has no default route on it"
	}
	return true, "path via " + u.device + " ready, probing"
}

func (m *Manager) refreshPath(u *uplink, now time.Time) bool {
	ok, why := m.pathState(u)
	prev, _, _ := u.tr.State()
	if u.tr.SetCarrier(ok, why, now) {
		m.logChange(u, prev)
		return true
	}
	if !ok {
		// Still no path, maybe for another reason now: keep the why current.
		if _, was, _ := u.tr.State(); was != why && u.tr.set(Down, why, now) {
			m.logChange(u, prev)
			return true
		}
	}
	return false
}

func (m *Manager) onEvent(ev Event) {
	now := m.clock.Now()
	switch ev.Kind {
	case LinkChanged, LinkRemoved:
		hit := false
		for _, u := range m.ups {
			if u.device == "" || u.device != ev.Link.Name {
				continue
			}
			hit = true
			old := u.link
			if ev.Kind == LinkRemoved {
				u.link = Link{}
				m.stopProbes(u)
			} else {
				u.link = ev.Link
				if old.Index != ev.Link.Index || u.prober == nil {
					// A new device (Nebula restarted, USB modem replugged):
					// sockets bound to the old one are dead.
					if u.cfg.Kind == config.UplinkWAN && !u.cfg.Gateway.IsValid() {
						m.readGateways()
					}
					m.startProbes(u)
				}
			}
			m.refreshPath(u, now)
		}
		if hit {
			m.reconcile(false)
		}
	case RoutesChanged:
		before := make([]netip.Addr, len(m.ups))
		for i, u := range m.ups {
			before[i] = u.learned
		}
		m.readGateways()
		changed := false
		for i, u := range m.ups {
			if u.learned != before[i] {
				changed = true
				m.log.Info("uplink gateway learned from netifd", "uplink", u.cfg.Name, "gateway", u.learned)
				m.refreshPath(u, now)
			}
		}
		if changed {
			m.reconcile(false)
		}
	case EventsLost:
		m.log.Warn("kernel events were lost; re-reading links and routes")
		m.readGateways()
		for _, u := range m.ups {
			idx := u.link.Index
			m.readLink(u)
			if u.link.Index != idx {
				m.startProbes(u)
			}
			m.refreshPath(u, now)
		}
		m.addRules()
		m.reconcile(true)
	}
}

func (m *Manager) onHotplug(ev HotplugEvent) {
	now := m.clock.Now()
	act := slices.Index(hotplugActions, ev.Action)
	hit := false
	for _, u := range m.ups {
		if u.cfg.Interface != ev.Interface || u.cfg.Kind != config.UplinkWAN {
			continue
		}
		hit = true
		switch {
		case act >= 0 && act < 3: // ifup, ifupdate, update
			u.ifdown = false
			if u.cfg.Device == "" && ev.Device != "" && ev.Device != u.device {
				u.device = ev.Device
				m.readLink(u)
				m.startProbes(u)
			}
			m.readGateways()
		case act >= 3 && act < 6: // ifdown, ifup-failed, free
			// netifd knows first: a PPP session or DHCP lease can end
			// while the link keeps its carrier.
			u.ifdown = true
		default:
			continue
		}
		m.refreshPath(u, now)
	}
	if hit {
		m.log.Info("hotplug event", "action", ev.Action, "interface", ev.Interface, "device", ev.Device)
		m.reconcile(false)
	}
}

func (m *Manager) views() []view {
	vs := make([]view, len(m.ups))
	for i, u := range m.ups {
		s, _, _ := u.tr.State()
		vs[i] = view{cfg: u.cfg, state: s, carrier: u.tr.Carrier(), ifindex: u.link.Index,
			gateway: u.gateway(), ptp: u.link.PointToPoint}
	}
	return vs
}

// reconcile applies the plan where it differs from what was applied
// (everything when force).
func (m *Manager) reconcile(force bool) {
	if len(m.ups) == 0 && len(m.applied) == 0 {
		m.publish()
		return
	}
	p := plan(m.cfg.Failover, m.views())
	seen := map[int]bool{}
	if len(m.ups) > 0 {
		// Probe tables first: a newly chosen uplink's probes keep working
		// while the default route moves.
		for i := len(p.Probes) - 1; i >= 0; i-- {
			m.setRoute(&p.Probes[i], force, seen)
		}
		if p.Underlay != nil {
			m.setRoute(p.Underlay, force, seen)
		}
		m.setRoute(&p.Main, force, seen)
	}
	for t := range m.applied {
		if !seen[t] {
			if err := m.k.SetRoute(Route{Table: t}); err != nil {
				m.logErr(slog.LevelError, "cannot remove route", err)
				continue
			}
			delete(m.applied, t)
		}
	}

	names := m.names(p.Selected)
	if key := p.Class + ":" + strings.Join(names, ","); key != m.selKey {
		m.selKey = key
		switch p.Class {
		case ClassNone:
			m.log.Error("no uplink has a working path: the default route is left to netifd's")
		case ClassLastResort:
			m.log.Warn("every uplink fails its probes: routing over those with a link, in case the probe targets are at fault", "uplinks", names)
		default:
			m.log.Info("default route", "uplinks", names, "from", p.Class)
		}
	}
	m.steerOverlay(p.Healthy)

	// Nebula's socket follows the WAN part of the route: rebind when it moves.
	var under []Nexthop
	for _, h := range p.Main.Hops {
		if h.Gateway.IsValid() || !m.isOverlayIndex(h.Ifindex) {
			under = append(under, h)
		}
	}
	if p.Underlay != nil {
		under = append(under, p.Underlay.Hops...)
	}
	if key := fmt.Sprint(under); key != m.underlay {
		first := m.underlay == ""
		m.underlay = key
		if m.ov != nil && !first {
			m.ov.Rebind()
			m.log.Info("overlay socket rebound after the WAN route changed")
		}
	}
	if len(m.ups) > 0 {
		m.forgetNAT(p.Main.Hops)
	}
	m.last = p
	m.publish()
}

// forgetNAT deletes the conntrack entries of flows masqueraded to an
// interface that no longer carries the default route (after the route
// moved: earlier, their next packet would be mapped to it again).
// Masquerading routers keep a flow's mapping for its life, so such a flow
// would leave the new WAN with the old source and never get a reply; the
// kernel forgets mappings itself only when the address goes or the device
// is set down, not on a dead upstream or lost carrier.
func (m *Manager) forgetNAT(hops []Nexthop) {
	for idx, cached := range m.natAddrs {
		if hasIfindex(hops, idx) {
			continue
		}
		delete(m.natAddrs, idx)
		if !m.cfg.Failover.FlushConntrack {
			continue
		}
		addrs := slices.Clone(cached)
		if cur, err := m.k.Addrs(idx); err == nil {
			for _, a := range cur {
				if !slices.Contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
		if len(addrs) == 0 {
			continue
		}
		start := time.Now()
		n, err := m.k.FlushNAT(addrs)
		if err != nil {
			m.log.Warn("cannot forget the NAT mappings of flows through the WAN the route left: they stall until they end",
				"addresses", addrs, "error", err)
			continue
		}
		m.log.Info("flows masqueraded to the WAN the route left are mapped afresh on the new one",
			"addresses", addrs, "flows", n, "took", took(start, time.Microsecond))
	}
	for _, h := range hops {
		idx := h.Ifindex
		if _, ok := m.natAddrs[idx]; ok {
			continue
		}
		addrs, err := m.k.Addrs(idx)
		if err != nil {
			m.log.Warn("cannot read the addresses of a WAN in the default route", "ifindex", idx, "error", err)
		}
		m.natAddrs[idx] = addrs
	}
}

// setRoute writes r where it differs from what was applied (always when
// force), and marks its table seen.
func (m *Manager) setRoute(r *Route, force bool, seen map[int]bool) {
	seen[r.Table] = true
	if old, ok := m.applied[r.Table]; ok && !force && sameRoute(&old, r) {
		return
	}
	if err := m.k.SetRoute(*r); err != nil {
		m.logErr(slog.LevelError, "cannot set route", err)
		delete(m.applied, r.Table)
		return
	}
	m.applied[r.Table] = *r
}

// sameRoute compares two routes, hop order included (plans sort them).
// Not a method: an exported one is kept in the binary with a pointer
// wrapper even where unused.
func sameRoute(a, b *Route) bool {
	return a.Table == b.Table && a.Unreachable == b.Unreachable && slices.Equal(a.Hops, b.Hops)
}

// hasIfindex says whether one of hops leaves by interface idx. (A loop:
// a map of the few hops costs more flash.)
func hasIfindex(hops []Nexthop, idx int) bool {
	for i := range hops {
		if hops[i].Ifindex == idx {
			return true
		}
	}
	return false
}

func (m *Manager) isOverlayIndex(ifindex int) bool {
	for _, u := range m.ups {
		if u.cfg.Kind == config.UplinkOverlay && u.link.Index == ifindex {
			return true
		}
	}
	return false
}

func (m *Manager) names(idx []int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, m.ups[i].cfg.Name)
	}
	return out
}

// steerOverlay gives Nebula the healthy overlay uplinks of the chosen
// tier and pins each overlay uplink's probe targets to it.
func (m *Manager) steerOverlay(healthy map[netip.Addr]int) {
	if m.ov == nil {
		return
	}
	var managed []netip.Addr
	pinned := map[netip.Prefix]netip.Addr{}
	for _, u := range m.ups {
		if u.cfg.Kind != config.UplinkOverlay {
			continue
		}
		managed = append(managed, u.cfg.Gateway)
		for _, t := range u.cfg.Targets {
			a := config.UplinkTarget(u.cfg.Probe, t)
			pinned[netip.PrefixFrom(a, 32)] = u.cfg.Gateway
		}
	}
	if len(managed) == 0 && m.gwKey == "" {
		return
	}
	key := fmt.Sprint(managed, healthy, pinned)
	if key == m.gwKey {
		return
	}
	start := time.Now()
	if err := m.ov.SetGateways(managed, healthy, pinned); err != nil {
		m.logErr(slog.LevelError, "cannot update the overlay's uplink gateways", err)
		m.gwKey = ""
		return
	}
	m.gwKey = key
	var hs []string
	for a, w := range healthy {
		hs = append(hs, fmt.Sprintf("%s*%d", a, w))
	}
	slices.Sort(hs)
	m.log.Info("overlay gateways set", "healthy", hs, "took", took(start, time.Millisecond))
}

// logErr logs msg with err. It and logUplinkErr are out of line: slog's
// argument building costs flash at each of their many call sites.
//
//go:noinline
func (m *Manager) logErr(level slog.Level, msg string, err error) {
	m.log.Log(context.Background(), level, msg, "error", err)
}

// logUplinkErr logs msg with u and err.
//
//go:noinline
func (m *Manager) logUplinkErr(level slog.Level, msg string, u *uplink, err error) {
	m.log.Log(context.Background(), level, msg, "uplink", u.cfg.Name, "device", u.device, "error", err)
}

// took is how long since start, rounded to unit, for logs.
//
//go:noinline
func took(start time.Time, unit time.Duration) time.Duration {
	return time.Since(start).Round(unit)
}

// cleanup leaves the node as netifd would have it.
func (m *Manager) cleanup() {
	for _, u := range m.ups {
		m.stopProbes(u)
	}
	for t := range m.applied {
		if err := m.k.SetRoute(Route{Table: t}); err != nil {
			m.logErr(slog.LevelWarn, "removing route on exit", err)
		}
	}
	for _, r := range m.rules {
		if err := m.k.DelRule(r); err != nil {
			m.logErr(slog.LevelWarn, "removing ip rule on exit", err)
		}
	}
	m.applied = map[int]Route{}
}
