package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/meshnode/meshnode/feeds/bundle/export"
)

func cmdBundle(e env, args []string) error {
	if len(args) == 0 || args[0] != "export" {
		return usageError("bundle needs a command: export")
	}
	fs := flag.NewFlagSet("meshkit bundle export", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	caDir := fs.String("ca", envOr(e, "MESHNODE_CA", ""), "the CA directory ($MESHNODE_CA)")
	to := fs.String("to", "", "the bundle directory (on the mounted drive); an existing bundle there is merged")
	feeds := fs.String("feeds", "out/feed", "where the built feeds are")
	arches := fs.String("arch", "", "comma-separated architectures whose feeds to carry (none by default)")
	var firmware []string
	fs.Func("firmware", "an image file to carry (repeatable)", func(s string) error { firmware = append(firmware, s); return nil })
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *to == "" || *caDir == "" || fs.NArg() > 0 {
		return usageError("bundle export needs --ca DIR and --to DIR")
	}
	var as []string
	if *arches != "" {
		as = strings.Split(*arches, ",")
	}
	m, err := export.Export(export.ExportOptions{To: *to, CADir: *caDir, FeedDir: *feeds, Arches: as, Firmware: firmware, Now: e.now()})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "bundle version %d written to %s: %d signed files\n", m.Version, *to, len(m.Files))
	return nil
}
