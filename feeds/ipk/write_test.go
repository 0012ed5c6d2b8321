package ipk

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

func TestOuterArchive(t *testing.T) {
	b, _ := mustWrite(t, testPackage(), testOpts())
	if b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("not gzip: % x", b[:2])
	}
	// Deterministic gzip header: no name flag, mtime 0.
	if b[3] != 0 || !bytes.Equal(b[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header flags/mtime = % x, want no name and mtime 0", b[3:8])
	}
	outerTar := gunzip(t, b)
	if len(outerTar)%10240 != 0 {
		t.Errorf("outer tar is %d bytes, not a multiple of the 10240-byte record", len(outerTar))
	}
	ms := rawMembers(t, outerTar)
	if got, want := names(ms), []string{"./debian-binary", "./data.tar.gz", "./control.tar.gz"}; !slices.Equal(got, want) {
		t.Fatalf("outer members %q, want %q", got, want)
	}
	for _, m := range ms {
		checkHeaderBasics(t, "outer", m, testEpoch)
		if m.Block[156] != '0' || modeField(m) != "0000644\x00" {
			t.Errorf("outer %s: typeflag %q mode %q, want '0' 0000644", m.Name, m.Block[156], modeField(m))
		}
	}
	if string(ms[0].Data) != "2.0\n" {
		t.Errorf("debian-binary = %q", ms[0].Data)
	}
}

func TestDataArchive(t *testing.T) {
	b, _ := mustWrite(t, testPackage(), testOpts())
	_, _, data := innerArchives(t, b)
	if len(data)%10240 != 0 {
		t.Errorf("data tar is %d bytes, not record-padded", len(data))
	}
	ms := rawMembers(t, data)
	type want struct {
		name string
		typ  byte
		mode string
		link string
	}
	wants := []want{
		{"./", '5', "0000755", ""},
		{"./etc/", '5', "0000755", ""},
		{"./etc/config/", '5', "0000755", ""},
		{"./etc/config/meshnode-test", '0', "0000600", ""},
		{"./etc/init.d/", '5', "0000755", ""},
		{"./etc/init.d/meshnode-test", '0', "0000755", ""},
		{"./etc/meshnode/", '5', "0000700", ""},
		{"./usr/", '5', "0000755", ""},
		{"./usr/bin/", '5', "0000755", ""},
		{"./usr/bin/mnt", '2', "0000777", "../sbin/meshnode-test"},
		{"./usr/sbin/", '5', "0000755", ""},
		{"./usr/sbin/meshnode-test", '0', "0000755", ""},
	}
	if len(ms) != len(wants) {
		t.Fatalf("data members %q", names(ms))
	}
	for i, w := range wants {
		m := ms[i]
		checkHeaderBasics(t, "data", m, testEpoch)
		if m.Name != w.name || m.Block[156] != w.typ || modeField(m) != w.mode+"\x00" || m.Link != w.link {
			t.Errorf("data member %d = %q type %q mode %q link %q, want %+v", i, m.Name, m.Block[156], modeField(m), m.Link, w)
		}
		if w.typ != '0' && len(m.Data) != 0 {
			t.Errorf("%s: non-regular member with data", m.Name)
		}
	}
	if got := string(ms[11].Data); got != "#!/bin/sh\necho test\n" {
		t.Errorf("binary content %q", got)
	}
}

func TestSiblingOrderIsDepthFirst(t *testing.T) {
	// Siblings sort by name ("a" < "a-c" < "a.b") and a directory's
	// contents follow it directly, like GNU tar --sort=name; a plain sort
	// of full paths would put "./x/a-c" and "./x/a.b" before "./x/a/".
	p := &Package{Control: testPackage().Control, Files: []File{
		{Path: "/x/a.b", Data: []byte("1")},
		{Path: "/x/a/z", Data: []byte("2")},
		{Path: "/x/a-c", Data: []byte("3")},
	}}
	b, _ := mustWrite(t, p, testOpts())
	_, _, data := innerArchives(t, b)
	want := []string{"./", "./x/", "./x/a/", "./x/a/z", "./x/a-c", "./x/a.b"}
	if got := names(rawMembers(t, data)); !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

func TestControlArchive(t *testing.T) {
	p := testPackage()
	p.Prerm = []byte("echo prerm\n")
	p.Preinst = []byte("#!/bin/sh\necho preinst\n")
	p.Postrm = []byte("#!/bin/sh\necho postrm\n")
	b, res := mustWrite(t, p, testOpts())
	_, control, _ := innerArchives(t, b)
	if len(control)%10240 != 0 {
		t.Errorf("control tar is %d bytes, not record-padded", len(control))
	}
	ms := rawMembers(t, control)
	wantNames := []string{"./", "./conffiles", "./control", "./postinst", "./postinst-pkg", "./postrm", "./preinst", "./prerm", "./prerm-pkg"}
	if got := names(ms); !slices.Equal(got, wantNames) {
		t.Fatalf("control members %q, want %q", got, wantNames)
	}
	contents := map[string]string{}
	for _, m := range ms {
		checkHeaderBasics(t, "control", m, testEpoch)
		want := "0000755\x00"
		if m.Name == "./control" || m.Name == "./conffiles" {
			want = "0000644\x00"
		}
		if modeField(m) != want {
			t.Errorf("control %s: mode %q, want %q", m.Name, modeField(m), want)
		}
		contents[m.Name] = string(m.Data)
	}
	if contents["./conffiles"] != "/etc/config/meshnode-test\n" {
		t.Errorf("conffiles = %q", contents["./conffiles"])
	}
	if contents["./control"] != string(res.ControlFile) {
		t.Errorf("./control differs from Result.ControlFile")
	}
	if contents["./postinst-pkg"] != string(p.Postinst) || contents["./prerm-pkg"] != string(p.Prerm) ||
		contents["./preinst"] != string(p.Preinst) || contents["./postrm"] != string(p.Postrm) {
		t.Errorf("package scripts not shipped as written")
	}
	if contents["./postinst"] != postinstScript || contents["./prerm"] != prermScript {
		t.Errorf("generated scripts missing")
	}
}

func TestMinimalControlArchive(t *testing.T) {
	p := &Package{Control: Control{Package: "a", Version: "1", Architecture: "all"}}
	b, res := mustWrite(t, p, Options{})
	_, control, data := innerArchives(t, b)
	if got, want := names(rawMembers(t, control)), []string{"./", "./control", "./postinst", "./prerm"}; !slices.Equal(got, want) {
		t.Errorf("control members %q, want %q", got, want)
	}
	dms := rawMembers(t, data)
	if got := names(dms); !slices.Equal(got, []string{"./"}) {
		t.Errorf("data members %q", got)
	}
	checkHeaderBasics(t, "data", dms[0], 0) // zero ModTime -> mtime 0
	want := "Package: a\nVersion: 1\nArchitecture: all\nInstalled-Size: 10240\n"
	if string(res.ControlFile) != want {
		t.Errorf("control:\n%s\nwant:\n%s", res.ControlFile, want)
	}
}

func fullControl() Control {
	return Control{
		Package: "meshnode", Version: "2:1.2.3", Release: "4",
		Depends: []string{"libc", "kmod-tun (>= 6.6)"}, Conflicts: []string{"olsrd"}, Provides: []string{"mesh-agent"},
		Alternatives: []string{"300:/usr/bin/mesh:/usr/sbin/meshnode"},
		Source:       "packages/meshnode", SourceName: "meshnode", License: "GPL-2.0-only", LicenseFiles: "LICENSE",
		Section: "net", RequireUser: "meshnode=420:meshnode=420", URL: "https://example.org/", ABIVersion: "1",
		CPEID: "cpe:/a:meshnode:meshnode", Essential: true, Maintainer: "Dev <dev@example.org>",
		Architecture: "mips_24kc", Description: "  Summary line\n\n   indented more\n\t\n last  ",
	}
}

func TestControlFieldOrder(t *testing.T) {
	p := &Package{Control: fullControl(), Files: []File{{Path: "/usr/sbin/meshnode", Mode: 0o755, Data: []byte("x")}}}
	_, r2410 := mustWrite(t, p, testOpts())
	want := `Package: meshnode
Version: 2:1.2.3-r4
Depends: libc, kmod-tun (>= 6.6)
Conflicts: olsrd
Provides: mesh-agent
Alternatives: 300:/usr/bin/mesh:/usr/sbin/meshnode
Source: packages/meshnode
SourceName: meshnode
License: GPL-2.0-only
LicenseFiles: LICENSE
Section: net
Require-User: meshnode=420:meshnode=420
SourceDateEpoch: 1700000000
URL: https://example.org/
ABIVersion: 1
CPE-ID: cpe:/a:meshnode:meshnode
Essential: yes
Maintainer: Dev <dev@example.org>
Architecture: mips_24kc
Installed-Size: 10240
Description:  Summary line
 indented more
 last
`
	if got := string(r2410.ControlFile); got != want {
		t.Errorf("24.10 control:\n%s\nwant:\n%s", got, want)
	}
	if r2410.FileName != "meshnode_1.2.3-r4_mips_24kc.ipk" || r2410.Version != "2:1.2.3-r4" {
		t.Errorf("FileName %q Version %q", r2410.FileName, r2410.Version)
	}

	b, r2305 := mustWrite(t, p, Options{Format: OpenWrt2305, ModTime: testOpts().ModTime})
	info, err := ReadBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	want2305 := strings.Replace(want, "Version: 2:1.2.3-r4", "Version: 2:1.2.3-4", 1)
	want2305 = strings.Replace(want2305, "URL: https://example.org/\n", "", 1)
	want2305 = strings.Replace(want2305, "Installed-Size: 10240", "Installed-Size: "+itoa(info.DataGzSize), 1)
	if got := string(r2305.ControlFile); got != want2305 {
		t.Errorf("23.05 control:\n%s\nwant:\n%s", got, want2305)
	}
	if r2305.FileName != "meshnode_1.2.3-4_mips_24kc.ipk" {
		t.Errorf("23.05 FileName %q", r2305.FileName)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestInstalledSize(t *testing.T) {
	big := make([]byte, 20000)
	for i := range big {
		big[i] = byte(i * 7 % 251) // compressible but not trivially
	}
	for _, tc := range []struct {
		name  string
		files []File
		tar   int64
	}{
		{"tiny", []File{{Path: "/etc/x", Data: []byte("x")}}, 10240},
		{"20000 bytes", []File{{Path: "/usr/bin/big", Mode: 0o755, Data: big}}, 30720},
	} {
		p := &Package{Control: Control{Package: "p", Version: "1", Release: "1", Architecture: "all"}, Files: tc.files}
		b, r := mustWrite(t, p, testOpts())
		_, _, data := innerArchives(t, b)
		if r.InstalledSize != tc.tar || int64(len(data)) != tc.tar {
			t.Errorf("%s 24.10: Installed-Size %d, data tar %d, want %d", tc.name, r.InstalledSize, len(data), tc.tar)
		}
		if !strings.Contains(string(r.ControlFile), "\nInstalled-Size: "+itoa(tc.tar)+"\n") {
			t.Errorf("%s: control lacks Installed-Size %d:\n%s", tc.name, tc.tar, r.ControlFile)
		}
		b, r = mustWrite(t, p, Options{Format: OpenWrt2305, ModTime: testOpts().ModTime})
		outer := rawMembers(t, gunzip(t, b))
		gzSize := int64(len(outer[1].Data))
		if outer[1].Name != "./data.tar.gz" || r.InstalledSize != gzSize {
			t.Errorf("%s 23.05: Installed-Size %d, data.tar.gz is %d bytes", tc.name, r.InstalledSize, gzSize)
		}
		info, err := ReadBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if info.DataGzSize != gzSize || info.DataTarSize != tc.tar || Get(info.Fields, "Installed-Size") != itoa(gzSize) {
			t.Errorf("%s: Read sizes %d/%d, field %q", tc.name, info.DataGzSize, info.DataTarSize, Get(info.Fields, "Installed-Size"))
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, _ := mustWrite(t, testPackage(), testOpts())
	b, _ := mustWrite(t, testPackage(), testOpts())
	if !bytes.Equal(a, b) {
		t.Fatal("two writes differ")
	}
	// Input order of Files and Conffiles does not matter.
	p := testPackage()
	slices.Reverse(p.Files)
	c, _ := mustWrite(t, p, testOpts())
	if !bytes.Equal(a, c) {
		t.Error("file order changes the output")
	}
	d, _ := mustWrite(t, testPackage(), Options{ModTime: time.Unix(testEpoch, 999).In(time.FixedZone("x", 3600))})
	if !bytes.Equal(a, d) {
		t.Error("sub-second part or zone of ModTime changes the output")
	}
}

func TestGolden(t *testing.T) {
	for _, f := range []Format{OpenWrt2410, OpenWrt2305} {
		b, r := mustWrite(t, testPackage(), Options{Format: f, ModTime: testOpts().ModTime})
		golden(t, r.FileName, b)
		golden(t, strings.TrimSuffix(r.FileName, ".ipk")+".control", r.ControlFile)
		if goldenfile.Update() {
			writeSeed(t, "FuzzRead", "golden-"+f.String(), b)
		}
	}
}

func TestLongPaths(t *testing.T) {
	long := "/usr/share/meshnode/" + strings.Repeat("d", 60) + "/" + strings.Repeat("f", 90)
	target := "/" + strings.Repeat("t", 120)
	p := &Package{Control: testPackage().Control, Files: []File{
		{Path: long, Data: []byte("long")},
		{Path: "/usr/bin/l", Mode: fs.ModeSymlink, Link: target},
	}}
	b, _ := mustWrite(t, p, testOpts())
	_, _, data := innerArchives(t, b)
	ms := rawMembers(t, data) // fails on PAX
	if got := ms[len(ms)-1]; got.Name != "."+long || string(got.Data) != "long" {
		t.Errorf("long member = %q", got.Name)
	}
	// The raw blocks include GNU 'L' and 'K' records with clean headers.
	var sawL, sawK bool
	for off := 0; off+512 <= len(data); off += 512 {
		blk := data[off : off+512]
		if string(blk[257:265]) != "ustar  \x00" {
			continue
		}
		switch blk[156] {
		case 'L':
			sawL = true
		case 'K':
			sawK = true
		default:
			continue
		}
		checkHeaderBasics(t, "longlink", rawMember{Block: [512]byte(blk)}, testEpoch)
	}
	if !sawL || !sawK {
		t.Errorf("GNU long name records: L=%v K=%v", sawL, sawK)
	}
	info, err := ReadBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(info.Files, long) || info.DataMembers[len(info.DataMembers)-1].Name != "."+long {
		t.Errorf("Read lost the long name: %q", info.Files)
	}
	found := false
	for _, m := range info.DataMembers {
		found = found || m.Link == target
	}
	if !found {
		t.Errorf("Read lost the long link target")
	}
	// archive/tar agrees and sees GNU format, never PAX.
	tr := tar.NewReader(bytes.NewReader(data))
	var gotNames []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Format != tar.FormatGNU || h.PAXRecords != nil {
			t.Errorf("%s: archive/tar sees format %v, PAX %v", h.Name, h.Format, h.PAXRecords)
		}
		gotNames = append(gotNames, h.Name)
	}
	if !slices.Contains(gotNames, "."+long) {
		t.Errorf("archive/tar names %q", gotNames)
	}
}

func TestArchiveTarCrossCheck(t *testing.T) {
	b, _ := mustWrite(t, testPackage(), testOpts())
	_, control, data := innerArchives(t, b)
	for name, tb := range map[string][]byte{"control": control, "data": data, "outer": gunzip(t, b)} {
		tr := tar.NewReader(bytes.NewReader(tb))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: archive/tar: %v", name, err)
			}
			if h.Format != tar.FormatGNU || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" ||
				h.ModTime.Unix() != testEpoch || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
				t.Errorf("%s %s: %+v", name, h.Name, h)
			}
		}
	}
}

// TestGNUTar lists the archives with the real GNU tar when installed.
func TestGNUTar(t *testing.T) {
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("tar not installed")
	}
	if out, err := exec.Command(tarBin, "--version").Output(); err != nil || !strings.Contains(string(out), "GNU tar") {
		t.Skip("not GNU tar")
	}
	p := testPackage()
	p.Files = append(p.Files, File{Path: "/usr/share/" + strings.Repeat("n", 150), Data: []byte("x")})
	b, _ := mustWrite(t, p, testOpts())
	dir := t.TempDir()
	ipkPath := filepath.Join(dir, "p.ipk")
	if err := os.WriteFile(ipkPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tarBin, "-xzf", ipkPath, "-C", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	out, err = exec.Command(tarBin, "--numeric-owner", "-tvzf", filepath.Join(dir, "data.tar.gz")).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -t data: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"drwxr-xr-x 0/0", "./usr/share/" + strings.Repeat("n", 150), "./usr/bin/mnt -> ../sbin/meshnode-test", "drwx------ 0/0"} {
		if !strings.Contains(s, want) {
			t.Errorf("GNU tar listing lacks %q:\n%s", want, s)
		}
	}
	if out, err := exec.Command(tarBin, "-tzf", filepath.Join(dir, "control.tar.gz")).CombinedOutput(); err != nil {
		t.Fatalf("tar -t control: %v\n%s", err, out)
	}
}

func TestWriteRejects(t *testing.T) {
	base := func() *Package {
		return &Package{Control: Control{Package: "p", Version: "1", Architecture: "all"}}
	}
	file := func(path string) File { return File{Path: path, Data: []byte("x")} }
	for _, tc := range []struct {
		name   string
		mutate func(*Package)
		want   string
	}{
		{"duplicate path", func(p *Package) { p.Files = []File{file("/a"), file("/a")} }, "duplicate"},
		{"dir listed twice", func(p *Package) {
			p.Files = []File{{Path: "/d", Mode: fs.ModeDir}, {Path: "/d", Mode: fs.ModeDir}}
		}, "duplicate"},
		{"relative", func(p *Package) { p.Files = []File{file("etc/x")} }, "absolute"},
		{"dot-dot", func(p *Package) { p.Files = []File{file("/etc/../x")} }, "clean"},
		{"dot", func(p *Package) { p.Files = []File{file("/etc/./x")} }, "clean"},
		{"double slash", func(p *Package) { p.Files = []File{file("/etc//x")} }, "clean"},
		{"trailing slash", func(p *Package) { p.Files = []File{{Path: "/etc/", Mode: fs.ModeDir}} }, "clean"},
		{"root", func(p *Package) { p.Files = []File{{Path: "/", Mode: fs.ModeDir}} }, "root"},
		{"newline", func(p *Package) { p.Files = []File{file("/a\nb")} }, "newline"},
		{"parent is file", func(p *Package) { p.Files = []File{file("/a"), file("/a/b")} }, "not a directory"},
		{"parent is file, child first", func(p *Package) { p.Files = []File{file("/a/b"), file("/a")} }, "not a directory"},
		{"parent is symlink", func(p *Package) {
			p.Files = []File{{Path: "/a", Mode: fs.ModeSymlink, Link: "/b"}, file("/a/b")}
		}, "not a directory"},
		{"conffile missing", func(p *Package) { p.Files = []File{file("/a")}; p.Conffiles = []string{"/b"} }, "conffile /b"},
		{"conffile is dir", func(p *Package) { p.Files = []File{file("/a/b")}; p.Conffiles = []string{"/a"} }, "conffile /a"},
		{"conffile is symlink", func(p *Package) {
			p.Files = []File{{Path: "/a", Mode: fs.ModeSymlink, Link: "b"}}
			p.Conffiles = []string{"/a"}
		}, "conffile /a"},
		{"conffile relative", func(p *Package) { p.Files = []File{file("/a")}; p.Conffiles = []string{"a"} }, "absolute"},
		{"conffile twice", func(p *Package) { p.Files = []File{file("/a")}; p.Conffiles = []string{"/a", "/a"} }, "twice"},
		{"symlink without target", func(p *Package) { p.Files = []File{{Path: "/a", Mode: fs.ModeSymlink}} }, "target"},
		{"link on file", func(p *Package) { p.Files = []File{{Path: "/a", Link: "/b"}} }, "Link"},
		{"dir with data", func(p *Package) { p.Files = []File{{Path: "/a", Mode: fs.ModeDir, Data: []byte("x")}} }, "data"},
		{"device", func(p *Package) { p.Files = []File{{Path: "/dev/x", Mode: fs.ModeDevice}} }, "unsupported mode"},
		{"bad control", func(p *Package) { p.Control.Architecture = "" }, "Architecture"},
		{"bad format", nil, "format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			opt := Options{}
			if tc.mutate != nil {
				tc.mutate(p)
			} else {
				opt.Format = Format(7)
			}
			var buf bytes.Buffer
			_, err := Write(&buf, p, opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Error("wrote output despite the error")
			}
		})
	}
	if _, err := Write(io.Discard, base(), Options{ModTime: time.Unix(-5, 0)}); err == nil {
		t.Error("pre-1970 ModTime accepted")
	}
	if _, err := Write(io.Discard, nil, Options{}); err == nil {
		t.Error("nil package accepted")
	}
}

func TestExplicitDirBeforeAndAfterChildren(t *testing.T) {
	for _, files := range [][]File{
		{{Path: "/etc/m", Mode: fs.ModeDir | 0o750}, {Path: "/etc/m/k", Data: []byte("k")}},
		{{Path: "/etc/m/k", Data: []byte("k")}, {Path: "/etc/m", Mode: fs.ModeDir | 0o750}},
	} {
		p := &Package{Control: Control{Package: "p", Version: "1", Architecture: "all"}, Files: files}
		b, _ := mustWrite(t, p, testOpts())
		_, _, data := innerArchives(t, b)
		ms := rawMembers(t, data)
		if got := names(ms); !slices.Equal(got, []string{"./", "./etc/", "./etc/m/", "./etc/m/k"}) {
			t.Fatalf("names %q", got)
		}
		if modeField(ms[2]) != "0000750\x00" {
			t.Errorf("explicit dir mode %q", modeField(ms[2]))
		}
	}
}

func TestSpecialModes(t *testing.T) {
	p := &Package{Control: Control{Package: "p", Version: "1", Architecture: "all"}, Files: []File{
		{Path: "/usr/bin/s", Mode: fs.ModeSetuid | 0o755, Data: []byte("s")},
		{Path: "/tmp/t", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/etc/zero", Data: []byte("z")},
	}}
	b, _ := mustWrite(t, p, testOpts())
	_, _, data := innerArchives(t, b)
	modes := map[string]string{}
	for _, m := range rawMembers(t, data) {
		modes[m.Name] = modeField(m)
	}
	if modes["./usr/bin/s"] != "0004755\x00" || modes["./tmp/t/"] != "0001777\x00" || modes["./etc/zero"] != "0000644\x00" {
		t.Errorf("modes %q", modes)
	}
}

func TestFullVersionAndFileName(t *testing.T) {
	c := Control{Package: "pkg", Version: "1:2.0~rc1", Release: "3", Architecture: "aarch64_cortex-a53"}
	if got := c.FullVersion(OpenWrt2410); got != "1:2.0~rc1-r3" {
		t.Errorf("2410 = %q", got)
	}
	if got := c.FullVersion(OpenWrt2305); got != "1:2.0~rc1-3" {
		t.Errorf("2305 = %q", got)
	}
	if got := FileName(c, OpenWrt2410); got != "pkg_2.0~rc1-r3_aarch64_cortex-a53.ipk" {
		t.Errorf("FileName = %q", got)
	}
	c.Release = ""
	if got := c.FullVersion(OpenWrt2410); got != "1:2.0~rc1" {
		t.Errorf("no release = %q", got)
	}
}

func TestValidateControl(t *testing.T) {
	ok := Control{Package: "luci-app-x_y.z+1", Version: "1.2.3", Release: "1", Architecture: "mips_24kc"}
	if err := ValidateControl(ok); err != nil {
		t.Fatalf("valid control rejected: %v", err)
	}
	if err := ValidateControl(fullControl()); err != nil {
		t.Fatalf("full control rejected: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*Control)
		field  string
	}{
		{func(c *Control) { c.Package = "" }, "Package"},
		{func(c *Control) { c.Package = "has space" }, "Package"},
		{func(c *Control) { c.Package = "-opt" }, "Package"},
		{func(c *Control) { c.Package = "a/b" }, "Package"},
		{func(c *Control) { c.Version = "" }, "Version"},
		{func(c *Control) { c.Version = "1.2-3" }, "Version"},
		{func(c *Control) { c.Version = "1 2" }, "Version"},
		{func(c *Control) { c.Version = "1_2" }, "Version"},
		{func(c *Control) { c.Version = "x:1" }, "Version"},
		{func(c *Control) { c.Version = ":1" }, "Version"},
		{func(c *Control) { c.Version = "1:2:3" }, "Version"},
		{func(c *Control) { c.Version = ".1" }, "Version"},
		{func(c *Control) { c.Release = "r-1" }, "Release"},
		{func(c *Control) { c.Architecture = "" }, "Architecture"},
		{func(c *Control) { c.Architecture = "mips 24kc" }, "Architecture"},
		{func(c *Control) { c.Depends = []string{"a, b"} }, "Depends"},
		{func(c *Control) { c.Depends = []string{""} }, "Depends"},
		{func(c *Control) { c.Provides = []string{"a\nb"} }, "Provides"},
		{func(c *Control) { c.Maintainer = "a\nb" }, "Maintainer"},
		{func(c *Control) { c.Description = "a\r\nb" }, "Description"},
	} {
		c := ok
		tc.mutate(&c)
		err := ValidateControl(c)
		if err == nil || !strings.Contains(err.Error(), "field "+tc.field) {
			t.Errorf("%+v: err = %v, want one naming %s", c, err, tc.field)
		}
	}
}

// TestGeneratedScripts checks the generated postinst/prerm with sh -n,
// shellcheck when installed, and by running them against fake
// functions.sh files (facts §3).
func TestGeneratedScripts(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"postinst": postinstScript, "prerm": prermScript} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", name, err, out)
		}
		if sc, err := exec.LookPath("shellcheck"); err == nil {
			if out, err := exec.Command(sc, "-s", "sh", path).CombinedOutput(); err != nil {
				t.Errorf("shellcheck %s: %v\n%s", name, err, out)
			}
		}
	}
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	functions := filepath.Join(root, "lib", "functions.sh")
	run := func(script string, env ...string) (string, error) {
		cmd := exec.Command(sh, filepath.Join(dir, script), "configure", "x y")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "IPKG_INSTROOT=" + root}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Missing functions.sh: exit 0, nothing run.
	if out, err := run("postinst"); err != nil || out != "" {
		t.Errorf("postinst without functions.sh: %q %v", out, err)
	}
	// Empty functions.sh counts as missing.
	os.WriteFile(functions, nil, 0o644)
	if out, err := run("prerm"); err != nil || out != "" {
		t.Errorf("prerm with empty functions.sh: %q %v", out, err)
	}
	os.WriteFile(functions, []byte(`
default_postinst() { echo "post [$1] [$2] [$3]"; return 3; }
default_prerm() { echo "pre [$1] [$2] [$3]"; return 4; }
`), 0o644)
	out, err := run("postinst")
	if want := "post [" + filepath.Join(dir, "postinst") + "] [configure] [x y]\n"; out != want || exitCode(err) != 3 {
		t.Errorf("postinst: %q (exit %d), want %q with default_postinst's status", out, exitCode(err), want)
	}
	if out, err := run("postinst", "IPKG_NO_SCRIPT=1"); err != nil || out != "" {
		t.Errorf("postinst with IPKG_NO_SCRIPT=1: %q %v", out, err)
	}
	out, err = run("prerm", "IPKG_NO_SCRIPT=1") // prerm ignores IPKG_NO_SCRIPT
	if want := "pre [" + filepath.Join(dir, "prerm") + "] [configure] [x y]\n"; out != want || exitCode(err) != 4 {
		t.Errorf("prerm: %q (exit %d), want %q", out, exitCode(err), want)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
