package wan

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newT() *Tracker {
	return NewTracker(Thresholds{Up: 3, Down: 2},
		Damping{After: 2, Hold: 10 * time.Second, Max: 40 * time.Second, Stable: time.Minute}, t0)
}

// feed gives the tracker n rounds 100 ms apart starting at *now.
func feed(tr *Tracker, now *time.Time, ok bool, n int) (changes int) {
	for range n {
		*now = now.Add(100 * time.Millisecond)
		if tr.Round(ok, "198.51.100.1 timeout", *now) {
			changes++
		}
	}
	return changes
}

func state(tr *Tracker) State { s, _, _ := tr.State(); return s }

func TestThresholds(t *testing.T) {
	tr := newT()
	now := t0
	if state(tr) != Probing {
		t.Fatalf("starts %s", state(tr))
	}
	feed(tr, &now, true, 2)
	if state(tr) != Probing {
		t.Fatalf("up after 2 of 3 good rounds: %s", state(tr))
	}
	feed(tr, &now, true, 1)
	if s, why, at := tr.State(); s != Up || !strings.Contains(why, "3 good") || !at.Equal(now) {
		t.Fatalf("after 3 good rounds: %s %q %v", s, why, at)
	}
	feed(tr, &now, false, 1)
	if state(tr) != Up {
		t.Fatal("down after one bad round (down is 2)")
	}
	feed(tr, &now, true, 1) // resets the bad count
	feed(tr, &now, false, 1)
	if state(tr) != Up {
		t.Fatal("bad rounds must be consecutive")
	}
	feed(tr, &now, false, 1)
	if s, why, _ := tr.State(); s != Down || !strings.Contains(why, "2 probe rounds failed") || !strings.Contains(why, "198.51.100.1 timeout") {
		t.Fatalf("after 2 bad rounds: %s %q", s, why)
	}
}

func TestHysteresis(t *testing.T) {
	tr := newT()
	now := t0
	feed(tr, &now, true, 3)
	now = now.Add(2 * time.Minute) // a stable run: no flap counted
	feed(tr, &now, false, 2)
	if state(tr) != Down {
		t.Fatal("not down")
	}
	// Alternating results never bring it back.
	for range 10 {
		feed(tr, &now, true, 2)
		feed(tr, &now, false, 1)
	}
	if state(tr) != Down {
		t.Fatalf("came back on a flaky path: %s", state(tr))
	}
	feed(tr, &now, true, 3)
	if state(tr) != Up || tr.Flaps() != 0 {
		t.Fatalf("state %s flaps %d", state(tr), tr.Flaps())
	}
}

func TestDamping(t *testing.T) {
	tr := newT()
	now := t0
	feed(tr, &now, true, 3)
	// Flap twice within the stable time: the second return is damped.
	feed(tr, &now, false, 2)
	feed(tr, &now, true, 3)
	if state(tr) != Up || tr.Flaps() != 1 {
		t.Fatalf("first flap: %s flaps %d", state(tr), tr.Flaps())
	}
	feed(tr, &now, false, 2)
	feed(tr, &now, true, 3)
	s, why, _ := tr.State()
	if s != Damped || !strings.Contains(why, "flapped 2 times") || !tr.HoldUntil().Equal(now.Add(10*time.Second)) {
		t.Fatalf("second flap: %s %q hold %v", s, why, tr.HoldUntil().Sub(now))
	}
	// Good rounds during the hold keep it damped; after the hold it is up.
	feed(tr, &now, true, 50)
	if state(tr) != Damped {
		t.Fatal("released before the hold")
	}
	now = tr.HoldUntil()
	if !tr.Round(true, "", now) || state(tr) != Up {
		t.Fatalf("not released after the hold: %s", state(tr))
	}
	// Each further flap doubles the hold, up to the maximum.
	for _, want := range []time.Duration{20 * time.Second, 40 * time.Second, 40 * time.Second} {
		feed(tr, &now, false, 2)
		feed(tr, &now, true, 3)
		if state(tr) != Damped || tr.HoldUntil().Sub(now) != want {
			t.Fatalf("hold %v, want %v (flaps %d)", tr.HoldUntil().Sub(now), want, tr.Flaps())
		}
		now = tr.HoldUntil()
		tr.Tick(now)
	}
	// Failing while damped goes down without counting a flap.
	feed(tr, &now, false, 2)
	f := tr.Flaps()
	feed(tr, &now, true, 3)
	feed(tr, &now, false, 2)
	if state(tr) != Down || tr.Flaps() != f {
		t.Fatalf("failed while damped: %s flaps %d want %d", state(tr), tr.Flaps(), f)
	}
	// A long good run forgives.
	feed(tr, &now, true, 3)
	now = tr.HoldUntil()
	tr.Tick(now)
	now = now.Add(2 * time.Minute)
	feed(tr, &now, false, 2)
	if tr.Flaps() != 0 {
		t.Fatalf("flaps %d after a stable run", tr.Flaps())
	}
}

func TestCarrier(t *testing.T) {
	tr := newT()
	now := t0
	feed(tr, &now, true, 3)
	if !tr.SetCarrier(false, "no carrier on eth1", now) {
		t.Fatal("carrier loss did not change state")
	}
	if s, why, _ := tr.State(); s != Down || why != "no carrier on eth1" {
		t.Fatalf("%s %q", s, why)
	}
	// Rounds in flight while the carrier is gone are ignored.
	feed(tr, &now, true, 5)
	if state(tr) != Down {
		t.Fatal("came up without carrier")
	}
	tr.SetCarrier(true, "path via eth1 ready, probing", now)
	if state(tr) != Probing {
		t.Fatalf("carrier back: %s", state(tr))
	}
	feed(tr, &now, true, 2)
	if state(tr) != Probing {
		t.Fatal("up before the up threshold after carrier return")
	}
	feed(tr, &now, true, 1)
	if state(tr) != Up {
		t.Fatal("not up")
	}
}

func TestStats(t *testing.T) {
	var s Stats
	for i := range 40 {
		s.Add(i%4 != 0, 20*time.Millisecond)
	}
	if s.Loss() != 0.25 || s.RTT() != 20*time.Millisecond || s.Sent != 40 || s.Lost != 10 {
		t.Fatalf("loss %v rtt %v sent %d lost %d", s.Loss(), s.RTT(), s.Sent, s.Lost)
	}
}
