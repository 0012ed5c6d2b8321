package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/profiles"
)

// cmdImage builds a sysupgrade image for one device and role with the
// OpenWrt ImageBuilder (in Docker, or unpacked with --imagebuilder).
func cmdImage(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("meshkit image", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	root := fs.String("root", ".", "repository root")
	out := fs.String("out", "out", "output directory: feeds are read from OUT/feed, images go to OUT/images/<device>-<role>[-personal-<node>]")
	device := fs.String("device", "", "device profile (profiles/devices)")
	role := fs.String("role", "", "role profile (profiles/roles)")
	node := fs.String("node", "", "personal image for this node: its certificate and configuration go into the image")
	caDir := fs.String("ca", envOr(e, "MESHNODE_CA", ""), "CA directory: the node's files are read from CA/issued/<node>/ ($MESHNODE_CA)")
	nodeKey := fs.String("node-key", "", "the node's private key (node.key) when it comes from the CA directory")
	nodeDir := fs.String("node-dir", "", "directory with node.crt, node.key, ca.crt and optionally meshnode (UCI) and wifi (UCI 'config wifi')")
	ib := fs.String("imagebuilder", "", "use this unpacked ImageBuilder instead of Docker")
	dryRun := fs.Bool("dry-run", false, "print every command instead of running it")
	headroom := fs.Int64("headroom", profiles.DefaultHeadroom/profiles.KiB, "KiB the image must leave free")
	feedName := fs.String("feed-name", envOr(e, "MESHNODE_FEED_NAME", "meshnode"), "feed name in repositories.conf")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *device == "" || *role == "" || fs.NArg() > 0 {
		return usageError("image needs --device D --role R and no other arguments")
	}
	if (*nodeDir != "" || *caDir != "" && *nodeKey != "") && *node == "" {
		return usageError("--node-dir, --ca and --node-key make a personal image: also give --node NAME")
	}
	set, err := profiles.Load(*root)
	if err != nil {
		return err
	}
	var n *profiles.Node
	if *node != "" {
		if n, err = readNode(*node, *nodeDir, *caDir, *nodeKey); err != nil {
			return err
		}
	}
	img, err := set.PlanImage(*device, *role, n, *headroom*profiles.KiB)
	if err != nil {
		return err
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	inv := profiles.Invocation{Root: abs(*root), FeedDir: abs(filepath.Join(*out, "feed")),
		OutDir: abs(filepath.Join(*out, "images", img.Name)), FeedName: *feedName}
	if *ib != "" {
		inv.ImageBuilder = abs(*ib)
	}
	b := img.Budget
	fmt.Fprintf(e.stdout, "image %s: %s as %s, PROFILE=%s, %s of %s free used, %s left (headroom %s)\n", img.Name,
		img.Device.Title, img.Role.ID, img.Device.Profile, profiles.FormatSize(b.Ours+b.Extra), profiles.FormatSize(b.Free),
		profiles.FormatSize(b.Left), profiles.FormatSize(b.Headroom))
	if *dryRun {
		inv.OverlayDir = abs(filepath.Join(*out, "images", ".files-"+img.Name))
		fmt.Fprintf(e.stdout, "# FILES overlay (%s):\n", inv.OverlayDir)
		for _, p := range img.OverlayPaths() {
			fmt.Fprintf(e.stdout, "#   %04o %s\n", img.Overlay[p].Mode, p)
		}
		for _, c := range img.Commands(inv) {
			fmt.Fprintln(e.stdout, profiles.ShellLine(c))
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(inv.FeedDir, img.Device.Arch, "Packages.sig")); err != nil {
		return fmt.Errorf("no signed feed for %s in %s: run 'make' first (%v)", img.Device.Arch, inv.FeedDir, err)
	}
	work, err := os.MkdirTemp(filepath.Join(*out), ".image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	inv.OverlayDir = filepath.Join(abs(work), "files")
	if err := img.WriteOverlay(inv.OverlayDir); err != nil {
		return err
	}
	if err := os.MkdirAll(inv.OutDir, 0o755); err != nil {
		return err
	}
	if inv.ImageBuilder == "" {
		// The container runs as uid 1000 (facts §10): it must read the
		// overlay and write the output.
		if err := shareWithBuilder(work, inv.OutDir, img.Personal); err != nil {
			return err
		}
	}
	for _, c := range img.Commands(inv) {
		fmt.Fprintln(e.stdout, "+", profiles.ShellLine(c))
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v", c[0], err)
		}
	}
	return writeChecksums(e, inv.OutDir, img.Personal)
}

// readNode gathers a node's files from --node-dir, or from the CA's
// issued/<node>/ plus --node-key.
func readNode(name, nodeDir, caDir, keyFile string) (*profiles.Node, error) {
	n := &profiles.Node{Name: name}
	read := func(p string, optional bool) ([]byte, error) {
		b, err := os.ReadFile(p)
		if err != nil && optional && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			return nil, nil // reported by PlanImage as a missing certificate or key
		}
		return b, err
	}
	var err error
	switch {
	case nodeDir != "":
		for _, f := range []struct {
			name string
			dst  *[]byte
		}{{"node.crt", &n.Cert}, {"node.key", &n.Key}, {"ca.crt", &n.CA}, {"meshnode", &n.Config}, {"wifi", &n.Wifi}} {
			if *f.dst, err = read(filepath.Join(nodeDir, f.name), true); err != nil {
				return nil, err
			}
		}
	case caDir != "":
		dir := filepath.Join(caDir, "issued", name)
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("node %s has no certificate waiting in %s: sign its request first (meshkit ca sign)", name, dir)
		}
		if n.Cert, err = read(filepath.Join(dir, "node.crt"), false); err != nil {
			return nil, err
		}
		if n.CA, err = read(filepath.Join(dir, "ca.crt"), false); err != nil {
			return nil, err
		}
		if keyFile == "" {
			return nil, fmt.Errorf("node %s: the CA never holds node keys; give the key made for this image with --node-key FILE, or use --node-dir", name)
		}
		if n.Key, err = read(keyFile, false); err != nil {
			return nil, err
		}
		lh, err := read(filepath.Join(dir, "lighthouses"), true)
		if err != nil {
			return nil, err
		}
		// The agent's configuration is built from the certificate and
		// the role by PlanImage, with these lighthouse sections.
		n.Lighthouses = lh
	default:
		return nil, usageError("--node needs --node-dir DIR, or --ca DIR with --node-key FILE")
	}
	return n, nil
}

// shareWithBuilder lets the container's uid 1000 read the overlay and
// write the output. Only root can hand files to another uid; without it a
// personal image (which holds a key) must not be made world-readable.
func shareWithBuilder(work, outDir string, personal bool) error {
	const builderUID = 1000
	if os.Getuid() == builderUID {
		return nil
	}
	if os.Getuid() == 0 {
		for _, top := range []string{work, outDir} {
			if err := filepath.WalkDir(top, func(p string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, builderUID, builderUID)
			}); err != nil {
				return err
			}
		}
		return nil
	}
	if personal {
		return errors.New("personal images with Docker need meshkit to run as root or as uid 1000 (the ImageBuilder container's user), or use --imagebuilder DIR")
	}
	if err := os.Chmod(outDir, 0o777); err != nil {
		return err
	}
	return filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
}

// writeChecksums writes SHA256SUMS over the images the entrypoint left,
// and keeps personal images private.
func writeChecksums(e env, dir string, personal bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, ent := range ents {
		n := ent.Name()
		if !ent.IsDir() && (strings.Contains(n, "sysupgrade") || strings.Contains(n, "factory") || strings.Contains(n, "combined")) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: the ImageBuilder wrote no sysupgrade or factory image", dir)
	}
	sort.Strings(names)
	var sums strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		h := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h[:]), n)
		if personal {
			if err := os.Chmod(filepath.Join(dir, n), 0o600); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s", dir, sums.String())
	return nil
}
