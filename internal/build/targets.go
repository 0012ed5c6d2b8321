// Package build turns the repository into signed opkg feeds: it
// cross-compiles every Go command the package manifests name, packs the
// packages, indexes and signs one feed per architecture, checks the result
// and only then moves it into place.
package build

import (
	"fmt"
	"sort"
	"strings"
)

// Target is one OpenWrt package architecture and the Go environment that
// builds for it (facts-openwrt §6, as openwrt/packages' golang-values.mk).
type Target struct {
	Arch  string   // OpenWrt package architecture
	GoEnv []string // GOARCH and friends; CGO_ENABLED=0 is added for all
}

// Targets lists every architecture the project ships, in a fixed order.
func Targets() []Target {
	return []Target{
		{Arch: "mips_24kc", GoEnv: []string{"GOARCH=mips", "GOMIPS=softfloat"}},
		{Arch: "mipsel_24kc", GoEnv: []string{"GOARCH=mipsle", "GOMIPS=softfloat"}},
		{Arch: "arm_cortex-a7_neon-vfpv4", GoEnv: []string{"GOARCH=arm", "GOARM=7"}},
		{Arch: "aarch64_cortex-a53", GoEnv: []string{"GOARCH=arm64"}},
		{Arch: "x86_64", GoEnv: []string{"GOARCH=amd64", "GOAMD64=v1"}},
	}
}

// SelectTargets picks targets by architecture name; "all" or "" selects every one.
func SelectTargets(list string) ([]Target, error) {
	all := Targets()
	if list == "" || list == "all" {
		return all, nil
	}
	byName := map[string]Target{}
	var names []string
	for _, t := range all {
		byName[t.Arch] = t
		names = append(names, t.Arch)
	}
	var out []Target
	seen := map[string]bool{}
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		t, ok := byName[a]
		if !ok {
			sort.Strings(names)
			return nil, fmt.Errorf("unknown architecture %q (known: %s)", a, strings.Join(names, ", "))
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, t)
		}
	}
	return out, nil
}
