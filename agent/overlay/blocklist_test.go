package overlay

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	nconfig "github.com/slackhq/nebula/config"

	"github.com/meshnode/meshnode/agent/config"
	"github.com/meshnode/meshnode/agent/overlay/certtest"
	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

var wantFPs = []string{
	"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
	"3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d",
}

// TestGoldenBlocklist pins pki.blocklist in the generated configuration
// and checks Nebula's loader reads the same fingerprints back.
func TestGoldenBlocklist(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "hub-blocklist.uci"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Blocklist != "/etc/meshnode/blocklist" {
		t.Fatalf("blocklist option: %q", c.Blocklist)
	}
	fps, err := ReadBlocklist(filepath.Join("testdata", "blocklist"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fps, wantFPs) {
		t.Fatalf("fingerprints: %v", fps)
	}
	pem := fakePEM
	pem.Blocklist = fps
	text, err := YAML(Redact(Settings(c, pem)))
	if err != nil {
		t.Fatal(err)
	}
	goldenfile.Check(t, filepath.Join("testdata", "hub-blocklist.yaml"), []byte(text))
	nc := nconfig.NewC(nil)
	if err := nc.LoadString(text); err != nil {
		t.Fatal(err)
	}
	if got := nc.GetStringSlice("pki.blocklist", nil); !reflect.DeepEqual(got, wantFPs) {
		t.Errorf("Nebula reads pki.blocklist as %v", got)
	}
	// No blocklist: no key, so the other roles' files stay as they were.
	if _, ok := Settings(c, fakePEM)["pki"].(m)["blocklist"]; ok {
		t.Error("empty blocklist written")
	}
}

// TestBlocklistReloadsInPlace: Nebula reloads its CA pool (and with it
// the blocklist) in a running process, so a changed file never restarts.
func TestBlocklistReloadsInPlace(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "hub.uci"))
	if err != nil {
		t.Fatal(err)
	}
	with := fakePEM
	with.Blocklist = wantFPs[:1]
	more := fakePEM
	more.Blocklist = wantFPs
	for name, pair := range map[string][2]Material{"added": {fakePEM, with}, "grown": {with, more}, "emptied": {more, fakePEM}} {
		old, new := Settings(c, pair[0]), Settings(c, pair[1])
		if reflect.DeepEqual(old, new) {
			t.Fatalf("%s: settings did not change", name)
		}
		if hard := NeedsRestart(old, new); len(hard) != 0 {
			t.Errorf("%s: needs restart for %v", name, hard)
		}
	}
}

func TestLoadMaterialBlocklist(t *testing.T) {
	ca, err := certtest.NewCA("mesh", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n, err := ca.Sign(certtest.Opts{Name: "n1", Address: "10.0.4.130/24"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certtest.Write(dir, ca, n); err != nil {
		t.Fatal(err)
	}
	c := &config.Config{File: "/etc/config/meshnode", Role: config.RoleClient, Address: mustPrefix("10.0.4.130/24"),
		CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, "node.crt"), Key: filepath.Join(dir, "node.key"),
		Blocklist: filepath.Join(dir, "blocklist")}

	// Missing file: no revocations.
	mat, _, err := LoadMaterial(c, time.Now())
	if err != nil || len(mat.Blocklist) != 0 {
		t.Fatalf("missing blocklist: %v %v", mat.Blocklist, err)
	}
	good, _ := os.ReadFile(filepath.Join("testdata", "blocklist"))
	os.WriteFile(c.Blocklist, good, 0o644)
	mat, _, err = LoadMaterial(c, time.Now())
	if err != nil || !reflect.DeepEqual(mat.Blocklist, wantFPs) {
		t.Fatalf("blocklist: %v %v", mat.Blocklist, err)
	}
	// A torn or hand-edited file: the file and line are named.
	os.WriteFile(c.Blocklist, append(good, "0f1e2d3c not a fingerprint\n"...), 0o644)
	_, _, err = LoadMaterial(c, time.Now())
	want := "/etc/config/meshnode: section 'overlay' option 'blocklist': " + c.Blocklist + ": line 6: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("want %q..., got %v", want, err)
	}
	os.WriteFile(c.Blocklist, nil, 0o000)
	if os.Geteuid() != 0 {
		if _, _, err := LoadMaterial(c, time.Now()); err == nil || !strings.Contains(err.Error(), "option 'blocklist'") {
			t.Fatalf("unreadable blocklist: %v", err)
		}
	}
}
