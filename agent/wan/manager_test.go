package wan

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/config"
)

// fakeKernel answers like the kernel and records routes and rules.
type fakeKernel struct {
	mu     sync.Mutex
	links  map[string]Link
	gws    map[int]netip.Addr
	routes map[int]Route
	rules  []Rule
	events chan Event
	addrs  map[int][]netip.Addr
	// flushed: the address sets FlushNAT was called with, in order.
	flushed [][]netip.Addr
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{links: map[string]Link{}, gws: map[int]netip.Addr{}, routes: map[int]Route{},
		events: make(chan Event, 16), addrs: map[int][]netip.Addr{}}
}

func (k *fakeKernel) Link(name string) (Link, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.links[name]
	if !ok {
		return Link{}, ErrNoLink
	}
	return l, nil
}

func (k *fakeKernel) Gateways() (map[int]netip.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[int]netip.Addr{}
	for i, g := range k.gws {
		out[i] = g
	}
	return out, nil
}

func (k *fakeKernel) SetRoute(r Route) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.Empty() {
		delete(k.routes, r.Table)
	} else {
		k.routes[r.Table] = r
	}
	return nil
}

func (k *fakeKernel) AddRule(r Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, x := range k.rules {
		if x == r {
			return nil
		}
	}
	k.rules = append(k.rules, r)
	return nil
}

func (k *fakeKernel) DelRule(r Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, x := range k.rules {
		if x == r {
			k.rules = append(k.rules[:i], k.rules[i+1:]...)
			return nil
		}
	}
	return nil
}

func (k *fakeKernel) Addrs(ifindex int) ([]netip.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addrs[ifindex], nil
}

func (k *fakeKernel) FlushNAT(addrs []netip.Addr) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.flushed = append(k.flushed, addrs)
	return 1, nil
}

func (k *fakeKernel) flushes() [][]netip.Addr {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.flushed)
}

func (k *fakeKernel) LooseRPFilter(string) (bool, error)               { return false, nil }
func (k *fakeKernel) Events(ctx context.Context) (<-chan Event, error) { return k.events, nil }
func (k *fakeKernel) Close() error                                     { return nil }

func (k *fakeKernel) route(table int) Route {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.routes[table]
}

func (k *fakeKernel) setLink(l Link) {
	k.mu.Lock()
	k.links[l.Name] = l
	k.mu.Unlock()
	k.events <- Event{Kind: LinkChanged, Link: l}
}

// fakeProbes answers probes per uplink as the test says.
type fakeProbes struct {
	mu     sync.Mutex
	ok     map[string]bool
	rounds map[string]int
}

type fakeProber struct {
	f    *fakeProbes
	name string
}

func (p fakeProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.rounds[p.name]++
	if p.f.ok[p.name] {
		return 5 * time.Millisecond, nil
	}
	return 0, errTimeout
}

func (p fakeProber) Close() error { return nil }

func (f *fakeProbes) set(name string, ok bool) {
	f.mu.Lock()
	f.ok[name] = ok
	f.mu.Unlock()
}

// fakeClock fires tickers only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c    chan time.Time
	d    time.Duration
	next time.Time
	stop bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{c: make(chan time.Time, 1), d: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	return t
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.stop = true }

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		for !t.stop && !t.next.After(c.now) {
			select {
			case t.c <- c.now:
			default:
			}
			t.next = t.next.Add(t.d)
		}
	}
}

type fakeOverlay struct {
	mu      sync.Mutex
	healthy map[netip.Addr]int
	pinned  map[netip.Prefix]netip.Addr
	rebinds int
}

func (o *fakeOverlay) SetGateways(managed []netip.Addr, healthy map[netip.Addr]int, pinned map[netip.Prefix]netip.Addr) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.healthy, o.pinned = healthy, pinned
	return nil
}

func (o *fakeOverlay) Rebind() {
	o.mu.Lock()
	o.rebinds++
	o.mu.Unlock()
}

func (o *fakeOverlay) get() (map[netip.Addr]int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.healthy, o.rebinds
}

type rig struct {
	t      *testing.T
	k      *fakeKernel
	probes *fakeProbes
	clock  *fakeClock
	ov     *fakeOverlay
	m      *Manager
	cancel context.CancelFunc
	done   chan struct{}
	log    *syncBuffer
}

// syncBuffer collects the manager's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func testUplink(name, kind, dev, gw string, tier int) config.Uplink {
	u := config.Uplink{Name: name, Kind: kind, Interface: name, Device: dev, Probe: config.ProbeICMP,
		Targets: []string{"198.51.100.7"}, Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Up: 3, Down: 2, Reliability: 1, Weight: 1, Tier: tier}
	if gw != "" {
		u.Gateway = netip.MustParseAddr(gw)
	}
	return u
}

func start(t *testing.T, ups ...config.Uplink) *rig {
	return startWith(t, nil, ups...)
}

// startWith is start with the configuration edited by edit and the
// kernel by prep before the manager starts.
func startWith(t *testing.T, prep func(*config.Config, *fakeKernel), ups ...config.Uplink) *rig {
	cfg := &config.Config{Device: "meshnode0", Port: 4242, Uplinks: ups, Failover: config.Failover{Table: 4200,
		Priority: 9000, Mark: 0x100, DampAfter: 3, DampHold: 10 * time.Second, DampMax: time.Minute, Stable: time.Minute}}
	r := &rig{t: t, k: newFakeKernel(), probes: &fakeProbes{ok: map[string]bool{}, rounds: map[string]int{}},
		clock: &fakeClock{now: t0}, ov: &fakeOverlay{}, done: make(chan struct{}), log: &syncBuffer{}}
	r.k.links["eth1"] = Link{Index: 2, Name: "eth1", Up: true}
	r.k.links["eth2"] = Link{Index: 3, Name: "eth2", Up: true}
	r.k.links["meshnode0"] = Link{Index: 9, Name: "meshnode0", Up: true, PointToPoint: true}
	r.k.gws[3] = netip.MustParseAddr("203.0.113.1") // netifd's route on eth2
	for _, u := range ups {
		r.probes.ok[u.Name] = true
	}
	if prep != nil {
		prep(cfg, r.k)
	}
	r.m = New(cfg, Options{Kernel: r.k, Clock: r.clock, Overlay: r.ov, Log: slog.New(slog.NewTextHandler(r.log, nil)),
		Prober: func(u config.Uplink, p Path) (Prober, error) { return fakeProber{r.probes, u.Name}, nil }})
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { _ = r.m.Run(ctx); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

func (r *rig) stop() {
	r.cancel()
	<-r.done
}

// until advances the fake clock one probe interval at a time until cond
// holds; it returns the intervals it took.
func (r *rig) until(what string, cond func(Status) bool) int {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		// Let the loop take the results of the last tick.
		for range 20 {
			if cond(r.m.Status()) {
				return n
			}
			time.Sleep(time.Millisecond)
		}
		r.clock.Advance(100 * time.Millisecond)
	}
	r.t.Fatalf("%s: not reached; status %+v", what, r.m.Status())
	return 0
}

// wait waits in real time without advancing the clock.
func (r *rig) wait(what string, cond func(Status) bool) {
	r.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if cond(r.m.Status()) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("%s: not reached; status %+v", what, r.m.Status())
}

func uplinkState(s Status, name string) UplinkStatus {
	for _, u := range s.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return UplinkStatus{}
}

func active(names ...string) func(Status) bool {
	return func(s Status) bool {
		return strings.Join(s.Active, ",") == strings.Join(names, ",") && s.Class == ClassUp
	}
}

func TestFailoverLocal(t *testing.T) {
	r := start(t, testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1),
		testUplink("sat", config.UplinkWAN, "eth2", "", 2))
	r.until("fiber up", active("fiber"))
	r.until("sat up", func(s Status) bool { return uplinkState(s, "sat").State == "up" })
	if rt := r.k.route(4200); len(rt.Hops) != 1 || rt.Hops[0].Gateway != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("default route: %v", rt)
	}
	if rt := r.k.route(4203); len(rt.Hops) != 1 || rt.Hops[0].Gateway != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("sat's probe table uses the gateway learned from netifd: %v", rt)
	}
	if len(r.k.rules) != 4 {
		t.Fatalf("rules: %+v", r.k.rules)
	}

	r.probes.set("fiber", false)
	n := r.until("failover to sat", active("sat"))
	if n < 2 || n > 3 {
		t.Errorf("failover took %d intervals, want the down threshold (2)", n)
	}
	if u := uplinkState(r.m.Status(), "fiber"); u.State != "down" || !strings.Contains(u.Reason, "198.51.100.7 timeout") || u.Loss == 0 {
		t.Errorf("fiber: %+v", u)
	}
	if rt := r.k.route(4200); rt.Hops[0].Ifindex != 3 {
		t.Fatalf("default route: %v", rt)
	}
	_, rebinds := r.ov.get()
	if rebinds == 0 {
		t.Error("no rebind after the WAN route changed")
	}

	r.probes.set("fiber", true)
	n = r.until("back to fiber", active("fiber"))
	if n < 3 {
		t.Errorf("came back after %d intervals, before the up threshold (3)", n)
	}

	// Carrier loss acts without waiting for a probe.
	r.k.setLink(Link{Index: 2, Name: "eth1", Up: false})
	r.wait("carrier loss", active("sat"))
	if u := uplinkState(r.m.Status(), "fiber"); !strings.Contains(u.Reason, "no carrier on eth1") {
		t.Errorf("reason: %q", u.Reason)
	}
	r.k.setLink(Link{Index: 2, Name: "eth1", Up: true})
	r.wait("carrier back: probing", func(s Status) bool { return uplinkState(s, "fiber").State == "probing" })
	r.until("fiber back", active("fiber"))

	// netifd's ifdown (a PPP session ended, carrier still there).
	if err := r.m.Event(context.Background(), HotplugEvent{Action: "ifdown", Interface: "fiber"}); err != nil {
		t.Fatal(err)
	}
	r.wait("ifdown", active("sat"))
	if err := r.m.Event(context.Background(), HotplugEvent{Action: "bogus", Interface: "fiber"}); err == nil {
		t.Error("unknown action accepted")
	}

	// Stopping leaves the kernel as netifd had it.
	r.stop()
	if len(r.k.routes) != 0 || len(r.k.rules) != 0 {
		t.Errorf("left behind: routes %v rules %v", r.k.routes, r.k.rules)
	}
}

func TestAllDown(t *testing.T) {
	r := start(t, testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1),
		testUplink("sat", config.UplinkWAN, "eth2", "", 2))
	r.probes.set("fiber", false)
	r.probes.set("sat", false)
	// While nothing is judged the best tier is used.
	r.wait("boot", func(s Status) bool { return s.Class == ClassProbing && s.Active[0] == "fiber" })
	r.until("last resort", func(s Status) bool { return s.Class == ClassLastResort && len(s.Active) == 1 })
	if r.k.route(4200).Empty() {
		t.Fatal("no default route while links are up")
	}
	r.probes.set("sat", true)
	r.until("sat takes over", active("sat"))
	// Both links gone: the route is left to netifd.
	r.k.setLink(Link{Index: 2, Name: "eth1"})
	r.k.setLink(Link{Index: 3, Name: "eth2"})
	r.wait("none", func(s Status) bool { return s.Class == ClassNone })
	if !r.k.route(4200).Empty() {
		t.Fatal("route kept with no link")
	}
}

func TestDeviceFromHotplug(t *testing.T) {
	u := testUplink("wwan", config.UplinkWAN, "", "", 1)
	r := start(t, u)
	r.wait("waiting", func(s Status) bool {
		return strings.Contains(uplinkState(s, "wwan").Reason, "waiting for netifd's ifup of interface 'wwan'")
	})
	if err := r.m.Event(context.Background(), HotplugEvent{Action: "ifup", Interface: "wwan", Device: "eth2"}); err != nil {
		t.Fatal(err)
	}
	r.until("up on the device from hotplug", active("wwan"))
	if u := uplinkState(r.m.Status(), "wwan"); u.Device != "eth2" || u.Gateway != "203.0.113.1" {
		t.Fatalf("%+v", u)
	}
}

func TestOverlayUplinks(t *testing.T) {
	a := testUplink("a", config.UplinkOverlay, "meshnode0", "10.0.4.64", 1)
	a.Weight = 2
	b := testUplink("b", config.UplinkOverlay, "meshnode0", "10.0.4.65", 1)
	b.Targets = []string{"198.51.100.8"}
	sat := testUplink("sat", config.UplinkWAN, "eth2", "", 2)
	r := start(t, a, b, sat)
	r.until("both overlay uplinks", active("a", "b"))
	if rt := r.k.route(4200); len(rt.Hops) != 1 || rt.Hops[0] != (Nexthop{Ifindex: 9, Weight: 3}) {
		t.Fatalf("default route: %v", rt)
	}
	if rt := r.k.route(4201); len(rt.Hops) != 1 || rt.Hops[0].Ifindex != 3 {
		t.Fatalf("underlay route: %v", rt)
	}
	h, _ := r.ov.get()
	if len(h) != 2 || h[netip.MustParseAddr("10.0.4.64")] != 2 {
		t.Fatalf("healthy gateways: %v", h)
	}
	r.ov.mu.Lock()
	pin := r.ov.pinned[netip.MustParsePrefix("198.51.100.8/32")]
	r.ov.mu.Unlock()
	if pin != netip.MustParseAddr("10.0.4.65") {
		t.Fatalf("b's probe target is not pinned to b: %v", pin)
	}
	_, rebinds := r.ov.get()

	r.probes.set("a", false)
	r.until("a down", active("b"))
	h, rb := r.ov.get()
	if len(h) != 1 || h[netip.MustParseAddr("10.0.4.65")] != 1 {
		t.Fatalf("healthy gateways: %v", h)
	}
	if rb != rebinds {
		t.Error("rebound although the WAN route did not change")
	}
	r.probes.set("b", false)
	r.until("backup", active("sat"))
	if rt := r.k.route(4200); rt.Hops[0].Ifindex != 3 {
		t.Fatalf("default route: %v", rt)
	}
}

func TestReloadKeepsState(t *testing.T) {
	r := start(t, testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1))
	r.until("up", active("fiber"))
	u := testUplink("fiber", config.UplinkWAN, "eth1", "192.0.2.1", 1)
	u.Weight = 5
	cfg := &config.Config{Device: "meshnode0", Uplinks: []config.Uplink{u, testUplink("sat", config.UplinkWAN, "eth2", "", 2)},
		Failover: r.m.cfg.Failover}
	r.m.Reload(cfg)
	r.wait("reloaded", func(s Status) bool { return len(s.Uplinks) == 2 && uplinkState(s, "fiber").Weight == 5 })
	if st := uplinkState(r.m.Status(), "fiber"); st.State != "up" {
		t.Fatalf("state lost on reload: %+v", st)
	}
	if r.k.route(4200).Hops[0].Weight != 5 {
		t.Fatalf("weight not applied: %v", r.k.route(4200))
	}
	r.m.Reload(&config.Config{Failover: r.m.cfg.Failover})
	r.wait("no uplinks", func(s Status) bool { return len(s.Uplinks) == 0 })
	time.Sleep(20 * time.Millisecond)
	r.k.mu.Lock()
	defer r.k.mu.Unlock()
	if len(r.k.routes) != 0 || len(r.k.rules) != 0 {
		t.Fatalf("left behind: %v %v", r.k.routes, r.k.rules)
	}
}

func TestDescribe(t *testing.T) {
	if describe(context.DeadlineExceeded) != "timeout" || describe(errors.New("x")) != "x" {
		t.Fatal(describe(context.DeadlineExceeded))
	}
}
