// Package manifest reads the declarative package definitions in
// packages/<name>/manifest.
//
// A manifest is a UCI file, the format every OpenWrt maintainer already
// reads: one `config package` section with the control fields, then one
// section per thing the package installs. Everything a package ships is
// listed there, so `meshkit build` needs no per-package code and the
// buildroot Makefile beside it can be checked against it.
package manifest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/internal/uci"
)

// Arch values a manifest may declare.
const (
	ArchAll    = "all"    // no binaries: one ipk serves every architecture
	ArchNative = "native" // built once per target architecture
)

// Manifest is one package definition.
type Manifest struct {
	Dir          string // packages/<name>
	File         string // packages/<name>/manifest, for error messages
	Name         string
	Version      string // upstream version, without release
	Release      string
	Section      string
	Category     string
	Title        string
	Description  string
	License      string
	LicenseFiles string
	URL          string
	Maintainer   string
	Arch         string // ArchAll or ArchNative
	Depends      []string
	Conflicts    []string // packages that cannot be installed with this one (opkg Conflicts)
	Provides     []string // virtual names other packages may depend on (opkg Provides)
	Conffiles    []string
	Keep         []string // /lib/upgrade/keep.d/<name> entries
	Init         string   // file under files/, installed as /etc/init.d/<name>
	UCIDefaults  []string // files under files/, installed in /etc/uci-defaults/
	Scripts      Scripts
	Binaries     []Binary
	Installs     []Install
	UsignKeyDirs []string // install the feed's usign public key as <dir>/<fingerprint>

	pkgLine int            // line of 'config package'
	lines   map[string]int // package option -> line, for errors
}

// Scripts are maintainer-script files under files/. Postinst and Prerm
// hold package logic and become postinst-pkg/prerm-pkg, run by OpenWrt's
// default_postinst/default_prerm.
type Scripts struct {
	Postinst, Prerm, Preinst, Postrm string
}

// Binary is a Go command built from cmd/<Cmd> and installed at Dest.
type Binary struct {
	Cmd  string
	Dest string
	Tags []string // Go build tags (`option tags 'lite'`), passed as -tags
	Line int      // of 'config binary'

	cmdLine, destLine, tagsLine int
}

// Key names the binary a build produces: the command, plus its build
// tags when it has any, so cmd/meshnode built with and without 'lite'
// are two binaries (out/bin/<arch>/meshnode and meshnode-lite).
func (b Binary) Key() string {
	if len(b.Tags) == 0 {
		return b.Cmd
	}
	return b.Cmd + "-" + strings.Join(b.Tags, "-")
}

// Install copies files/<Src> to Dest.
type Install struct {
	Src      string
	Dest     string
	Mode     os.FileMode
	Template bool // substitute @FEED_NAME@, @FEED_URL@, @USIGN_FINGERPRINT@, @PKG_VERSION@
	Line     int  // of 'config install'

	srcLine, destLine int
}

// FieldError names the manifest file, line and field that is wrong.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

var (
	// opkg accepts [A-Za-z0-9_.+-]; OpenWrt convention is lower case and a
	// leading alphanumeric, which also keeps file names unambiguous.
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.+-]*$`)
	versionRe = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
	releaseRe = regexp.MustCompile(`^[0-9]+$`)
	depRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.+-]*( *\([<>=]{1,2} *[0-9][A-Za-z0-9.+~:-]*\))?$`)
	cmdRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	tagRe     = regexp.MustCompile(`^[A-Za-z0-9_.]+$`) // what go/build accepts as a tag
)

// LoadAll reads every packages/*/manifest below root (the repository), sorted by name.
func LoadAll(root string) ([]*Manifest, error) {
	dirs, err := filepath.Glob(filepath.Join(root, "packages", "*", "manifest"))
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s: no package manifests found", filepath.Join(root, "packages"))
	}
	sort.Strings(dirs)
	var out []*Manifest
	seen := map[string]string{}
	for _, f := range dirs {
		m, err := Load(f, root)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[m.Name]; dup {
			return nil, &FieldError{File: f, Field: "name", Msg: fmt.Sprintf("package %q is also defined in %s", m.Name, prev)}
		}
		seen[m.Name] = f
		out = append(out, m)
	}
	return out, nil
}

// Load reads and validates one manifest. root is the repository root,
// used to check that Go commands exist.
func Load(file, root string) (*Manifest, error) {
	f, err := uci.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Dir: filepath.Dir(file), File: file, lines: map[string]int{}}
	var pkg *uci.Section
	for _, s := range f.Sections {
		switch s.Type {
		case "package":
			if pkg != nil {
				return nil, &FieldError{File: file, Line: s.Line, Msg: fmt.Sprintf("second 'config package' section (first at line %d)", pkg.Line)}
			}
			pkg = s
		case "binary":
			b := Binary{Line: s.Line, cmdLine: optLine(s, "cmd"), destLine: optLine(s, "dest"), tagsLine: optLine(s, "tags")}
			if b.Cmd, err = m.required(s, "cmd"); err != nil {
				return nil, err
			}
			if b.Dest, err = m.required(s, "dest"); err != nil {
				return nil, err
			}
			if v, ok := s.Get("tags"); ok {
				// Go accepts tags separated by commas (or, historically, spaces).
				b.Tags = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
				if len(b.Tags) == 0 {
					return nil, m.errAt(s, "tags", "empty: remove the option or name a build tag")
				}
			}
			m.Binaries = append(m.Binaries, b)
		case "install":
			in := Install{Line: s.Line, Mode: 0o644, srcLine: optLine(s, "src"), destLine: optLine(s, "dest")}
			if in.Src, err = m.required(s, "src"); err != nil {
				return nil, err
			}
			if in.Dest, err = m.required(s, "dest"); err != nil {
				return nil, err
			}
			if v, ok := s.Get("mode"); ok {
				mode, perr := strconv.ParseUint(v, 8, 32)
				if perr != nil || mode > 0o7777 {
					return nil, m.errAt(s, "mode", fmt.Sprintf("%q is not an octal file mode like 0644", v))
				}
				in.Mode = os.FileMode(mode)
			}
			if v, ok := s.Get("template"); ok {
				if in.Template, err = m.boolean(s, "template", v); err != nil {
					return nil, err
				}
			}
			m.Installs = append(m.Installs, in)
		case "usign_key":
			dir, err := m.required(s, "dir")
			if err != nil {
				return nil, err
			}
			m.UsignKeyDirs = append(m.UsignKeyDirs, dir)
		default:
			return nil, &FieldError{File: file, Line: s.Line, Msg: fmt.Sprintf("unknown section type %q (want package, binary, install or usign_key)", s.Type)}
		}
		if err := m.knownOptions(s); err != nil {
			return nil, err
		}
	}
	if pkg == nil {
		return nil, &FieldError{File: file, Msg: "no 'config package' section"}
	}
	if err := m.readPackage(pkg); err != nil {
		return nil, err
	}
	if err := m.validate(f, root); err != nil {
		return nil, err
	}
	return m, nil
}

var allowed = map[string][]string{
	"package": {"name", "version", "release", "section", "category", "title", "description", "license",
		"license_files", "url", "maintainer", "arch", "depends", "conflicts", "provides", "conffiles", "keep", "init",
		"uci_defaults", "postinst", "prerm", "preinst", "postrm"},
	"binary":    {"cmd", "dest", "tags"},
	"install":   {"src", "dest", "mode", "template"},
	"usign_key": {"dir"},
}

// knownOptions rejects misspelt options: a silently ignored "depend" would
// ship a package without its dependency.
func (m *Manifest) knownOptions(s *uci.Section) error {
	for _, o := range s.Options() {
		ok := false
		for _, a := range allowed[s.Type] {
			if o.Name == a {
				ok = true
				break
			}
		}
		if !ok {
			return &FieldError{File: m.File, Line: o.Line, Field: o.Name, Msg: fmt.Sprintf("unknown option in 'config %s' (known: %s)", s.Type, strings.Join(allowed[s.Type], ", "))}
		}
	}
	return nil
}

func (m *Manifest) readPackage(s *uci.Section) error {
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"name", &m.Name}, {"version", &m.Version}, {"release", &m.Release}, {"section", &m.Section},
		{"title", &m.Title}, {"description", &m.Description}, {"license", &m.License},
	} {
		if *f.dst, err = m.required(s, f.name); err != nil {
			return err
		}
	}
	m.Category, _ = s.Get("category")
	m.LicenseFiles, _ = s.Get("license_files")
	m.URL, _ = s.Get("url")
	m.Maintainer, _ = s.Get("maintainer")
	m.Arch, _ = s.Get("arch")
	m.Init, _ = s.Get("init")
	m.Scripts.Postinst, _ = s.Get("postinst")
	m.Scripts.Prerm, _ = s.Get("prerm")
	m.Scripts.Preinst, _ = s.Get("preinst")
	m.Scripts.Postrm, _ = s.Get("postrm")
	m.Depends = s.List("depends")
	m.Conflicts = s.List("conflicts")
	m.Provides = s.List("provides")
	m.Conffiles = s.List("conffiles")
	m.Keep = s.List("keep")
	m.UCIDefaults = s.List("uci_defaults")
	m.pkgLine = s.Line
	for _, o := range s.Options() {
		m.lines[o.Name] = o.Line
	}
	return nil
}

func (m *Manifest) validate(f *uci.File, root string) error {
	pe := func(field, msg string) error {
		return &FieldError{File: m.File, Line: m.line(field), Field: field, Msg: msg}
	}
	if !nameRe.MatchString(m.Name) {
		return pe("name", fmt.Sprintf("%q is not a valid opkg package name (lower-case letters, digits and _.+- , starting with a letter or digit)", m.Name))
	}
	if base := filepath.Base(m.Dir); base != m.Name {
		return pe("name", fmt.Sprintf("%q does not match its directory packages/%s", m.Name, base))
	}
	if !versionRe.MatchString(m.Version) {
		return pe("version", fmt.Sprintf("%q is not a version opkg accepts here (starts with a digit; letters, digits and .+~ only; no '-', the release goes in 'release')", m.Version))
	}
	if !releaseRe.MatchString(m.Release) {
		return pe("release", fmt.Sprintf("%q must be a decimal number", m.Release))
	}
	for _, field := range []struct{ name, v string }{{"title", m.Title}, {"section", m.Section}, {"license", m.License}} {
		if strings.ContainsAny(field.v, "\n\r") {
			return pe(field.name, "must be a single line")
		}
	}
	for _, d := range m.Depends {
		if !depRe.MatchString(d) {
			return pe("depends", fmt.Sprintf("%q is not a package name with an optional (op version)", d))
		}
	}
	for _, c := range m.Conflicts {
		if !nameRe.MatchString(c) {
			return pe("conflicts", fmt.Sprintf("%q is not a package name", c))
		}
		if c == m.Name {
			return pe("conflicts", "a package cannot conflict with itself")
		}
		for _, d := range m.Depends {
			if strings.Fields(d)[0] == c {
				return pe("conflicts", fmt.Sprintf("%s is also in depends", c))
			}
		}
	}
	for _, p := range m.Provides {
		if !nameRe.MatchString(p) {
			return pe("provides", fmt.Sprintf("%q is not a package name", p))
		}
		if p == m.Name || slices.Contains(m.Conflicts, p) {
			return pe("provides", fmt.Sprintf("%s is the package itself or one it conflicts with", p))
		}
	}
	switch m.Arch {
	case "":
		m.Arch = ArchAll
		if len(m.Binaries) > 0 {
			m.Arch = ArchNative
		}
	case ArchAll:
		if len(m.Binaries) > 0 {
			return pe("arch", "'all' but the package installs binaries; use 'native'")
		}
	case ArchNative:
	default:
		return pe("arch", fmt.Sprintf("%q: want 'all' or 'native'", m.Arch))
	}

	dests := map[string]int{}
	addDest := func(dest string, line int, field string) error {
		if err := checkDest(dest); err != nil {
			return &FieldError{File: m.File, Line: line, Field: field, Msg: err.Error()}
		}
		if prev, dup := dests[dest]; dup {
			return &FieldError{File: m.File, Line: line, Field: field, Msg: fmt.Sprintf("%s is already installed by line %d", dest, prev)}
		}
		dests[dest] = line
		return nil
	}
	for _, b := range m.Binaries {
		if !cmdRe.MatchString(b.Cmd) {
			return &FieldError{File: m.File, Line: b.cmdLine, Field: "cmd", Msg: fmt.Sprintf("%q is not a command name under cmd/", b.Cmd)}
		}
		if st, err := os.Stat(filepath.Join(root, "cmd", b.Cmd)); err != nil || !st.IsDir() {
			return &FieldError{File: m.File, Line: b.cmdLine, Field: "cmd", Msg: fmt.Sprintf("cmd/%s does not exist", b.Cmd)}
		}
		seenTag := map[string]bool{}
		for _, tag := range b.Tags {
			if !tagRe.MatchString(tag) {
				return &FieldError{File: m.File, Line: b.tagsLine, Field: "tags", Msg: fmt.Sprintf("%q is not a Go build tag (letters, digits, '_' and '.')", tag)}
			}
			if seenTag[tag] {
				return &FieldError{File: m.File, Line: b.tagsLine, Field: "tags", Msg: fmt.Sprintf("%q given twice", tag)}
			}
			seenTag[tag] = true
		}
		if err := addDest(b.Dest, b.destLine, "dest"); err != nil {
			return err
		}
	}
	for _, in := range m.Installs {
		if err := m.checkSrc(in.Src, in.srcLine, "src"); err != nil {
			return err
		}
		if err := addDest(in.Dest, in.destLine, "dest"); err != nil {
			return err
		}
	}
	if m.Init != "" {
		if err := m.checkSrc(m.Init, m.line("init"), "init"); err != nil {
			return err
		}
		if err := addDest("/etc/init.d/"+m.Name, m.line("init"), "init"); err != nil {
			return err
		}
	}
	for _, u := range m.UCIDefaults {
		if err := m.checkSrc(u, m.line("uci_defaults"), "uci_defaults"); err != nil {
			return err
		}
		if err := addDest("/etc/uci-defaults/"+path.Base(u), m.line("uci_defaults"), "uci_defaults"); err != nil {
			return err
		}
	}
	for _, sc := range []struct{ field, src string }{
		{"postinst", m.Scripts.Postinst}, {"prerm", m.Scripts.Prerm},
		{"preinst", m.Scripts.Preinst}, {"postrm", m.Scripts.Postrm},
	} {
		if sc.src == "" {
			continue
		}
		if err := m.checkSrc(sc.src, m.line(sc.field), sc.field); err != nil {
			return err
		}
	}
	for _, d := range m.UsignKeyDirs {
		if err := checkDest(d); err != nil {
			return pe("dir", err.Error())
		}
	}
	for _, c := range m.Conffiles {
		if _, ok := dests[c]; !ok && !strings.HasSuffix(c, "/") {
			return pe("conffiles", fmt.Sprintf("%s is not installed by this package", c))
		}
		if err := checkDest(strings.TrimSuffix(c, "/")); err != nil {
			return pe("conffiles", err.Error())
		}
	}
	for _, k := range m.Keep {
		if err := checkDest(strings.TrimSuffix(k, "/")); err != nil {
			return pe("keep", err.Error())
		}
	}
	if len(dests) == 0 && len(m.UsignKeyDirs) == 0 {
		return &FieldError{File: m.File, Line: m.pkgLine, Msg: "package installs nothing"}
	}
	return nil
}

func (m *Manifest) checkSrc(src string, line int, field string) error {
	if src == "" || path.IsAbs(src) || path.Clean(src) != src || strings.HasPrefix(src, "..") {
		return &FieldError{File: m.File, Line: line, Field: field, Msg: fmt.Sprintf("%q must be a clean path relative to files/", src)}
	}
	st, err := os.Stat(filepath.Join(m.Dir, "files", filepath.FromSlash(src)))
	if err != nil {
		return &FieldError{File: m.File, Line: line, Field: field, Msg: fmt.Sprintf("files/%s does not exist", src)}
	}
	if !st.Mode().IsRegular() {
		return &FieldError{File: m.File, Line: line, Field: field, Msg: fmt.Sprintf("files/%s is not a regular file", src)}
	}
	return nil
}

func checkDest(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q must be a clean absolute path on the router", p)
	}
	for _, c := range p {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("%q: only printable ASCII without spaces is allowed in installed paths", p)
		}
	}
	return nil
}

func (m *Manifest) required(s *uci.Section, name string) (string, error) {
	v, ok := s.Get(name)
	if !ok || strings.TrimSpace(v) == "" {
		return "", &FieldError{File: m.File, Line: s.Line, Field: name, Msg: fmt.Sprintf("missing in 'config %s'", s.Type)}
	}
	return v, nil
}

func (m *Manifest) boolean(s *uci.Section, name, v string) (bool, error) {
	switch v {
	case "1", "yes", "on", "true", "enabled":
		return true, nil
	case "0", "no", "off", "false", "disabled":
		return false, nil
	}
	return false, m.errAt(s, name, fmt.Sprintf("%q is not a boolean (1/0)", v))
}

func (m *Manifest) errAt(s *uci.Section, name, msg string) error {
	return &FieldError{File: m.File, Line: optLine(s, name), Field: name, Msg: msg}
}

// optLine is the line of an option, or of its section when it is absent.
func optLine(s *uci.Section, name string) int {
	if o := s.Option(name); o != nil {
		return o.Line
	}
	return s.Line
}

func (m *Manifest) line(field string) int {
	if l, ok := m.lines[field]; ok {
		return l
	}
	return m.pkgLine
}

// FullVersion is the opkg version for a release line: 24.10 and later
// write "-r<release>", 23.05 a bare "-<release>".
func (m *Manifest) FullVersion(openwrt2305 bool) string {
	if openwrt2305 {
		return m.Version + "-" + m.Release
	}
	return m.Version + "-r" + m.Release
}

// InstalledPaths lists every file path the package installs (not the
// generated key file, whose name depends on the key), sorted.
func (m *Manifest) InstalledPaths() []string {
	var out []string
	for _, b := range m.Binaries {
		out = append(out, b.Dest)
	}
	for _, in := range m.Installs {
		out = append(out, in.Dest)
	}
	if m.Init != "" {
		out = append(out, "/etc/init.d/"+m.Name)
	}
	for _, u := range m.UCIDefaults {
		out = append(out, "/etc/uci-defaults/"+path.Base(u))
	}
	sort.Strings(out)
	return out
}

// BuildTags lists the Go build tags of the package's binaries, sorted and
// without repeats: what the buildroot Makefile's GO_PKG_TAGS must say.
func (m *Manifest) BuildTags() []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range m.Binaries {
		for _, t := range b.Tags {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}
