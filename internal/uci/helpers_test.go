package uci

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dump renders a File's content in the text form used by the golden files.
// withLines adds the package statement and line numbers; without them the
// dump is the content that must survive a Marshal round trip.
func dump(f *File, withLines bool) string {
	var b strings.Builder
	if withLines && f.Package != "" {
		fmt.Fprintf(&b, "package %q\n", f.Package)
	}
	for _, s := range f.Sections {
		name := "-"
		if s.Name != "" {
			name = fmt.Sprintf("%q", s.Name)
		}
		fmt.Fprintf(&b, "config %q %s", s.Type, name)
		if withLines {
			fmt.Fprintf(&b, "  # %s line %d", s.Ref(), s.Line)
		}
		b.WriteByte('\n')
		for _, o := range s.Options() {
			kind := "option"
			if o.IsList {
				kind = "list"
			}
			vals := make([]string, len(o.Values))
			for i, v := range o.Values {
				vals[i] = fmt.Sprintf("%q", v)
			}
			fmt.Fprintf(&b, "\t%s %s = %s", kind, o.Name, strings.Join(vals, ", "))
			if withLines {
				fmt.Fprintf(&b, "  # line %d", o.Line)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// exportClone rebuilds f through the public API in a File without source,
// so Marshal writes pure export format.
func exportClone(tb testing.TB, f *File) *File {
	tb.Helper()
	g := NewFile(f.Name)
	for _, s := range f.Sections {
		n, err := g.AddSection(s.Type, s.Name)
		if err != nil {
			tb.Fatalf("AddSection(%q, %q): %v", s.Type, s.Name, err)
		}
		for _, o := range s.Options() {
			if o.IsList {
				err = n.SetList(o.Name, o.Values)
			} else {
				err = n.Set(o.Name, o.Values[0])
			}
			if err != nil {
				tb.Fatalf("copy option %s: %v", o.Name, err)
			}
		}
	}
	return g
}

// checkRoundTrip checks the round-trip properties for any input: parse
// errors are *Error; an unmodified parse marshals byte-identically; the
// export form and partly edited forms parse back to the same content.
func checkRoundTrip(tb testing.TB, data []byte) {
	tb.Helper()
	f, err := Parse("in", data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.File != "in" || e.Line < 1 {
			tb.Fatalf("parse error %#v is not a *Error with file and line", err)
		}
		return
	}
	if err := f.Validate(); err != nil {
		tb.Fatalf("parsed file does not validate: %v", err)
	}
	if got := f.Marshal(); !bytes.Equal(got, data) {
		tb.Fatalf("unmodified Marshal differs:\n got %q\nwant %q", got, data)
	}
	want := dump(f, false)
	for _, s := range f.Sections {
		if got, err := f.Lookup(s.Ref()); got != s {
			tb.Fatalf("Lookup(%q) = %v, %v; want the section itself", s.Ref(), got, err)
		}
	}

	exp := exportClone(tb, f).Marshal()
	expectSame(tb, "export", exp, want)

	// Edit, delete and add sections, then check the mixed output of kept
	// source text and export-format sections reads back as edited.
	n := len(f.Sections)
	picks := []int{0, n / 2, n - 1}
	if n <= 6 {
		picks = picks[:0]
		for i := range n {
			picks = append(picks, i)
		}
	}
	for _, k := range picks {
		if k < 0 {
			continue
		}
		g, _ := Parse("in", data)
		s := g.Sections[k]
		if err := s.Set("zz_set", "it's\n# not a comment"); err != nil {
			tb.Fatal(err)
		}
		s.Delete(firstOption(s))
		g.DeleteSection(g.Sections[(k+1)%n])
		if a, err := g.AddSection("zz_type", ""); err == nil {
			_ = a.AddList("l", "")
		}
		if a, err := g.AddSection("zz_type", "zz_named"); err == nil {
			_ = a.Set("o", "v")
		}
		expectSame(tb, fmt.Sprintf("edit section %d", k), g.Marshal(), dump(g, false))
	}
	// A section moved by hand forces the reordering fallback.
	if n > 1 {
		g, _ := Parse("in", data)
		g.Sections[0], g.Sections[n-1] = g.Sections[n-1], g.Sections[0]
		_ = g.Sections[n-1].Set("zz_set", "1")
		expectSame(tb, "reordered", g.Marshal(), dump(g, false))
	}
}

func firstOption(s *Section) string {
	if opts := s.Options(); len(opts) > 0 {
		return opts[0].Name
	}
	return ""
}

func expectSame(tb testing.TB, what string, out []byte, want string) {
	tb.Helper()
	re, err := Parse("out", out)
	if err != nil {
		tb.Fatalf("%s: output does not parse: %v\n%s", what, err, out)
	}
	if got := dump(re, false); got != want {
		tb.Fatalf("%s: content changed\noutput:\n%s\ngot:\n%s\nwant:\n%s", what, out, got, want)
	}
	if again := re.Marshal(); !bytes.Equal(again, out) {
		tb.Fatalf("%s: output does not marshal back to itself", what)
	}
}
