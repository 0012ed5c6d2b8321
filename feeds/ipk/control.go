// Package ipk writes OpenWrt .ipk packages exactly as opkg (23.05/24.10)
// expects them and reads them back, without the OpenWrt SDK.
//
// An .ipk is a gzip-compressed GNU tar (never ar) holding ./debian-binary,
// ./data.tar.gz and ./control.tar.gz, in ipkg-build's order. Both inner
// archives are gzip-compressed GNU tars with uid=gid=0, empty owner names,
// mtime = SOURCE_DATE_EPOCH and names like "./", "./etc/", "./etc/x". opkg
// cannot read PAX headers, so none are ever written and Read rejects them.
// See shared/docs/facts-openwrt.md §1–3 for the rules this package follows.
package ipk

import (
	"errors"
	"fmt"
	"strings"
)

// Format selects the OpenWrt release whose package conventions are used.
type Format int

const (
	// OpenWrt2410 (24.10, the default): Version "1.2.3-r1", Installed-Size
	// is the size of the uncompressed data tar including record padding.
	OpenWrt2410 Format = iota
	// OpenWrt2305 (23.05): Version "1.2.3-1", Installed-Size is the size
	// of data.tar.gz, and no URL field.
	OpenWrt2305
)

func (f Format) String() string {
	switch f {
	case OpenWrt2410:
		return "24.10"
	case OpenWrt2305:
		return "23.05"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

func (f Format) valid() bool { return f == OpenWrt2410 || f == OpenWrt2305 }

// Control holds the fields of a package's control file. Empty fields are
// not written. Installed-Size is computed by Write; SourceDateEpoch comes
// from Options.ModTime.
type Control struct {
	Package string
	Version string // upstream version without release, optional "N:" epoch
	Release string // bare release number, e.g. "1"; see FullVersion

	Depends      []string // each "name" or "name (>= 1.0)" or "a | b"
	Conflicts    []string
	Provides     []string
	Alternatives []string // "prio:/link/path:/target/path"

	Source       string
	SourceName   string
	License      string
	LicenseFiles string
	Section      string
	RequireUser  string // Require-User, e.g. "meshnode=420:meshnode=420"
	URL          string // written for OpenWrt2410 only, like the buildroot
	ABIVersion   string
	CPEID        string // CPE-ID
	Essential    bool
	Maintainer   string
	Architecture string // exact package arch (e.g. "mips_24kc") or "all"

	// Description may span lines; the first line is the summary. Blank
	// lines are dropped when written (see formatDescription).
	Description string
}

// FullVersion returns the Version field as written for format f:
// "1.2.3-r1" for OpenWrt2410, "1.2.3-1" for OpenWrt2305. Without a
// Release it is just Version.
func (c Control) FullVersion(f Format) string {
	if c.Release == "" {
		return c.Version
	}
	if f == OpenWrt2305 {
		return c.Version + "-" + c.Release
	}
	return c.Version + "-r" + c.Release
}

// FileName returns the canonical file name
// <Package>_<Version without epoch>_<Architecture>.ipk.
func FileName(c Control, f Format) string {
	v := c.FullVersion(f)
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return c.Package + "_" + v + "_" + c.Architecture + ".ipk"
}

// ValidName reports whether s is a usable package name: the opkg
// character set [A-Za-z0-9_.+-], and (our stricter rule) starting with a
// letter or digit, since a leading '-' reads as an opkg option and a
// leading '.' makes hidden files under /usr/lib/opkg/info.
func ValidName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && !strings.ContainsRune("_.+-", rune(s[i])) {
			return false
		}
	}
	return true
}

// ValidateControl checks c against what opkg and the feed tools accept.
// Errors name the offending field.
func ValidateControl(c Control) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("ipk: control field %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !ValidName(c.Package) {
		bad("Package", "%q must match [A-Za-z0-9][A-Za-z0-9_.+-]*", c.Package)
	}
	if err := checkVersion(c.Version); err != nil {
		bad("Version", "%q: %v", c.Version, err)
	}
	if c.Release != "" && !validVersionChars(c.Release) {
		bad("Release", "%q may only contain [A-Za-z0-9.+~] and must start with a letter or digit", c.Release)
	}
	if c.Architecture == "" {
		bad("Architecture", "is mandatory (package arch or \"all\")")
	} else {
		for i := 0; i < len(c.Architecture); i++ {
			if b := c.Architecture[i]; !isAlnum(b) && b != '_' && b != '-' {
				bad("Architecture", "%q may only contain [A-Za-z0-9_-]", c.Architecture)
				break
			}
		}
	}
	lists := []struct {
		name string
		v    []string
	}{{"Depends", c.Depends}, {"Conflicts", c.Conflicts}, {"Provides", c.Provides}, {"Alternatives", c.Alternatives}}
	for _, l := range lists {
		for _, e := range l.v {
			// Entries are joined with ", ", so a comma would split them.
			if strings.TrimSpace(e) == "" || strings.ContainsAny(e, ",\n\r") {
				bad(l.name, "entry %q is empty or contains a comma or newline", e)
			}
		}
	}
	single := []struct{ name, v string }{
		{"Source", c.Source}, {"SourceName", c.SourceName}, {"License", c.License},
		{"LicenseFiles", c.LicenseFiles}, {"Section", c.Section}, {"Require-User", c.RequireUser},
		{"URL", c.URL}, {"ABIVersion", c.ABIVersion}, {"CPE-ID", c.CPEID}, {"Maintainer", c.Maintainer},
	}
	for _, s := range single {
		if strings.ContainsAny(s.v, "\n\r") {
			bad(s.name, "must be a single line")
		}
	}
	if strings.ContainsRune(c.Description, '\r') {
		bad("Description", "contains a carriage return")
	}
	return errors.Join(errs...)
}

// checkVersion validates an upstream version: optional numeric epoch "N:",
// then [A-Za-z0-9.+~] starting with a letter or digit. '-' is refused
// because opkg takes everything after the last '-' as the revision, and
// '_' because it separates the parts of the file name.
func checkVersion(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	if i := strings.IndexByte(v, ':'); i >= 0 {
		epoch := v[:i]
		if epoch == "" || strings.Trim(epoch, "0123456789") != "" {
			return errors.New("epoch before ':' must be digits")
		}
		v = v[i+1:]
	}
	if !validVersionChars(v) {
		return errors.New("may only contain [A-Za-z0-9.+~] (plus an optional \"N:\" epoch), starting with a letter or digit; give the release in Release")
	}
	return nil
}

func validVersionChars(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !isAlnum(b) && b != '.' && b != '+' && b != '~' {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// controlText renders the control file in the buildroot field order
// (include/package-pack.mk), empty fields omitted, ending with "\n".
func controlText(c Control, f Format, sourceDateEpoch string, installedSize int64) []byte {
	var b strings.Builder
	list := func(l []string) string {
		out := make([]string, len(l))
		for i, e := range l {
			out[i] = strings.TrimSpace(e)
		}
		return strings.Join(out, ", ")
	}
	put := func(name, value string) {
		if value != "" {
			b.WriteString(name + ": " + value + "\n")
		}
	}
	put("Package", c.Package)
	put("Version", c.FullVersion(f))
	put("Depends", list(c.Depends))
	put("Conflicts", list(c.Conflicts))
	put("Provides", list(c.Provides))
	put("Alternatives", list(c.Alternatives))
	put("Source", c.Source)
	put("SourceName", c.SourceName)
	put("License", c.License)
	put("LicenseFiles", c.LicenseFiles)
	put("Section", c.Section)
	put("Require-User", c.RequireUser)
	put("SourceDateEpoch", sourceDateEpoch)
	if f == OpenWrt2410 {
		put("URL", c.URL)
	}
	put("ABIVersion", c.ABIVersion)
	put("CPE-ID", c.CPEID)
	if c.Essential {
		put("Essential", "yes")
	}
	put("Maintainer", c.Maintainer)
	put("Architecture", c.Architecture)
	put("Installed-Size", fmt.Sprint(installedSize))
	b.WriteString(formatDescription(c.Description))
	return []byte(b.String())
}

// formatDescription mirrors the buildroot's sed: "Description:" plus two
// spaces before the summary, and every continuation line indented by
// exactly one space. The facts are silent on blank lines; the buildroot
// would emit a line holding a lone space, which some parsers take as a
// record separator, so blank (or all-whitespace) lines are dropped.
func formatDescription(d string) string {
	var lines []string
	for _, l := range strings.Split(d, "\n") {
		l = strings.TrimSpace(l)
		if l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Description:  " + lines[0] + "\n")
	for _, l := range lines[1:] {
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

// Field is one control-file field. For a multi-line field Value holds
// the first line, then "\n" and each continuation line with its single
// leading space or tab removed. Line is the 1-based line the field starts on.
type Field struct {
	Name  string
	Value string
	Line  int
}

// SyntaxError reports a malformed control file or Packages record.
type SyntaxError struct {
	Line int // 1-based
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// ParseControl parses one RFC 822-style control paragraph: "Name: value"
// lines, continuation lines starting with a space or tab, and optional
// trailing blank lines. The first line's value has its leading blanks
// removed; nothing else is trimmed, so trailing whitespace stays visible
// (opkg rejects it in SHA256sum). Duplicate fields, a blank line followed
// by more fields, and NUL bytes are errors. A missing final newline is
// accepted, as opkg does.
func ParseControl(data []byte) ([]Field, error) {
	return parseFields(data, 1)
}

// parseFields parses a paragraph whose first line is numbered first.
func parseFields(data []byte, first int) ([]Field, error) {
	if len(data) == 0 {
		return nil, &SyntaxError{first, "empty control data"}
	}
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	var fields []Field
	seen := map[string]bool{}
	blankAt := 0
	for i, line := range strings.Split(text, "\n") {
		n := first + i
		if strings.IndexByte(line, 0) >= 0 {
			return nil, &SyntaxError{n, "NUL byte"}
		}
		if line == "" {
			if blankAt == 0 {
				blankAt = n
			}
			continue
		}
		if blankAt != 0 {
			return nil, &SyntaxError{n, fmt.Sprintf("field after blank line %d (more than one paragraph?)", blankAt)}
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(fields) == 0 {
				return nil, &SyntaxError{n, "continuation line before the first field"}
			}
			fields[len(fields)-1].Value += "\n" + line[1:]
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, &SyntaxError{n, fmt.Sprintf("no ':' in %q", clip(line))}
		}
		name := line[:colon]
		if !validFieldName(name) {
			return nil, &SyntaxError{n, fmt.Sprintf("invalid field name %q", clip(name))}
		}
		if seen[name] {
			return nil, &SyntaxError{n, fmt.Sprintf("duplicate field %s", name)}
		}
		seen[name] = true
		fields = append(fields, Field{Name: name, Value: strings.TrimLeft(line[colon+1:], " \t"), Line: n})
	}
	if len(fields) == 0 {
		return nil, &SyntaxError{first, "no fields"}
	}
	return fields, nil
}

// validFieldName: printable ASCII without space or colon, not starting
// with '#' or '-' (the Debian rule, which opkg's fields all satisfy).
func validFieldName(s string) bool {
	if s == "" || s[0] == '#' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Get returns the value of the named field, or "" when absent.
func Get(fields []Field, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
