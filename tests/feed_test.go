// Package tests holds the end-to-end tests of the build: real cross
// compiles, real feeds, checked with independent tools (GNU tar, sh,
// qemu-user) where the machine has them.
package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/internal/build"
	"github.com/meshnode/meshnode/internal/manifest"
)

const repoRoot = ".."

// Two architectures keep the suite quick while covering big-endian MIPS
// and the host; `make` itself builds all five.
const testArches = "mips_24kc,x86_64"

var epoch = time.Unix(1700000000, 0).UTC()

// buildFeed runs a full build of root into out with the keys in keyDir.
func buildFeed(t *testing.T, root, out, keyDir string) *build.Result {
	t.Helper()
	targets, err := build.SelectTargets(testArches)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	keys, err := build.LoadKeys(build.KeySource{}, keyDir, &log)
	if err != nil {
		t.Fatal(err)
	}
	res, err := build.Build(context.Background(), build.Config{
		Root: root, BinDir: filepath.Join(out, "bin"), FeedDir: filepath.Join(out, "feed"),
		Targets: targets, Epoch: epoch, FeedName: "meshnode", FeedURL: "http://10.0.4.1/feed",
		Keys: keys, Log: &log,
	})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	return res
}

// shared is one build reused by the read-only tests.
var shared struct {
	out, keys string
	res       *build.Result
}

func sharedBuild(t *testing.T) (string, string, *build.Result) {
	t.Helper()
	if testing.Short() {
		t.Skip("full cross build skipped in -short mode")
	}
	if shared.res == nil {
		dir, err := os.MkdirTemp("", "meshnode-feed-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared.out, shared.keys = filepath.Join(dir, "out"), filepath.Join(dir, "out", "keys")
		shared.res = buildFeed(t, repoRoot, shared.out, shared.keys)
	}
	return shared.out, shared.keys, shared.res
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.out != "" {
		os.RemoveAll(filepath.Dir(shared.out))
	}
	os.Exit(code)
}

// TestReproducible: a second clean build, from a copy of the repository at
// another path with the same keys and SOURCE_DATE_EPOCH, gives identical
// bytes for every file of every feed (ipks, indexes and signatures).
func TestReproducible(t *testing.T) {
	out1, keys1, _ := sharedBuild(t)
	tmp := t.TempDir()
	root2 := filepath.Join(tmp, "checkout")
	copyTracked(t, repoRoot, root2)
	out2 := filepath.Join(tmp, "out")
	if err := os.CopyFS(filepath.Join(out2, "keys"), os.DirFS(keys1)); err != nil {
		t.Fatal(err)
	}
	buildFeed(t, root2, out2, filepath.Join(out2, "keys"))

	a, b := listFiles(t, filepath.Join(out1, "feed")), listFiles(t, filepath.Join(out2, "feed"))
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("file lists differ:\n%v\n%v", a, b)
	}
	if len(a) < 2*9 {
		t.Fatalf("only %d files in the feeds: %v", len(a), a)
	}
	for _, f := range a {
		x, _ := os.ReadFile(filepath.Join(out1, "feed", f))
		y, _ := os.ReadFile(filepath.Join(out2, "feed", f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two clean builds (%d vs %d bytes)", f, len(x), len(y))
		}
	}
}

// TestFeedContents checks the published layout and each ipk's control data.
func TestFeedContents(t *testing.T) {
	out, _, res := sharedBuild(t)
	for _, arch := range strings.Split(testArches, ",") {
		dir := filepath.Join(out, "feed", arch)
		for _, f := range []string{"Packages", "Packages.gz", "Packages.manifest", "Packages.sig", "index.json",
			"SHA256SUMS", "SHA256SUMS.asc", "meshnode_0.1.0-r1_" + arch + ".ipk", "meshnode-keyring_1-r1_all.ipk"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", arch, err)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, "meshnode_0.1.0-r1_"+arch+".ipk"))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ipk.ReadBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		for field, want := range map[string]string{"Package": "meshnode", "Version": "0.1.0-r1",
			"Architecture": arch, "Depends": strings.Join(meshnodeManifest(t).Depends, ", "), "License": "AGPL-3.0-or-later",
			"Conflicts": "meshnode-lite", "Provides": "meshnode-agent"} {
			if got := ipk.Get(info.Fields, field); got != want {
				t.Errorf("%s: %s = %q, want %q", arch, field, got, want)
			}
		}
		files := strings.Join(info.Files, " ")
		for _, want := range []string{"/usr/sbin/meshnode", "/lib/upgrade/keep.d/meshnode"} {
			if !strings.Contains(files, want) {
				t.Errorf("%s: %s missing from %s", arch, want, files)
			}
		}
		ms, err := manifest.LoadAll(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Packages[arch]) != len(ms) {
			t.Errorf("%s: %d packages, want one per manifest (%d)", arch, len(res.Packages[arch]), len(ms))
		}
	}
	// The keyring package is arch "all": one identical file in every feed.
	a, _ := os.ReadFile(filepath.Join(out, "feed", "mips_24kc", "meshnode-keyring_1-r1_all.ipk"))
	b, _ := os.ReadFile(filepath.Join(out, "feed", "x86_64", "meshnode-keyring_1-r1_all.ipk"))
	if !bytes.Equal(a, b) {
		t.Error("meshnode-keyring differs between feeds")
	}
}

// TestGNUTarReadsIpk opens an ipk with GNU tar, an implementation that is
// not ours, and checks owners, modes and the parent-directory entries opkg
// needs.
func TestGNUTarReadsIpk(t *testing.T) {
	out, _, _ := sharedBuild(t)
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	work := t.TempDir()
	ipkFile, _ := filepath.Abs(filepath.Join(out, "feed", "mips_24kc", "meshnode_0.1.0-r1_mips_24kc.ipk"))
	run(t, work, "tar", "-xzf", ipkFile)
	outer := run(t, work, "tar", "-tzvf", ipkFile, "--numeric-owner")
	for _, m := range []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"} {
		if !strings.Contains(outer, m) {
			t.Errorf("outer archive lacks %s:\n%s", m, outer)
		}
	}
	data := run(t, work, "tar", "-tzvf", "data.tar.gz", "--numeric-owner")
	lines := strings.Split(strings.TrimSpace(data), "\n")
	var names []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("odd tar line %q", l)
		}
		if f[1] != "0/0" {
			t.Errorf("owner %s in %q, want 0/0", f[1], l)
		}
		name := f[len(f)-1]
		names = append(names, name)
		if strings.HasSuffix(name, "/") && f[0] != "drwxr-xr-x" {
			t.Errorf("directory %s has mode %s, want drwxr-xr-x", name, f[0])
		}
		if name == "./usr/sbin/meshnode" && f[0] != "-rwxr-xr-x" {
			t.Errorf("binary mode %s", f[0])
		}
	}
	// Exactly the manifest's files plus the keep.d list, and every ancestor
	// directory listed before what it holds (opkg creates no parents).
	m := meshnodeManifest(t)
	want := map[string]bool{"./": true}
	for _, p := range append(m.InstalledPaths(), "/lib/upgrade/keep.d/meshnode") {
		want["."+p] = true
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			want["."+d+"/"] = true
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !want[n] {
			t.Errorf("unexpected member %s", n)
		}
		trimmed := strings.TrimSuffix(n, "/")
		parent := trimmed[:strings.LastIndex(trimmed, "/")+1]
		if n != "./" && !seen[parent] {
			t.Errorf("%s comes before its directory %s", n, parent)
		}
		seen[n] = true
	}
	if len(seen) != len(want) {
		t.Errorf("data members %v, want %d entries: %v", names, len(want), want)
	}
	ctl := run(t, work, "tar", "-xzvf", "control.tar.gz")
	for _, m := range []string{"./control", "./postinst", "./prerm"} {
		if !strings.Contains(ctl, m) {
			t.Errorf("control archive lacks %s:\n%s", m, ctl)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(work, "debian-binary")); string(got) != "2.0\n" {
		t.Errorf("debian-binary = %q", got)
	}
}

// TestMIPSBinaryRuns runs the big-endian MIPS meshnode under qemu-user: it
// must start (static, softfloat) and report the stamped versions.
func TestMIPSBinaryRuns(t *testing.T) {
	out, _, _ := sharedBuild(t)
	qemu, err := exec.LookPath("qemu-mips-static")
	if err != nil {
		t.Skip("qemu-mips-static not installed (make test installs qemu-user-static)")
	}
	got := run(t, "", qemu, filepath.Join(out, "bin", "mips_24kc", "meshnode"), "--version")
	for _, want := range []string{"meshnode 0.1.0-r1", "nebula v1.11.0", "linux/mips"} {
		if !strings.Contains(got, want) {
			t.Errorf("--version = %q, lacks %q", got, want)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(out, "bin", "mips_24kc", "meshnode")); bytes.Contains(data, []byte("/work/")) || bytes.Contains(data, []byte(os.Getenv("HOME")+"/go/pkg")) {
		t.Error("binary contains build paths: -trimpath missing")
	}
}

// TestFailedBuildLeavesOutputAlone: a broken manifest stops the build with
// file:line: field, and the previous feed stays byte for byte.
func TestFailedBuildLeavesOutputAlone(t *testing.T) {
	out, keys, _ := sharedBuild(t)
	tmp := t.TempDir()
	root := filepath.Join(tmp, "checkout")
	copyTracked(t, repoRoot, root)
	out2 := filepath.Join(tmp, "out")
	if err := os.CopyFS(out2, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out2)
	mf := filepath.Join(root, "packages", "meshnode", "manifest")
	data, _ := os.ReadFile(mf)
	data = bytes.Replace(data, []byte("option version '0.1.0'"), []byte("option version '0.1.0-beta'"), 1)
	if err := os.WriteFile(mf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	targets, _ := build.SelectTargets(testArches)
	k, err := build.LoadKeys(build.KeySource{}, keys, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = build.Build(context.Background(), build.Config{Root: root, BinDir: filepath.Join(out2, "bin"),
		FeedDir: filepath.Join(out2, "feed"), Targets: targets, Epoch: epoch, FeedName: "meshnode",
		FeedURL: "http://10.0.4.1/feed", Keys: k})
	if err == nil {
		t.Fatal("build with a bad version succeeded")
	}
	if !strings.Contains(err.Error(), mf+":") || !strings.Contains(err.Error(), "version:") {
		t.Errorf("error does not name file, line and field: %v", err)
	}
	if after := snapshot(t, out2); after != before {
		t.Error("out/ changed after a failed build")
	}
}

// TestKeyringScripts runs the keyring's maintainer logic with sh in a fake
// image root, as default_postinst/default_prerm source it.
func TestKeyringScripts(t *testing.T) {
	out, _, _ := sharedBuild(t)
	work := t.TempDir()
	ipkFile, _ := filepath.Abs(filepath.Join(out, "feed", "x86_64", "meshnode-keyring_1-r1_all.ipk"))
	run(t, work, "tar", "-xzf", ipkFile)
	run(t, work, "tar", "-xzf", "control.tar.gz")
	root := filepath.Join(work, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc", "opkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc", "openwrt_release"), []byte("DISTRIB_ID='OpenWrt'\nDISTRIB_ARCH='mips_24kc'\n"), 0o644)
	feeds := filepath.Join(root, "etc", "opkg", "customfeeds.conf")
	os.WriteFile(feeds, []byte("# add your custom package feeds here\nsrc/gz meshnode http://old/feed/mips_24kc\n"), 0o644)
	env := []string{"IPKG_INSTROOT=" + root, "PATH=" + os.Getenv("PATH")}
	for i := 0; i < 2; i++ { // idempotent
		runEnv(t, work, env, "sh", "-c", ". ./postinst-pkg")
	}
	got, _ := os.ReadFile(feeds)
	want := "# add your custom package feeds here\nsrc/gz meshnode http://10.0.4.1/feed/mips_24kc\n"
	if string(got) != want {
		t.Errorf("customfeeds.conf after postinst:\n%s\nwant:\n%s", got, want)
	}
	runEnv(t, work, append(env, "PKG_UPGRADE=1"), "sh", "-c", ". ./prerm-pkg")
	if got, _ := os.ReadFile(feeds); string(got) != want {
		t.Errorf("upgrade removed the feed line:\n%s", got)
	}
	runEnv(t, work, append(env, "PKG_UPGRADE=0"), "sh", "-c", ". ./prerm-pkg")
	if got, _ := os.ReadFile(feeds); string(got) != "# add your custom package feeds here\n" {
		t.Errorf("removal left:\n%s", got)
	}

	// The generated postinst defers to default_postinst from the image
	// root's functions.sh, and does nothing without one.
	runEnv(t, work, env, "sh", "./postinst", "configure")
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "lib", "functions.sh"), []byte("default_postinst() { echo \"called $*\" > \"$IPKG_INSTROOT/called\"; }\n"), 0o644)
	runEnv(t, work, env, "sh", "./postinst", "configure")
	if got, _ := os.ReadFile(filepath.Join(root, "called")); !strings.Contains(string(got), "called ./postinst configure") {
		t.Errorf("default_postinst call: %q", got)
	}
	os.Remove(filepath.Join(root, "called"))
	runEnv(t, work, append(env, "IPKG_NO_SCRIPT=1"), "sh", "./postinst", "configure")
	if _, err := os.Stat(filepath.Join(root, "called")); err == nil {
		t.Error("postinst ran default_postinst despite IPKG_NO_SCRIPT=1")
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	return runEnv(t, dir, nil, name, args...)
}

func runEnv(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// copyTracked copies the files git tracks (or, outside git, the source
// tree without out/) to dst.
func copyTracked(t *testing.T, src, dst string) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-co", "--exclude-standard")
	cmd.Dir = src
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		if f == "" {
			continue
		}
		st, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			continue // deleted in the work tree
		}
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// snapshot is every file's path and content under dir, as one string.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range listFiles(t, dir) {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		b.WriteString(f + "\x00" + string(data) + "\x00")
	}
	return b.String()
}

// TestOpenWrt2305Feed: the 23.05 switch writes "-1" versions and the
// data.tar.gz size as Installed-Size; 24.10 the uncompressed data tar.
func TestOpenWrt2305Feed(t *testing.T) {
	out, keys, _ := sharedBuild(t)
	targets, _ := build.SelectTargets("x86_64")
	k, err := build.LoadKeys(build.KeySource{}, keys, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out2 := t.TempDir()
	_, err = build.Build(context.Background(), build.Config{Root: repoRoot, BinDir: filepath.Join(out2, "bin"),
		FeedDir: filepath.Join(out2, "feed"), Targets: targets, Format: ipk.OpenWrt2305, Epoch: epoch,
		FeedName: "meshnode", FeedURL: "http://10.0.4.1/feed", Keys: k})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file, version string
		gzSize        bool
	}{
		{filepath.Join(out2, "feed", "x86_64", "meshnode_0.1.0-1_x86_64.ipk"), "0.1.0-1", true},
		{filepath.Join(out, "feed", "x86_64", "meshnode_0.1.0-r1_x86_64.ipk"), "0.1.0-r1", false},
	} {
		data, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ipk.ReadBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		if v := ipk.Get(info.Fields, "Version"); v != c.version {
			t.Errorf("%s: Version %q", c.file, v)
		}
		want := info.DataTarSize
		if c.gzSize {
			want = info.DataGzSize
		}
		if got := ipk.Get(info.Fields, "Installed-Size"); got != fmt.Sprint(want) {
			t.Errorf("%s: Installed-Size %s, want %d", c.file, got, want)
		}
	}
}

func meshnodeManifest(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join(repoRoot, "packages", "meshnode", "manifest"), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
