package shape

import (
	"errors"
	"testing"

	"github.com/meshnode/meshnode/internal/uci"
)

// FuzzParseWindow: never panics; accepted windows are well-formed, print
// back to their own time range and contain their start but not their end.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"22:00-07:00 upload=20000", "0:00-6:30 download=1gbit upload=5mbit", "12:00-12:00 upload=1", "25:00-01:00 upload=1", "22:00-07:00", "1:2-3:4 upload=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := parseWindow(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End >= 1440 || w.Start == w.End {
			t.Fatalf("%q: bad window %+v", s, w)
		}
		if w.Upload == 0 && w.Download == 0 || w.Upload < 0 || w.Download < 0 || w.Upload > maxKbit || w.Download > maxKbit {
			t.Fatalf("%q: bad limits %+v", s, w)
		}
		if !w.Contains(w.Start) || w.Contains(w.End) {
			t.Fatalf("%q: containment wrong for %v", s, w)
		}
		back, err := parseWindow(w.String() + " upload=1")
		if err != nil || back.Start != w.Start || back.End != w.End {
			t.Fatalf("%q: %v does not read back: %v", s, w, err)
		}
	})
}

// FuzzParseMatch covers the classification parsers: DSCP, port, mark,
// rate and share specs. Accepted values are in range; port ranges expand
// to masks covering exactly the range.
func FuzzParseMatch(f *testing.F) {
	for _, s := range []string{"EF", "af41", "46", "0x2e", "64", "tcp:53", "udp:6881-6889", "1-65535", "0x10/0xff", "5", "20mbit", "25%", "0%", "-1", "1gbit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseDSCP(s); err == nil && d > 63 {
			t.Fatalf("%q: dscp %d", s, d)
		}
		if p, err := parsePort(s); err == nil {
			if p.From == 0 || p.To < p.From {
				t.Fatalf("%q: %+v", s, p)
			}
			ms := portMasks(p.From, p.To)
			if len(ms) > maxPortMasks {
				t.Fatalf("%q: %d masks", s, len(ms))
			}
			// Aligned blocks inside the range whose sizes add up to it
			// cover it exactly (checkMasks does it port by port, slowly).
			total := 0
			for _, m := range ms {
				size := int(^m.Mask) + 1
				if m.Val&^m.Mask != 0 || m.Val < p.From || int(m.Val)+size-1 > int(p.To) {
					t.Fatalf("%q: block %+v outside %v", s, m, p)
				}
				total += size
			}
			if total != int(p.To)-int(p.From)+1 {
				t.Fatalf("%q: blocks cover %d ports, want %d", s, total, int(p.To)-int(p.From)+1)
			}
			if q, err := parsePort(p.String()); err != nil || q != p {
				t.Fatalf("%q: %v does not read back: %v %v", s, p, q, err)
			}
		}
		if m, err := parseMark(s); err == nil && (m.Val == 0 || m.Mask == 0 || m.Val&^m.Mask != 0) {
			t.Fatalf("%q: %+v", s, m)
		}
		if k, err := ParseKbit(s); err == nil && (k <= 0 || k > maxKbit) {
			t.Fatalf("%q: %d", s, k)
		}
		if sh, err := parseShare(s); err == nil {
			if sh.Percent < 0 || sh.Percent > 100 || (sh.Percent == 0) == (sh.Kbit == 0) {
				t.Fatalf("%q: %+v", s, sh)
			}
			if v := sh.Of(1000); v < 1 {
				t.Fatalf("%q: share of 1000 is %d", s, v)
			}
		}
	})
}

// FuzzParseConfig: any shape section either parses into a configuration
// whose guarantees fit its limits, or fails with a *uci.Error naming the
// file, section and option.
func FuzzParseConfig(f *testing.F) {
	f.Add("\toption upload '20000'\n\toption download '50mbit'\n\tlist schedule '22:00-07:00 upload=40000'\n")
	f.Add("\toption upload '1000'\n\toption emergency_rate '50%'\n\tlist interactive_port 'tcp:22'\n\tlist bulk_mark '0x10/0xff'\n")
	f.Add("\toption download '1000'\n\toption leaf 'sfq bfifo'\n\toption overhead '44'\n\toption linklayer 'atm'\n")
	f.Fuzz(func(t *testing.T, body string) {
		file, err := uci.Parse("/etc/config/meshnode", []byte("config shape 'wan'\n\toption device 'eth0'\n"+body))
		if err != nil {
			return
		}
		cfg, err := ParseConfig(file)
		if err != nil {
			var ue *uci.Error
			if !errors.As(err, &ue) || ue.File == "" || ue.Section == "" || ue.Option == "" {
				t.Fatalf("error %q does not name file, section and option", err)
			}
			return
		}
		for _, l := range cfg.Links {
			if err := l.checkRates(l.Upload, l.Download, "upload", "download"); err != nil {
				t.Fatalf("accepted config fails its own check: %v", err)
			}
			_ = buildTree(&l, false, "eth0", 2, max(l.Upload, 1), 1500)
		}
	})
}
