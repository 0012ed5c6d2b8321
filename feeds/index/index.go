// Package index builds and reads opkg feed indexes: Packages.manifest,
// Packages, Packages.gz and index.json, as the OpenWrt buildroot writes
// them (scripts/ipkg-make-index.sh, package/Makefile; facts-openwrt §4),
// in pure Go. Packages.sig is the usign signature over the uncompressed
// Packages and is made elsewhere (feeds/usign).
package index

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/internal/errfmt"
)

// Entry is one .ipk to index: its base file name and its bytes.
type Entry struct {
	FileName string
	Data     []byte
}

// Feed holds the index files of one feed directory.
type Feed struct {
	Packages   []byte // what opkg reads (and what Packages.sig signs)
	PackagesGz []byte // Packages, gzip -9, no name, mtime 0
	Manifest   []byte // Packages.manifest: full control data
	IndexJSON  []byte // index.json: package name -> version
}

type record struct {
	name, version, file string
	groups              []group // control fields with their raw lines
}

// group is one field: its raw first line and continuation lines.
type group struct {
	name  string
	lines []string
}

// Build indexes ipks for the feed of architecture arch. Packages named
// kernel or libc are skipped, as the buildroot does. Each control must
// have an Architecture of arch or "all". Records are sorted by package name,
// then by opkg version order; the same name and version twice is an error.
func Build(arch string, ipks []Entry) (*Feed, error) {
	if !validArch(arch) {
		return nil, errfmt.Errorf("index: invalid architecture %q", arch)
	}
	var recs []record
	files := map[string]bool{}
	for _, e := range ipks {
		if err := checkFileName(e.FileName); err != nil {
			return nil, err
		}
		if files[e.FileName] {
			return nil, errfmt.Errorf("index: %s given twice", e.FileName)
		}
		files[e.FileName] = true
		r, skip, err := makeRecord(arch, e)
		if err != nil {
			return nil, errfmt.Errorf("index: %s: %w", e.FileName, err)
		}
		if !skip {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b record) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return ipk.CompareVersions(a.version, b.version)
	})
	for i := 1; i < len(recs); i++ {
		if a, b := recs[i-1], recs[i]; a.name == b.name && ipk.CompareVersions(a.version, b.version) == 0 {
			return nil, errfmt.Errorf("index: package %s version %s is in both %s and %s", a.name, a.version, a.file, b.file)
		}
	}

	var manifest, packages bytes.Buffer
	for _, r := range recs {
		for _, g := range r.groups {
			for _, l := range g.lines {
				manifest.WriteString(l + "\n")
			}
			if !isDropped(g.name) {
				for _, l := range g.lines {
					packages.WriteString(l + "\n")
				}
			}
		}
		manifest.WriteString("\n")
		packages.WriteString("\n")
	}
	// Old usign mis-verified files of these sizes; the buildroot pads
	// them and so do we, so the output matches it byte for byte.
	if m := (64 + packages.Len()) % 128; m == 110 || m == 111 {
		packages.WriteString("\n\n")
	}

	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // the level is valid
	zw.Write(packages.Bytes())                              // bytes.Buffer writes cannot fail
	zw.Close()

	return &Feed{
		Packages:   packages.Bytes(),
		PackagesGz: gz.Bytes(),
		Manifest:   manifest.Bytes(),
		IndexJSON:  indexJSON(arch, recs),
	}, nil
}

func makeRecord(arch string, e Entry) (r record, skip bool, err error) {
	info, err := ipk.ReadControl(bytes.NewReader(e.Data))
	if err != nil {
		return r, false, err
	}
	r.name = ipk.Get(info.Fields, "Package")
	r.version = ipk.Get(info.Fields, "Version")
	r.file = e.FileName
	prefix, _, _ := strings.Cut(e.FileName, "_")
	if r.name == "kernel" || r.name == "libc" || prefix == "kernel" || prefix == "libc" {
		return r, true, nil
	}
	if !ipk.ValidName(r.name) {
		return r, false, errfmt.Errorf("invalid package name %q", r.name)
	}
	if strings.ContainsFunc(r.version, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
		return r, false, errfmt.Errorf("package %s: version %q contains whitespace or control characters", r.name, r.version)
	}
	if a := ipk.Get(info.Fields, "Architecture"); a != arch && a != "all" {
		return r, false, errfmt.Errorf("package %s: architecture %q is neither %q nor \"all\"", r.name, a, arch)
	}
	// A control that already has a field the indexer adds is refused.
	for _, f := range []string{"Filename", "Size", "SHA256sum"} {
		if ipk.Get(info.Fields, f) != "" {
			return r, false, errfmt.Errorf("package %s: control already has a %s field", r.name, f)
		}
	}
	sum := sha256.Sum256(e.Data)
	extra := group{name: "Filename", lines: []string{
		"Filename: " + e.FileName,
		"Size: " + strconv.Itoa(len(e.Data)),
		"SHA256sum: " + hex.EncodeToString(sum[:]),
	}}
	// Insert before Description (or at the end when there is none; the
	// shell indexer would then omit them, which opkg cannot use).
	inserted := false
	for _, g := range groupLines(info.Raw) {
		if g.name == "Description" && !inserted {
			r.groups = append(r.groups, extra)
			inserted = true
		}
		r.groups = append(r.groups, g)
	}
	if !inserted {
		r.groups = append(r.groups, extra)
	}
	return r, false, nil
}

// groupLines splits a control file (already checked by ipk.ParseControl)
// into fields, keeping each field's continuation lines with it so a
// dropped field never leaves its continuations behind.
func groupLines(raw []byte) []group {
	var gs []group
	for _, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(gs) > 0 {
			gs[len(gs)-1].lines = append(gs[len(gs)-1].lines, l)
			continue
		}
		name, _, _ := strings.Cut(l, ":")
		gs = append(gs, group{name: name, lines: []string{l}})
	}
	return gs
}

// isDropped tells whether the buildroot removes a field from Packages:
// grep -vE '^(Maintainer|LicenseFiles|Source|SourceName|Require|SourceDateEpoch)'.
// The grep matches prefixes, so "Source" also drops SourceName and
// SourceDateEpoch and "Require" drops Require-User; we apply it per field
// so continuation lines go with their field.
func isDropped(name string) bool {
	for _, p := range []string{"Maintainer", "LicenseFiles", "Source", "SourceName", "Require", "SourceDateEpoch"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// indexJSON writes index.json with the buildroot's exact spacing:
// {"architecture": "<arch>", "packages":{"<name>": "<version>", ...}}
// plus a newline; entries are separated by ", " in Packages order. When a
// name has several versions only the highest is listed (a JSON object
// holds one value per key; readers would keep the last anyway).
func indexJSON(arch string, recs []record) []byte {
	var b strings.Builder
	b.WriteString(`{"architecture": ` + jsonString(arch) + `, "packages":{`)
	first := true
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].name == r.name {
			continue // a higher version follows
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(jsonString(r.name) + ": " + jsonString(r.version))
	}
	b.WriteString("}}\n")
	return []byte(b.String())
}

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func validArch(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkFileName(n string) error {
	switch {
	case n == "" || n == ".ipk":
		return errors.New("index: empty file name")
	case strings.ContainsAny(n, "/\\"):
		return errfmt.Errorf("index: %q: want a base file name", n)
	case strings.ContainsFunc(n, func(c rune) bool { return c <= ' ' || c == 0x7f }):
		return errfmt.Errorf("index: %q: whitespace or control character in file name", n)
	case !strings.HasSuffix(n, ".ipk"):
		return errfmt.Errorf("index: %q: not an .ipk file name", n)
	}
	return nil
}

// Record is one package of a Packages or Packages.manifest file.
type Record struct {
	Fields       []ipk.Field // in file order; Line numbers count from the file start
	Package      string
	Version      string
	Architecture string
	Filename     string
	Size         int64
	SHA256       string // lowercase hex
	Line         int    // line of the record's first field
}

// ParsePackages parses a Packages (or Packages.manifest) file strictly
// enough to verify a feed: every record needs Package, Version,
// Architecture, Filename, a decimal Size and a SHA256sum of exactly 64
// hex digits (opkg rejects trailing whitespace there). The same package
// and version twice is an error. Errors name the record and line.
func ParsePackages(data []byte) ([]Record, error) {
	var recs []Record
	seen := map[string]int{} // name + "\x00" + version -> record line
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); {
		if lines[i] == "" {
			i++
			continue
		}
		start := i
		for i < len(lines) && lines[i] != "" {
			i++
		}
		para := strings.Join(lines[start:i], "\n") + "\n"
		r, err := parseRecord(para, start+1)
		if err != nil {
			return nil, errfmt.Errorf("index: record %d (%s): %w", len(recs)+1, recordName(para, start+1), err)
		}
		key := r.Package + "\x00" + r.Version
		if l, dup := seen[key]; dup {
			return nil, errfmt.Errorf("index: record %d (%s): version %s already listed at line %d", len(recs)+1, recordName(para, start+1), r.Version, l)
		}
		seen[key] = r.Line
		recs = append(recs, r)
	}
	return recs, nil
}

// recordName describes a record for error messages.
func recordName(para string, line int) string {
	for _, l := range strings.Split(para, "\n") {
		if v, ok := strings.CutPrefix(l, "Package:"); ok {
			return fmt.Sprintf("package %q, line %d", strings.TrimSpace(v), line)
		}
	}
	return fmt.Sprintf("line %d", line)
}

func parseRecord(para string, first int) (Record, error) {
	fields, err := ipk.ParseControl([]byte(para))
	if err != nil {
		var se *ipk.SyntaxError
		if errors.As(err, &se) {
			return Record{}, &ipk.SyntaxError{Line: se.Line + first - 1, Msg: se.Msg}
		}
		return Record{}, err
	}
	r := Record{Line: first}
	for i := range fields {
		fields[i].Line += first - 1
	}
	r.Fields = fields
	lineOf := func(name string) int {
		for _, f := range fields {
			if f.Name == name {
				return f.Line
			}
		}
		return first
	}
	for _, req := range []struct {
		name string
		dst  *string
	}{{"Package", &r.Package}, {"Version", &r.Version}, {"Architecture", &r.Architecture}, {"Filename", &r.Filename}} {
		v := ipk.Get(fields, req.name)
		if v == "" {
			return r, errfmt.Errorf("missing %s", req.name)
		}
		if strings.ContainsAny(v, " \t\n\r") {
			return r, errfmt.Errorf("line %d: %s %q contains whitespace", lineOf(req.name), req.name, v)
		}
		*req.dst = v
	}
	size := ipk.Get(fields, "Size")
	if size == "" {
		return r, errors.New("missing Size")
	}
	if strings.Trim(size, "0123456789") != "" {
		return r, errfmt.Errorf("line %d: Size %q is not a decimal number", lineOf("Size"), size)
	}
	if r.Size, err = strconv.ParseInt(size, 10, 64); err != nil {
		return r, errfmt.Errorf("line %d: Size %q: out of range", lineOf("Size"), size)
	}
	sum := ipk.Get(fields, "SHA256sum")
	if sum == "" {
		return r, errors.New("missing SHA256sum")
	}
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 64 {
		return r, errfmt.Errorf("line %d: SHA256sum %q is not exactly 64 hex digits", lineOf("SHA256sum"), sum)
	}
	r.SHA256 = strings.ToLower(sum)
	return r, nil
}

// ParseIndexJSON reads index.json and returns its architecture and its
// package name -> version map. Unknown keys and trailing data are errors.
// It uses json.Unmarshal, not a json.Decoder: the agent links this for
// bundle import, and the Decoder would be ~6 KB more of MIPS flash.
func ParseIndexJSON(data []byte) (arch string, pkgs map[string]string, err error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return "", nil, errfmt.Errorf("index: index.json: %w", err)
	}
	for k := range raw {
		if k != "architecture" && k != "packages" {
			return "", nil, errfmt.Errorf("index: index.json: unknown key %q", k)
		}
	}
	var v struct {
		Architecture *string
		Packages     map[string]string
	}
	if a, ok := raw["architecture"]; ok {
		if err := json.Unmarshal(a, &v.Architecture); err != nil {
			return "", nil, errfmt.Errorf("index: index.json: architecture: %w", err)
		}
	}
	if p, ok := raw["packages"]; ok {
		if err := json.Unmarshal(p, &v.Packages); err != nil {
			return "", nil, errfmt.Errorf("index: index.json: packages: %w", err)
		}
	}
	switch {
	case v.Architecture == nil || *v.Architecture == "":
		return "", nil, errors.New("index: index.json: missing architecture")
	case v.Packages == nil:
		return "", nil, errors.New("index: index.json: missing packages")
	}
	return *v.Architecture, v.Packages, nil
}
