package bundle

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/ca/enroll"
)

// Main is `meshnode bundle import DIR` (args start after "bundle"). im
// may be nil for the OpenWrt defaults (DefaultImporter).
func Main(ctx context.Context, im *Importer, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "import" {
		fmt.Fprintln(stderr, "usage: meshnode bundle import [--keys DIR] DIR")
		return 2
	}
	if im == nil {
		im = DefaultImporter()
	}
	fs := flag.NewFlagSet("meshnode bundle import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keys := fs.String("keys", im.KeyDir, "trusted usign keys")
	noUpgrade := fs.Bool("no-upgrade", false, "do not install package updates")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: meshnode bundle import [--keys DIR] DIR")
		return 2
	}
	im.KeyDir = *keys
	if *noUpgrade {
		im.Opkg = nil
	}
	res, err := im.Import(ctx, fs.Arg(0))
	if res != nil {
		fmt.Fprintf(stdout, "bundle version %d: blocklist %d, alert keys %d\n", res.Version, res.Blocklist, res.AlertKeys)
		if res.Certificate != nil {
			fmt.Fprintln(stdout, res.Certificate.Summary())
		}
		if len(res.Upgraded) > 0 {
			fmt.Fprintf(stdout, "upgraded: %s\n", strings.Join(res.Upgraded, " "))
		}
		for _, n := range res.Notes {
			fmt.Fprintln(stdout, n)
		}
		if res.Request != "" {
			fmt.Fprintf(stdout, "pending request written to %s\n", res.Request)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshnode bundle: %v\n", err)
		return 1
	}
	return 0
}

// DefaultImporter is a node as OpenWrt lays it out.
func DefaultImporter() *Importer {
	host, _ := os.Hostname()
	return &Importer{
		Node:     enroll.Default(),
		KeyDir:   "/etc/opkg/keys",
		State:    filepath.Join("/etc/meshnode", "bundle.state"),
		Arch:     OpenWrtArch("/etc/openwrt_release"),
		Opkg:     OpkgCLI{},
		Hostname: strings.ToLower(host),
	}
}

// OpenWrtArch reads DISTRIB_ARCH from /etc/openwrt_release, or "".
func OpenWrtArch(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "DISTRIB_ARCH="); ok {
			return strings.Trim(v, `'"`)
		}
	}
	return ""
}
