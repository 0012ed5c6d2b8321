package bundle_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/meshnode/meshnode/feeds/bundle"
	"github.com/meshnode/meshnode/feeds/bundle/export"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/ca"
	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
	"github.com/meshnode/meshnode/internal/build"
)

const arch = "x86_64"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeOpkg struct{ calls [][]string }

func (f *fakeOpkg) Upgrade(_ context.Context, dir string, pkgs []string) ([]string, error) {
	if _, err := os.Stat(filepath.Join(dir, "Packages.sig")); err != nil {
		return nil, err
	}
	f.calls = append(f.calls, pkgs)
	return pkgs, nil
}

type world struct {
	caDir, feedDir, keyDir string
	node                   *enroll.Node
	opkg                   *fakeOpkg
	im                     *bundle.Importer
}

// setup: a CA, a feed signed with its keys, one node with a signed
// certificate waiting, and a second node's certificate too.
func setup(t *testing.T) *world {
	t.Helper()
	tmp := t.TempDir()
	w := &world{caDir: filepath.Join(tmp, "ca"), feedDir: filepath.Join(tmp, "feed"), keyDir: filepath.Join(tmp, "opkg-keys")}
	if _, err := ca.Init(w.caDir, ca.InitOptions{Plan: ca.DefaultPlan(), Now: t0}); err != nil {
		t.Fatal(err)
	}
	c, err := ca.Open(w.caDir)
	if err != nil {
		t.Fatal(err)
	}
	w.node = &enroll.Node{Dir: filepath.Join(tmp, "node"), Now: func() time.Time { return t0.Add(time.Hour) }}
	req, err := w.node.Request("kitchen", "uplink", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return t0 }
	if _, err := c.Sign(req); err != nil {
		t.Fatal(err)
	}
	other := &enroll.Node{Dir: filepath.Join(tmp, "other")}
	oreq, _ := other.Request("bakery", "client", nil)
	if _, err := c.Sign(oreq); err != nil {
		t.Fatal(err)
	}
	// The node trusts the feed key, as meshnode-keyring installs it.
	skData, _ := os.ReadFile(filepath.Join(w.caDir, ca.UsignSec))
	sk, _ := usign.ParseSecretKey(skData)
	os.MkdirAll(w.keyDir, 0o755)
	os.WriteFile(filepath.Join(w.keyDir, sk.Fingerprint()), sk.Public().Marshal(), 0o644)
	pgpSec, _ := os.ReadFile(filepath.Join(w.caDir, ca.PGPSec))
	signer, err := pgp.LoadSigner(pgpSec)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	res, err := ipk.Write(&buf, &ipk.Package{Control: ipk.Control{Package: "meshnode", Version: "1.0", Release: "1",
		Architecture: arch, Description: "agent", License: "AGPL-3.0-or-later"},
		Files: []ipk.File{{Path: "/usr/sbin/meshnode", Mode: 0o755, Data: []byte("agent")}}}, ipk.Options{Format: ipk.OpenWrt2410, ModTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(w.feedDir, arch), 0o755)
	err = build.WriteFeed(build.Config{Keys: &build.Keys{Usign: sk, PGP: signer}, Epoch: t0}, filepath.Join(w.feedDir, arch), arch,
		[]index.Entry{{FileName: res.FileName, Data: buf.Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	w.opkg = &fakeOpkg{}
	w.im = &bundle.Importer{Node: w.node, KeyDir: w.keyDir, State: filepath.Join(w.node.Dir, "bundle.state"), Arch: arch, Opkg: w.opkg}
	return w
}

func (w *world) export(t *testing.T, to string, now time.Time, arches ...string) *bundle.Manifest {
	t.Helper()
	m, err := export.Export(export.ExportOptions{To: to, CADir: w.caDir, FeedDir: w.feedDir, Arches: arches, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// snapshot is the node's whole directory, to show nothing changed.
func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			b.WriteString(p + "\n" + string(data))
		}
		return nil
	})
	return b.String()
}

// A node whose ca.crt is empty (a failed copy, a wiped flash) trusts no
// CA yet: the bundle's CA is taken, not a crash.
func TestImportOverEmptyCA(t *testing.T) {
	w := setup(t)
	if err := os.WriteFile(filepath.Join(w.node.Dir, enroll.CAFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	drive := filepath.Join(t.TempDir(), "bundle")
	w.export(t, drive, t0, arch)
	res, err := w.im.Import(context.Background(), drive)
	if err != nil {
		t.Fatal(err)
	}
	if res.Certificate == nil || !res.Certificate.Changed {
		t.Fatalf("certificate not installed: %+v", res.Certificate)
	}
}

func TestExportImport(t *testing.T) {
	w := setup(t)
	drive := filepath.Join(t.TempDir(), "bundle")
	m := w.export(t, drive, t0, arch)
	if m.Version != 1 {
		t.Fatalf("version %d", m.Version)
	}
	res, err := w.im.Import(context.Background(), drive)
	if err != nil {
		t.Fatal(err)
	}
	if res.Certificate == nil || !res.Certificate.Changed || res.Certificate.Name != "kitchen" || res.Certificate.Address.String() != "10.0.4.64/24" {
		t.Fatalf("certificate: %+v", res.Certificate)
	}
	if len(w.opkg.calls) != 1 || w.opkg.calls[0][0] != "meshnode" {
		t.Fatalf("opkg calls %v", w.opkg.calls)
	}
	if _, err := os.Stat(filepath.Join(w.node.Dir, enroll.RequestFile)); !os.IsNotExist(err) {
		t.Fatal("pending request still there after the certificate was installed")
	}
	st, err := os.ReadFile(filepath.Join(drive, bundle.StatusDir, "kitchen.txt"))
	if err != nil || !strings.Contains(string(st), "result ok") {
		t.Fatalf("status: %s %v", st, err)
	}
	// Importing the same bundle again is harmless.
	if _, err := w.im.Import(context.Background(), drive); err != nil {
		t.Fatal(err)
	}
	// Merge: a second export to the same drive keeps the feed, counts up.
	m2 := w.export(t, drive, t0.Add(time.Hour))
	if m2.Version != 2 {
		t.Fatalf("merged version %d", m2.Version)
	}
	if _, ok := m2.Lookup("feed/" + arch + "/index.json"); !ok {
		t.Fatal("merge dropped the feed")
	}
	if _, err := w.im.Import(context.Background(), drive); err != nil {
		t.Fatal(err)
	}
}

func TestPendingRequestWrittenBack(t *testing.T) {
	w := setup(t)
	n := &enroll.Node{Dir: filepath.Join(t.TempDir(), "new")}
	if _, err := n.Request("garden", "relay", []string{"north"}); err != nil {
		t.Fatal(err)
	}
	im := *w.im
	im.Node, im.State = n, filepath.Join(n.Dir, "bundle.state")
	drive := filepath.Join(t.TempDir(), "bundle")
	w.export(t, drive, t0)
	if _, err := im.Import(context.Background(), drive); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(drive, bundle.RequestsDir, "garden.req"))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ca.ParseRequest(data); err != nil || r.Name != "garden" {
		t.Fatal(r, err)
	}
	// Write-back areas do not break the signature for the next node.
	if _, err := w.im.Import(context.Background(), drive); err != nil {
		t.Fatal(err)
	}
}

// Every file of a bundle, changed in turn, is refused with its name, and
// the node is unchanged.
func TestTamperedFilesRefused(t *testing.T) {
	w := setup(t)
	drive := filepath.Join(t.TempDir(), "bundle")
	m := w.export(t, drive, t0, arch)
	before := snapshot(t, w.node.Dir)
	paths := []string{bundle.ManifestFile, bundle.SigFile}
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	for _, p := range paths {
		full := filepath.Join(drive, filepath.FromSlash(p))
		orig, _ := os.ReadFile(full)
		bad := bytes.Clone(orig)
		bad[len(bad)/2] ^= 1
		os.WriteFile(full, bad, 0o644)
		_, err := w.im.Import(context.Background(), drive)
		var re *bundle.RefusedError
		if !errors.As(err, &re) {
			t.Errorf("%s tampered: %v", p, err)
		} else if p != bundle.SigFile && re.File != filepath.Join(drive, bundle.ManifestFile) && re.File != full {
			t.Errorf("%s tampered: error names %s", p, re.File)
		}
		if snapshot(t, w.node.Dir) != before || len(w.opkg.calls) != 0 {
			t.Fatalf("%s tampered: node changed", p)
		}
		os.WriteFile(full, orig, 0o644)
	}
	// Extra, missing, cut short (a half-written drive), unsigned.
	extra := filepath.Join(drive, "feed", arch, "evil.ipk")
	os.WriteFile(extra, []byte("x"), 0o644)
	expectRefused(t, w, drive, extra, "not listed")
	os.Remove(extra)
	ipkPath := ""
	for _, f := range m.Files {
		if strings.HasSuffix(f.Path, ".ipk") {
			ipkPath = filepath.Join(drive, filepath.FromSlash(f.Path))
		}
	}
	orig, _ := os.ReadFile(ipkPath)
	os.WriteFile(ipkPath, orig[:len(orig)/2], 0o644)
	expectRefused(t, w, drive, ipkPath, "size differs")
	os.Remove(ipkPath)
	expectRefused(t, w, drive, ipkPath, "missing")
	os.WriteFile(ipkPath, orig, 0o644)
	sig, _ := os.ReadFile(filepath.Join(drive, bundle.SigFile))
	os.Remove(filepath.Join(drive, bundle.SigFile))
	expectRefused(t, w, drive, filepath.Join(drive, bundle.SigFile), "not signed")
	os.WriteFile(filepath.Join(drive, bundle.SigFile), sig, 0o644)
	if snapshot(t, w.node.Dir) != before {
		t.Fatal("node changed")
	}
	if _, err := w.im.Import(context.Background(), drive); err != nil {
		t.Fatalf("restored bundle: %v", err)
	}
}

func expectRefused(t *testing.T, w *world, drive, file, msg string) {
	t.Helper()
	_, err := w.im.Import(context.Background(), drive)
	var re *bundle.RefusedError
	if !errors.As(err, &re) || re.File != file || !strings.Contains(re.Msg, msg) {
		t.Fatalf("want %s refused (%s), got %v", file, msg, err)
	}
}

func TestRollbackRefused(t *testing.T) {
	w := setup(t)
	old := filepath.Join(t.TempDir(), "old")
	w.export(t, old, t0)
	newer := filepath.Join(t.TempDir(), "new")
	w.export(t, newer, t0.Add(time.Hour))
	if _, err := w.im.Import(context.Background(), newer); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, w.node.Dir)
	_, err := w.im.Import(context.Background(), old)
	if err == nil || !strings.Contains(err.Error(), "rollback") || !strings.Contains(err.Error(), filepath.Join(old, bundle.ManifestFile)) {
		t.Fatalf("rollback: %v", err)
	}
	if snapshot(t, w.node.Dir) != before {
		t.Fatal("node changed")
	}
}

func TestUntrustedKeyRefused(t *testing.T) {
	w := setup(t)
	drive := filepath.Join(t.TempDir(), "bundle")
	w.export(t, drive, t0)
	other, _ := usign.Generate(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), "other")
	body, _ := os.ReadFile(filepath.Join(drive, bundle.ManifestFile))
	os.WriteFile(filepath.Join(drive, bundle.SigFile), usign.Sign(other, body).Marshal(), 0o644)
	expectRefused(t, w, drive, filepath.Join(drive, bundle.SigFile), "not trusted")
}

func TestManifestRoundTrip(t *testing.T) {
	m := &bundle.Manifest{Version: 3, Created: t0, Files: []bundle.File{
		{Path: "feed/x86_64/Packages", Size: 10, SHA256: strings.Repeat("ab", 32)},
		{Path: "ca/ca.crt", Size: 0, SHA256: strings.Repeat("00", 32)},
	}}
	got, err := bundle.ParseManifest(m.Marshal())
	if err != nil || got.Version != 3 || len(got.Files) != 2 || got.Files[0].Path != "ca/ca.crt" {
		t.Fatal(got, err)
	}
	for _, bad := range []string{"../etc/passwd", "/etc/x", "requests/a.req", "feed/./x", "feed/.hidden", "MANIFEST"} {
		if bundle.CheckPath(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("meshnode-bundle 1\nversion 1\ncreated 2025-03-01T12:00:00Z\nfile " + strings.Repeat("ab", 32) + " 10 ca/ca.crt\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := bundle.ParseManifest(data)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(), data) {
			t.Fatalf("not canonical:\n%q\n%q", data, m.Marshal())
		}
	})
}

// TestNewBlocklistReloadsAgent: a bundle whose only news is a revocation
// reloads the agent, so the revoked node's tunnels go at once; an import
// with nothing new does not.
func TestNewBlocklistReloadsAgent(t *testing.T) {
	w := setup(t)
	reloads := 0
	w.node.Reload = func(context.Context) error { reloads++; return nil }
	first := filepath.Join(t.TempDir(), "first")
	w.export(t, first, t0)
	if _, err := w.im.Import(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	afterFirst := reloads // the waiting certificate was installed: one reload

	c, err := ca.Open(w.caDir)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return t0.Add(time.Minute) }
	if err := c.Revoke("bakery", "lost router"); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second")
	w.export(t, second, t0.Add(2*time.Minute))
	res, err := w.im.Import(context.Background(), second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocklist == 0 || reloads != afterFirst+1 {
		t.Errorf("revocation: blocklist %d entries, %d reloads after the first import's %d", res.Blocklist, reloads, afterFirst)
	}
	third := filepath.Join(t.TempDir(), "third")
	w.export(t, third, t0.Add(3*time.Minute))
	if _, err := w.im.Import(context.Background(), third); err != nil {
		t.Fatal(err)
	}
	if reloads != afterFirst+1 {
		t.Errorf("an import with nothing new reloaded the agent (%d reloads)", reloads)
	}
}
