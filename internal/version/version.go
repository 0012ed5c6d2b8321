// Package version holds the version stamped into every meshnode binary.
//
// The build system sets Version with
// -ldflags "-X github.com/meshnode/meshnode/internal/version.Version=1.2.3-r1"
// from the package manifest, so `--version` on a router and the opkg
// package version always agree.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the package version (opkg form). "dev" in unstamped builds.
var Version = "dev"

// Module returns the version of a dependency linked into this binary,
// or "" when it is not linked (or build info is unavailable).
func Module(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// String is the one-line answer to `<binary> --version`.
func String(binary string, deps ...string) string {
	s := fmt.Sprintf("%s %s", binary, Version)
	for _, d := range deps {
		if v := Module(d); v != "" {
			s += fmt.Sprintf(" %s %s", shortName(d), v)
		}
	}
	return s + fmt.Sprintf(" (%s %s/%s)", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func shortName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}
