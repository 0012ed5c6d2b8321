package airtime

import (
	"testing"
	"time"
)

// Figures from facts-meshtastic.md §9 (PHY bytes = 16 + encoded Data; a
// text of n bytes encodes to n + 6).
func TestOnAirMatchesFactSheet(t *testing.T) {
	for _, tc := range []struct {
		preset int32
		phy    int
		ms     int
	}{
		{0, 22, 395}, {0, 72, 805}, {0, 122, 1174}, {0, 222, 1911}, {0, 255, 2157},
		{4, 255, 642}, {6, 255, 204}, {4, 122, 345}, {6, 122, 107},
	} {
		m, _ := Preset(tc.preset)
		got := m.OnAir(tc.phy).Milliseconds()
		if d := got - int64(tc.ms); d < -1 || d > 1 {
			t.Errorf("preset %d, %d bytes: %d ms, want %d", tc.preset, tc.phy, got, tc.ms)
		}
	}
}

func TestBudgetRollingHour(t *testing.T) {
	b := NewBudget(10, 50) // 180 s per hour
	t0 := time.Unix(1_700_000_000, 0)
	n := 0
	for b.Allow(t0, 2*time.Second) {
		b.Charge(t0, 2*time.Second)
		n++
	}
	if n != 90 {
		t.Fatalf("%d sends of 2 s fit, want 90", n)
	}
	if b.Allow(t0.Add(59*time.Minute), time.Second) {
		t.Fatal("budget freed before the hour passed")
	}
	if !b.Allow(t0.Add(61*time.Minute), 2*time.Second) {
		t.Fatal("budget not freed after an hour")
	}
}
