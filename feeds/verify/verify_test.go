package verify

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/feeds/index"
	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
)

const (
	arch    = "mips_24kc"
	ipkMain = "meshnode_1.2.0-r1_mips_24kc.ipk"
	ipkUI   = "luci-app-meshnode_1.2.0-r1_all.ipk"
)

var epoch = time.Unix(1735786800, 0) // SOURCE_DATE_EPOCH of the fixture

// signingKeys are the keys a fixture feed is signed with, plus the public
// halves Feed trusts.
type signingKeys struct {
	usign  *usign.SecretKey
	pgp    *pgp.Signer
	pgpPub []byte
}

func newKeys(t *testing.T) signingKeys {
	t.Helper()
	uk, err := usign.Generate(rand.Reader, "meshnode test feed")
	if err != nil {
		t.Fatal(err)
	}
	sec, pub, err := pgp.GenerateKey("meshnode test feed", "", "feed@example.org", epoch.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pgp.LoadSigner(sec)
	if err != nil {
		t.Fatal(err)
	}
	return signingKeys{usign: uk, pgp: ps, pgpPub: pub}
}

func (k signingKeys) trusted(t *testing.T) Keys {
	t.Helper()
	ring, err := pgp.LoadKeyRing(k.pgpPub)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.usign.Public()
	return Keys{Usign: map[string]*usign.PublicKey{pub.Fingerprint(): pub}, PGP: ring}
}

func testPackages() []*ipk.Package {
	return []*ipk.Package{
		{
			Control: ipk.Control{
				Package: "meshnode", Version: "1.2.0", Release: "1",
				Depends:      []string{"kmod-tun"},
				Source:       "packages/meshnode",
				License:      "GPL-2.0-only",
				Maintainer:   "Mesh Node <dev@example.org>",
				Architecture: arch,
				Description:  "Mesh node agent\nKeeps the overlay up.",
			},
			Files: []ipk.File{
				{Path: "/usr/sbin/meshnode", Mode: 0o755, Data: bytes.Repeat([]byte("\x7fELF agent "), 300)},
				{Path: "/etc/config/meshnode", Data: []byte("config meshnode 'main'\n")},
			},
			Conffiles: []string{"/etc/config/meshnode"},
		},
		{
			Control: ipk.Control{
				Package: "luci-app-meshnode", Version: "1.2.0", Release: "1",
				Depends:      []string{"meshnode", "luci-base"},
				Maintainer:   "Mesh Node <dev@example.org>",
				Architecture: "all",
				Description:  "LuCI status page for meshnode",
			},
			Files: []ipk.File{
				{Path: "/www/luci-static/resources/view/meshnode/status.js", Data: []byte("'use strict';\n")},
			},
		},
	}
}

// buildFeed writes a complete, valid feed into a new directory, the way the
// build does: ipks, index files, Packages.sig, SHA256SUMS, SHA256SUMS.asc.
func buildFeed(t *testing.T, k signingKeys) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{}
	var entries []index.Entry
	for _, p := range testPackages() {
		var buf bytes.Buffer
		res, err := ipk.Write(&buf, p, ipk.Options{Format: ipk.OpenWrt2410, ModTime: epoch})
		if err != nil {
			t.Fatal(err)
		}
		files[res.FileName] = buf.Bytes()
		entries = append(entries, index.Entry{FileName: res.FileName, Data: buf.Bytes()})
	}
	feed, err := index.Build(arch, entries)
	if err != nil {
		t.Fatal(err)
	}
	files[Packages] = feed.Packages
	files[PackagesGz] = feed.PackagesGz
	files[PackagesManifest] = feed.Manifest
	files[IndexJSON] = feed.IndexJSON
	files[PackagesSig] = usign.Sign(k.usign, feed.Packages).Marshal()
	sums := pgp.SHA256Sums(files)
	asc, err := k.pgp.Sign(sums, epoch)
	if err != nil {
		t.Fatal(err)
	}
	files[SHA256Sums] = sums
	files[SHA256SumsAsc] = asc
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func run(t *testing.T, dir string, keys Keys) *Report {
	t.Helper()
	r, err := Feed(dir, keys)
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	return r
}

func TestValidFeed(t *testing.T) {
	k := newKeys(t)
	dir := buildFeed(t, k)
	for _, name := range []string{ipkMain, ipkUI} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("fixture lacks %s: %v", name, err)
		}
	}
	r := run(t, dir, k.trusted(t))
	if !r.OK() {
		t.Errorf("valid feed has problems:\n%s", problems(r))
	}
	if r.Checked != 9 {
		t.Errorf("Checked = %d, want 9 (2 ipks + 7 index/signature files)", r.Checked)
	}
}

func problems(r *Report) string {
	var b strings.Builder
	for _, p := range r.Problems {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

// files returns the distinct files the problems name, sorted.
func files(r *Report) []string {
	var names []string
	for _, p := range r.Problems {
		if !slices.Contains(names, p.File) {
			names = append(names, p.File)
		}
	}
	sort.Strings(names)
	return names
}

func flipByte(t *testing.T, path string, at func(data []byte) int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at(data)] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// swapBase64Char replaces the character at offset n of the signature line
// (line 2) by another valid base64 character, so the file still decodes and
// only the signature check can catch it. Flipping a bit instead would now
// and then give a non-base64 byte, depending on the random key.
func swapBase64Char(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line2 := bytes.IndexByte(data, '\n') + 1
	i := line2 + n
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func middle(data []byte) int { return len(data) / 2 }

// indexOf returns the position of the first byte of s in data.
func indexOf(s string) func([]byte) int {
	return func(data []byte) int {
		i := bytes.Index(data, []byte(s))
		if i < 0 {
			panic("fixture lacks " + s)
		}
		return i
	}
}

func replace(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Each tampering must be reported on exactly the files it affects. The
// wanted sets are the whole contract: the tampered file is always among
// them, and nothing unrelated is blamed.
func TestTampering(t *testing.T) {
	k := newKeys(t)
	other := newKeys(t)

	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		keys   func(t *testing.T) Keys // nil: the fixture's own keys
		want   []string
		msgs   []string // substrings some problem must contain
	}{
		{
			name:   "flip a byte in an ipk",
			tamper: func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, ipkMain), middle) },
			want:   []string{ipkMain},
			msgs:   []string{ipkMain + ": SHA256 ", "Packages says", "SHA256SUMS says"},
		},
		{
			name: "flip a byte in Packages",
			tamper: func(t *testing.T, dir string) {
				flipByte(t, filepath.Join(dir, Packages), indexOf("Keeps the overlay"))
			},
			want: []string{Packages, PackagesGz, PackagesManifest},
			msgs: []string{
				"Packages: does not match its signature in Packages.sig (key " + k.usign.Fingerprint() + ")",
				"Packages.gz: does not decompress to Packages",
				"Packages.manifest: record for meshnode 1.2.0-r1",
			},
		},
		{
			name: "flip a byte in Packages.sig",
			tamper: func(t *testing.T, dir string) {
				swapBase64Char(t, filepath.Join(dir, PackagesSig), len("untrusted comment: ")+5)
			},
			want: []string{Packages, PackagesSig},
			msgs: []string{"Packages.sig: SHA256 ", "Packages: does not match its signature"},
		},
		{
			name: "flip a byte in SHA256SUMS",
			tamper: func(t *testing.T, dir string) {
				// Inside a name, so the file still parses.
				flipByte(t, filepath.Join(dir, SHA256Sums), indexOf("index.json"))
			},
			want: []string{SHA256Sums, "hndex.json", IndexJSON},
			msgs: []string{
				"SHA256SUMS: does not match its signature in SHA256SUMS.asc (PGP key " + k.pgp.Fingerprint() + ")",
				"hndex.json: missing (listed in SHA256SUMS)",
				"index.json: not listed in SHA256SUMS",
			},
		},
		{
			name: "flip a hash digit in SHA256SUMS",
			tamper: func(t *testing.T, dir string) {
				flipByte(t, filepath.Join(dir, SHA256Sums), func(b []byte) int { return 0 })
			},
			// The first line is the first name in byte order: Packages.
			want: []string{Packages, SHA256Sums},
			msgs: []string{"SHA256SUMS: does not match its signature", "Packages: SHA256 "},
		},
		{
			name: "Packages.sig re-signed with another usign key",
			tamper: func(t *testing.T, dir string) {
				packages, _ := os.ReadFile(filepath.Join(dir, Packages))
				sig := usign.Sign(other.usign, packages).Marshal()
				os.WriteFile(filepath.Join(dir, PackagesSig), sig, 0o644)
			},
			want: []string{PackagesSig},
			msgs: []string{"Packages.sig: signed by key " + other.usign.Fingerprint() + ", which is not trusted", "SHA256SUMS says"},
		},
		{
			name:   "verifier trusts another usign key",
			tamper: func(t *testing.T, dir string) {},
			keys: func(t *testing.T) Keys {
				keys := k.trusted(t)
				keys.Usign = other.trusted(t).Usign
				return keys
			},
			want: []string{PackagesSig},
			msgs: []string{"Packages.sig: signed by key " + k.usign.Fingerprint() + ", which is not trusted"},
		},
		{
			name:   "usign key with the right keynum but other key bytes",
			tamper: func(t *testing.T, dir string) {},
			keys: func(t *testing.T) Keys {
				keys := k.trusted(t)
				imposter := other.usign.Public()
				imposter.KeyNum = k.usign.KeyNum
				keys.Usign = map[string]*usign.PublicKey{imposter.Fingerprint(): imposter}
				return keys
			},
			want: []string{Packages},
			msgs: []string{"Packages: does not match its signature"},
		},
		{
			name: "SHA256SUMS.asc re-signed with another PGP key",
			tamper: func(t *testing.T, dir string) {
				sums, _ := os.ReadFile(filepath.Join(dir, SHA256Sums))
				asc, err := other.pgp.Sign(sums, epoch)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dir, SHA256SumsAsc), asc, 0o644)
			},
			want: []string{SHA256SumsAsc},
			msgs: []string{"SHA256SUMS.asc: signed by PGP key " + other.pgp.Fingerprint() + ", which is not trusted"},
		},
		{
			name:   "verifier trusts another PGP key",
			tamper: func(t *testing.T, dir string) {},
			keys: func(t *testing.T) Keys {
				keys := k.trusted(t)
				keys.PGP = other.trusted(t).PGP
				return keys
			},
			want: []string{SHA256SumsAsc},
			msgs: []string{"SHA256SUMS.asc: signed by PGP key " + k.pgp.Fingerprint() + ", which is not trusted"},
		},
		{
			name:   "no PGP keys given",
			tamper: func(t *testing.T, dir string) {},
			keys: func(t *testing.T) Keys {
				keys := k.trusted(t)
				keys.PGP = nil
				return keys
			},
			want: []string{SHA256SumsAsc},
		},
		{
			name:   "remove an ipk",
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ipkUI)) },
			want:   []string{ipkUI},
			msgs:   []string{ipkUI + ": missing (listed in Packages for luci-app-meshnode 1.2.0-r1)"},
		},
		{
			name:   "remove Packages.gz",
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, PackagesGz)) },
			want:   []string{PackagesGz},
			msgs:   []string{"Packages.gz: missing (every feed has one)"},
		},
		{
			name:   "remove SHA256SUMS.asc",
			tamper: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, SHA256SumsAsc)) },
			want:   []string{SHA256SumsAsc},
		},
		{
			name: "add an unlisted file",
			tamper: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hi\n"), 0o644)
			},
			want: []string{"notes.txt"},
			msgs: []string{"notes.txt: not listed in SHA256SUMS"},
		},
		{
			name: "add an unlisted ipk",
			tamper: func(t *testing.T, dir string) {
				data, _ := os.ReadFile(filepath.Join(dir, ipkUI))
				os.WriteFile(filepath.Join(dir, "extra_1.0_all.ipk"), data, 0o644)
			},
			want: []string{"extra_1.0_all.ipk"},
			msgs: []string{"extra_1.0_all.ipk: not listed in Packages", "extra_1.0_all.ipk: not listed in SHA256SUMS"},
		},
		{
			name: "ipk swapped for another package under the listed name",
			tamper: func(t *testing.T, dir string) {
				data, _ := os.ReadFile(filepath.Join(dir, ipkUI))
				os.WriteFile(filepath.Join(dir, ipkMain), data, 0o644)
			},
			want: []string{ipkMain},
			msgs: []string{`control has Package "luci-app-meshnode", Packages says "meshnode"`, `control has Architecture "all"`},
		},
		{
			name: "index.json version differs",
			tamper: func(t *testing.T, dir string) {
				replace(t, filepath.Join(dir, IndexJSON), `"meshnode": "1.2.0-r1"`, `"meshnode": "1.2.0-r2"`)
			},
			want: []string{IndexJSON},
			msgs: []string{"index.json: package meshnode has version 1.2.0-r2, Packages has 1.2.0-r1"},
		},
		{
			name: "Packages.gz of other content",
			tamper: func(t *testing.T, dir string) {
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write([]byte("Package: x\n"))
				zw.Close()
				os.WriteFile(filepath.Join(dir, PackagesGz), buf.Bytes(), 0o644)
			},
			want: []string{PackagesGz},
		},
		{
			name: "subdirectory in the feed",
			tamper: func(t *testing.T, dir string) {
				os.Mkdir(filepath.Join(dir, "old"), 0o755)
			},
			want: []string{"old"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := buildFeed(t, k)
			c.tamper(t, dir)
			keys := k.trusted(t)
			if c.keys != nil {
				keys = c.keys(t)
			}
			r := run(t, dir, keys)
			if got := files(r); !slices.Equal(got, c.want) {
				t.Errorf("problems name %v, want %v:\n%s", got, c.want, problems(r))
			}
			all := problems(r)
			for _, m := range c.msgs {
				if !strings.Contains(all, m) {
					t.Errorf("no problem says %q:\n%s", m, all)
				}
			}
		})
	}
}

// Several independent failures are all reported, in the same order every run.
func TestAllProblemsDeterministic(t *testing.T) {
	k := newKeys(t)
	dir := buildFeed(t, k)
	flipByte(t, filepath.Join(dir, ipkMain), middle)
	flipByte(t, filepath.Join(dir, ipkUI), middle)
	os.Remove(filepath.Join(dir, PackagesManifest))
	os.WriteFile(filepath.Join(dir, "b.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "a.txt"), nil, 0o644)

	first := run(t, dir, k.trusted(t))
	var order []string
	for _, p := range first.Problems {
		if !slices.Contains(order, p.File) {
			order = append(order, p.File)
		}
	}
	// Missing index files first, then packages in Packages order (sorted by
	// name: luci-app-meshnode before meshnode), then unlisted files by name.
	want := []string{"Packages.manifest", ipkUI, ipkMain, "a.txt", "b.txt"}
	if !slices.Equal(order, want) {
		t.Errorf("problem order %v, want %v:\n%s", order, want, problems(first))
	}
	for range 3 {
		again := run(t, dir, k.trusted(t))
		if !slices.Equal(again.Problems, first.Problems) {
			t.Fatalf("second run differs:\n%s\nvs\n%s", problems(first), problems(again))
		}
	}
}

func TestUnreadableDir(t *testing.T) {
	if _, err := Feed(filepath.Join(t.TempDir(), "nope"), Keys{}); err == nil {
		t.Error("missing directory: no error")
	}
}

// A Packages whose Filename climbs out of the feed dir must not make Feed
// read outside it.
func TestFilenameOutsideFeed(t *testing.T) {
	k := newKeys(t)
	dir := buildFeed(t, k)
	path := filepath.Join(dir, Packages)
	replace(t, path, "Filename: "+ipkMain, "Filename: ../"+ipkMain)
	packages, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(dir, PackagesSig), usign.Sign(k.usign, packages).Marshal(), 0o644)
	r := run(t, dir, k.trusted(t))
	if !strings.Contains(problems(r), "../"+ipkMain+": listed in Packages (meshnode 1.2.0-r1) outside the feed directory") {
		t.Errorf("problems:\n%s", problems(r))
	}
}
