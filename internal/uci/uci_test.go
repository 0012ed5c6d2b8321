package uci

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const wireless = `
config wifi-device 'radio0'
	option type 'mac80211'

config wifi-iface
	option device 'radio0'
	option ssid 'first'

config wifi-iface 'named'
	option ssid 'second'

config wifi-iface
	option ssid 'third'
`

func mustParse(t *testing.T, s string) *File {
	t.Helper()
	f, err := Parse("/etc/config/test", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLookup(t *testing.T) {
	f := mustParse(t, wireless)
	tests := []struct {
		ref, ssid, err string
	}{
		{ref: "@wifi-iface[0]", ssid: "first"},
		{ref: "@wifi-iface[1]", ssid: "second"},
		{ref: "@wifi-iface[2]", ssid: "third"},
		{ref: "@wifi-iface[-1]", ssid: "third"},
		{ref: "@wifi-iface[-3]", ssid: "first"},
		{ref: "named", ssid: "second"},
		{ref: "@wifi-iface[3]", err: `/etc/config/test: section "@wifi-iface[3]": index 3 out of range (3 sections of type "wifi-iface")`},
		{ref: "@wifi-iface[-4]", err: `/etc/config/test: section "@wifi-iface[-4]": index -4 out of range (3 sections of type "wifi-iface")`},
		{ref: "@nope[0]", err: `/etc/config/test: section "@nope[0]": index 0 out of range (0 sections of type "nope")`},
		{ref: "nope", err: `/etc/config/test: section "nope": no such section`},
		{ref: "@wifi-iface", err: `/etc/config/test: section "@wifi-iface": invalid section reference, want "@type[index]"`},
		{ref: "@wifi-iface[x]", err: `/etc/config/test: section "@wifi-iface[x]": invalid section reference, want "@type[index]"`},
		{ref: "@[0]", err: `/etc/config/test: section "@[0]": invalid section reference, want "@type[index]"`},
		{ref: "", err: `/etc/config/test: no such section`},
	}
	for _, tt := range tests {
		s, err := f.Lookup(tt.ref)
		if tt.err != "" {
			var e *Error
			if !errors.As(err, &e) || err.Error() != tt.err {
				t.Errorf("Lookup(%q) error = %v, want %q", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Lookup(%q): %v", tt.ref, err)
			continue
		}
		if got, _ := s.Get("ssid"); got != tt.ssid {
			t.Errorf("Lookup(%q) ssid = %q, want %q", tt.ref, got, tt.ssid)
		}
	}
}

func TestLookupBracketInType(t *testing.T) {
	f := mustParse(t, "config 'a[1]'\noption x 1\nconfig 'a[1]'\noption x 2\n")
	s, err := f.Lookup("@a[1][-1]")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("x"); v != "2" {
		t.Errorf("got x=%q", v)
	}
	if r := s.Ref(); r != "@a[1][1]" {
		t.Errorf("Ref = %q", r)
	}
}

func TestRefAndAutoName(t *testing.T) {
	f := mustParse(t, wireless)
	var refs, autos []string
	for _, s := range f.Sections {
		refs = append(refs, s.Ref())
		autos = append(autos, s.AutoName())
	}
	if want := []string{"radio0", "@wifi-iface[0]", "named", "@wifi-iface[2]"}; !slices.Equal(refs, want) {
		t.Errorf("refs %q, want %q", refs, want)
	}
	// 1-based position among all sections, then a hash of the type.
	if !strings.HasPrefix(autos[1], "cfg02") || !strings.HasPrefix(autos[3], "cfg04") ||
		autos[1][5:] != autos[3][5:] || len(autos[1]) != 9 || autos[0] != "radio0" {
		t.Errorf("auto names %q", autos)
	}
	// The same input gives the same names, and Lookup accepts them.
	g := mustParse(t, wireless)
	for i, s := range g.Sections {
		if s.AutoName() != autos[i] {
			t.Errorf("AutoName not stable: %q vs %q", s.AutoName(), autos[i])
		}
		if l, err := f.Lookup(autos[i]); err != nil || l != f.Sections[i] {
			t.Errorf("Lookup(%q) = %v, %v", autos[i], l, err)
		}
	}
	// Editing options does not rename a section.
	_ = f.Sections[1].Set("ssid", "changed")
	if f.Sections[1].AutoName() != autos[1] {
		t.Error("AutoName changed with options")
	}
	detached := &Section{Type: "x"}
	if detached.Ref() != "@x[?]" || detached.AutoName() != "cfg00"+autoName(-1, "x")[5:] {
		t.Errorf("detached: %q %q", detached.Ref(), detached.AutoName())
	}
}

func TestSectionsOfType(t *testing.T) {
	f := mustParse(t, wireless)
	if n := len(f.SectionsOfType("wifi-iface")); n != 3 {
		t.Errorf("%d wifi-iface sections", n)
	}
	if s := f.SectionsOfType("none"); s != nil {
		t.Errorf("got %v", s)
	}
}

func TestOptionAPI(t *testing.T) {
	f := mustParse(t, "config t n\n\toption o x\n\tlist l a\n\tlist l b\n")
	s := f.Sections[0]

	if v, ok := s.Get("o"); v != "x" || !ok {
		t.Errorf("Get(o) = %q, %v", v, ok)
	}
	if v, ok := s.Get("l"); v != "a b" || !ok {
		t.Errorf("Get(l) = %q, %v (want space-joined, like uci get)", v, ok)
	}
	if v, ok := s.Get("missing"); v != "" || ok {
		t.Errorf("Get(missing) = %q, %v", v, ok)
	}
	if l := s.List("o"); !slices.Equal(l, []string{"x"}) {
		t.Errorf("List(o) = %q", l)
	}
	if l := s.List("l"); !slices.Equal(l, []string{"a", "b"}) {
		t.Errorf("List(l) = %q", l)
	}
	if l := s.List("missing"); l != nil {
		t.Errorf("List(missing) = %q", l)
	}
	s.List("l")[0] = "mutated"
	if s.Option("l").Values[0] != "a" {
		t.Error("List returned the internal slice")
	}

	steps := []struct {
		do   func() error
		want string
	}{
		{func() error { return s.Set("o", "y") }, `o=y l=[a b]`},
		{func() error { return s.Set("l", "single") }, `o=y l=single`},
		{func() error { return s.AddList("l", "two") }, `o=y l=[single two]`},
		{func() error { return s.AddList("new", "") }, `o=y l=[single two] new=[]`},
		{func() error { return s.SetList("o", []string{"1", "2"}) }, `o=[1 2] l=[single two] new=[]`},
		{func() error { return s.SetList("o", nil) }, `l=[single two] new=[]`},
		{func() error { return s.Set("l", "") }, `new=[]`},
		{func() error { s.Delete("new"); return nil }, ``},
		{func() error { s.Delete("absent"); return s.Set("absent", "") }, ``},
		{func() error { return s.Set("z", "it's") }, `z=it's`},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := optString(s); got != st.want {
			t.Fatalf("step %d: got %q, want %q", i, got, st.want)
		}
	}

	errs := []struct {
		err  error
		want string
	}{
		{s.Set("bad-name", "x"), `/etc/config/test: section "n": invalid option name "bad-name"`},
		{s.Set("o", "a\x00b"), `/etc/config/test: section "n": option "o": value contains control character 0x00`},
		{s.SetList("o", []string{"ok", "\x1b"}), `/etc/config/test: section "n": option "o": value contains control character 0x1b`},
		{s.AddList("", "x"), `/etc/config/test: section "n": invalid option name ""`},
	}
	for _, e := range errs {
		if e.err == nil || e.err.Error() != e.want {
			t.Errorf("error %v, want %q", e.err, e.want)
		}
	}
	if got := optString(s); got != `z=it's` {
		t.Errorf("failed calls changed the section: %q", got)
	}
}

func optString(s *Section) string {
	var parts []string
	for _, o := range s.Options() {
		if o.IsList {
			parts = append(parts, o.Name+"=["+strings.Join(o.Values, " ")+"]")
		} else {
			parts = append(parts, o.Name+"="+o.Values[0])
		}
	}
	return strings.Join(parts, " ")
}

func TestAddDeleteSection(t *testing.T) {
	f := mustParse(t, wireless)
	s, err := f.AddSection("wifi-iface", "")
	if err != nil || s.Ref() != "@wifi-iface[3]" {
		t.Fatalf("AddSection anonymous = %v, %v", s, err)
	}
	if n, err := f.AddSection("wifi-iface", "named"); err != nil || n != f.Sections[2] {
		t.Errorf("AddSection existing = %v, %v; want the existing section", n, err)
	}
	if _, err := f.AddSection("other", "named"); err == nil ||
		err.Error() != `/etc/config/test:9: section "named": exists with type "wifi-iface", not "other"` {
		t.Errorf("AddSection type conflict error = %v", err)
	}
	if _, err := f.AddSection("x", "bad-name"); err == nil {
		t.Error("no error for invalid name")
	}
	if _, err := f.AddSection("a b", ""); err == nil {
		t.Error("no error for invalid type")
	}
	f.DeleteSection(f.Sections[1])
	if got := f.Sections[2].Ref(); got != "@wifi-iface[1]" {
		t.Errorf("after delete, Ref = %q", got)
	}
	f.DeleteSection(&Section{}) // not in the file: no-op
	if len(f.Sections) != 4 {
		t.Errorf("%d sections", len(f.Sections))
	}
}

func TestValidate(t *testing.T) {
	f := mustParse(t, wireless)
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		edit func(f *File)
		want string
	}{
		{func(f *File) { f.Sections[0].Type = "" }, `section "radio0": invalid section type ""`},
		{func(f *File) { f.Sections[2].Name = "radio0" }, `section "radio0": duplicate section name`},
		{func(f *File) { f.Sections[0].Name = "a-b" }, `invalid section name "a-b"`},
		{func(f *File) { f.Sections[0].Option("type").Values = nil }, `option "type": no values`},
		{func(f *File) { f.Sections[0].Option("type").Values = []string{""} }, `empty value`},
		{func(f *File) { f.Sections[0].Option("type").Values = []string{"a", "b"} }, `plain option has 2 values`},
		{func(f *File) { f.Sections[0].Option("type").Values = []string{"\x00"} }, `control character`},
		{func(f *File) { f.Sections[0].Option("type").Name = "x y" }, `invalid option name "x y"`},
		{func(f *File) { f.Sections[1].Option("ssid").Name = "device" }, `option "device": duplicate option`},
		{func(f *File) { f.Sections = append(f.Sections, nil) }, `section 4 is nil`},
		{func(f *File) { f.Package = "a.b" }, `invalid package name`},
	}
	for _, c := range cases {
		g := mustParse(t, wireless)
		c.edit(g)
		err := g.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want %q", err, c.want)
		}
	}
}
