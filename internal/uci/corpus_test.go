package uci

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	goldenfile "github.com/meshnode/meshnode/internal/golden"
)

// TestCorpus parses each testdata/NAME.uci and compares with NAME.golden:
// the content dump with line numbers and the export form, or the error.
// Files named err-* must fail to parse.
func TestCorpus(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.uci")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".uci")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := golden(path, data)
			if strings.HasPrefix(name, "err-") != strings.HasPrefix(got, "error: ") {
				t.Fatalf("err- prefix does not match result:\n%s", got)
			}
			gpath := strings.TrimSuffix(path, ".uci") + ".golden"
			goldenfile.Check(t, gpath, []byte(got))
			checkRoundTrip(t, data)
		})
	}
}

func golden(path string, data []byte) string {
	f, err := Parse(path, data)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	b.WriteString(dump(f, true))
	b.WriteString("--- export\n")
	g := NewFile(path)
	g.Sections = f.Sections // Marshal of a source-less File only reads Sections
	b.Write(g.Marshal())
	return b.String()
}

// FuzzParse checks that Parse never panics, that errors carry file and
// line, and the round-trip properties of checkRoundTrip. Seeds: the corpus
// and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.uci")
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, data)
		// Export format has no package line and every value quoted, so it
		// must be stable after one more round.
		if pf, err := Parse("in", data); err == nil {
			exp := exportClone(t, pf).Marshal()
			re, err := Parse("exp", exp)
			if err != nil {
				t.Fatal(err)
			}
			if again := exportClone(t, re).Marshal(); !bytes.Equal(again, exp) {
				t.Fatalf("export not stable:\n%q\n%q", exp, again)
			}
		}
	})
}
