package uci

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/internal/atomicfile"
)

// Marshal returns the file's text.
//
// A File built without source (NewFile) comes out in uci export format, as
// `uci commit` writes it, ending with one extra newline:
//
//	<blank line>
//	config <type> '<name>'     (no name for an anonymous section)
//	<tab>option <n> '<v>'
//	<tab>list <n> '<v>'        (one line per item)
//
// Values are single-quoted; a quote inside is written as quote, backslash,
// quote, quote (close, escaped quote, reopen). A type that contains a
// quote, backslash, '#' or ';' is quoted too, which uci does not do, so
// that it reads back the same.
//
// For a parsed File, the header (leading comment block, package statement)
// and trailer are kept, unchanged sections are written back byte for byte,
// changed sections keep the comments and blank lines before them but their
// config line and options are rewritten in export format (comments between
// their options are lost), deleted sections lose all their text, and new
// sections are written in export format after the section that precedes
// them in Sections.
func (f *File) Marshal() []byte {
	if !f.src {
		var b bytes.Buffer
		for _, s := range f.Sections {
			if s != nil {
				b.WriteByte('\n')
				writeSection(&b, s)
			}
		}
		b.WriteByte('\n')
		return b.Bytes()
	}
	w := &textWriter{f: f, last: -1}
	if len(f.layout) == 0 && len(f.trailer) == 0 {
		w.body(f.header, true)
	} else {
		w.b.Write(f.header)
	}
	owned, ordered := f.ownedInOrder()
	if !ordered {
		// Sections were reordered by hand: write them in the new order,
		// gathering each unchanged section's chunks in one place.
		for _, s := range f.Sections {
			switch {
			case s == nil:
			case !owned[s]:
				w.newSection(s)
			case s.unchanged():
				for _, ci := range s.chunks {
					w.lead(ci, false)
					w.chunkBody(ci)
				}
			default:
				w.lead(s.chunks[0], false)
				w.export(s)
			}
		}
		w.gap(f.trailer)
		return w.b.Bytes()
	}

	// Sections added by hand go right after the owned section before them.
	after := make(map[*Section][]*Section)
	var prev *Section
	for _, s := range f.Sections {
		switch {
		case s == nil:
		case owned[s]:
			prev = s
		case prev == nil:
			w.newSection(s) // before every parsed section
		default:
			after[prev] = append(after[prev], s)
		}
	}
	for ci, c := range f.layout {
		s := c.sec
		if !owned[s] {
			continue // deleted
		}
		same := s.unchanged()
		if s.chunks[0] == ci {
			w.lead(ci, w.last == ci-1)
			if same {
				w.chunkBody(ci)
			} else {
				w.export(s)
			}
			for _, n := range after[s] {
				w.newSection(n)
			}
		} else if same {
			// A later "config" of the same named section; a changed
			// section was written whole at its first chunk.
			w.lead(ci, w.last == ci-1)
			w.chunkBody(ci)
		}
	}
	if w.last == len(f.layout)-1 {
		w.put(f.trailer)
	} else {
		w.gap(f.trailer)
	}
	return w.b.Bytes()
}

// textWriter assembles kept source text and export-format sections.
type textWriter struct {
	f    *File
	b    bytes.Buffer
	last int // layout index of the last chunk written, -1 for the header
	// spliced: the output ends with the source's final backslash-newline,
	// which would join whatever comes next.
	spliced bool
}

// put starts p on a fresh line. Only the source's last line can lack a
// newline or end in a splice, so unchanged files come out byte-identical.
func (w *textWriter) put(p []byte) {
	if len(p) == 0 {
		return
	}
	if n := w.b.Len(); w.spliced || n > 0 && w.b.Bytes()[n-1] != '\n' {
		w.b.WriteByte('\n')
	}
	w.spliced = false
	w.b.Write(p)
}

// gap puts text that did not follow the previous output in the source.
// Where a deleted section leaves two blank lines meeting, one goes.
func (w *textWriter) gap(p []byte) {
	if endsBlank(w.b.Bytes()) {
		p = dropBlankLine(p)
	}
	w.put(p)
}

// lead writes the comments before chunk ci; contiguous says the output so
// far ends where the source did before them.
func (w *textWriter) lead(ci int, contiguous bool) {
	if contiguous {
		w.put(w.f.layout[ci].lead)
	} else {
		w.gap(w.f.layout[ci].lead)
	}
	w.last = ci
}

func (w *textWriter) chunkBody(ci int) {
	w.body(w.f.layout[ci].body, ci == len(w.f.layout)-1 && len(w.f.trailer) == 0)
}

// body puts source text; endsSource says it is where the source ended.
func (w *textWriter) body(p []byte, endsSource bool) {
	w.put(p)
	w.spliced = endsSource && w.f.eofSplice && len(p) > 0
}

func (w *textWriter) export(s *Section) {
	var e bytes.Buffer
	writeSection(&e, s)
	w.put(e.Bytes())
}

func (w *textWriter) newSection(s *Section) {
	w.gap([]byte{'\n'})
	w.export(s)
}

// endsBlank reports whether b ends with a blank line.
func endsBlank(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return false
	}
	i := len(b) - 2
	for i >= 0 && b[i] != '\n' {
		if !isSpace(b[i]) {
			return false
		}
		i--
	}
	return true
}

// dropBlankLine removes p's first line if it is blank.
func dropBlankLine(p []byte) []byte {
	for i, c := range p {
		if c == '\n' {
			return p[i+1:]
		}
		if !isSpace(c) {
			break
		}
	}
	return p
}

// ownedInOrder returns the sections in f.Sections that have source text in
// f, and whether they are still in source order.
func (f *File) ownedInOrder() (map[*Section]bool, bool) {
	owned := make(map[*Section]bool)
	last := -1
	ordered := true
	for _, s := range f.Sections {
		if s == nil || s.file != f || len(s.chunks) == 0 || s.chunks[0] >= len(f.layout) || f.layout[s.chunks[0]].sec != s {
			continue
		}
		if s.chunks[0] <= last {
			ordered = false
		}
		last = s.chunks[0]
		owned[s] = true
	}
	return owned, ordered
}

// writeSection writes s in export format, without the blank line before it.
func writeSection(b *bytes.Buffer, s *Section) {
	b.WriteString("config ")
	if strings.ContainsAny(s.Type, `'"\#;`) {
		b.WriteString(quote(s.Type))
	} else {
		b.WriteString(s.Type)
	}
	if s.Name != "" {
		b.WriteString(" " + quote(s.Name))
	}
	b.WriteByte('\n')
	for _, o := range s.opts {
		switch {
		case o == nil || len(o.Values) == 0:
		case o.IsList:
			for _, v := range o.Values {
				b.WriteString("\tlist " + o.Name + " " + quote(v) + "\n")
			}
		default:
			b.WriteString("\toption " + o.Name + " " + quote(o.Values[0]) + "\n")
		}
	}
}

// quote single-quotes v the way uci export does.
func quote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// WriteFile writes f to path atomically: a temporary file in the same
// directory is written, synced and renamed over path, then the directory is
// synced, so a power cut leaves either the old or the new file. The file
// mode of an existing file is kept (0644 for a new file); a symlink at path
// is followed and stays a symlink. Ownership is not preserved. f is
// validated first (see Validate).
func WriteFile(path string, f *File) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return writeAtomic(path, f.Marshal(), os.Rename)
}

// writeAtomic is WriteFile with the rename step injectable, so tests can
// make it fail. It resolves a symlink and keeps the existing file's mode.
func writeAtomic(path string, data []byte, rename func(from, to string) error) error {
	target := path
	if t, err := filepath.EvalSymlinks(path); err == nil {
		target = t
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(target); err == nil {
		mode = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.WriteFileRename(target, data, mode, rename)
}
