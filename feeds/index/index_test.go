package index

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/meshnode/meshnode/internal/golden"

	"github.com/meshnode/meshnode/feeds/ipk"
)

func opts() ipk.Options { return ipk.Options{ModTime: time.Unix(1700000000, 0)} }

func mkIPK(t testing.TB, c ipk.Control) Entry {
	t.Helper()
	var buf bytes.Buffer
	r, err := ipk.Write(&buf, &ipk.Package{Control: c, Files: []ipk.File{{Path: "/usr/share/" + c.Package, Data: []byte(c.Package)}}}, opts())
	if err != nil {
		t.Fatal(err)
	}
	return Entry{FileName: r.FileName, Data: buf.Bytes()}
}

// rawIPK builds an .ipk with a hand-written control file (archive/tar in
// GNU format is fine for this: only our reader sees it).
func rawIPK(t testing.TB, name, control string) Entry {
	t.Helper()
	tgz := func(files map[string]string, order ...string) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		for _, n := range order {
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Format: tar.FormatGNU}); err != nil {
				t.Fatal(err)
			}
			io.WriteString(tw, files[n])
		}
		tw.Close()
		var gb bytes.Buffer
		zw := gzip.NewWriter(&gb)
		zw.Write(tb.Bytes())
		zw.Close()
		return gb.Bytes()
	}
	data := string(tgz(map[string]string{"./x": "x"}, "./x"))
	ctl := string(tgz(map[string]string{"./control": control}, "./control"))
	return Entry{FileName: name, Data: tgz(map[string]string{"./debian-binary": "2.0\n", "./data.tar.gz": data, "./control.tar.gz": ctl},
		"./debian-binary", "./data.tar.gz", "./control.tar.gz")}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fixture(t testing.TB) []Entry {
	base := ipk.Control{Version: "1.0", Release: "1", Architecture: "mips_24kc", Maintainer: "Dev <d@example.org>",
		Source: "feeds/x", SourceName: "x", License: "MIT", LicenseFiles: "LICENSE", RequireUser: "x=1:x=1", Section: "net",
		Description: "Summary\nmore"}
	c := func(name, version string, arch string) ipk.Control {
		x := base
		x.Package, x.Version = name, version
		if arch != "" {
			x.Architecture = arch
		}
		return x
	}
	return []Entry{
		mkIPK(t, c("zeta", "1.0", "")),
		mkIPK(t, c("alpha", "1.10", "")),
		mkIPK(t, c("alpha", "1.9", "")),
		mkIPK(t, c("common", "2.0", "all")),
		mkIPK(t, c("kernel", "6.6.1", "")),
		mkIPK(t, c("libc", "1.2.5", "")),
	}
}

func TestBuildRecords(t *testing.T) {
	es := fixture(t)
	feed, err := Build("mips_24kc", es)
	if err != nil {
		t.Fatal(err)
	}
	s := string(feed.Packages)
	if !strings.HasSuffix(s, "\n\n") || strings.HasPrefix(s, "\n") {
		t.Errorf("Packages must end with a blank line:\n%q", s)
	}
	recs := strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n")
	var order []string
	for _, r := range recs {
		order = append(order, strings.SplitN(r, "\n", 3)[0]+" "+strings.SplitN(r, "\n", 3)[1])
	}
	want := []string{"Package: alpha Version: 1.9-r1", "Package: alpha Version: 1.10-r1", "Package: common Version: 2.0-r1", "Package: zeta Version: 1.0-r1"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Errorf("record order %q, want %q", order, want)
	}
	// One full record, byte for byte.
	e := es[3] // common
	wantRec := "Package: common\nVersion: 2.0-r1\nLicense: MIT\nSection: net\nArchitecture: all\nInstalled-Size: 10240\n" +
		"Filename: " + e.FileName + "\nSize: " + strconv.Itoa(len(e.Data)) + "\nSHA256sum: " + sum(e.Data) + "\n" +
		"Description:  Summary\n more"
	if recs[2] != wantRec {
		t.Errorf("record:\n%s\nwant:\n%s", recs[2], wantRec)
	}
	wantMan := "Package: common\nVersion: 2.0-r1\nSource: feeds/x\nSourceName: x\nLicense: MIT\nLicenseFiles: LICENSE\nSection: net\n" +
		"Require-User: x=1:x=1\nSourceDateEpoch: 1700000000\nMaintainer: Dev <d@example.org>\nArchitecture: all\nInstalled-Size: 10240\n" +
		"Filename: " + e.FileName + "\nSize: " + strconv.Itoa(len(e.Data)) + "\nSHA256sum: " + sum(e.Data) + "\n" +
		"Description:  Summary\n more\n\n"
	if !strings.Contains(string(feed.Manifest), "\n\n"+wantMan) {
		t.Errorf("manifest lacks record:\n%s\nin:\n%s", wantMan, feed.Manifest)
	}
	if strings.Contains(s, "kernel") || strings.Contains(s, "libc") {
		t.Error("kernel/libc indexed")
	}
	wantJSON := `{"architecture": "mips_24kc", "packages":{"alpha": "1.10-r1", "common": "2.0-r1", "zeta": "1.0-r1"}}` + "\n"
	if string(feed.IndexJSON) != wantJSON {
		t.Errorf("index.json:\n%s\nwant:\n%s", feed.IndexJSON, wantJSON)
	}
	// Packages.gz: gzip -9, no name, mtime 0, same content.
	gz := feed.PackagesGz
	if gz[3] != 0 || !bytes.Equal(gz[4:8], []byte{0, 0, 0, 0}) || gz[8] != 2 {
		t.Errorf("gzip header % x: want no name, mtime 0, XFL 2 (best)", gz[:10])
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if plain, _ := io.ReadAll(zr); !bytes.Equal(plain, feed.Packages) {
		t.Error("Packages.gz does not hold Packages")
	}
	again, _ := Build("mips_24kc", fixture(t))
	if !bytes.Equal(again.PackagesGz, feed.PackagesGz) || !bytes.Equal(again.Manifest, feed.Manifest) {
		t.Error("Build is not deterministic")
	}
}

func TestDroppedFieldsTakeContinuations(t *testing.T) {
	e := rawIPK(t, "odd_1_all.ipk", "Package: odd\nVersion: 1\nMaintainer: A\n B\nSourceX: y\n z\nArchitecture: all\nX-Keep: k\n kk\n")
	feed, err := Build("x86_64", []Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	want := "Package: odd\nVersion: 1\nArchitecture: all\nX-Keep: k\n kk\nFilename: odd_1_all.ipk\nSize: " + strconv.Itoa(len(e.Data)) +
		"\nSHA256sum: " + sum(e.Data) + "\n\n"
	if string(feed.Packages) != want {
		t.Errorf("Packages:\n%q\nwant:\n%q", feed.Packages, want)
	}
	if !strings.Contains(string(feed.Manifest), "Maintainer: A\n B\nSourceX: y\n z\n") {
		t.Errorf("manifest lost fields:\n%s", feed.Manifest)
	}
}

func TestDescriptionInsertPoint(t *testing.T) {
	e := rawIPK(t, "d_1_all.ipk", "Package: d\nVersion: 1\nArchitecture: all\nDescription: text\n more\nZ-After: 1\n")
	feed, err := Build("all", []Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(feed.Packages), "\nSHA256sum: "+sum(e.Data)+"\nDescription: text\n more\nZ-After: 1\n\n") {
		t.Errorf("fields not inserted before Description:\n%s", feed.Packages)
	}
}

func TestPaddingRule(t *testing.T) {
	build := func(n int) []byte {
		c := ipk.Control{Package: "p", Version: "1", Architecture: "all", Description: "d" + strings.Repeat("x", n)}
		feed, err := Build("all", []Entry{mkIPK(t, c)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePackages(feed.Packages); err != nil {
			t.Errorf("n=%d: %v", n, err)
		}
		return feed.Packages
	}
	// Each extra description byte adds one byte to Packages (give or take
	// a digit of Size), so aim at residue 110 and check a window around it.
	base := len(build(0))
	target := ((110-64-base)%128 + 128) % 128
	fired := map[int]bool{}
	for n := max(target-4, 0); n <= target+5; n++ {
		p := build(n)
		l := len(p)
		if strings.HasSuffix(string(p), "\n\n\n\n") {
			m := (64 + l - 2) % 128
			if m != 110 && m != 111 {
				t.Errorf("n=%d: padded although (64+%d)%%128 = %d", n, l-2, m)
			}
			fired[m] = true
		} else if m := (64 + l) % 128; m == 110 || m == 111 {
			t.Errorf("n=%d: (64+%d)%%128 = %d but not padded", n, l, m)
		}
	}
	if !fired[110] || !fired[111] {
		t.Errorf("padding never exercised: %v", fired)
	}
}

func TestBuildEmpty(t *testing.T) {
	feed, err := Build("aarch64_cortex-a53", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(feed.Packages) != 0 || string(feed.IndexJSON) != `{"architecture": "aarch64_cortex-a53", "packages":{}}`+"\n" {
		t.Errorf("empty feed: %q %q", feed.Packages, feed.IndexJSON)
	}
}

func TestBuildRejects(t *testing.T) {
	good := mkIPK(t, ipk.Control{Package: "a", Version: "1", Architecture: "mips_24kc"})
	other := mkIPK(t, ipk.Control{Package: "a", Version: "1", Architecture: "all", Description: "other"})
	other.FileName = "a_1_other.ipk"
	for _, tc := range []struct {
		name string
		arch string
		es   []Entry
		want string
	}{
		{"wrong arch", "x86_64", []Entry{good}, "neither"},
		{"bad arch", "mips 24kc", nil, "invalid architecture"},
		{"same version twice", "mips_24kc", []Entry{good, other}, "version 1 is in both"},
		{"same file twice", "mips_24kc", []Entry{good, good}, "given twice"},
		{"path in name", "mips_24kc", []Entry{{FileName: "sub/a.ipk", Data: good.Data}}, "base file name"},
		{"not ipk", "mips_24kc", []Entry{{FileName: "a.tar.gz", Data: good.Data}}, "not an .ipk"},
		{"garbage", "mips_24kc", []Entry{{FileName: "g.ipk", Data: []byte("junk")}}, "g.ipk: ipk:"},
		{"has Filename", "all", []Entry{rawIPK(t, "f.ipk", "Package: f\nVersion: 1\nArchitecture: all\nFilename: x\n")}, "already has a Filename"},
		{"bad name", "all", []Entry{rawIPK(t, "f.ipk", "Package: -f\nVersion: 1\nArchitecture: all\n")}, "invalid package name"},
		{"bad version", "all", []Entry{rawIPK(t, "f.ipk", "Package: f\nVersion: 1 2\nArchitecture: all\n")}, "whitespace"},
	} {
		if _, err := Build(tc.arch, tc.es); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParsePackagesRoundTrip(t *testing.T) {
	es := fixture(t)
	feed, err := Build("mips_24kc", es)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Entry{}
	for _, e := range es {
		byName[e.FileName] = e
	}
	for _, data := range [][]byte{feed.Packages, feed.Manifest} {
		recs, err := ParsePackages(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 4 {
			t.Fatalf("%d records", len(recs))
		}
		for _, r := range recs {
			e := byName[r.Filename]
			if e.Data == nil || r.Size != int64(len(e.Data)) || r.SHA256 != sum(e.Data) || r.Architecture == "" {
				t.Errorf("record %+v does not match its ipk", r)
			}
			if lines := strings.Split(string(data), "\n"); !strings.HasPrefix(lines[r.Line-1], "Package: "+r.Package) {
				t.Errorf("record line %d is %q", r.Line, lines[r.Line-1])
			}
		}
	}
	arch, pkgs, err := ParseIndexJSON(feed.IndexJSON)
	if err != nil || arch != "mips_24kc" || len(pkgs) != 3 || pkgs["alpha"] != "1.10-r1" {
		t.Errorf("index.json: %q %v %v", arch, pkgs, err)
	}
}

func TestParsePackagesErrors(t *testing.T) {
	const h = "0000000000000000000000000000000000000000000000000000000000000000"
	rec := func(extra string) string {
		return "Package: p\nVersion: 1\nArchitecture: all\nFilename: p.ipk\nSize: 10\nSHA256sum: " + h + "\n" + extra
	}
	if recs, err := ParsePackages([]byte("\n" + rec("") + "\n\n\n" + strings.Replace(rec(""), "p\n", "q\n", 1))); err != nil || len(recs) != 2 || recs[1].Line != 11 {
		t.Errorf("extra blank lines: %v %+v", err, recs)
	}
	if recs, err := ParsePackages(nil); err != nil || len(recs) != 0 {
		t.Errorf("empty: %v %v", err, recs)
	}
	for _, tc := range []struct{ in, want string }{
		{strings.Replace(rec(""), "SHA256sum: "+h+"\n", "", 1), `record 1 (package "p", line 1): missing SHA256sum`},
		{strings.Replace(rec(""), h, h+" ", 1), "line 6: SHA256sum"},
		{strings.Replace(rec(""), h, h[:63], 1), "exactly 64 hex"},
		{strings.Replace(rec(""), h, "g"+h[1:], 1), "exactly 64 hex"},
		{strings.Replace(rec(""), "Size: 10", "Size: 0x10", 1), "line 5: Size"},
		{strings.Replace(rec(""), "Size: 10", "Size: 99999999999999999999", 1), "out of range"},
		{strings.Replace(rec(""), "Filename: p.ipk\n", "", 1), "missing Filename"},
		{strings.Replace(rec(""), "Package: p\n", "", 1), "record 1 (line 1): missing Package"},
		{rec("") + "\n" + rec(""), `record 2 (package "p", line 8): version 1 already listed at line 1`},
		{rec("") + "\n" + rec("bad line\n"), `record 2 (package "p", line 8): line 14: no ':'`},
		{"Package: a b\nVersion: 1\n", "whitespace"},
	} {
		if _, err := ParsePackages([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want containing %q", tc.in, err, tc.want)
		}
	}
}

func TestParseIndexJSONErrors(t *testing.T) {
	for _, in := range []string{
		"", "{}", `{"packages":{}}`, `{"architecture": "", "packages":{}}`, `{"architecture": "x"}`,
		`{"architecture": "x", "packages":{}} {}`, `{"architecture": "x", "packages":{}, "extra": 1}`,
		`{"architecture": "x", "packages":{"a": 1}}`, "null", "[]", `{"architecture": null, "packages":{}}`,
	} {
		if _, _, err := ParseIndexJSON([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestGolden(t *testing.T) {
	feed, err := Build("mips_24kc", fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"Packages": feed.Packages, "Packages.manifest": feed.Manifest, "index.json": feed.IndexJSON} {
		goldenfile.Check(t, filepath.Join("testdata", name), got)
	}
	if goldenfile.Update() {
		writeSeed(t, "FuzzParsePackages", "packages", feed.Packages)
		writeSeed(t, "FuzzParsePackages", "manifest", feed.Manifest)
		writeSeed(t, "FuzzParsePackages", "bad-sha", []byte("Package: p\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256sum: 00 \n"))
		writeSeed(t, "FuzzParseIndexJSON", "index", feed.IndexJSON)
	}
}

func writeSeed(t *testing.T, fuzzName, seedName string, data []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
	if err := os.WriteFile(filepath.Join(dir, seedName), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzParsePackages(f *testing.F) {
	f.Add([]byte("Package: p\nVersion: 1\nArchitecture: all\nFilename: f\nSize: 1\nSHA256sum: " + strings.Repeat("a", 64) + "\n\n"))
	f.Add([]byte("\n\n \n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ParsePackages(data)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Package == "" || r.Filename == "" || len(r.SHA256) != 64 || r.Size < 0 || r.Line < 1 {
				t.Fatalf("bad record %+v", r)
			}
		}
	})
}

func FuzzParseIndexJSON(f *testing.F) {
	f.Add([]byte(`{"architecture": "x", "packages":{"a": "1"}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		arch, pkgs, err := ParseIndexJSON(data)
		if err == nil && (arch == "" || pkgs == nil) {
			t.Fatal("accepted without architecture or packages")
		}
	})
}
