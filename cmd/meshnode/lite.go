//go:build lite

package main

import (
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/meshnode/meshnode/agent/lite"
	"github.com/meshnode/meshnode/internal/version"
)

// The lite agent (package meshnode-lite) for boards whose flash cannot hold
// Nebula: status for people, LuCI and scripts, and a configuration check.
// No daemon: each call reads sysfs, /proc and lora-bridge's socket afresh.
//
// Flash is the constraint (Go's runtime alone is ~430 KiB of a ~490 KiB
// budget on MIPS), so this file and agent/lite use neither fmt nor flag;
// internal/version is linked for its Version variable only (the build
// stamps it), not for String, which formats with fmt.

const usage = `usage: meshnode <command> [options]     (meshnode-lite: no overlay)

commands:
  status [--json] [--config FILE] [--lora-socket PATH]
                                     interfaces, LoRa bridge, version and uptime
  config check [--config FILE]       validate /etc/config/meshnode for meshnode-lite
  rpcd list | rpcd call <method>     the rpcd exec plugin (ubus object "meshnode")
  version                            print the agent version (also --version, -V)
  help                               show this text

MESHNODE_LITE_ROOT=DIR reads /sys, /proc and /etc below DIR (tests).
`

func versionLine() string {
	return "meshnode " + version.Version + " lite (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

// fullOnly are the full agent's commands, answered with why they are missing.
var fullOnly = map[string]string{
	"run":    "meshnode-lite has no daemon",
	"reload": "meshnode-lite reads its configuration on every call; there is nothing to reload",
	"wan":    "uplink failover",
	"enroll": "the overlay certificate",
	"bundle": "USB bundles",
}

func command(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, bool) {
	o := lite.Options{Root: os.Getenv("MESHNODE_LITE_ROOT"), Version: version.Version}
	switch args[0] {
	case "status":
		asJSON := false
		if !liteFlags("status", args[1:], &o, &asJSON, stderr) {
			return 2, true
		}
		s := lite.Gather(o)
		if asJSON {
			_, _ = stdout.Write(s.JSON())
			return 0, true
		}
		if s.WriteText(stdout) != nil {
			return 1, true
		}
		return 0, true
	case "config":
		if len(args) < 2 || args[1] != "check" {
			_, _ = io.WriteString(stderr, "usage: meshnode config check [--config FILE]\n"+
				"(meshnode-lite has no 'config show': it generates no Nebula configuration)\n")
			return 2, true
		}
		if !liteFlags("config check", args[2:], &o, nil, stderr) {
			return 2, true
		}
		notes, err := lite.Check(o)
		for _, n := range notes {
			_, _ = io.WriteString(stdout, "note: "+n+"\n")
		}
		if err != nil {
			_, _ = io.WriteString(stderr, "meshnode: "+err.Error()+"\n")
			return 1, true
		}
		path := o.Config
		if path == "" {
			path = lite.DefaultConfig
		}
		_, _ = io.WriteString(stdout, path+": ok\n")
		return 0, true
	case "rpcd":
		return lite.RPCD(args[1:], stdin, stdout, o), true
	}
	if why, ok := fullOnly[args[0]]; ok {
		if !strings.HasPrefix(why, "meshnode-lite") {
			why = "meshnode-lite has no '" + args[0] + "': " + why + " needs the full meshnode package (with Nebula)"
		}
		_, _ = io.WriteString(stderr, "meshnode: "+why+"\n")
		return 2, true
	}
	return 0, false
}

// liteFlags parses --config FILE, --lora-socket PATH and, when asJSON is
// not nil, --json (one or two dashes, value separate or after '=').
func liteFlags(cmd string, args []string, o *lite.Options, asJSON *bool, stderr io.Writer) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			_, _ = io.WriteString(stderr, "meshnode "+cmd+": unexpected argument "+a+"\n")
			return false
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, val, hasVal = name[:j], name[j+1:], true
		}
		switch {
		case name == "json" && asJSON != nil && !hasVal:
			*asJSON = true
			continue
		case name == "config" || name == "lora-socket" && asJSON != nil:
		default:
			_, _ = io.WriteString(stderr, "meshnode "+cmd+": unknown flag "+a+"\n")
			return false
		}
		if !hasVal {
			if i+1 >= len(args) {
				_, _ = io.WriteString(stderr, "meshnode "+cmd+": "+a+" needs a value\n")
				return false
			}
			i++
			val = args[i]
		}
		if name == "config" {
			o.Config = val
		} else {
			o.LoRaSocket = val
		}
	}
	return true
}
