//go:build !lite

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/agent/daemon"
	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/agent/wan"
	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/feeds/bundle"
	"github.com/meshnode/meshnode/internal/version"
)

// The full agent: Nebula overlay, uplink failover, shaping, enrollment and
// bundles. lite.go is the build for boards without room for Nebula.

const nebulaModule = "github.com/slackhq/nebula"

const usage = `usage: meshnode <command> [options]

commands:
  run [--config FILE] [--state-dir DIR]   run the agent (what procd starts)
  status [--json] [--socket PATH]          show the running agent's state
  reload [--socket PATH]                   re-read /etc/config/meshnode and apply it
  config show [--config FILE]              print the generated Nebula configuration, key redacted
  config check [--config FILE]             validate the configuration and certificates
  wan event ACTION INTERFACE [DEVICE]      pass a netifd hotplug event (ifup, ifdown, ...) to the agent
  rpcd list | rpcd call <method>           the rpcd exec plugin (ubus object "meshnode")
  enroll --name N --role R [--groups G] [--out FILE|DIR|-]
                                           make this node's key pair and a signing request
  enroll --import FILE|DIR [--ca-fingerprint FP]
                                           install the certificate the CA signed, then reload
  bundle import [--keys DIR] [--no-upgrade] DIR
                                           verify and apply a signed USB bundle
  version                                  print the agent and Nebula versions (also --version, -V)
  help                                     show this text
`

func versionLine() string { return version.String("meshnode", nebulaModule) }

// command runs the commands other than version and help; ok is false for
// an unknown one.
func command(args []string, stdin io.Reader, stdout, stderr io.Writer) (code int, ok bool) {
	rest := args[1:]
	switch args[0] {
	case "run":
		return cmdRun(rest, stdout, stderr), true
	case "status":
		return cmdStatus(rest, stdout, stderr), true
	case "reload":
		return cmdReload(rest, stdout, stderr), true
	case "config":
		return cmdConfig(rest, stdout, stderr), true
	case "wan":
		return cmdWAN(rest, stderr), true
	case "enroll":
		return enroll.Main(context.Background(), nil, rest, stdout, stderr), true
	case "bundle":
		return bundle.Main(context.Background(), nil, rest, stdout, stderr), true
	case "rpcd":
		fs := newFlags("rpcd", stderr)
		sock := fs.String("socket", "", "")
		if err := fs.Parse(rest); err != nil {
			return 2, true
		}
		return status.RPCDWithShare(fs.Args(), stdin, stdout, status.Client{Socket: socketPath(*sock)}, config.DefaultPath), true
	}
	return 0, false
}

// newFlags is a flag set for a command that reports its errors on stderr.
// Not inlined: one copy serves every command.
//
//go:noinline
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// fail reports err on stderr and returns the exit code for it. Not
// inlined, like newFlags.
//
//go:noinline
func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "meshnode:", err)
	return 1
}

// socketPath is the flag's value, else the one the configuration names,
// else the default: `status` works even when the config file is broken.
func socketPath(flagVal string) string {
	if flagVal != "" {
		return flagVal
	}
	if c, err := config.Load(config.DefaultPath); err == nil {
		return c.SocketPath()
	}
	return config.DefaultStateDir + "/meshnode.sock"
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "UCI configuration file")
	stateDir := fs.String("state-dir", "", "directory for the status socket (default: UCI state_dir)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	level := new(slog.LevelVar)
	// procd adds the time when it passes stdout to syslog.
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}}))
	err := daemon.Run(context.Background(), daemon.Options{
		ConfigPath: *cfgPath, StateDir: *stateDir, Log: log, Level: level,
		Version: version.Version, Nebula: version.Module(nebulaModule),
	})
	if err != nil {
		log.Error("meshnode cannot run", "error", err)
		return fail(stderr, err)
	}
	return 0
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the snapshot as JSON")
	sock := fs.String("socket", "", "agent socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c := status.Client{Socket: socketPath(*sock)}
	if *asJSON {
		raw, err := c.StatusRaw()
		if err != nil {
			return fail(stderr, err)
		}
		_, _ = stdout.Write(raw)
		return 0
	}
	s, err := c.Status()
	if err != nil {
		return fail(stderr, err)
	}
	if err := s.WriteText(stdout); err != nil {
		return 1
	}
	var up wan.Status
	if len(s.Uplinks) > 0 && json.Unmarshal(s.Uplinks, &up) == nil {
		up.WriteText(stdout)
	}
	return 0
}

const wanUsage = "usage: meshnode wan event [--socket PATH] ACTION INTERFACE [DEVICE]\n"

func cmdWAN(args []string, stderr io.Writer) int {
	fs := newFlags("wan", stderr)
	sock := fs.String("socket", "", "agent socket")
	if len(args) == 0 || args[0] != "event" {
		_, _ = io.WriteString(stderr, wanUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	a := fs.Args()
	if len(a) < 2 || len(a) > 3 {
		_, _ = io.WriteString(stderr, wanUsage)
		return 2
	}
	ev := wan.HotplugEvent{Action: a[0], Interface: a[1]}
	if len(a) == 3 {
		ev.Device = a[2]
	}
	if err := wan.SendEvent(socketPath(*sock), ev); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func cmdReload(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reload", stderr)
	sock := fs.String("socket", "", "agent socket")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	r, err := status.Client{Socket: socketPath(*sock)}.Reload()
	if err != nil {
		return fail(stderr, err)
	}
	if !r.OK {
		_, _ = io.WriteString(stderr, "meshnode: configuration rejected, the running one stays: "+r.Error+"\n")
		return 1
	}
	if r.Restarted {
		_, _ = io.WriteString(stdout, "applied (nebula restarted: tunnels re-established)\n")
	} else {
		_, _ = io.WriteString(stdout, "applied in place\n")
	}
	return 0
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "show" && args[0] != "check") {
		_, _ = io.WriteString(stderr, "usage: meshnode config show|check [--config FILE]\n")
		return 2
	}
	fs := newFlags("config", stderr)
	cfgPath := fs.String("config", config.DefaultPath, "UCI configuration file")
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	text, err := daemon.ShowConfig(*cfgPath)
	if err != nil {
		return fail(stderr, err)
	}
	switch {
	case args[0] == "check":
		_, _ = io.WriteString(stdout, *cfgPath+": ok\n")
	case *asJSON:
		b, _ := json.Marshal(map[string]string{"nebula": text})
		_, _ = stdout.Write(append(b, '\n'))
	default:
		_, _ = io.WriteString(stdout, text)
	}
	return 0
}
