package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// repoRoot is the repository, two levels up from this package.
const repoRoot = "../.."

// TestRepositoryPackages loads every real manifest and checks it against
// its buildroot Makefile: the SDK and `meshkit build` must ship the same
// name, version, dependencies and files.
func TestRepositoryPackages(t *testing.T) {
	ms, err := LoadAll(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range ms {
		names[m.Name] = true
		diffs, err := CheckBuildroot(m)
		if err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		for _, d := range diffs {
			t.Errorf("%s: %s", filepath.Join(m.Dir, "Makefile"), d)
		}
	}
	for _, want := range []string{"meshnode", "meshnode-keyring"} {
		if !names[want] {
			t.Errorf("package %s not defined", want)
		}
	}
}

// TestBuildrootDisagreement makes sure the check can fail: a Makefile that
// differs in each compared field is reported field by field.
func TestBuildrootDisagreement(t *testing.T) {
	root := t.TempDir()
	dir := writePkg(t, root, "demo", validManifest, map[string]string{"demo.init": "#!/bin/sh /etc/rc.common\n"})
	mk := `include $(TOPDIR)/rules.mk
PKG_NAME:=demo
PKG_VERSION:=1.1
PKG_RELEASE:=2
PKG_LICENSE:=MIT
define Package/demo
  SECTION:=utils
  DEPENDS:=$(GO_ARCH_DEPENDS) +kmod-tun +libc
endef
define Package/demo/install
	$(INSTALL_DIR) $(1)/usr/bin
	$(INSTALL_BIN) $(GO_PKG_BUILD_BIN_DIR)/demo $(1)/usr/bin/
endef
`
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(filepath.Join(dir, "manifest"), root)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := CheckBuildroot(m)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(diffs, "\n")
	for _, want := range []string{"version:", "release:", "license:", "section:", "depends:", "installed files:", "conffiles+keep:"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q difference reported in:\n%s", want, got)
		}
	}
}

const validManifest = `config package
	option name 'demo'
	option version '1.0'
	option release '1'
	option section 'net'
	option title 'Demo'
	option description 'A demo package.'
	option license 'AGPL-3.0-or-later'
	list depends 'kmod-tun'
	list keep '/etc/demo/'
	option init 'demo.init'

config binary
	option cmd 'demo'
	option dest '/usr/sbin/demo'
`

func writePkg(t *testing.T, root, name, manifest string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(root, "packages", name)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "cmd", "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, "files", n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadValid(t *testing.T) {
	root := t.TempDir()
	dir := writePkg(t, root, "demo", validManifest, map[string]string{"demo.init": "#!/bin/sh /etc/rc.common\n"})
	m, err := Load(filepath.Join(dir, "manifest"), root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Arch != ArchNative {
		t.Errorf("arch = %q, want native (package has binaries)", m.Arch)
	}
	if got := m.FullVersion(false); got != "1.0-r1" {
		t.Errorf("24.10 version %q", got)
	}
	if got := m.FullVersion(true); got != "1.0-1" {
		t.Errorf("23.05 version %q", got)
	}
	want := []string{"/etc/init.d/demo", "/usr/sbin/demo"}
	if got := m.InstalledPaths(); !reflect.DeepEqual(got, want) {
		t.Errorf("installed %v, want %v", got, want)
	}
}

// TestBadManifests: every mistake is reported with file, line and field.
func TestBadManifests(t *testing.T) {
	rep := func(old, new string) string {
		if !strings.Contains(validManifest, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(validManifest, old, new, 1)
	}
	cases := []struct {
		name, manifest string
		pkgDir         string
		want           string // substring of the error
	}{
		{"missing version", rep("\toption version '1.0'\n", ""), "", "manifest:1: version: missing"},
		{"empty title", rep("option title 'Demo'", "option title ''"), "", "title: missing"},
		{"bad name", rep("option name 'demo'", "option name 'Demo!'"), "", "manifest:2: name: \"Demo!\" is not a valid opkg package name"},
		{"name vs dir", rep("option name 'demo'", "option name 'other'"), "", "does not match its directory"},
		{"dash in version", rep("option version '1.0'", "option version '1.0-2'"), "", "manifest:3: version: \"1.0-2\""},
		{"space in version", rep("option version '1.0'", "option version '1 0'"), "", "version:"},
		{"bad release", rep("option release '1'", "option release 'r1'"), "", "manifest:4: release:"},
		{"bad depends", rep("list depends 'kmod-tun'", "list depends 'kmod tun'"), "", "depends:"},
		{"misspelt option", rep("list depends 'kmod-tun'", "list depend 'kmod-tun'"), "", "manifest:9: depend: unknown option"},
		{"missing init file", rep("option init 'demo.init'", "option init 'nope.init'"), "", "manifest:11: init: files/nope.init does not exist"},
		{"init escapes files", rep("option init 'demo.init'", "option init '../manifest'"), "", "clean path relative to files/"},
		{"missing cmd", rep("option cmd 'demo'", "option cmd 'ghost'"), "", "manifest:14: cmd: cmd/ghost does not exist"},
		{"missing dest", rep("\toption dest '/usr/sbin/demo'\n", ""), "", "manifest:13: dest: missing in 'config binary'"},
		{"relative dest", rep("option dest '/usr/sbin/demo'", "option dest 'usr/sbin/demo'"), "", "clean absolute path"},
		{"duplicate dest", rep("option dest '/usr/sbin/demo'", "option dest '/etc/init.d/demo'"), "", "already installed"},
		{"conffile not shipped", rep("list keep '/etc/demo/'", "list conffiles '/etc/config/demo'"), "", "conffiles: /etc/config/demo is not installed"},
		{"arch all with binary", rep("option license 'AGPL-3.0-or-later'", "option license 'AGPL-3.0-or-later'\n\toption arch 'all'"), "", "'all' but the package installs binaries"},
		{"unknown section", validManifest + "\nconfig bogus\n\toption x 'y'\n", "", "unknown section type \"bogus\""},
		{"second package", validManifest + "\nconfig package\n\toption name 'demo'\n", "", "second 'config package' section"},
		{"syntax", validManifest + "\noption stray 'x'\n", "", "manifest:"},
		{"bad conflicts", rep("list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist conflicts 'other pkg'"), "", "manifest:10: conflicts: \"other pkg\" is not a package name"},
		{"conflicts with itself", rep("list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist conflicts 'demo'"), "", "conflicts: a package cannot conflict with itself"},
		{"conflicts and depends", rep("list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist conflicts 'kmod-tun'"), "", "conflicts: kmod-tun is also in depends"},
		{"bad provides", rep("list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist provides 'Not A Name'"), "", "provides:"},
		{"provides itself", rep("list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist provides 'demo'"), "", "provides:"},
		{"bad mode", validManifest + "\nconfig install\n\toption src 'demo.init'\n\toption dest '/etc/x'\n\toption mode '0999'\n", "", "mode:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writePkg(t, root, "demo", c.manifest, map[string]string{"demo.init": "#!/bin/sh\n"})
			_, err := Load(filepath.Join(dir, "manifest"), root)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, "manifest")) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadAllDuplicateAndEmpty(t *testing.T) {
	if _, err := LoadAll(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no package manifests") {
		t.Errorf("empty tree: %v", err)
	}
}

// TestBuildTags: `option tags` in 'config binary' reaches Binary.Tags and
// the build key; bad tags are refused with file, line and field.
func TestBuildTags(t *testing.T) {
	root := t.TempDir()
	src := strings.Replace(validManifest, "option cmd 'demo'", "option cmd 'demo'\n\toption tags 'lite,small'", 1)
	dir := writePkg(t, root, "demo", src, map[string]string{"demo.init": "#!/bin/sh\n"})
	m, err := Load(filepath.Join(dir, "manifest"), root)
	if err != nil {
		t.Fatal(err)
	}
	b := m.Binaries[0]
	if !reflect.DeepEqual(b.Tags, []string{"lite", "small"}) || b.Key() != "demo-lite-small" {
		t.Errorf("tags %q key %q", b.Tags, b.Key())
	}
	if got := m.BuildTags(); !reflect.DeepEqual(got, []string{"lite", "small"}) {
		t.Errorf("BuildTags %q", got)
	}
	if k := (Binary{Cmd: "demo"}).Key(); k != "demo" {
		t.Errorf("untagged key %q", k)
	}
	for _, c := range []struct{ tags, want string }{
		{"li-te", `manifest:15: tags: "li-te" is not a Go build tag`},
		{"lite lite", `tags: "lite" given twice`},
		{" , ", "manifest:15: tags: empty"},
	} {
		src := strings.Replace(validManifest, "option cmd 'demo'", "option cmd 'demo'\n\toption tags '"+c.tags+"'", 1)
		dir := writePkg(t, t.TempDir(), "demo", src, map[string]string{"demo.init": "#!/bin/sh\n"})
		_, err := Load(filepath.Join(dir, "manifest"), filepath.Dir(filepath.Dir(dir)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tags %q: error %v, want %q", c.tags, err, c.want)
		}
	}
}

// TestBuildrootTags: GO_PKG_TAGS must match the manifest's tags, both ways.
func TestBuildrootTags(t *testing.T) {
	mk := func(tags string) string {
		return "PKG_NAME:=demo\nPKG_VERSION:=1.0\nPKG_RELEASE:=1\nPKG_LICENSE:=AGPL-3.0-or-later\n" + tags +
			"define Package/demo\n  SECTION:=net\n  DEPENDS:=$(GO_ARCH_DEPENDS) +kmod-tun\nendef\n" +
			"define Package/demo/conffiles\n/etc/demo/\nendef\n" +
			"define Package/demo/install\n\t$(INSTALL_BIN) $(GO_PKG_BUILD_BIN_DIR)/demo $(1)/usr/sbin/\n\t$(INSTALL_BIN) ./files/demo.init $(1)/etc/init.d/demo\nendef\n"
	}
	tagged := strings.Replace(validManifest, "option cmd 'demo'", "option cmd 'demo'\n\toption tags 'lite'", 1)
	for _, c := range []struct {
		name, manifest, makefile string
		diff                     bool
	}{
		{"both lite", tagged, mk("GO_PKG_TAGS:=lite\n"), false},
		{"neither", validManifest, mk(""), false},
		{"makefile lacks tags", tagged, mk(""), true},
		{"manifest lacks tags", validManifest, mk("GO_PKG_TAGS:=lite\n"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writePkg(t, root, "demo", c.manifest, map[string]string{"demo.init": "#!/bin/sh\n"})
			if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(c.makefile), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := Load(filepath.Join(dir, "manifest"), root)
			if err != nil {
				t.Fatal(err)
			}
			diffs, err := CheckBuildroot(m)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(diffs, "\n")
			if has := strings.Contains(got, "GO_PKG_TAGS"); has != c.diff {
				t.Errorf("tag difference reported %v, want %v:\n%s", has, c.diff, got)
			}
			if !c.diff && got != "" {
				t.Errorf("unexpected differences:\n%s", got)
			}
		})
	}
}

// TestConflicts: `list conflicts` reaches the manifest, and the Makefile's
// CONFLICTS must say the same, both ways.
func TestConflicts(t *testing.T) {
	withConflict := strings.Replace(validManifest, "list depends 'kmod-tun'", "list depends 'kmod-tun'\n\tlist conflicts 'demo-full'", 1)
	mk := func(conflicts string) string {
		return "PKG_NAME:=demo\nPKG_VERSION:=1.0\nPKG_RELEASE:=1\nPKG_LICENSE:=AGPL-3.0-or-later\n" +
			"define Package/demo\n  SECTION:=net\n  DEPENDS:=$(GO_ARCH_DEPENDS) +kmod-tun\n" + conflicts + "endef\n" +
			"define Package/demo/conffiles\n/etc/demo/\nendef\n" +
			"define Package/demo/install\n\t$(INSTALL_BIN) $(GO_PKG_BUILD_BIN_DIR)/demo $(1)/usr/sbin/\n\t$(INSTALL_BIN) ./files/demo.init $(1)/etc/init.d/demo\nendef\n"
	}
	for _, c := range []struct {
		name, manifest, makefile string
		diff                     bool
	}{
		{"both", withConflict, mk("  CONFLICTS:=demo-full\n"), false},
		{"neither", validManifest, mk(""), false},
		{"makefile lacks it", withConflict, mk(""), true},
		{"manifest lacks it", validManifest, mk("  CONFLICTS:=demo-full\n"), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir := writePkg(t, root, "demo", c.manifest, map[string]string{"demo.init": "#!/bin/sh\n"})
			if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(c.makefile), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := Load(filepath.Join(dir, "manifest"), root)
			if err != nil {
				t.Fatal(err)
			}
			if c.manifest == withConflict && strings.Join(m.Conflicts, " ") != "demo-full" {
				t.Errorf("conflicts %v", m.Conflicts)
			}
			diffs, err := CheckBuildroot(m)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(diffs, "\n")
			if has := strings.Contains(got, "conflicts:"); has != c.diff {
				t.Errorf("conflicts difference reported %v, want %v:\n%s", has, c.diff, got)
			}
			if !c.diff && got != "" {
				t.Errorf("unexpected differences:\n%s", got)
			}
		})
	}
}
