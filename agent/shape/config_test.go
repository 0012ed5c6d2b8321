package shape

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/uci"
)

func parseText(t testing.TB, text string) (Config, error) {
	t.Helper()
	f, err := uci.Parse("/etc/config/meshnode", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return ParseConfig(f)
}

const base = "config shape 'wan'\n\toption device 'eth0'\n"

func TestParseConfigDefaults(t *testing.T) {
	cfg, err := parseText(t, base+"\toption upload '20mbit'\n\toption download '50000'\n")
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Links[0]
	if l.Upload != 20000 || l.Download != 50000 || l.IFB != "ifb4eth0" || l.Burst != time.Millisecond ||
		l.Leaves[0] != "fq_codel" || l.NebulaPort != 4242 {
		t.Fatalf("%+v", l)
	}
	if c := l.Classes[0]; c.Name != Emergency || c.Rate.Of(20000) != 2000 || c.Ceil.Of(20000) != 20000 || !c.Builtin {
		t.Fatalf("emergency %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{base + "\toption upload '0'\n", `/etc/config/meshnode:3: section "wan": option "upload": rate must be above zero, got 0`},
		{base + "\toption upload '-5'\n", `option "upload": rate must be above zero, got -5`},
		{base + "\toption upload 'fast'\n", `option "upload": "fast" is not a rate`},
		{base + "\toption upload '10000'\n\toption link_speed '5000'\n", `option "upload": 10000 kbit/s is above the link speed of 5000 kbit/s`},
		{base, `option "upload": neither upload nor download is set`},
		{"config shape 'wan'\n\toption upload '1000'\n", `section "wan": option "device": missing`},
		{base + "\toption upload '1000'\n\toption uplaod '2000'\n", `/etc/config/meshnode:4: section "wan": option "uplaod": unknown option`},
		{base + "\toption upload '1000'\n\tlist schedule '22:00-07:00 upload=2000'\n\tlist schedule '06:00-08:00 upload=3000'\n",
			`/etc/config/meshnode:4: section "wan": option "schedule": window 06:00-08:00 overlaps window 22:00-07:00`},
		{base + "\toption upload '1000'\n\tlist schedule '22:00-22:00 upload=2000'\n", `start and end are equal`},
		{base + "\toption upload '1000'\n\tlist schedule '22:00-23:00 download=2000'\n", `sets download but the section has no download limit`},
		{base + "\toption upload '1000'\n\toption emergency_rate '60%'\n", `option "emergency_rate": class guarantees add up to 1500 kbit/s, above the upload limit of 1000 kbit/s`},
		{base + "\toption upload '1000'\n\toption bulk_ceil '2000'\n", `option "bulk_ceil": ceiling 2000 kbit/s is above the upload limit`},
		{base + "\toption upload '1000'\n\tlist schedule '22:00-23:00 upload=500'\n\toption bulk_rate '600'\n", `option "bulk_rate": guaranteed rate 600 kbit/s is above the class ceiling of 500 kbit/s`},
		{base + "\toption upload '1000'\n\toption leaf 'fq_codel red'\n", `option "leaf": "red": unsupported leaf qdisc`},
		{base + "\toption upload '1000'\n\tlist emergency_dscp 'XX'\n", `option "emergency_dscp": "XX" is not a DSCP`},
		{base + "\toption upload '1000'\n\tlist bulk_port 'tcp:0'\n", `option "bulk_port"`},
		{base + "\toption upload '1000'\n\tlist bulk_mark '0x10/0x0f'\n", `option "bulk_mark"`},
		{base + "\toption upload '1000'\n\toption overhead '-4'\n", `option "overhead"`},
		{base + "\toption upload '1000'\n" + "config shape 'b'\n\toption device 'eth0'\n\toption upload '1000'\n", `device "eth0" is already shaped by section "wan"`},
		{base + "\toption download '1000'\n\toption ifb 'eth0'\n", `ifb must differ from device`},
	} {
		_, err := parseText(t, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
}

func TestDisabledSectionSkipped(t *testing.T) {
	cfg, err := parseText(t, base+"\toption enabled '0'\n\toption upload '0'\n")
	if err != nil || len(cfg.Links) != 0 {
		t.Fatalf("%v %+v", err, cfg)
	}
}

func TestScheduleAtAndBoundary(t *testing.T) {
	cfg, err := parseText(t, base+"\toption upload '5000'\n\toption download '10000'\n"+
		"\tlist schedule '22:00-07:00 upload=20000'\n\tlist schedule '12:00-13:30 download=2000'\n")
	if err != nil {
		t.Fatal(err)
	}
	l := &cfg.Links[0]
	at := func(h, m int) time.Time { return time.Date(2026, 1, 1, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		t        time.Time
		up, down int64
		next     time.Time
	}{
		{at(21, 59), 5000, 10000, at(22, 0)},
		{at(22, 0), 20000, 10000, at(31, 0)},
		{at(3, 0), 20000, 10000, at(7, 0)},
		{at(7, 0), 5000, 10000, at(12, 0)},
		{at(12, 15), 5000, 2000, at(13, 30)},
	} {
		up, down := l.LimitsAt(tc.t)
		if up != tc.up || down != tc.down {
			t.Errorf("%v: limits %d/%d, want %d/%d", tc.t, up, down, tc.up, tc.down)
		}
		if nb := l.NextBoundary(tc.t); !nb.Equal(tc.next) {
			t.Errorf("%v: next boundary %v, want %v", tc.t, nb, tc.next)
		}
	}
}

func TestComputeHTB(t *testing.T) {
	l := &Link{Burst: time.Millisecond}
	for _, tc := range []struct {
		kbit           int64
		burst, quantum uint32
	}{
		{500, 1514, 1514},      // below one packet per ms: one packet
		{20000, 2500, 2500},    // 1 ms at 20 Mbit/s
		{100000, 12500, 12500}, // 1 ms at 100 Mbit/s
		{1000000, 125000, 125000},
		{10000000, 1250000, maxQuantum},
	} {
		p := ComputeHTB(tc.kbit, tc.kbit, l, 1500)
		if p.Burst != tc.burst || p.Cburst != tc.burst || p.Quantum != tc.quantum {
			t.Errorf("%d kbit: %+v, want burst %d quantum %d", tc.kbit, p, tc.burst, tc.quantum)
		}
		if p.Burst < uint32(p.RateBps/1000) {
			t.Errorf("%d kbit: burst %d below rate × 1 ms", tc.kbit, p.Burst)
		}
		// The buffer in ticks, converted back, is the burst time.
		if ns := uint64(ticks(p.Burst, p.RateBps)) * tickNS; ns+tickNS < uint64(p.Burst)*1e9/p.RateBps {
			t.Errorf("%d kbit: buffer %d ns too short", tc.kbit, ns)
		}
	}
}

func TestPortMasks(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want int
	}{{53, 53, 1}, {6880, 6887, 1}, {6881, 6889, 4}, {1, 65535, 16}, {0x8000, 0xffff, 1}} {
		ms := portMasks(tc.a, tc.b)
		if len(ms) != tc.want {
			t.Errorf("%d-%d: %d masks %v, want %d", tc.a, tc.b, len(ms), ms, tc.want)
		}
		checkMasks(t, tc.a, tc.b, ms)
	}
}

// checkMasks verifies the blocks cover exactly [a, b].
func checkMasks(t testing.TB, a, b uint16, ms []valueMask) {
	for p := 0; p <= 0xffff; p++ {
		hit := 0
		for _, m := range ms {
			if uint16(p)&m.Mask == m.Val {
				hit++
			}
		}
		in := p >= int(a) && p <= int(b)
		if (in && hit != 1) || (!in && hit != 0) {
			t.Fatalf("%d-%d: port %d matched %d blocks", a, b, p, hit)
		}
	}
}

// knownOptions is written out; it must name every class option.
func TestKnownOptionsHasClassOptions(t *testing.T) {
	for _, c := range classNames {
		for _, sfx := range classSuffixes {
			if !slices.Contains(knownOptions, c+sfx) {
				t.Errorf("knownOptions lacks %s", c+sfx)
			}
		}
	}
}
