package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/meshnode/meshnode/internal/build"
	"github.com/meshnode/meshnode/profiles"
)

// cmdProfiles prints the flash budget of every device and role, or with
// --measure rewrites profiles/sizes from freshly built binaries.
func cmdProfiles(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("meshkit profiles", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	root := fs.String("root", ".", "repository root")
	headroom := fs.Int64("headroom", profiles.DefaultHeadroom/profiles.KiB, "KiB a device must keep free after our packages")
	measure := fs.Bool("measure", false, "build every package for the devices' architectures and rewrite profiles/sizes (needs xz)")
	binDir := fs.String("bin", "", "take binaries from this directory (<arch>/<cmd>) instead of building them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("profiles takes no arguments")
	}
	set, err := profiles.Load(*root)
	if err != nil {
		return err
	}
	if *measure {
		if err := measureSizes(ctx, e, set, *root, *binDir); err != nil {
			return err
		}
		if set, err = profiles.Load(*root); err != nil {
			return err
		}
	}
	bs := set.Budgets(*headroom * profiles.KiB)
	profiles.WriteTable(e.stdout, bs)
	return nil
}

func measureSizes(ctx context.Context, e env, set *profiles.Set, root, binDir string) error {
	arches := map[string]bool{}
	for _, d := range set.Devices {
		arches[d.Arch] = true
	}
	if binDir == "" {
		tmp, err := os.MkdirTemp("", "meshkit-measure-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		binDir = tmp
		for _, t := range build.Targets() {
			if !arches[t.Arch] {
				continue
			}
			for _, name := range sortedKeys(set.Packages) {
				m := set.Packages[name]
				if set.Pending[name] {
					continue
				}
				for _, b := range m.Binaries {
					out := filepath.Join(binDir, t.Arch, b.Key())
					if _, err := os.Stat(out); err == nil {
						continue
					}
					fmt.Fprintf(e.stderr, "go build %s for %s\n", b.Key(), t.Arch)
					if err := build.GoBuildTags(ctx, "go", root, os.Environ(), t, "./cmd/"+b.Cmd, out, m.FullVersion(false), b.Tags); err != nil {
						return err
					}
				}
			}
		}
	}
	sizes := set.Sizes
	for _, name := range sortedKeys(set.Packages) {
		m := set.Packages[name]
		if set.Pending[name] {
			continue // kept as recorded: it cannot be built yet
		}
		list := []string{"all"}
		if m.Arch != "all" {
			list = nil
			for a := range arches {
				list = append(list, a)
			}
			sort.Strings(list)
		}
		for _, arch := range list {
			files, err := set.PackageFiles(name, binDir, arch)
			if err != nil {
				return err
			}
			raw, xz, sq, err := profiles.Measure(ctx, files, profiles.XZ)
			if err != nil {
				return err
			}
			sizes.Set(profiles.Size{Package: name, Arch: arch, Raw: raw, XZ: xz, Squashfs: sq, Source: "measured " + m.FullVersion(false)})
			fmt.Fprintf(e.stderr, "%-16s %-20s raw %9d  xz %8d  squashfs %8d\n", name, arch, raw, xz, sq)
		}
	}
	return os.WriteFile(filepath.Join(root, "profiles", "sizes"), sizes.Marshal(), 0o644)
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
