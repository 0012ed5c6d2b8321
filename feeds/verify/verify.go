// Package verify checks a built opkg feed directory (one architecture) the
// way a careful user would before publishing it: signatures, index files
// against each other, and every package against the index. It is what
// `meshkit feed verify DIR` runs.
//
// The signed Packages file is the reference: Packages.gz, Packages.manifest,
// index.json and the .ipk files are compared with it, and a difference is
// reported on the file that disagrees. A signature that does not match is
// reported on the signed file (Packages, SHA256SUMS), which nothing else would
// name if it were the one changed. SHA256SUMS (signed with OpenPGP)
// independently pins every file, so a changed file is always named by at
// least its hash mismatch.
package verify

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
)

// Names of the index and signature files in a feed directory (facts §4).
const (
	Packages         = "Packages"
	PackagesGz       = "Packages.gz"
	PackagesManifest = "Packages.manifest"
	PackagesSig      = "Packages.sig"
	IndexJSON        = "index.json"
	SHA256Sums       = "SHA256SUMS"
	SHA256SumsAsc    = "SHA256SUMS.asc"
)

// Keys are the keys a feed may be signed with.
type Keys struct {
	Usign map[string]*usign.PublicKey // by fingerprint, as usign.LoadKeyDir returns
	PGP   *pgp.KeyRing                // nil: SHA256SUMS.asc cannot be trusted
}

// Problem is one integrity failure, tied to the file it was found in.
type Problem struct {
	File string // relative to the feed directory
	Msg  string
}

func (p Problem) String() string { return p.File + ": " + p.Msg }

// Report is the outcome of Feed.
type Report struct {
	Problems []Problem
	Checked  int // files in the feed directory that were examined
}

// OK reports whether the feed passed every check.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// feed is the state of one Feed run.
type feed struct {
	root    *os.Root
	files   map[string][]byte // regular files in the feed dir, by name
	sums    map[string]string // SHA-256 (hex) of files, computed once: ipks are megabytes
	keys    Keys
	report  Report
	missing map[string]bool // already reported missing, to say it once
}

// sha256 returns the hex SHA-256 of data, the content of the named file.
func (f *feed) sha256(name string, data []byte) string {
	if s, ok := f.sums[name]; ok {
		return s
	}
	sum := sha256.Sum256(data)
	if f.sums == nil {
		f.sums = map[string]string{}
	}
	f.sums[name] = hex.EncodeToString(sum[:])
	return f.sums[name]
}

func (f *feed) problem(file, format string, args ...any) {
	f.report.Problems = append(f.report.Problems, Problem{File: file, Msg: fmt.Sprintf(format, args...)})
}

// file returns a file of the feed dir; a missing file is reported once with
// why it was expected.
func (f *feed) file(name, why string) ([]byte, bool) {
	if data, ok := f.files[name]; ok {
		return data, true
	}
	if !f.missing[name] {
		f.missing[name] = true
		f.problem(name, "missing (%s)", why)
	}
	return nil, false
}

// Feed checks the feed directory dir. Every integrity failure becomes a
// Problem naming the file, in a fixed order (signatures, index files,
// packages in Packages order, unlisted files by name, SHA256SUMS); the
// error is only for a directory that cannot be read at all.
func Feed(dir string, keys Keys) (*Report, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("feed directory: %w", err)
	}
	defer root.Close()
	f := &feed{root: root, files: map[string][]byte{}, keys: keys, missing: map[string]bool{}}
	if err := f.readDir(); err != nil {
		return nil, fmt.Errorf("feed directory %s: %w", dir, err)
	}

	// Every feed has these; reported in this order when missing.
	for _, name := range []string{Packages, PackagesGz, PackagesManifest, PackagesSig, IndexJSON, SHA256Sums, SHA256SumsAsc} {
		f.file(name, "every feed has one")
	}
	f.checkPackagesSig()
	recs := f.parsePackages()
	f.checkPackagesGz()
	f.checkManifest(recs)
	arch := f.checkIndexJSON(recs)
	f.checkPackages(recs, arch)
	f.checkSHA256Sums()
	return &f.report, nil
}

// readDir loads every regular file of the feed dir. Feeds are a few MB;
// holding them avoids reading each file once per check. Subdirectories do
// not belong in a one-architecture feed and are reported.
func (f *feed) readDir() error {
	dir, err := f.root.Open(".")
	if err != nil {
		return err
	}
	entries, err := dir.ReadDir(-1)
	dir.Close()
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		// Stat through the root: follows symlinks, but only within the dir.
		fi, err := f.root.Stat(name)
		switch {
		case err != nil:
			f.problem(name, "cannot read: %v", unwrapPath(err))
			continue
		case fi.IsDir():
			f.problem(name, "unexpected directory in a feed directory")
			continue
		case !fi.Mode().IsRegular():
			f.problem(name, "not a regular file")
			continue
		}
		data, err := f.root.ReadFile(name)
		if err != nil {
			f.problem(name, "cannot read: %v", unwrapPath(err))
			continue
		}
		f.files[name] = data
		f.report.Checked++
	}
	return nil
}

// unwrapPath drops the *PathError wrapper: the problem already names the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (f *feed) checkPackagesSig() {
	sigData, ok := f.files[PackagesSig]
	if !ok {
		return
	}
	sig, err := usign.ParseSignature(sigData)
	if err != nil {
		f.problem(PackagesSig, "%v", err)
		return
	}
	key := f.keys.Usign[sig.Fingerprint()]
	if key == nil {
		f.problem(PackagesSig, "signed by key %s, which is not trusted", sig.Fingerprint())
		return
	}
	packages, ok := f.files[Packages]
	if !ok {
		return // reported as missing
	}
	// A mismatch is reported on the signed file: either side may have
	// changed, and SHA256SUMS tells which; naming Packages keeps a
	// tampered Packages from going unnamed.
	if err := usign.Verify(key, packages, sig); errors.Is(err, usign.ErrBadSignature) {
		f.problem(Packages, "does not match its signature in Packages.sig (key %s)", sig.Fingerprint())
	} else if err != nil {
		f.problem(PackagesSig, "%v", err)
	}
}

func (f *feed) parsePackages() []index.Record {
	data, ok := f.files[Packages]
	if !ok {
		return nil
	}
	recs, err := index.ParsePackages(data)
	if err != nil {
		f.problem(Packages, "%v", trimPrefix(err))
		return nil
	}
	return recs
}

// trimPrefix drops the "index: " package prefix: the problem names the file.
func trimPrefix(err error) string { return strings.TrimPrefix(err.Error(), "index: ") }

func (f *feed) checkPackagesGz() {
	gz, ok := f.files[PackagesGz]
	packages, ok2 := f.files[Packages]
	if !ok || !ok2 {
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		f.problem(PackagesGz, "not gzip data: %v", err)
		return
	}
	// opkg reads a single gzip member; so does this check.
	zr.Multistream(false)
	plain, err := io.ReadAll(zr)
	if err != nil {
		f.problem(PackagesGz, "corrupt gzip data: %v", err)
		return
	}
	if !bytes.Equal(plain, packages) {
		f.problem(PackagesGz, "does not decompress to Packages (%s)", firstDiff(plain, packages))
	}
}

// firstDiff describes where two texts first differ, by line.
func firstDiff(got, want []byte) string {
	n := 0
	for n < len(got) && n < len(want) && got[n] == want[n] {
		n++
	}
	line := 1 + bytes.Count(want[:n], []byte("\n"))
	switch {
	case n == len(got):
		return fmt.Sprintf("ends early, at line %d", line)
	case n == len(want):
		return fmt.Sprintf("has extra data after line %d", line-1)
	}
	return fmt.Sprintf("first difference on line %d", line)
}

// checkManifest compares the manifest with Packages record by record: the
// manifest minus the dropped fields must give exactly Packages' fields.
func (f *feed) checkManifest(recs []index.Record) {
	data, ok := f.files[PackagesManifest]
	if !ok || recs == nil {
		return
	}
	man, err := index.ParsePackages(data)
	if err != nil {
		f.problem(PackagesManifest, "%v", trimPrefix(err))
		return
	}
	byKey := make(map[string]index.Record, len(man))
	for _, m := range man {
		byKey[recordKey(m)] = m
	}
	inPackages := make(map[string]bool, len(recs))
	for _, r := range recs {
		inPackages[recordKey(r)] = true
		m, ok := byKey[recordKey(r)]
		if !ok {
			f.problem(PackagesManifest, "no record for %s %s, which Packages lists", r.Package, r.Version)
			continue
		}
		if d := fieldDiff(stripDropped(m.Fields), r.Fields); d != "" {
			f.problem(PackagesManifest, "record for %s %s (line %d) disagrees with Packages: %s", r.Package, r.Version, m.Line, d)
		}
	}
	for _, m := range man {
		if !inPackages[recordKey(m)] {
			f.problem(PackagesManifest, "record for %s %s (line %d) is not in Packages", m.Package, m.Version, m.Line)
		}
	}
}

func recordKey(r index.Record) string { return r.Package + "\x00" + r.Version }

// stripDropped removes the fields the buildroot strips from
// Packages.manifest to make Packages (facts §4; grep matches prefixes, so
// "Source" also takes SourceName and SourceDateEpoch).
func stripDropped(fields []ipk.Field) []ipk.Field {
	var out []ipk.Field
	for _, fl := range fields {
		keep := true
		for _, p := range []string{"Maintainer", "LicenseFiles", "Source", "SourceName", "Require", "SourceDateEpoch"} {
			if strings.HasPrefix(fl.Name, p) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, fl)
		}
	}
	return out
}

// fieldDiff names the first field where the manifest (m) and Packages (p)
// differ, or returns "".
func fieldDiff(m, p []ipk.Field) string {
	for i := 0; i < len(m) || i < len(p); i++ {
		switch {
		case i >= len(m):
			return fmt.Sprintf("lacks field %s", p[i].Name)
		case i >= len(p):
			return fmt.Sprintf("has extra field %s", m[i].Name)
		case m[i].Name != p[i].Name:
			return fmt.Sprintf("field %s where Packages has %s", m[i].Name, p[i].Name)
		case m[i].Value != p[i].Value:
			return fmt.Sprintf("%s %q, Packages has %q", m[i].Name, clip(m[i].Value), clip(p[i].Value))
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// checkIndexJSON compares index.json with Packages: the same package names,
// each with the highest version Packages has. It returns the feed's
// architecture ("" when index.json is unusable).
func (f *feed) checkIndexJSON(recs []index.Record) string {
	data, ok := f.files[IndexJSON]
	if !ok {
		return ""
	}
	arch, pkgs, err := index.ParseIndexJSON(data)
	if err != nil {
		f.problem(IndexJSON, "%v", strings.TrimPrefix(trimPrefix(err), "index.json: "))
		return ""
	}
	if recs == nil {
		return arch
	}
	want := map[string]string{}
	for _, r := range recs {
		if v, ok := want[r.Package]; !ok || ipk.CompareVersions(r.Version, v) > 0 {
			want[r.Package] = r.Version
		}
	}
	for _, name := range sortedKeys(want) {
		got, ok := pkgs[name]
		switch {
		case !ok:
			f.problem(IndexJSON, "lacks package %s, which Packages lists", name)
		case got != want[name]:
			f.problem(IndexJSON, "package %s has version %s, Packages has %s", name, got, want[name])
		}
	}
	for _, name := range sortedKeys(pkgs) {
		if _, ok := want[name]; !ok {
			f.problem(IndexJSON, "lists package %s, which is not in Packages", name)
		}
	}
	return arch
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkPackages checks every record's file against the record, and that
// every .ipk in the directory is listed.
func (f *feed) checkPackages(recs []index.Record, arch string) {
	listed := map[string]bool{}
	for _, r := range recs {
		listed[r.Filename] = true
		f.checkRecord(r, arch)
	}
	if recs == nil {
		return // Packages missing or unreadable: listing is unknowable
	}
	for _, name := range sortedFiles(f.files) {
		if strings.HasSuffix(name, ".ipk") && !listed[name] {
			f.problem(name, "not listed in Packages")
		}
	}
}

func (f *feed) checkRecord(r index.Record, arch string) {
	name := r.Filename
	data, ok := f.files[name]
	if !ok {
		if strings.Contains(name, "/") {
			// opkg would fetch <url>/<Filename>; our feeds are flat.
			f.problem(name, "listed in Packages (%s %s) outside the feed directory", r.Package, r.Version)
			return
		}
		f.file(name, "listed in Packages for "+r.Package+" "+r.Version)
		return
	}
	if int64(len(data)) != r.Size {
		f.problem(name, "size %d, Packages says %d", len(data), r.Size)
	}
	if sum := f.sha256(name, data); sum != r.SHA256 {
		f.problem(name, "SHA256 %s, Packages says %s", sum, r.SHA256)
	}
	// The signed SHA256 already pins every byte; the control file is what
	// must agree with the index, so the data archive is not inflated.
	info, err := ipk.ReadControl(bytes.NewReader(data))
	if err != nil {
		f.problem(name, "unreadable package: %v", strings.TrimPrefix(err.Error(), "ipk: "))
		return
	}
	for _, c := range []struct{ field, want string }{
		{"Package", r.Package},
		{"Version", r.Version},
		{"Architecture", r.Architecture},
	} {
		if got := ipk.Get(info.Fields, c.field); got != c.want {
			f.problem(name, "control has %s %q, Packages says %q", c.field, got, c.want)
		}
	}
	if arch != "" && r.Architecture != arch && r.Architecture != "all" {
		f.problem(name, "architecture %s in the %s feed", r.Architecture, arch)
	}
}

func sortedFiles(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkSHA256Sums verifies the PGP signature over SHA256SUMS, then that
// SHA256SUMS and the directory list the same files with the same hashes.
func (f *feed) checkSHA256Sums() {
	sumsData, haveSums := f.files[SHA256Sums]
	if asc, ok := f.files[SHA256SumsAsc]; ok && haveSums {
		if f.keys.PGP == nil {
			f.problem(SHA256SumsAsc, "not checked: no trusted PGP keys given")
		} else if _, err := f.keys.PGP.Verify(sumsData, asc); err != nil {
			var bad *pgp.BadSignatureError
			if errors.As(err, &bad) {
				// As for Packages.sig: name the signed file, which nothing
				// else would pin if it were the one changed.
				f.problem(SHA256Sums, "does not match its signature in SHA256SUMS.asc (PGP key %s)",
					strings.Join(bad.Issuers, ", "))
			} else {
				f.problem(SHA256SumsAsc, "%v", err)
			}
		}
	}
	if !haveSums {
		return
	}
	sums, err := pgp.ParseSHA256Sums(sumsData)
	if err != nil {
		f.problem(SHA256Sums, "%v", err)
		return
	}
	listed := map[string]bool{}
	for _, s := range sums {
		listed[s.Name] = true
		if s.Name == SHA256Sums || s.Name == SHA256SumsAsc {
			f.problem(SHA256Sums, "lists %s, which cannot be covered by it", s.Name)
			continue
		}
		data, ok := f.files[s.Name]
		if !ok {
			f.file(s.Name, "listed in SHA256SUMS")
			continue
		}
		if sum := f.sha256(s.Name, data); sum != s.SHA256 {
			f.problem(s.Name, "SHA256 %s, SHA256SUMS says %s", sum, s.SHA256)
		}
	}
	for _, name := range sortedFiles(f.files) {
		if name != SHA256Sums && name != SHA256SumsAsc && !listed[name] {
			f.problem(name, "not listed in SHA256SUMS")
		}
	}
}
