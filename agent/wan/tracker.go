package wan

import (
	"fmt"
	"strconv"
	"time"
)

// State is an uplink's health as the failover logic sees it.
type State string

// Uplink states.
const (
	// Probing: not enough rounds yet to say (after start or carrier return).
	Probing State = "probing"
	Up      State = "up"
	Down    State = "down"
	// Damped: probes are good, but the uplink flapped and is held back.
	Damped State = "damped"
)

// Thresholds are the per-uplink numbers the tracker decides with.
type Thresholds struct {
	Up, Down int // good rounds in a row to come up, bad rounds to go down
}

// Damping holds back an uplink that keeps failing soon after coming up.
type Damping struct {
	After  int           // flaps before damping starts
	Hold   time.Duration // first hold; doubles per further flap
	Max    time.Duration
	Stable time.Duration // up this long and the flap count resets
}

// Tracker is one uplink's state machine. It is pure: every input carries
// the time, so tests drive it with a fake clock.
type Tracker struct {
	_ [0]func() // not comparable: no equality function in the binary

	th   Thresholds
	damp Damping

	state   State
	why     string
	changed time.Time

	good, bad int  // consecutive rounds
	carrier   bool // false: the link is down, probes are not trusted
	upSince   time.Time
	flaps     int
	holdUntil time.Time
}

// NewTracker starts an uplink in Probing with carrier assumed.
func NewTracker(th Thresholds, d Damping, now time.Time) *Tracker {
	return &Tracker{th: th, damp: d, state: Probing, why: "starting", changed: now, carrier: true}
}

// SetThresholds changes the numbers after a reload, keeping the state.
func (t *Tracker) SetThresholds(th Thresholds, d Damping) { t.th, t.damp = th, d }

// State returns the state, why it was entered and when.
func (t *Tracker) State() (State, string, time.Time) { return t.state, t.why, t.changed }

// Carrier reports whether the link has carrier.
func (t *Tracker) Carrier() bool { return t.carrier }

// Flaps is the current flap count.
func (t *Tracker) Flaps() int { return t.flaps }

// HoldUntil is when a damped uplink is released.
func (t *Tracker) HoldUntil() time.Time { return t.holdUntil }

func (t *Tracker) set(s State, why string, now time.Time) bool {
	if s == t.state && why == t.why {
		return false
	}
	prev := t.state
	t.state, t.why, t.changed = s, why, now
	switch {
	case s == Up:
		t.upSince = now
	case prev == Up && s == Down:
		// Down soon after coming up is a flap; a long good run forgives
		// earlier ones.
		if now.Sub(t.upSince) < t.damp.Stable {
			t.flaps++
		} else {
			t.flaps = 0
		}
	}
	return s != prev
}

// Round feeds the result of one probe round; ok is a good round. It
// returns true when the state changed.
func (t *Tracker) Round(ok bool, detail string, now time.Time) bool {
	if !t.carrier {
		// Replies in flight when the carrier went away say nothing.
		return false
	}
	if ok {
		t.good++
		t.bad = 0
	} else {
		t.bad++
		t.good = 0
	}
	switch t.state {
	case Probing, Down:
		if t.good >= t.th.Up {
			return t.comeUp(now)
		}
		if t.state == Down {
			return false
		}
	case Damped:
		if t.bad < t.th.Down {
			return t.Tick(now)
		}
	}
	if t.bad < t.th.Down {
		return false
	}
	// One set with the text built here: a Sprintf per case costs flash.
	n := strconv.Itoa(t.bad)
	why := n + " probe rounds failed in a row: "
	if t.state == Damped {
		why = "failed while damped, " + n + " probe rounds in a row: "
	}
	return t.set(Down, why+detail, now)
}

func (t *Tracker) comeUp(now time.Time) bool {
	if t.flaps >= t.damp.After {
		hold := t.damp.Hold << (t.flaps - t.damp.After)
		if hold > t.damp.Max || hold <= 0 {
			hold = t.damp.Max
		}
		t.holdUntil = now.Add(hold)
		return t.set(Damped, fmt.Sprintf("flapped %d times: held back %s after %d good probe rounds", t.flaps, hold, t.good), now)
	}
	return t.set(Up, strconv.Itoa(t.good)+" good probe rounds in a row", now)
}

// Tick releases a damped uplink whose hold has passed.
func (t *Tracker) Tick(now time.Time) bool {
	if t.state == Damped && !now.Before(t.holdUntil) {
		return t.set(Up, "damping hold over, probes still good", now)
	}
	return false
}

// SetCarrier acts on link events at once: carrier loss takes the uplink
// down without waiting for probes; carrier return starts probing again.
func (t *Tracker) SetCarrier(up bool, why string, now time.Time) bool {
	if up == t.carrier {
		return false
	}
	t.carrier = up
	t.good, t.bad = 0, 0
	if !up {
		return t.set(Down, why, now)
	}
	return t.set(Probing, why, now)
}

// Stats keeps RTT and loss over the last probes of an uplink.
type Stats struct {
	rtt     time.Duration // smoothed, like TCP's SRTT
	window  [32]bool      // true: lost
	n, next int
	Sent    uint64
	Lost    uint64
}

// Add records one probe.
func (s *Stats) Add(ok bool, rtt time.Duration) {
	s.Sent++
	if !ok {
		s.Lost++
	} else if s.rtt == 0 {
		s.rtt = rtt
	} else {
		s.rtt += (rtt - s.rtt) / 8
	}
	s.window[s.next] = !ok
	s.next = (s.next + 1) % len(s.window)
	if s.n < len(s.window) {
		s.n++
	}
}

// RTT is the smoothed round-trip time of successful probes.
func (s *Stats) RTT() time.Duration { return s.rtt }

// Loss is the fraction of the last 32 probes that got no answer. Not
// inlined: each copy of its loop and float division costs flash.
//
//go:noinline
func (s *Stats) Loss() float64 {
	if s.n == 0 {
		return 0
	}
	lost := 0
	for i := 0; i < s.n; i++ {
		if s.window[i] {
			lost++
		}
	}
	return float64(lost) / float64(s.n)
}
