package ipk

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

const testEpoch = 1700000000

func testOpts() Options { return Options{ModTime: time.Unix(testEpoch, 0)} }

// testPackage is the small fixed package behind the golden files.
func testPackage() *Package {
	return &Package{
		Control: Control{
			Package:      "meshnode-test",
			Version:      "1.0.0",
			Release:      "1",
			Depends:      []string{"kmod-tun", "ca-bundle"},
			Source:       "packages/meshnode-test",
			SourceName:   "meshnode-test",
			License:      "GPL-2.0-only",
			LicenseFiles: "LICENSE",
			Section:      "net",
			URL:          "https://example.org/meshnode",
			Maintainer:   "Mesh Node <dev@example.org>",
			Architecture: "all",
			Description:  "Test package for meshnode\nSecond line of the description.",
		},
		Files: []File{
			{Path: "/usr/sbin/meshnode-test", Mode: 0o755, Data: []byte("#!/bin/sh\necho test\n")},
			{Path: "/etc/config/meshnode-test", Mode: 0o600, Data: []byte("config meshnode 'main'\n\toption enabled '1'\n")},
			{Path: "/etc/init.d/meshnode-test", Mode: 0o755, Data: []byte("#!/bin/sh /etc/rc.common\nSTART=90\nUSE_PROCD=1\n")},
			{Path: "/usr/bin/mnt", Mode: fs.ModeSymlink, Link: "../sbin/meshnode-test"},
			{Path: "/etc/meshnode", Mode: fs.ModeDir | 0o700},
		},
		Conffiles: []string{"/etc/config/meshnode-test"},
		Postinst:  []byte("[ -n \"$IPKG_INSTROOT\" ] || /etc/init.d/meshnode-test reload\n"),
	}
}

func mustWrite(t testing.TB, p *Package, opt Options) ([]byte, *Result) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Write(&buf, p, opt)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if res.Size != int64(buf.Len()) {
		t.Fatalf("Result.Size %d, wrote %d", res.Size, buf.Len())
	}
	return buf.Bytes(), res
}

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func gzipped(b []byte) []byte { return gzipBytes(b) }

// rawMember is one tar member as found by walking 512-byte blocks,
// independently of the package's own tar reader.
type rawMember struct {
	Name, Link string
	Block      [512]byte // the member's own header
	Data       []byte
}

func (m rawMember) field(off, n int) string { return string(m.Block[off : off+n]) }

// rawMembers walks a tar byte by byte, folding GNU L/K records into the
// following member, and fails on anything irregular.
func rawMembers(t testing.TB, b []byte) []rawMember {
	t.Helper()
	var out []rawMember
	var long, longLink string
	off := 0
	for {
		if off+512 > len(b) {
			t.Fatalf("tar: no end-of-archive blocks (len %d)", len(b))
		}
		var blk [512]byte
		copy(blk[:], b[off:off+512])
		if blk == [512]byte{} {
			if rest := b[off:]; len(bytes.Trim(rest, "\x00")) != 0 || len(rest) < 1024 {
				t.Fatalf("tar: bad end: %d trailing bytes, non-zero=%v", len(rest), len(bytes.Trim(rest, "\x00")) != 0)
			}
			return out
		}
		sum := 0
		for i, c := range blk {
			if i >= 148 && i < 156 {
				c = ' '
			}
			sum += int(c)
		}
		if got := string(blk[148:156]); got != fmt.Sprintf("%06o\x00 ", sum) {
			t.Fatalf("tar: checksum field %q, want %06o", got, sum)
		}
		size, err := strconv.ParseInt(strings.TrimRight(string(blk[124:135]), "\x00"), 8, 64)
		if err != nil {
			t.Fatalf("tar: size field %q: %v", blk[124:136], err)
		}
		data := b[off+512 : off+512+int(size)]
		off += 512 + int((size+511)/512*512)
		name := strings.TrimRight(string(blk[0:100]), "\x00")
		link := strings.TrimRight(string(blk[157:257]), "\x00")
		switch blk[156] {
		case 'L':
			long = strings.TrimRight(string(data), "\x00")
			continue
		case 'K':
			longLink = strings.TrimRight(string(data), "\x00")
			continue
		case 'x', 'g':
			t.Fatalf("tar: PAX header %q", name)
		}
		if long != "" {
			name, long = long, ""
		}
		if longLink != "" {
			link, longLink = longLink, ""
		}
		out = append(out, rawMember{Name: name, Link: link, Block: blk, Data: data})
	}
}

// checkHeaderBasics pins what every header we write must hold (facts §1).
func checkHeaderBasics(t testing.TB, where string, m rawMember, mtime int64) {
	t.Helper()
	want := map[string][2]int{ // field -> offset, length
		"uid": {108, 8}, "gid": {116, 8},
	}
	for f, ol := range want {
		if got := m.field(ol[0], ol[1]); got != "0000000\x00" {
			t.Errorf("%s %s: %s = %q, want 0", where, m.Name, f, got)
		}
	}
	if got := m.field(136, 12); got != fmt.Sprintf("%011o\x00", mtime) {
		t.Errorf("%s %s: mtime = %q, want %d", where, m.Name, got, mtime)
	}
	if got := m.field(257, 8); got != "ustar  \x00" {
		t.Errorf("%s %s: magic = %q, want GNU \"ustar  \\x00\"", where, m.Name, got)
	}
	if got := m.field(265, 64); strings.Trim(got, "\x00") != "" {
		t.Errorf("%s %s: uname/gname = %q, want empty", where, m.Name, got)
	}
}

func modeField(m rawMember) string { return m.field(100, 8) }

func names(ms []rawMember) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// innerArchives splits an .ipk into its gunzipped outer, control and data tars.
func innerArchives(t testing.TB, ipkData []byte) (outer []rawMember, control, data []byte) {
	t.Helper()
	outer = rawMembers(t, gunzip(t, ipkData))
	for _, m := range outer {
		switch m.Name {
		case "./control.tar.gz":
			control = gunzip(t, m.Data)
		case "./data.tar.gz":
			data = gunzip(t, m.Data)
		}
	}
	if control == nil || data == nil {
		t.Fatalf("missing inner archives in %v", names(outer))
	}
	return outer, control, data
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", name), got)
}

// writeSeed stores one fuzz seed in Go's corpus file format.
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
