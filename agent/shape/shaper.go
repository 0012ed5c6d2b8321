package shape

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// Clock is the shaper's time source; tests inject a fake to cross
// schedule boundaries on demand.
type Clock interface {
	Now() time.Time
	// After delivers once when d has passed.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real clock, in the local time zone of the process
// (the router's /etc/TZ).
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// resync is how often Run re-reads the kernel even without events, in
// case a change slipped past the event socket.
const resync = 5 * time.Minute

// Shaper keeps the configured shaping in the kernel.
type Shaper struct {
	k   Kernel
	clk Clock
	log *slog.Logger

	kick chan struct{} // Apply → Run: the schedule may have changed

	mu      sync.Mutex
	cfg     *Config
	applied map[string]*applied // by device
	leaves  leafChooser
	stat    Status
}

// applied records what the shaper installed on a device, so it can be
// removed when the configuration drops it or on Stop.
type applied struct {
	upload   bool
	ifb      string // "" if download is not shaped
	trees    []tree
	leafKind string
	window   string
}

// New returns a Shaper that changes nothing until Apply.
func New(k Kernel, clk Clock, log *slog.Logger) *Shaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shaper{
		k: k, clk: clk, log: log.With("component", "shape"),
		kick:    make(chan struct{}, 1),
		applied: map[string]*applied{},
		leaves:  leafChooser{unsupported: map[string]bool{}, warned: map[string]bool{}},
	}
}

// Validate checks cfg against the running system: every device exists
// and no limit exceeds its link speed. Errors name file, section, option.
func (s *Shaper) Validate(cfg Config) error {
	for i := range cfg.Links {
		l := &cfg.Links[i]
		if l.file == "" {
			l.file = cfg.File
		}
		if l.lines == nil {
			l.lines = map[string]int{}
		}
		if _, err := s.k.Link(l.Device); err != nil {
			if errors.Is(err, ErrNoDevice) {
				return l.errorf("device", "unknown interface %q", l.Device)
			}
			return l.wrap("device", err)
		}
		speed := l.LinkSpeed
		if speed == 0 {
			speed = s.k.LinkSpeed(l.Device)
		}
		if err := l.CheckLinkSpeed(speed); err != nil {
			return err
		}
		if err := l.checkRates(l.Upload, l.Download, "upload", "download"); err != nil {
			return err
		}
	}
	return nil
}

// Apply validates cfg and makes the kernel match it. If validation fails
// nothing changes and the shaping in place stays; kernel errors after
// validation are returned too, and Run retries on the next event.
func (s *Shaper) Apply(ctx context.Context, cfg Config) error {
	if err := s.Validate(cfg); err != nil {
		s.mu.Lock()
		s.stat.LastError = err.Error()
		s.mu.Unlock()
		s.log.Error("shaping configuration rejected, keeping the previous one", "err", err)
		return err
	}
	s.mu.Lock()
	c := cfg
	s.cfg = &c
	err := s.reconcileLocked("config")
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return err
}

// Reconcile re-reads the kernel and repairs any difference; Run calls it
// on events and schedule boundaries.
func (s *Shaper) Reconcile(reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reconcileLocked(reason)
}

func (s *Shaper) reconcileLocked(reason string) error {
	start := time.Now()
	var errs errList
	changes := 0
	want := map[string]bool{}
	now := s.clk.Now()
	if s.cfg != nil {
		for i := range s.cfg.Links {
			l := &s.cfg.Links[i]
			want[l.Device] = true
			n, err := s.syncLink(l, now)
			changes += n
			errs.add(err)
		}
	}
	changes += s.removeUnwanted(want, &errs)
	err := errs.join()
	s.stat.Reconciles++
	s.stat.LastReconcile = now
	s.stat.LastChanges = changes
	s.stat.LastDuration = time.Since(start)
	s.stat.LastError = ""
	if err != nil {
		s.stat.LastError = err.Error()
		s.log.Error("shaping not fully applied", "reason", reason, "err", err)
	} else if changes > 0 {
		s.log.Info("shaping applied", "reason", reason, "changes", changes, "took", s.stat.LastDuration)
	}
	return err
}

// syncLink brings one link to its desired state at time now.
func (s *Shaper) syncLink(l *Link, now time.Time) (int, error) {
	prev, had := s.applied[l.Device]
	dev, err := s.k.Link(l.Device)
	if errors.Is(err, ErrNoDevice) {
		// The WAN went away (modem unplugged, PPP down); the link event
		// of its return triggers the next reconcile.
		s.log.Warn("interface to shape is absent, waiting for it", "device", l.Device)
		return 0, nil
	}
	if err != nil {
		return 0, errfmt.Errorf("%s: %w", l.Device, err)
	}
	a := &applied{upload: l.Upload > 0, ifb: l.IFB, window: "default"}
	w, ok := l.Active(now)
	if ok {
		a.window = w.String()
	}
	up, down := l.limits(w)
	changes := 0
	var errs errList
	if l.Upload > 0 {
		n, err := s.syncDirection(a, l, false, dev, up, dev.MTU)
		changes += n
		errs.add(err)
	} else if had && prev.upload {
		errs.add(s.removeRoot(l.Device))
		changes++
	}
	if had && prev.ifb != "" && prev.ifb != l.IFB {
		errs.add(s.removeIngress(l.Device, prev.ifb))
		changes++
	}
	if l.Download > 0 {
		ifb, err := s.k.Link(l.IFB)
		if err != nil || !ifb.Up {
			if ifb, err = s.k.AddIFB(l.IFB); err == nil {
				changes++
			}
		}
		if err != nil {
			errs.add(errfmt.Errorf("%s: %w", l.IFB, err))
		} else {
			n, err := s.syncDirection(a, l, true, ifb, down, dev.MTU)
			changes += n
			errs.add(err)
			// Redirect only once the IFB tree is in place, so no packet
			// meets an IFB without shaping.
			n, err = s.syncIngress(dev, ifb)
			changes += n
			errs.add(err)
		}
	}
	s.applied[l.Device] = a
	return changes, errs.join()
}

// syncDirection builds and installs the upload or download tree on the
// egress of dev and records it in a; the first tree's leaf kind is the
// link's.
func (s *Shaper) syncDirection(a *applied, l *Link, download bool, dev LinkInfo, limit int64, mtu int) (int, error) {
	t := buildTree(l, download, dev.Name, dev.Index, limit, mtu)
	n, kind, err := s.syncTree(&t, l.Leaves)
	a.trees = append(a.trees, t)
	if len(a.trees) == 1 {
		a.leafKind = kind
	}
	return n, err
}

func (s *Shaper) removeApplied(dev string, a *applied) error {
	var errs errList
	if a.upload {
		errs.add(s.removeRoot(dev))
	}
	if a.ifb != "" {
		errs.add(s.removeIngress(dev, a.ifb))
	}
	return errs.join()
}

// removeUnwanted removes the shaping of every device not in want (nil:
// all) and forgets those it removed fully. It returns their number and
// adds its errors to errs.
func (s *Shaper) removeUnwanted(want map[string]bool, errs *errList) int {
	n := 0
	for dev, a := range s.applied {
		if want[dev] {
			continue
		}
		if err := s.removeApplied(dev, a); err != nil {
			errs.add(err)
			continue
		}
		delete(s.applied, dev)
		n++
	}
	return n
}

// Stop removes everything the shaper installed: root qdiscs, ingress
// qdiscs and IFB devices. The shaper forgets its configuration; a later
// Apply starts over.
func (s *Shaper) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = nil
	var errs errList
	s.removeUnwanted(nil, &errs)
	err := errs.join()
	if err != nil {
		s.log.Error("could not remove all shaping", "err", err)
	} else {
		s.log.Info("shaping removed")
	}
	return err
}

// nextBoundary is the earliest schedule change after now (zero if none).
func (s *Shaper) nextBoundary(now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best time.Time
	if s.cfg == nil {
		return best
	}
	for i := range s.cfg.Links {
		b := s.cfg.Links[i].NextBoundary(now)
		if !b.IsZero() && (best.IsZero() || b.Before(best)) {
			best = b
		}
	}
	return best
}

// Run keeps the shaping in place until ctx ends: it re-applies at
// schedule boundaries, when a shaped interface or its IFB comes back, and
// when anyone deletes a qdisc on them. Run does not remove the shaping
// when it returns; call Stop for that.
func (s *Shaper) Run(ctx context.Context) error {
	events, err := s.k.Events(ctx)
	if err != nil {
		// Without events the shaper still works on schedule and resync.
		s.log.Warn("no netlink events, relying on periodic resync", "err", err)
	}
	for {
		now := s.clk.Now()
		wait := resync
		if b := s.nextBoundary(now); !b.IsZero() && b.Sub(now) < wait {
			wait = b.Sub(now)
		}
		timer := s.clk.After(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-timer:
			_ = s.Reconcile("schedule")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !s.relevant(ev) {
				continue
			}
			// Coalesce a burst (a replace emits delete and new) into one pass.
			for more := true; more; {
				select {
				case _, ok := <-events:
					more = ok
				default:
					more = false
				}
			}
			_ = s.Reconcile("kernel event")
		}
	}
}

// relevant decides in one place which kernel events matter.
func (s *Shaper) relevant(ev Event) bool {
	if ev.Kind == EventsLost {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Kind == QdiscDeleted {
		for _, a := range s.applied {
			for i := range a.trees {
				if a.trees[i].Ifindex == ev.Ifindex {
					return true
				}
			}
		}
		// The ingress qdisc sits on the device itself.
		for dev := range s.applied {
			if li, err := s.k.Link(dev); err == nil && li.Index == ev.Ifindex {
				return true
			}
		}
		return false
	}
	// A link event for a shaped device or its IFB.
	if s.cfg != nil {
		for i := range s.cfg.Links {
			l := &s.cfg.Links[i]
			if ev.Name == l.Device || l.IFB != "" && ev.Name == l.IFB {
				return true
			}
		}
	}
	return false
}
