package pgp

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	sumEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" // sha256("")
	sumABC   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // sha256("abc")
)

func TestSHA256SumsFormat(t *testing.T) {
	got := string(SHA256Sums(map[string][]byte{
		"index.json":                         []byte("abc"),
		"Packages":                           nil,
		"meshnode_1.0-r1_mips_24kc.ipk":      []byte("abc"),
		"Packages.gz":                        {},
		"sub/dir.txt":                        []byte("abc"),
		"Packages.manifest":                  []byte(""),
		"meshnode-lite_1.0-r1_mips_24kc.ipk": []byte("abc"),
	}))
	// Byte order, as sort(1) with LC_ALL=C: uppercase before lowercase,
	// '-' before '_'.
	want := sumEmpty + "  Packages\n" +
		sumEmpty + "  Packages.gz\n" +
		sumEmpty + "  Packages.manifest\n" +
		sumABC + "  index.json\n" +
		sumABC + "  meshnode-lite_1.0-r1_mips_24kc.ipk\n" +
		sumABC + "  meshnode_1.0-r1_mips_24kc.ipk\n" +
		sumABC + "  sub/dir.txt\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if s := SHA256Sums(nil); len(s) != 0 {
		t.Errorf("no files: %q", s)
	}
}

func TestSHA256SumsRoundTrip(t *testing.T) {
	files := map[string][]byte{
		"a":            []byte("abc"),
		"b c":          nil,
		"back\\slash":  []byte("x"),
		"new\nline":    []byte("y"),
		"dir/file.ipk": []byte("z"),
	}
	data := SHA256Sums(files)
	if !strings.Contains(string(data), "  back\\\\slash\n") || !strings.Contains(string(data), "  new\\nline\n") {
		t.Fatalf("names not escaped as sha256sum does: %q", data)
	}
	sums, err := ParseSHA256Sums(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != len(files) {
		t.Fatalf("%d sums for %d files", len(sums), len(files))
	}
	for _, s := range sums {
		if _, ok := files[s.Name]; !ok {
			t.Errorf("name %q not among the files", s.Name)
		}
	}
	if sums[0] != (Sum{Name: "a", SHA256: sumABC}) {
		t.Errorf("first sum %+v", sums[0])
	}
}

// coreutils must accept what we write, escapes included. Skipped where
// sha256sum is missing.
func TestSHA256SumsCoreutils(t *testing.T) {
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("sha256sum not installed")
	}
	dir := t.TempDir()
	files := map[string][]byte{"Packages": []byte("Package: a\n\n"), "we\\ird": []byte("abc"), "new\nline": nil}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(dir, n), d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), SHA256Sums(files), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	// And we read what coreutils writes.
	cmd = exec.Command(bin, "Packages", "we\\ird", "new\nline")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	sums, err := ParseSHA256Sums(out)
	if err != nil {
		t.Fatalf("parsing sha256sum output %q: %v", out, err)
	}
	got := map[string]string{}
	for _, s := range sums {
		got[s.Name] = s.SHA256
	}
	if got["we\\ird"] != sumABC || got["new\nline"] != sumEmpty || len(got) != 3 {
		t.Errorf("parsed %v", got)
	}
}

func TestParseSHA256SumsAccepts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Sum
	}{
		{"", nil},
		{sumABC + "  a\n", []Sum{{"a", sumABC}}},
		{sumABC + "  a", []Sum{{"a", sumABC}}},                                         // no final newline
		{sumABC + " *bin.ipk\n", []Sum{{"bin.ipk", sumABC}}},                           // binary mode
		{sumABC + "  two  spaces\n", []Sum{{"two  spaces", sumABC}}},                   // spaces in name
		{sumABC + "  z\n" + sumEmpty + "  a\n", []Sum{{"z", sumABC}, {"a", sumEmpty}}}, // order kept
	} {
		got, err := ParseSHA256Sums([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestParseSHA256SumsErrors(t *testing.T) {
	good := sumABC + "  ok\n"
	for _, c := range []struct {
		in       string
		line     string
		contains string
	}{
		{good + strings.ToUpper(sumABC) + "  a\n", "line 2:", "lowercase hex"},
		{good + sumABC[:63] + "  a\n", "line 2:", "hex"},
		{good + sumABC + " abc\n", "line 2:", "two spaces"},
		{good + sumABC + "\tabc\n", "line 2:", "two spaces"},
		{good + sumABC + "  \n", "line 2:", "too short"},
		{good + "\n", "line 2:", "too short"},
		{"garbage\n", "line 1:", "too short"},
		{good + good, "line 2:", "already listed on line 1"},
		{sumABC + "  /etc/passwd\n", "line 1:", "absolute"},
		{sumABC + "  ../x\n", "line 1:", "leaves the directory"},
		{sumABC + "  ..\n", "line 1:", "leaves the directory"},
		{sumABC + "  .\n", "line 1:", "directory itself"},
		{sumABC + "  a/../../x\n", "line 1:", "not clean"},
		{sumABC + "  ./a\n", "line 1:", "not clean"},
		{good + `\` + sumABC + `  bad\q` + "\n", "line 2:", "unknown escape"},
		{good + `\` + sumABC + `  bad\` + "\n", "line 2:", "lone backslash"},
		{good + sumABC + "  nul\x00\n", "line 2:", "NUL"},
	} {
		_, err := ParseSHA256Sums([]byte(c.in))
		if err == nil {
			t.Errorf("%q: no error", c.in)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.line) || !strings.Contains(err.Error(), c.contains) {
			t.Errorf("%q: err = %q, want %q ... %q", c.in, err, c.line, c.contains)
		}
	}
}
