package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/internal/manifest"
)

func TestGoArgsTags(t *testing.T) {
	got := strings.Join(GoArgs("./cmd/meshnode", "out/x", "1-r1", []string{"lite", "small"}), " ")
	want := "build -trimpath -buildvcs=false -tags lite,small -ldflags -s -w -buildid= -X " + VersionVar + "=1-r1 -o out/x ./cmd/meshnode"
	if got != want {
		t.Errorf("args\n got %s\nwant %s", got, want)
	}
	if got := strings.Join(GoArgs("./cmd/x", "o", "1", nil), " "); strings.Contains(got, "-tags") {
		t.Errorf("untagged build passes -tags: %s", got)
	}
}

// TestCompileWithTags builds one command with and without a tag, as
// meshnode and meshnode-lite are, and runs both: the tag must reach the
// compiler and the two binaries must not overwrite each other.
func TestCompileWithTags(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the built x86_64 binaries")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                 "module example.com/demo\n\ngo 1.21\n",
		"cmd/demo/main.go":       "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(flavour) }\n",
		"cmd/demo/full.go":       "//go:build !lite\n\npackage main\n\nconst flavour = \"full\"\n",
		"cmd/demo/lite.go":       "//go:build lite\n\npackage main\n\nconst flavour = \"lite\"\n",
		"packages/x/files/.keep": "",
	}
	for n, c := range files {
		p := filepath.Join(root, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ms := []*manifest.Manifest{
		{Name: "demo", Version: "1", Release: "1", Binaries: []manifest.Binary{{Cmd: "demo", Dest: "/usr/bin/demo"}}},
		{Name: "demo-lite", Version: "1", Release: "1", Binaries: []manifest.Binary{{Cmd: "demo", Dest: "/usr/bin/demo", Tags: []string{"lite"}}}},
	}
	env := append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local")
	cfg := Config{Root: root, GoCmd: goCmd, Env: env, Targets: []Target{{Arch: "x86_64", GoEnv: []string{"GOARCH=amd64"}}}}
	bins, err := Compile(context.Background(), cfg, ms, filepath.Join(root, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"demo": "full", "demo-lite": "lite"} {
		p := bins["x86_64"][key]
		if p == "" {
			t.Fatalf("no binary %q in %v", key, bins)
		}
		out, err := exec.Command(p).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s prints %q, want %q", key, got, want)
		}
	}
}

// TestControlConflicts: a manifest's `list conflicts` reaches the ipk's
// control file, so opkg refuses meshnode-lite beside meshnode.
func TestControlConflicts(t *testing.T) {
	m := &manifest.Manifest{Name: "demo-lite", Version: "1", Release: "1", Conflicts: []string{"demo"}}
	c := controlFor(Config{FeedName: "meshnode"}, m, "mips_24kc")
	if strings.Join(c.Conflicts, ",") != "demo" {
		t.Errorf("Conflicts %v", c.Conflicts)
	}
	if c := controlFor(Config{FeedName: "meshnode"}, &manifest.Manifest{Name: "demo"}, "mips_24kc"); c.Conflicts != nil {
		t.Errorf("no conflicts declared, got %v", c.Conflicts)
	}
}
