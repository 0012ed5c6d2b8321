package uci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestMarshalExportFormat(t *testing.T) {
	f := NewFile("new")
	s, _ := f.AddSection("system", "")
	_ = s.Set("hostname", "OpenWrt")
	_ = s.Set("motd", "It's\nfine")
	n, _ := f.AddSection("timeserver", "ntp")
	_ = n.AddList("server", "0.openwrt.pool.ntp.org")
	_ = n.AddList("server", "1.openwrt.pool.ntp.org")
	_ = n.Set("enabled", "1")
	q, _ := f.AddSection(`we'ird#`, "")
	_ = q.SetList("l", []string{""})
	want := `
config system
	option hostname 'OpenWrt'
	option motd 'It'\''s
fine'

config timeserver 'ntp'
	list server '0.openwrt.pool.ntp.org'
	list server '1.openwrt.pool.ntp.org'
	option enabled '1'

config 'we'\''ird#'
	list l ''

`
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := string(NewFile("empty").Marshal()); got != "\n" {
		t.Errorf("empty file: %q", got)
	}
	checkRoundTrip(t, f.Marshal())
}

// A shipped default config with commented defaults, edited in one section.
const shipped = `# meshnode defaults
# see https://example.org/docs

config meshnode 'main'
	option enabled '1'    # off until provisioned
	# option debug '1'
#	option log_level 'info'

# Uplinks, probed in order.
config uplink
	option interface wan
	list probe "1.1.1.1"
	# list probe '9.9.9.9'

config uplink
	option interface 'wwan'

# end of file
`

func TestMarshalKeepsUnchangedSections(t *testing.T) {
	f := mustParse(t, shipped)
	s, _ := f.Lookup("@uplink[0]")
	if err := s.AddList("probe", "8.8.8.8"); err != nil {
		t.Fatal(err)
	}
	want := `# meshnode defaults
# see https://example.org/docs

config meshnode 'main'
	option enabled '1'    # off until provisioned
	# option debug '1'
#	option log_level 'info'

# Uplinks, probed in order.
config uplink
	option interface 'wan'
	list probe '1.1.1.1'
	list probe '8.8.8.8'

config uplink
	option interface 'wwan'

# end of file
`
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// Undoing the edit restores the original bytes: change is judged by
	// content, not by which methods were called.
	_ = s.SetList("probe", []string{"1.1.1.1"})
	if got := string(f.Marshal()); got != shipped {
		t.Errorf("after undo got:\n%s", got)
	}

	// Edits through the exported fields are noticed too.
	f.Sections[0].Option("enabled").Values[0] = "0"
	if got := string(f.Marshal()); got == shipped {
		t.Error("direct edit of Option.Values not written")
	}
}

func TestMarshalDeleteAndAdd(t *testing.T) {
	f := mustParse(t, shipped)
	f.DeleteSection(f.Sections[0])
	f.DeleteSection(f.Sections[1])
	n, _ := f.AddSection("uplink", "lte")
	_ = n.Set("interface", "lte")
	want := `# meshnode defaults
# see https://example.org/docs

# Uplinks, probed in order.
config uplink
	option interface wan
	list probe "1.1.1.1"
	# list probe '9.9.9.9'

config uplink 'lte'
	option interface 'lte'

# end of file
`
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestMarshalNoFinalNewline(t *testing.T) {
	f := mustParse(t, "config a\n\toption x 1")
	_, _ = f.AddSection("b", "")
	if got, want := string(f.Marshal()), "config a\n\toption x 1\n\nconfig b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f = mustParse(t, "# only a comment")
	_, _ = f.AddSection("b", "")
	if got, want := string(f.Marshal()), "# only a comment\n\nconfig b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMarshalSpliceAtEOF(t *testing.T) {
	// The final backslash-newline must not join the appended section.
	f := mustParse(t, "config a\n\toption x 1 \\\n")
	_, _ = f.AddSection("b", "")
	if got, want := string(f.Marshal()), "config a\n\toption x 1 \\\n\n\nconfig b\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	checkRoundTrip(t, []byte("config a\n\toption x 1 \\\n"))
}

func TestMarshalMergedSection(t *testing.T) {
	in := "config t 'a'\n\toption x 1\n\nconfig t 'b'\n\n# again\nconfig t 'a'\n\toption y 2\n"
	f := mustParse(t, in)
	if len(f.Sections) != 2 {
		t.Fatalf("%d sections", len(f.Sections))
	}
	_ = f.Sections[1].Set("z", "3") // b changes, a stays split
	want := "config t 'a'\n\toption x 1\n\nconfig t 'b'\n\toption z '3'\n\n# again\nconfig t 'a'\n\toption y 2\n"
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	_ = f.Sections[0].Set("x", "9") // a is rewritten whole where it first appeared
	want = "config t 'a'\n\toption x '9'\n\toption y '2'\n\nconfig t 'b'\n\toption z '3'\n"
	if got := string(f.Marshal()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meshnode")

	f := NewFile(path)
	s, _ := f.AddSection("meshnode", "main")
	_ = s.Set("enabled", "1")
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, "\nconfig meshnode 'main'\n\toption enabled '1'\n\n", 0o644)

	if err := os.WriteFile(path, []byte(shipped), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, g); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, shipped, 0o600)
	checkNoTemp(t, dir, 1)

	// A symlinked config is written through and stays a link.
	link := filepath.Join(dir, "link")
	if err := os.Symlink("meshnode", link); err != nil {
		t.Skip("no symlinks:", err)
	}
	_ = g.Sections[0].Set("enabled", "0")
	if err := WriteFile(link, g); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v, %v", fi, err)
	}
	h, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Sections[0].Get("enabled"); v != "0" {
		t.Errorf("enabled = %q after write through link", v)
	}
	checkNoTemp(t, dir, 2)
}

func TestWriteFileFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cfg")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := writeAtomic(path, []byte("new"), func(string, string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	checkFile(t, path, "old", 0o644)
	checkNoTemp(t, dir, 1)

	// A directory in the way makes the real rename fail.
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(sub, NewFile(sub)); err == nil {
		t.Fatal("no error writing over a directory")
	}
	checkNoTemp(t, dir, 2)

	if err := WriteFile(filepath.Join(dir, "missing", "cfg"), NewFile("x")); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestWriteFileValidates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cfg")
	f := NewFile(path)
	s, _ := f.AddSection("t", "")
	s.opts = append(s.opts, &Option{Name: "bad-name", Values: []string{"x"}})
	if err := WriteFile(path, f); err == nil {
		t.Fatal("invalid file written")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file created: %v", err)
	}
	checkNoTemp(t, dir, 0)
}

func checkFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != content {
		t.Errorf("%s contains %q, want %q", path, data, content)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

// checkNoTemp checks that dir holds exactly n entries: no temp files left.
func checkNoTemp(t *testing.T, dir string, n int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != n {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want %d entries", dir, names, n)
	}
}
