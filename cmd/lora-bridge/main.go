// Command lora-bridge bridges a Meshtastic radio on USB serial to other
// bridges over the IP mesh, with store and forward, an airtime budget and
// signed alerts. See packages/lora-bridge and shared/docs/facts-meshtastic.md.
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/internal/version"
	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/radio"
)

const usage = `usage: lora-bridge <command>

commands:
  run [-c config]                   run the bridge (procd starts this)
  send [-s socket] [--from name] text   post a message to the mesh
  status [-s socket]                radio, journal, airtime and peer status (JSON)
  recent [-s socket] [-n N]         the last messages (JSON)
  alert send [-s socket] payload    post an alert (signed payloads are verified)
  alert sign -k keyfile text        print a signed alert payload
  alert keygen keyfile              write a new private key (0600), print the public key
  rpcd list | rpcd call <method>    rpcd exec plugin protocol
  version                           print the version
`

const defaultSocket = "/var/run/lora-bridge.sock"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-V":
		fmt.Fprintln(stdout, version.String("lora-bridge"))
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		cfg := fs.String("c", "/etc/config/lora-bridge", "UCI configuration")
		if fs.Parse(rest) != nil {
			return 2
		}
		return daemon(*cfg, stderr)
	case "send", "status", "recent":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		sock := fs.String("s", defaultSocket, "API socket")
		from := fs.String("from", "", "sender name shown on the radio")
		n := fs.Int("n", 20, "messages")
		if fs.Parse(rest) != nil {
			return 2
		}
		req := bridge.Request{Method: cmd, Sender: *from, N: *n, Text: strings.Join(fs.Args(), " ")}
		return call(*sock, req, stdout, stderr)
	case "alert":
		return alertCmd(rest, stdout, stderr)
	case "rpcd":
		return rpcd(rest, stdin, stdout)
	}
	fmt.Fprintf(stderr, "lora-bridge: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func call(sock string, req bridge.Request, stdout, stderr io.Writer) int {
	r, err := bridge.Call(sock, req)
	if err != nil {
		fmt.Fprintf(stderr, "lora-bridge: %s: %v\n", sock, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(r)
	return 0
}

func alertCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "send":
		fs := flag.NewFlagSet("alert send", flag.ContinueOnError)
		sock := fs.String("s", defaultSocket, "API socket")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		return call(*sock, bridge.Request{Method: "alert", Text: strings.Join(fs.Args(), " ")}, stdout, stderr)
	case "sign":
		fs := flag.NewFlagSet("alert sign", flag.ContinueOnError)
		keyf := fs.String("k", "", "private key file (base64 seed)")
		if fs.Parse(args[1:]) != nil || *keyf == "" {
			fmt.Fprintln(stderr, "usage: lora-bridge alert sign -k keyfile text")
			return 2
		}
		b, err := os.ReadFile(*keyf)
		if err != nil {
			fmt.Fprintf(stderr, "lora-bridge: %v\n", err)
			return 1
		}
		priv, err := alert.ParsePrivate(string(b))
		if err != nil {
			fmt.Fprintf(stderr, "lora-bridge: %s: %v\n", *keyf, err)
			return 1
		}
		p, err := alert.Sign(priv, strings.Join(fs.Args(), " "), time.Now())
		if err != nil {
			fmt.Fprintf(stderr, "lora-bridge: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, p)
		return 0
	case "keygen":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: lora-bridge alert keygen keyfile")
			return 2
		}
		pub, priv, _ := ed25519.GenerateKey(nil)
		f, err := os.OpenFile(args[1], os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "lora-bridge: %v\n", err)
			return 1
		}
		fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed()))
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "lora-bridge: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "list alert_key '%s'\n", base64.StdEncoding.EncodeToString(pub))
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// rpcd implements the exec plugin protocol (facts-openwrt.md §9).
func rpcd(args []string, stdin io.Reader, stdout io.Writer) int {
	if len(args) >= 1 && args[0] == "list" {
		fmt.Fprintln(stdout, `{"status":{},"recent":{"n":20},"send":{"text":"str","sender":"str"},"alert":{"text":"str"}}`)
		return 0
	}
	if len(args) < 2 || args[0] != "call" {
		fmt.Fprintln(stdout, `{"error":"usage: list | call <method>"}`)
		return 0
	}
	var req bridge.Request
	// LuCI adds ubus_rpc_session: unknown keys are ignored.
	if err := json.NewDecoder(bufio.NewReader(stdin)).Decode(&req); err != nil && err != io.EOF {
		json.NewEncoder(stdout).Encode(map[string]string{"error": "bad arguments: " + err.Error()})
		return 0
	}
	req.Method = args[1]
	r, err := bridge.Call(defaultSocket, req)
	if err != nil && r.Error == "" {
		r.Error = err.Error()
	}
	json.NewEncoder(stdout).Encode(r)
	return 0
}

func daemon(cfgPath string, stderr io.Writer) int {
	logger := log.New(stderr, "", 0) // procd adds time and tag via syslog
	st, err := loadConfig(cfgPath)
	if err != nil {
		logger.Printf("lora-bridge: %v", err)
		return 1
	}
	st.Bridge.Log = logger
	j, err := journal.Open(st.Journal, journal.Options{})
	if err != nil {
		logger.Printf("lora-bridge: journal %s: %v", st.Journal, err)
		return 1
	}
	defer j.Close()
	b := bridge.New(st.Bridge, j)
	link := radio.New(radio.Config{Open: func() (radio.Port, error) { return radio.OpenSerial(st.Port) },
		Heartbeat: st.Heartbeat, Log: logger}, b)
	b.SetLink(link)
	if err := b.ListenPeers(); err != nil {
		logger.Printf("lora-bridge: listen %s: %v", st.Bridge.Listen, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP from the hotplug script: the radio came back, reopen now.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			link.Reconnect()
		}
	}()
	go b.RunPeers(ctx)
	go func() {
		if err := b.ServeAPI(ctx); err != nil {
			logger.Printf("lora-bridge: api %s: %v", st.Bridge.Socket, err)
		}
	}()
	go b.Run(ctx)
	logger.Printf("lora-bridge %s: radio %s, region %s (%.1f%% duty), preset %s, %d peers",
		version.Version, st.Port, st.Region, st.DutyPercent, st.PresetName, len(st.Bridge.Peers))
	link.Run(ctx)
	return 0
}
