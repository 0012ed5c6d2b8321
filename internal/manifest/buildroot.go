package manifest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Buildroot is what a package's OpenWrt buildroot Makefile says about the
// things the manifest also says. It is read with a small reader for the
// subset of make our Makefiles use (assignments, define blocks, install
// lines), not by running make: the SDK is not here.
type Buildroot struct {
	File      string
	Name      string
	Version   string
	Release   string
	License   string
	Section   string
	Arch      string   // "all" when PKGARCH:=all, else "native"
	Depends   []string // without the Go architecture guard and '+'
	Conflicts []string // CONFLICTS in define Package/<name>
	Provides  []string // PROVIDES in define Package/<name>
	Conffiles []string
	Installed []string // destination paths; a key directory as "<dir>/*"
	Tags      []string // GO_PKG_TAGS, sorted
}

var (
	assignRe  = regexp.MustCompile(`^\s*([A-Za-z0-9_./-]+)\s*(:=|\?=|=)\s*(.*)$`)
	varRefRe  = regexp.MustCompile(`\$\(([A-Za-z0-9_]+)\)`)
	installRe = regexp.MustCompile(`^\s*\$\((INSTALL_BIN|INSTALL_DATA|INSTALL_CONF|CP)\)\s+(.+)$`)
)

// ReadBuildroot parses packages/<name>/Makefile.
func ReadBuildroot(file string) (*Buildroot, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseBuildroot(file, data)
}

// ParseBuildroot parses Makefile text; file names it in errors.
func ParseBuildroot(file string, data []byte) (*Buildroot, error) {
	vars := map[string]string{}
	blocks := map[string][]string{}
	var cur string
	var inBlock bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if inBlock {
			if strings.TrimSpace(line) == "endef" {
				inBlock = false
				continue
			}
			blocks[cur] = append(blocks[cur], line)
			continue
		}
		if strings.HasPrefix(line, "define ") {
			cur = strings.TrimSpace(strings.TrimPrefix(line, "define "))
			inBlock = true
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := assignRe.FindStringSubmatch(line); m != nil {
			vars[m[1]] = strings.TrimSpace(m[3])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if inBlock {
		return nil, fmt.Errorf("%s: define %s has no endef", file, cur)
	}
	expand := func(s string) string {
		for i := 0; i < 4; i++ { // nested references, bounded
			s = varRefRe.ReplaceAllStringFunc(s, func(ref string) string {
				name := varRefRe.FindStringSubmatch(ref)[1]
				if name == "1" {
					return ""
				}
				if v, ok := vars[name]; ok {
					return v
				}
				return ref
			})
		}
		return s
	}
	b := &Buildroot{File: file, Name: vars["PKG_NAME"], Version: expand(vars["PKG_VERSION"]),
		Release: expand(vars["PKG_RELEASE"]), License: vars["PKG_LICENSE"], Arch: ArchNative}
	if b.Name == "" {
		return nil, fmt.Errorf("%s: no PKG_NAME", file)
	}
	// golang-package.mk passes GO_PKG_TAGS to go build as -tags.
	b.Tags = strings.FieldsFunc(expand(vars["GO_PKG_TAGS"]), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	sort.Strings(b.Tags)
	def, ok := blocks["Package/"+b.Name]
	if !ok {
		return nil, fmt.Errorf("%s: no 'define Package/%s'", file, b.Name)
	}
	for _, l := range def {
		m := assignRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		switch m[1] {
		case "DEPENDS":
			for _, d := range strings.Fields(m[3]) {
				if d == "$(GO_ARCH_DEPENDS)" {
					continue
				}
				b.Depends = append(b.Depends, strings.TrimPrefix(d, "+"))
			}
		case "CONFLICTS":
			b.Conflicts = append(b.Conflicts, strings.Fields(m[3])...)
		case "PROVIDES":
			b.Provides = append(b.Provides, strings.Fields(m[3])...)
		case "SECTION":
			b.Section = m[3]
		case "PKGARCH":
			if m[3] == "all" {
				b.Arch = ArchAll
			}
		}
	}
	for _, l := range blocks["Package/"+b.Name+"/conffiles"] {
		if l = strings.TrimSpace(l); l != "" {
			b.Conffiles = append(b.Conffiles, l)
		}
	}
	for _, l := range blocks["Package/"+b.Name+"/install"] {
		m := installRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		args := strings.Fields(expand(m[2]))
		if len(args) < 2 {
			return nil, fmt.Errorf("%s: install line without destination: %s", file, strings.TrimSpace(l))
		}
		dest := args[len(args)-1]
		for _, src := range args[:len(args)-1] {
			if strings.HasPrefix(src, "-") {
				continue
			}
			p := dest
			if strings.HasSuffix(dest, "/") {
				p = dest + path.Base(src)
			}
			b.Installed = append(b.Installed, path.Clean(p))
		}
	}
	sort.Strings(b.Installed)
	return b, nil
}

// CheckBuildroot compares a manifest with the Makefile beside it and lists
// every disagreement, so the SDK and `meshkit build` ship the same package.
func CheckBuildroot(m *Manifest) ([]string, error) {
	b, err := ReadBuildroot(filepath.Join(m.Dir, "Makefile"))
	if err != nil {
		return nil, err
	}
	var diffs []string
	diff := func(what, mv, bv string) {
		if mv != bv {
			diffs = append(diffs, fmt.Sprintf("%s: manifest says %q, Makefile says %q", what, mv, bv))
		}
	}
	diff("name", m.Name, b.Name)
	diff("version", m.Version, b.Version)
	diff("release", m.Release, b.Release)
	diff("license", m.License, b.License)
	diff("section", m.Section, b.Section)
	diff("arch", m.Arch, b.Arch)
	diff("depends", strings.Join(m.Depends, " "), strings.Join(b.Depends, " "))
	diff("conflicts", strings.Join(m.Conflicts, " "), strings.Join(b.Conflicts, " "))
	diff("provides", strings.Join(m.Provides, " "), strings.Join(b.Provides, " "))
	// Both builders must compile the same code: a lite binary from the SDK
	// with Nebula in it would not fit the devices it is made for.
	diff("build tags (GO_PKG_TAGS)", strings.Join(m.BuildTags(), " "), strings.Join(b.Tags, " "))

	want := m.InstalledPaths()
	for _, d := range m.UsignKeyDirs {
		want = append(want, d+"/*")
	}
	sort.Strings(want)
	diff("installed files", strings.Join(want, " "), strings.Join(b.Installed, " "))

	// Makefile conffiles = manifest conffiles + keep entries (ipkg-build
	// moves the ones the package does not ship to keep.d).
	wantConf := append(append([]string{}, m.Conffiles...), m.Keep...)
	sort.Strings(wantConf)
	gotConf := append([]string{}, b.Conffiles...)
	sort.Strings(gotConf)
	diff("conffiles+keep", strings.Join(wantConf, " "), strings.Join(gotConf, " "))
	return diffs, nil
}
