package ipk

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

type entry struct {
	name string
	typ  byte
	data []byte
}

// tarOf builds a GNU tar with the package's own writer.
func tarOf(t testing.TB, es ...entry) []byte {
	t.Helper()
	tw := &tarWriter{modTime: testEpoch}
	for _, e := range es {
		typ, mode := e.typ, int64(0o644)
		if typ == 0 {
			typ = typeReg
		}
		if typ == typeDir {
			mode = 0o755
		}
		if err := tw.add(e.name, typ, mode, "", e.data); err != nil {
			t.Fatal(err)
		}
	}
	return tw.finish()
}

// paxTar builds a tar whose first member carries a PAX header of type typ.
func paxTar(t testing.TB, typ byte, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if typ == tar.TypeXGlobalHeader {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "global", PAXRecords: map[string]string{"comment": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX}
	if typ == tar.TypeXHeader {
		h.PAXRecords = map[string]string{"comment": "forces an x header"}
	}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	return buf.Bytes()
}

// parts returns the debian-binary, data.tar.gz and control.tar.gz of the
// golden test package.
func parts(t testing.TB) (deb, data, control []byte) {
	t.Helper()
	b, _ := mustWrite(t, testPackage(), testOpts())
	ms := rawMembers(t, gunzip(t, b))
	return ms[0].Data, ms[1].Data, ms[2].Data
}

func TestReadRoundTrip(t *testing.T) {
	p := testPackage()
	p.Prerm = []byte("echo bye\n")
	b, res := mustWrite(t, p, testOpts())
	info, err := ReadBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.Raw, res.ControlFile) {
		t.Errorf("Raw differs from the written control")
	}
	var fieldNames []string
	for _, f := range info.Fields {
		fieldNames = append(fieldNames, f.Name)
	}
	wantFields := []string{"Package", "Version", "Depends", "Source", "SourceName", "License", "LicenseFiles", "Section",
		"SourceDateEpoch", "URL", "Maintainer", "Architecture", "Installed-Size", "Description"}
	if !slices.Equal(fieldNames, wantFields) {
		t.Errorf("fields %q", fieldNames)
	}
	if d := Get(info.Fields, "Description"); d != "Test package for meshnode\nSecond line of the description." {
		t.Errorf("Description %q", d)
	}
	wantFiles := []string{"/", "/etc/", "/etc/config/", "/etc/config/meshnode-test", "/etc/init.d/", "/etc/init.d/meshnode-test",
		"/etc/meshnode/", "/usr/", "/usr/bin/", "/usr/bin/mnt", "/usr/sbin/", "/usr/sbin/meshnode-test"}
	if !slices.Equal(info.Files, wantFiles) {
		t.Errorf("Files %q", info.Files)
	}
	if !slices.Equal(info.Conffiles, []string{"/etc/config/meshnode-test"}) {
		t.Errorf("Conffiles %q", info.Conffiles)
	}
	keys := make([]string, 0, len(info.Scripts))
	for k := range info.Scripts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"postinst", "postinst-pkg", "prerm", "prerm-pkg"}) || string(info.Scripts["prerm-pkg"]) != "echo bye\n" {
		t.Errorf("Scripts %q", keys)
	}
	for _, group := range [][]Member{info.Outer, info.ControlMembers, info.DataMembers} {
		for _, m := range group {
			if m.UID != 0 || m.GID != 0 || m.Uname != "" || m.Gname != "" || m.ModTime != testEpoch || m.Magic != "ustar  \x00" {
				t.Errorf("member %+v", m)
			}
		}
	}
	if info.DataTarSize != res.InstalledSize {
		t.Errorf("DataTarSize %d, Installed-Size %d", info.DataTarSize, res.InstalledSize)
	}
}

func TestReadGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.ipk"))
	if len(files) < 2 {
		t.Fatal("golden .ipk files missing")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ReadBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := Get(info.Fields, "Package") + "_" + Get(info.Fields, "Version") + "_" + Get(info.Fields, "Architecture") + ".ipk"
		if filepath.Base(f) != name {
			t.Errorf("%s: control says %s", f, name)
		}
	}
}

func TestReadLenient(t *testing.T) {
	// No "./" prefixes, control first, no debian-binary, control
	// without a final newline: opkg accepts all of these.
	ctl := gzipped(tarOf(t, entry{name: "control", data: []byte("Package: a\nVersion: 1\nArchitecture: all")}))
	data := gzipped(tarOf(t, entry{name: "usr/", typ: typeDir}, entry{name: "usr/x", data: []byte("x")}))
	info, err := ReadBytes(gzipped(tarOf(t, entry{name: "control.tar.gz", data: ctl}, entry{name: "data.tar.gz", data: data})))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Files, []string{"/usr/", "/usr/x"}) || Get(info.Fields, "Architecture") != "all" {
		t.Errorf("info %+v", info)
	}
}

func TestReadMalformed(t *testing.T) {
	deb, data, control := parts(t)
	good, _ := mustWrite(t, testPackage(), testOpts())
	outer := func(es ...entry) []byte { return gzipped(tarOf(t, es...)) }
	ctlWith := func(text string) []byte {
		return gzipped(tarOf(t, entry{name: "./", typ: typeDir}, entry{name: "./control", data: []byte(text)}))
	}
	badSum := gunzip(t, good)
	badSum[0] ^= 1 // first header's name: checksum no longer matches
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	flipped := slices.Clone(good)
	flipped[len(flipped)-5] ^= 0xff // CRC32 trailer
	sparse := tarOf(t, entry{name: "./x", typ: 'S'})

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not gzip"},
		{"not gzip", []byte("hello, world"), "not gzip"},
		{"ar", []byte("!<arch>\ndebian-binary   "), "ar archive"},
		{"plain tar", gunzip(t, good), "not gzip"},
		{"gzip of text", gzipped(bytes.Repeat([]byte("not a tar "), 100)), "magic"},
		{"truncated half", good[:len(good)/2], "unexpected EOF"},
		{"truncated trailer", good[:len(good)-4], "unexpected EOF"},
		{"truncated by one", good[:len(good)-1], "unexpected EOF"},
		{"corrupt deflate", corrupt, "ipk:"},
		{"bad crc", flipped, "checksum"},
		{"bad tar checksum", gzipped(badSum), "checksum mismatch"},
		{"missing control", outer(entry{name: "./debian-binary", data: deb}, entry{name: "./data.tar.gz", data: data}), "no control.tar.gz"},
		{"missing data", outer(entry{name: "./debian-binary", data: deb}, entry{name: "./control.tar.gz", data: control}), "no data.tar.gz"},
		{"no ./control", outer(entry{name: "./data.tar.gz", data: data},
			entry{name: "./control.tar.gz", data: gzipped(tarOf(t, entry{name: "./postinst", data: []byte("x")}))}), "no ./control"},
		{"control not gzip", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: []byte("plain")}), "control.tar.gz"},
		{"control twice", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: control},
			entry{name: "control.tar.gz", data: control}), "twice"},
		{"control.tar.gz is a dir", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz/", typ: typeDir}), "not a regular file"},
		{"xz data", outer(entry{name: "./data.tar.xz", data: []byte("x")}, entry{name: "./control.tar.gz", data: control}), "gzip-compressed inner"},
		{"PAX x in outer", gzipped(paxTar(t, tar.TypeXHeader, "./control.tar.gz", control)), "PAX"},
		{"PAX g in outer", gzipped(paxTar(t, tar.TypeXGlobalHeader, "./control.tar.gz", control)), "PAX"},
		{"PAX in data", outer(entry{name: "./data.tar.gz", data: gzipped(paxTar(t, tar.TypeXHeader, "./x", []byte("x")))},
			entry{name: "./control.tar.gz", data: control}), "data.tar.gz: PAX"},
		{"PAX in control", outer(entry{name: "./data.tar.gz", data: data},
			entry{name: "./control.tar.gz", data: gzipped(paxTar(t, tar.TypeXHeader, "./control", []byte("Package: a\n")))}), "control.tar.gz: PAX"},
		{"sparse member", outer(entry{name: "./data.tar.gz", data: gzipped(sparse)}, entry{name: "./control.tar.gz", data: control}), "unsupported typeflag"},
		{"no architecture", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: ctlWith("Package: a\nVersion: 1\n")}), "Architecture"},
		{"bad control syntax", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: ctlWith("Package a\n")}), "./control: line 1"},
		{"empty control", outer(entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: ctlWith("")}), "empty control"},
		{"truncated inner", outer(entry{name: "./data.tar.gz", data: data[:len(data)-6]}, entry{name: "./control.tar.gz", data: control}), "data.tar.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := ReadBytes(tc.in)
			if err == nil {
				t.Fatalf("accepted: %+v", info)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestReadHugeControlMember(t *testing.T) {
	_, data, _ := parts(t)
	big := bytes.Repeat([]byte("#"), maxControlMember+1)
	ctl := gzipped(tarOf(t, entry{name: "./control", data: big}))
	_, err := ReadBytes(gzipped(tarOf(t, entry{name: "./data.tar.gz", data: data}, entry{name: "./control.tar.gz", data: ctl})))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("err = %v", err)
	}
}

func TestParseControl(t *testing.T) {
	fs, err := ParseControl([]byte("Package: a\nDescription:  sum\n line two\n\tline three\n \nVersion: 1 \n\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{"Package", "a", 1},
		{"Description", "sum\nline two\nline three\n", 2},
		{"Version", "1 ", 6},
	}
	if !slices.Equal(fs, want) {
		t.Errorf("got %+v\nwant %+v", fs, want)
	}
	if _, err := ParseControl([]byte("Package: a")); err != nil {
		t.Errorf("no final newline: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"\n\n", "no fields"},
		{" cont\nPackage: a\n", "line 1: continuation"},
		{"Package: a\nno colon\n", "line 2: no ':'"},
		{"Package: a\nPackage: b\n", "line 2: duplicate field Package"},
		{"Package: a\n\nVersion: 1\n", "line 3: field after blank line 2"},
		{"\nPackage: a\n", "line 2: field after blank line 1"},
		{"Pack age: a\n", "invalid field name"},
		{": a\n", "invalid field name"},
		{"-X: a\n", "invalid field name"},
		{"Package: a\x00\n", "NUL"},
	} {
		_, err := ParseControl([]byte(tc.in))
		var se *SyntaxError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &se) {
			t.Errorf("%q: err = %v, want SyntaxError containing %q", tc.in, err, tc.want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	ordered := []string{"0:0.9", "1.0~rc1", "1.0", "1.0-r1", "1.0-r2", "1.0-r10", "1.0a", "1.0+b", "1.00.1", "1.1", "1.10", "2", "1:0.1", "2:0"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	for _, eq := range [][2]string{{"1.0", "1.00"}, {"0:1", "1"}, {"01", "1"}} {
		if CompareVersions(eq[0], eq[1]) != 0 {
			t.Errorf("%q != %q", eq[0], eq[1])
		}
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add([]byte("Package: a\nVersion: 1\nDescription:  x\n y\n"))
	f.Add([]byte(" x\n"))
	f.Add([]byte("A:\n\nB:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, err := ParseControl(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, fl := range fields {
			if !validFieldName(fl.Name) || seen[fl.Name] || fl.Line < 1 {
				t.Fatalf("bad field %+v", fl)
			}
			seen[fl.Name] = true
		}
	})
}

func FuzzRead(f *testing.F) {
	good, _ := mustWrite(f, testPackage(), testOpts())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(gzipped([]byte("not a tar")))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Read(bytes.NewReader(data))
		if err == nil && (info.Raw == nil || Get(info.Fields, "Package") == "") {
			t.Fatalf("accepted without a control: %+v", info)
		}
	})
}

// TestSeedCorpora keeps testdata/fuzz in sync; -update rewrites it.
func TestSeedCorpora(t *testing.T) {
	if goldenfile.Update() {
		writeSeed(t, "FuzzParseControl", "valid", testPackageControl(t))
		writeSeed(t, "FuzzParseControl", "continuation-first", []byte(" x\nPackage: a\n"))
		writeSeed(t, "FuzzParseControl", "two-paragraphs", []byte("A: 1\n\nB: 2\n"))
		_, data, control := parts(t)
		writeSeed(t, "FuzzRead", "pax", gzipped(paxTar(t, tar.TypeXHeader, "./control.tar.gz", control)))
		writeSeed(t, "FuzzRead", "longname", gzipped(tarOf(t, entry{name: "./" + strings.Repeat("l", 120), data: data})))
	}
	for _, dir := range []string{"FuzzParseControl", "FuzzRead"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		if len(files) == 0 {
			t.Errorf("no seed corpus for %s (run go test -update)", dir)
		}
	}
}

func testPackageControl(t *testing.T) []byte {
	_, r := mustWrite(t, testPackage(), testOpts())
	return r.ControlFile
}

// TestReadControlSkipsData: the control-only reader sees the same control
// data and scripts as Read, lists no data files, and still rejects a
// truncated archive (the outer gzip is drained and its CRC checked).
func TestReadControlSkipsData(t *testing.T) {
	p := testPackage()
	p.Postinst = []byte("echo hi\n")
	b, res := mustWrite(t, p, testOpts())
	full, err := ReadBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := ReadControl(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ctl.Raw, res.ControlFile) || !slices.Equal(ctl.Fields, full.Fields) {
		t.Errorf("control differs from Read's")
	}
	if string(ctl.Scripts["postinst-pkg"]) != "echo hi\n" {
		t.Errorf("scripts %q", ctl.Scripts)
	}
	if len(ctl.Files) != 0 || ctl.DataTarSize != 0 {
		t.Errorf("data was read: %d files, %d bytes", len(ctl.Files), ctl.DataTarSize)
	}
	if ctl.DataGzSize != full.DataGzSize {
		t.Errorf("DataGzSize %d, want %d", ctl.DataGzSize, full.DataGzSize)
	}
	if _, err := ReadControl(bytes.NewReader(b[:len(b)-20])); err == nil {
		t.Error("truncated ipk accepted")
	}
}
