package lite

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/internal/uci"
)

type flatSection struct {
	Type, Name string
	Line       int
	Options    []Option
}

func flatten(f *File) []flatSection {
	var out []flatSection
	for _, s := range f.Sections {
		fs := flatSection{Type: s.Type, Name: s.Name, Line: s.Line}
		for _, o := range s.Options {
			fs.Options = append(fs.Options, *o)
		}
		out = append(out, fs)
	}
	return out
}

func flattenUCI(f *uci.File) []flatSection {
	var out []flatSection
	for _, s := range f.Sections {
		fs := flatSection{Type: s.Type, Name: s.Name, Line: s.Line}
		for _, o := range s.Options() {
			fs.Options = append(fs.Options, Option{Name: o.Name, Values: o.Values, IsList: o.IsList, Line: o.Line})
		}
		out = append(out, fs)
	}
	return out
}

// TestParseUCIAgreesWithInternalUCI: the lite reader accepts and rejects
// what internal/uci does, with the same sections, options and lines, on
// internal/uci's corpus, the repository's UCI files and some edge cases.
func TestParseUCIAgreesWithInternalUCI(t *testing.T) {
	files, _ := filepath.Glob("../../internal/uci/testdata/*.uci")
	more, _ := filepath.Glob("../../packages/*/files/*.config")
	files = append(files, more...)
	if len(files) < 20 {
		t.Fatalf("corpus: %d files", len(files))
	}
	cases := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[f] = string(b)
	}
	for i, s := range []string{
		"", "config a\n", "config a 'b'\n\toption x \"q\\\"uote\"\n", "option x y\n", "config a b c d\n",
		"config a\n\tlist l 1\n\tlist l 2\n\toption l 3\n", "config a\n\toption x 'multi\nline'\n",
		"config a\n\toption x y;z\n", "config a\n\toption x y\\\n z\n", "config a\n\toption x '\x01'\n",
		"package 'p-1'\nconfig a\n", "config a 'n'\nconfig b 'n'\n", "config a\n\toption x ''\n",
		"config a\n\toption 'bad-name' x\n", "config a\n\toption x 'unterminated\n", "config a\n\toption x y\\",
		"c a n\no x 1\nl y 2\np z\n", "config 'a b'\n", "config a 'x'\r\n\toption y 'z'\r\n",
	} {
		cases["case"+string(rune('A'+i))] = s
	}
	for name, text := range cases {
		want, werr := uci.Parse(name, []byte(text))
		got, gerr := ParseUCI(name, []byte(text))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: internal/uci error %v, lite error %v", name, werr, gerr)
			continue
		}
		if werr != nil {
			// Same line; the message may differ in quoting.
			wl, gl := lineOf(werr.Error(), name), lineOf(gerr.Error(), name)
			if wl != gl {
				t.Errorf("%s: internal/uci %q, lite %q", name, werr, gerr)
			}
			continue
		}
		if got.Package != want.Package {
			t.Errorf("%s: package %q, want %q", name, got.Package, want.Package)
		}
		if g, w := flatten(got), flattenUCI(want); !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, g, w)
		}
	}
}

func lineOf(msg, file string) string {
	rest := strings.TrimPrefix(msg, file+":")
	if i := strings.IndexByte(rest, ':'); i > 0 && strings.Trim(rest[:i], "0123456789") == "" {
		return rest[:i]
	}
	return ""
}

func TestRef(t *testing.T) {
	f, err := ParseUCI("x", []byte("config a\nconfig b 'n'\nconfig a\n"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, s := range f.Sections {
		refs = append(refs, f.Ref(s))
	}
	if strings.Join(refs, " ") != "@a[0] n @a[1]" {
		t.Errorf("refs %v", refs)
	}
}
