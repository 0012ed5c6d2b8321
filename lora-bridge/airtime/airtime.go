// Package airtime computes LoRa time on air from the Meshtastic modem
// preset and keeps the bridge's own transmissions within a duty-cycle
// budget over a rolling hour (facts-meshtastic.md §9).
package airtime

import (
	"fmt"
	"math"
	"time"
)

// Modem is a LoRa modulation.
type Modem struct {
	SF       int
	BW       float64 // Hz
	CR       int     // 1..4 for 4/5..4/8
	Preamble int
}

// Presets by Meshtastic ModemPreset number.
var presets = map[int32]Modem{
	0: {11, 250e3, 1, 16}, // LONG_FAST
	1: {12, 125e3, 4, 16}, // LONG_SLOW
	3: {10, 250e3, 1, 16}, // MEDIUM_SLOW
	4: {9, 250e3, 1, 16},  // MEDIUM_FAST
	5: {8, 250e3, 1, 16},  // SHORT_SLOW
	6: {7, 250e3, 1, 16},  // SHORT_FAST
	7: {11, 125e3, 4, 16}, // LONG_MODERATE
	8: {7, 500e3, 1, 16},  // SHORT_TURBO
	9: {11, 500e3, 4, 16}, // LONG_TURBO
}

// PresetNames maps UCI names to preset numbers.
var PresetNames = map[string]int32{"LONG_FAST": 0, "LONG_SLOW": 1, "MEDIUM_SLOW": 3, "MEDIUM_FAST": 4,
	"SHORT_SLOW": 5, "SHORT_FAST": 6, "LONG_MODERATE": 7, "SHORT_TURBO": 8, "LONG_TURBO": 9}

// Preset returns the modem for a preset number.
func Preset(p int32) (Modem, error) {
	m, ok := presets[p]
	if !ok {
		return Modem{}, fmt.Errorf("airtime: unknown modem preset %d", p)
	}
	return m, nil
}

// Regions maps UCI region names to the firmware's region code and the
// legal duty cycle in percent. Regions not listed need an explicit
// duty_cycle in the configuration.
var Regions = map[string]struct {
	Code int32
	Duty float64
}{"US": {1, 100}, "EU_433": {2, 10}, "EU_868": {3, 10}}

// OnAir is the time on air of a LoRa frame with phy PHY bytes (Semtech
// SX127x formula: explicit header, CRC on).
func (m Modem) OnAir(phy int) time.Duration {
	tsym := math.Pow(2, float64(m.SF)) / m.BW
	de := 0.0
	if tsym > 0.016 {
		de = 1 // low data rate optimisation
	}
	pre := (float64(m.Preamble) + 4.25) * tsym
	n := math.Ceil((8*float64(phy)-4*float64(m.SF)+28+16)/(4*(float64(m.SF)-2*de))) * float64(m.CR+4)
	sym := 8 + math.Max(n, 0)
	return time.Duration((pre + sym*tsym) * float64(time.Second))
}

// HeaderLen is the LoRa packet header the firmware adds to the encoded Data.
const HeaderLen = 16

// Budget is a rolling-hour airtime allowance in 60 one-minute buckets, as
// the firmware counts it. Times are passed in, so tests need no clock.
type Budget struct {
	limit   time.Duration
	buckets [60]time.Duration
	minute  [60]int64 // which minute each bucket holds
}

// NewBudget allows share percent of duty percent of an hour.
func NewBudget(duty, share float64) *Budget {
	return &Budget{limit: time.Duration(float64(time.Hour) * duty / 100 * share / 100)}
}

// Limit is the allowance per rolling hour.
func (b *Budget) Limit() time.Duration { return b.limit }

// Used is the airtime spent in the hour before now.
func (b *Budget) Used(now time.Time) time.Duration {
	m := now.Unix() / 60
	var sum time.Duration
	for i, d := range b.buckets {
		if m-b.minute[i] < 60 {
			sum += d
		}
	}
	return sum
}

// Allow reports whether d more airtime fits now.
func (b *Budget) Allow(now time.Time, d time.Duration) bool {
	return b.Used(now)+d <= b.limit
}

// Charge records d of airtime at now.
func (b *Budget) Charge(now time.Time, d time.Duration) {
	m := now.Unix() / 60
	i := int(m % 60)
	if b.minute[i] != m {
		b.minute[i], b.buckets[i] = m, 0
	}
	b.buckets[i] += d
}
