// Command meshkit is the operator's and builder's tool: it builds and signs
// the opkg feeds and verifies them.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/feeds/verify"
	"github.com/meshnode/meshnode/internal/build"
	"github.com/meshnode/meshnode/internal/version"
)

const usage = `usage: meshkit <command> [options]

commands:
  build               cross-compile every package and write signed feeds (what 'make' runs)
  feed verify DIR...  check every signature, size and checksum of one or more feeds
  feed keygen DIR     make a release key pair (usign + OpenPGP) on an offline machine
  ca init|sign|revoke|renew   the offline certificate authority (Nebula CA, ledger, blocklist)
  bundle export       write a signed USB bundle (feeds, CA, blocklist, waiting certificates)
  inventory           Prometheus file_sd targets and an Ansible inventory from the CA ledger
  profiles            flash budget of every device and role (--measure: re-measure package sizes)
  image               sysupgrade image for --device D --role R [--node N] with the OpenWrt ImageBuilder
  version             print the version

Run 'meshkit <command> -h' for the options of a command.
`

// env is what main needs from the process, so tests can run commands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now}
	os.Exit(run(ctx, e, os.Args[1:]))
}

func run(ctx context.Context, e env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = cmdBuild(ctx, e, args[1:])
	case "feed":
		if len(args) < 2 {
			fmt.Fprint(e.stderr, usage)
			return 2
		}
		switch args[1] {
		case "verify":
			err = cmdVerify(e, args[2:])
		case "keygen":
			err = cmdKeygen(e, args[2:])
		default:
			err = usageError(fmt.Sprintf("unknown command 'feed %s'", args[1]))
		}
	case "ca":
		err = cmdCA(e, args[1:])
	case "bundle":
		err = cmdBundle(e, args[1:])
	case "inventory":
		err = cmdInventory(e, args[1:])
	case "profiles":
		err = cmdProfiles(ctx, e, args[1:])
	case "image":
		err = cmdImage(ctx, e, args[1:])
	case "version", "--version", "-V":
		fmt.Fprintln(e.stdout, version.String("meshkit"))
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, usage)
	default:
		err = usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	var ue usageError
	var fe failed
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "meshkit: %s\n\n%s", string(ue), usage)
		return 2
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &fe):
		return 1 // already reported
	default:
		fmt.Fprintf(e.stderr, "meshkit: %v\n", err)
		return 1
	}
}

type usageError string

func (u usageError) Error() string { return string(u) }

// failed means the command printed its own diagnosis.
type failed struct{}

func (failed) Error() string { return "failed" }

func cmdBuild(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("meshkit build", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	root := fs.String("root", ".", "repository root")
	out := fs.String("out", "out", "output directory: feeds go to OUT/feed, binaries to OUT/bin, dev keys to OUT/keys")
	arches := fs.String("arch", "all", "comma-separated architectures, or all")
	openwrt := fs.String("openwrt", "24.10", "package format: 24.10 (also for 25.12's opkg-compatible tools) or 23.05")
	feedName := fs.String("feed-name", envOr(e, "MESHNODE_FEED_NAME", "meshnode"), "feed name in customfeeds.conf ($MESHNODE_FEED_NAME)")
	feedURL := fs.String("feed-url", envOr(e, "MESHNODE_FEED_URL", "http://10.0.4.1/feed"), "base URL the feeds are served from; arch A is at URL/A ($MESHNODE_FEED_URL)")
	usignKey := fs.String("usign-key", "", "usign secret key file for a release ($MESHNODE_USIGN_KEY)")
	pgpKey := fs.String("pgp-key", "", "armored OpenPGP secret key file for a release ($MESHNODE_PGP_KEY)")
	devKeys := fs.String("dev-keys", "", "where development keys live when no release keys are given (default OUT/keys)")
	jobs := fs.Int("j", 0, "parallel compiles (default: number of CPUs)")
	noCache := fs.Bool("no-cache", false, "pack every ipk afresh instead of reusing OUT/cache/ipk")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("build takes no arguments: " + strings.Join(fs.Args(), " "))
	}
	targets, err := build.SelectTargets(*arches)
	if err != nil {
		return err
	}
	var format ipk.Format
	switch *openwrt {
	case "24.10", "25.12":
		format = ipk.OpenWrt2410
	case "23.05":
		format = ipk.OpenWrt2305
	default:
		return fmt.Errorf("--openwrt %q: want 24.10 or 23.05", *openwrt)
	}
	if !validFeedName(*feedName) {
		return fmt.Errorf("--feed-name %q: letters, digits, '_' and '-' only", *feedName)
	}
	if strings.ContainsAny(*feedURL, " \t\n'\"\\") || !strings.Contains(*feedURL, "://") {
		return fmt.Errorf("--feed-url %q: want an URL such as http://10.0.4.1/feed", *feedURL)
	}
	epoch, err := sourceDateEpoch(e, *root)
	if err != nil {
		return err
	}
	src := build.KeySourceFromEnv(e.getenv)
	if *usignKey != "" {
		src.UsignFile, src.UsignData = *usignKey, ""
	}
	if *pgpKey != "" {
		src.PGPFile, src.PGPData = *pgpKey, ""
	}
	if *devKeys == "" {
		*devKeys = filepath.Join(*out, "keys")
	}
	keys, err := build.LoadKeys(src, *devKeys, e.stderr)
	if err != nil {
		return err
	}
	cacheDir := filepath.Join(*out, "cache", "ipk")
	if *noCache {
		cacheDir = ""
	}
	start := e.now()
	res, err := build.Build(ctx, build.Config{
		Root: *root, BinDir: filepath.Join(*out, "bin"), FeedDir: filepath.Join(*out, "feed"),
		Targets: targets, Format: format, Epoch: epoch, FeedName: *feedName, FeedURL: *feedURL,
		Keys: keys, Log: e.stdout, Jobs: *jobs, CacheDir: cacheDir,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %d feeds under %s in %.1fs (SOURCE_DATE_EPOCH=%d)\n",
		len(res.Feeds), filepath.Join(*out, "feed"), e.now().Sub(start).Seconds(), epoch.Unix())
	return nil
}

func validFeedName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func envOr(e env, name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

// sourceDateEpoch follows reproducible-builds.org: SOURCE_DATE_EPOCH if
// set, else the last commit's time, so two builds of a commit agree.
func sourceDateEpoch(e env, root string) (time.Time, error) {
	if v := e.getenv("SOURCE_DATE_EPOCH"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a non-negative number of seconds", v)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	cmd := exec.Command("git", "log", "-1", "--format=%ct")
	cmd.Dir = root
	if outb, err := cmd.Output(); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(outb)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	}
	fmt.Fprintln(e.stderr, "NOTE: no SOURCE_DATE_EPOCH and no git commit; using 0 for file times")
	return time.Unix(0, 0).UTC(), nil
}

func cmdVerify(e env, args []string) error {
	fs := flag.NewFlagSet("meshkit feed verify", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	keyDir := fs.String("keys", envOr(e, "MESHNODE_TRUSTED_KEYS", ""), "directory of trusted public keys: usign keys named by fingerprint and OpenPGP *.asc files ($MESHNODE_TRUSTED_KEYS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError("feed verify needs at least one feed directory")
	}
	if *keyDir == "" {
		return usageError("feed verify needs --keys DIR: the public keys you trust (for a dev build: out/keys)")
	}
	keys, err := loadTrusted(*keyDir)
	if err != nil {
		return err
	}
	bad := false
	for _, dir := range feedDirs(fs.Args()) {
		rep, err := verify.Feed(dir, keys)
		if err != nil {
			return err
		}
		if len(rep.Problems) == 0 {
			fmt.Fprintf(e.stdout, "%s: OK (%d files checked)\n", dir, rep.Checked)
			continue
		}
		bad = true
		for _, p := range rep.Problems {
			fmt.Fprintf(e.stdout, "%s: %s\n", filepath.Join(dir, p.File), p.Msg)
		}
		fmt.Fprintf(e.stdout, "%s: FAILED (%d problems)\n", dir, len(rep.Problems))
	}
	if bad {
		return failed{}
	}
	return nil
}

// feedDirs expands a directory of feeds (out/feed, with one directory
// per architecture and the published keys beside them) into its feeds;
// a directory that is a feed itself, or holds none, is kept as given so
// verify reports what is missing.
func feedDirs(args []string) []string {
	var out []string
	for _, d := range args {
		if _, err := os.Stat(filepath.Join(d, "Packages")); err == nil {
			out = append(out, d)
			continue
		}
		subs, _ := filepath.Glob(filepath.Join(d, "*", "Packages"))
		if len(subs) == 0 {
			out = append(out, d)
			continue
		}
		for _, s := range subs {
			out = append(out, filepath.Dir(s))
		}
	}
	return out
}

// loadTrusted reads a directory of public keys: usign public keys (any
// name; opkg's convention is the fingerprint) and armored OpenPGP public
// keys. Secret keys found there are refused: a trust directory is for
// public halves only.
func loadTrusted(dir string) (verify.Keys, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return verify.Keys{}, err
	}
	keys := verify.Keys{Usign: map[string]*usign.PublicKey{}}
	var armored [][]byte
	for _, ent := range ents {
		if ent.IsDir() || strings.HasPrefix(ent.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, ent.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return verify.Keys{}, err
		}
		switch {
		case strings.Contains(string(data), "-----BEGIN PGP PUBLIC KEY BLOCK-----"):
			armored = append(armored, data)
		case strings.Contains(string(data), "-----BEGIN PGP PRIVATE KEY BLOCK-----"):
			continue // dev key directories hold both halves; only the public ones count
		default:
			pub, err := usign.ParsePublicKey(data)
			if err != nil {
				if _, serr := usign.ParseSecretKey(data); serr == nil {
					continue
				}
				return verify.Keys{}, fmt.Errorf("%s: not a usign or OpenPGP public key: %v", p, err)
			}
			keys.Usign[pub.Fingerprint()] = pub
		}
	}
	if len(keys.Usign) == 0 {
		return verify.Keys{}, fmt.Errorf("%s: no usign public keys", dir)
	}
	if len(armored) == 0 {
		return verify.Keys{}, fmt.Errorf("%s: no OpenPGP public key (*.asc)", dir)
	}
	if keys.PGP, err = pgp.LoadKeyRing(armored...); err != nil {
		return verify.Keys{}, fmt.Errorf("%s: %w", dir, err)
	}
	return keys, nil
}

func cmdKeygen(e env, args []string) error {
	fs := flag.NewFlagSet("meshkit feed keygen", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	name := fs.String("name", "meshnode feed", "name on the OpenPGP key and usign comment")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("feed keygen needs exactly one directory")
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []string{"usign.sec", "usign.pub", "pgp.sec.asc", "pgp.pub.asc"}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite a key", filepath.Join(dir, f))
		}
	}
	sk, err := usign.Generate(rand.Reader, *name)
	if err != nil {
		return err
	}
	sec, pub, err := pgp.GenerateKey(*name, "", "", e.now())
	if err != nil {
		return err
	}
	data := [][]byte{sk.Marshal(), sk.Public().Marshal(), sec, pub}
	modes := []os.FileMode{0o600, 0o644, 0o600, 0o644}
	for i, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), data[i], modes[i]); err != nil {
			return err
		}
	}
	signer, err := pgp.LoadSigner(sec)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "usign key   %s  (%s)\nOpenPGP key %s  (%s)\n"+
		"Compare these fingerprints in person before anyone trusts the key.\n"+
		"Build a release with MESHNODE_USIGN_KEY=%s MESHNODE_PGP_KEY=%s make\n",
		sk.Fingerprint(), filepath.Join(dir, "usign.sec"), signer.Fingerprint(), filepath.Join(dir, "pgp.sec.asc"),
		filepath.Join(dir, "usign.sec"), filepath.Join(dir, "pgp.sec.asc"))
	return nil
}
