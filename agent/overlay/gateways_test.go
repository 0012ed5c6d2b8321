package overlay

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/agent/config"
)

func TestUnsafeRoutesGateways(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.4.64"), netip.MustParseAddr("10.0.4.65"), netip.MustParseAddr("10.0.4.66")
	routes := []config.Route{
		{Target: netip.MustParsePrefix("0.0.0.0/0"), Via: []netip.Addr{a, b}},
		{Target: netip.MustParsePrefix("192.168.50.0/24"), Via: []netip.Addr{c}, Install: true, Metric: 5},
	}
	g := &gatewayOverride{managed: []netip.Addr{a, b},
		healthy: map[netip.Addr]int{a: 3, b: 1},
		pinned:  map[netip.Prefix]netip.Addr{netip.MustParsePrefix("198.51.100.2/32"): b, netip.MustParsePrefix("198.51.100.1/32"): a}}
	y := func() string {
		s, err := YAML(m{"r": unsafeRoutes(routes, g)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := `r:
    - install: false
      route: 0.0.0.0/0
      via:
        - gateway: 10.0.4.64
          weight: 3
        - gateway: 10.0.4.65
          weight: 1
    - install: true
      metric: 5
      route: 192.168.50.0/24
      via: 10.0.4.66
    - install: false
      route: 198.51.100.1/32
      via: 10.0.4.64
    - install: false
      route: 198.51.100.2/32
      via: 10.0.4.65
`
	if got := y(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	g.healthy = map[netip.Addr]int{b: 1}
	if got := y(); !strings.Contains(got, "route: 0.0.0.0/0\n      via: 10.0.4.65\n") {
		t.Errorf("one healthy gateway:\n%s", got)
	}
	// None healthy: keep every configured gateway (Nebula needs one).
	g.healthy = nil
	if got := y(); !strings.Contains(got, "gateway: 10.0.4.64\n          weight: 1\n        - gateway: 10.0.4.65") {
		t.Errorf("none healthy:\n%s", got)
	}
}

func TestWithGatewaysCopies(t *testing.T) {
	r := &Runner{gw: &gatewayOverride{pinned: map[netip.Prefix]netip.Addr{netip.MustParsePrefix("198.51.100.1/32"): netip.MustParseAddr("10.0.4.64")}}}
	orig := m{"tun": m{"dev": "meshnode0"}, "cipher": "aes"}
	got := r.withGateways(&config.Config{}, orig)
	if _, ok := orig["tun"].(m)["unsafe_routes"]; ok {
		t.Fatal("the original settings were changed")
	}
	if len(got["tun"].(m)["unsafe_routes"].([]any)) != 1 || got["cipher"] != "aes" {
		t.Fatalf("%v", got)
	}
	// Pinned routes are reloadable: no restart.
	if hard := NeedsRestart(orig, got); len(hard) != 0 {
		t.Fatalf("needs restart: %v", hard)
	}
}
