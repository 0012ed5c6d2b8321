// Package uci reads and writes OpenWrt UCI configuration files (/etc/config/*)
// with the grammar of the uci tool itself.
//
// Files are parsed into a File, edited through Section methods and written
// back with WriteFile. Sections that were not changed since Parse are written
// back with their original bytes, so the comments and layout of a shipped
// default config survive when the agent edits another section. Changed and
// new sections are written the way `uci commit` writes them.
package uci

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// File is one UCI package (one file under /etc/config).
type File struct {
	// Name is the path or label used in errors.
	Name string
	// Package is the argument of a "package" statement, "" if there was
	// none. It is informational: Marshal never writes a package statement
	// (uci's file format has none) except as part of preserved header text.
	Package string
	// Sections in file order. Prefer AddSection and DeleteSection; direct
	// edits work too, but reordering sections makes Marshal fall back to a
	// layout that keeps less of the original text.
	Sections []*Section

	// src reports whether header, trailer and layout describe source text.
	src     bool
	header  []byte  // leading comment block and package statement
	trailer []byte  // comments and blank lines after the last section
	layout  []chunk // every config statement's text, in source order
	// eofSplice: the source ends with a backslash-newline.
	eofSplice bool
}

// chunk is the source text of one config statement and the statements
// that follow it up to the next config statement. A named section declared
// twice owns two chunks.
type chunk struct {
	sec  *Section
	lead []byte // comments and blank lines before the config line
	body []byte // config line through its last statement and attached comments
}

// Section is one config statement: named, or anonymous (Name == "").
type Section struct {
	Type string
	// Name is "" for an anonymous section; see Ref and AutoName.
	Name string
	// Line of its config statement; 0 for sections added by AddSection.
	Line int

	opts   []*Option
	file   *File
	chunks []int     // indexes into file.layout; chunks[0] declared it
	orig   *snapshot // content at parse time, to tell whether it changed
}

// Option is an option or a list. A plain option has exactly one value.
type Option struct {
	Name   string
	Values []string
	IsList bool
	// Line of the statement that created it (or last replaced it with a
	// plain option); 0 if set through the API.
	Line int
}

// snapshot is a deep copy of a section's content. Comparing against it
// rather than tracking a dirty flag also catches edits made through the
// exported Option fields.
type snapshot struct {
	typ, name string
	opts      []Option
}

// Error is a parse, validation or lookup error.
type Error struct {
	File            string
	Line            int // 0 if not tied to a line
	Section, Option string
	Msg             string
}

// Error formats as "file:line: section "s": option "o": msg", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	s := e.Msg
	if e.Option != "" {
		s = "option " + quoted(e.Option) + ": " + s
	}
	if e.Section != "" {
		s = "section " + quoted(e.Section) + ": " + s
	}
	switch {
	case e.File != "" && e.Line > 0:
		s = e.File + ":" + strconv.Itoa(e.Line) + ": " + s
	case e.File != "":
		s = e.File + ": " + s
	case e.Line > 0:
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	return s
}

// newError is where errors are made. Not inlined: a struct literal at
// each of dozens of error paths costs flash on MIPS.
//
//go:noinline
func newError(file string, line int, section, option, msg string) error {
	return &Error{File: file, Line: line, Section: section, Option: option, Msg: msg}
}

// quoted is strconv.Quote, as fmt's %q. Not inlined: inlined it is about
// 250 bytes of MIPS code at each call.
//
//go:noinline
func quoted(s string) string { return strconv.Quote(s) }

// invalid is the message for a bad name or type: what is e.g. "section
// name". Not inlined, as it is called from many error paths.
//
//go:noinline
func invalid(what, v string) string {
	return "invalid " + what + " " + quoted(v)
}

// ValidName reports whether s is a valid section or option name:
// [A-Za-z0-9_]+. uci rejects '-' here, unlike in package names. Not
// inlined: it is called at many places, each copy costing flash on MIPS.
//
//go:noinline
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidPackageName reports whether s is a valid package (file) name:
// [A-Za-z0-9_-]+.
func ValidPackageName(s string) bool {
	return ValidName(strings.ReplaceAll(s, "-", "_"))
}

// ValidType reports whether s is a valid section type: one or more
// printable ASCII characters (33-126). Not inlined, as ValidName.
//
//go:noinline
func ValidType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// ValidValue reports whether s may be stored as a value: no control
// characters other than tab, LF and CR. Bytes >= 0x80 (UTF-8) are allowed.
// The empty string is valid (as a list item; Set treats it as delete).
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if !validValueByte(s[i]) {
			return false
		}
	}
	return true
}

func validValueByte(c byte) bool {
	return c == '\t' || c == '\n' || c == '\r' || c >= 0x20 && c != 0x7f
}

// badValue explains why one of vs is not a valid value, or returns "".
func badValue(vs ...string) string {
	for _, v := range vs {
		for i := 0; i < len(v); i++ {
			if !validValueByte(v[i]) {
				return fmt.Sprintf("value contains control character 0x%02x", v[i])
			}
		}
	}
	return ""
}

// NewFile returns an empty File with no source text; Marshal writes it in
// uci export format.
func NewFile(name string) *File { return &File{Name: name} }

// SectionsOfType returns the sections of type typ in file order.
//
//go:noinline
func (f *File) SectionsOfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s != nil && s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Lookup finds a section by name, by "@type[i]" (i < 0 counts from the end,
// -1 is the last), or by the AutoName of an anonymous section.
func (f *File) Lookup(ref string) (*Section, error) {
	if strings.HasPrefix(ref, "@") {
		typ, idx, ok := parseRef(ref)
		if !ok {
			return nil, newError(f.Name, 0, ref, "", `invalid section reference, want "@type[index]"`)
		}
		secs := f.SectionsOfType(typ)
		i := idx
		if i < 0 {
			i += len(secs)
		}
		if i < 0 || i >= len(secs) {
			return nil, newError(f.Name, 0, ref, "", fmt.Sprintf("index %d out of range (%d sections of type %q)", idx, len(secs), typ))
		}
		return secs[i], nil
	}
	for _, s := range f.Sections {
		if s != nil && s.Name != "" && s.Name == ref {
			return s, nil
		}
	}
	if strings.HasPrefix(ref, "cfg") {
		for i, s := range f.Sections {
			if s != nil && s.Name == "" && autoName(i, s.Type) == ref {
				return s, nil
			}
		}
	}
	return nil, newError(f.Name, 0, ref, "", "no such section")
}

// parseRef splits "@type[i]". The type may itself contain brackets, so the
// index is taken from the last '['.
func parseRef(ref string) (typ string, idx int, ok bool) {
	if len(ref) < 4 || ref[0] != '@' || ref[len(ref)-1] != ']' {
		return "", 0, false
	}
	open := strings.LastIndexByte(ref, '[')
	if open < 2 {
		return "", 0, false
	}
	typ = ref[1:open]
	idx, err := strconv.Atoi(ref[open+1 : len(ref)-1])
	if err != nil || !ValidType(typ) {
		return "", 0, false
	}
	return typ, idx, true
}

// AddSection appends a new section; name "" makes it anonymous. If a named
// section with that name and type exists it is returned unchanged, so
// callers can use AddSection to make sure a section exists; a different
// type is an error.
func (f *File) AddSection(typ, name string) (*Section, error) {
	if !ValidType(typ) {
		return nil, newError(f.Name, 0, name, "", invalid("section type", typ))
	}
	if name != "" {
		if !ValidName(name) {
			return nil, newError(f.Name, 0, "", "", invalid("section name", name))
		}
		for _, s := range f.Sections {
			if s == nil || s.Name != name {
				continue
			}
			if s.Type != typ {
				return nil, newError(f.Name, s.Line, name, "", "exists with type "+quoted(s.Type)+", not "+quoted(typ))
			}
			return s, nil
		}
	}
	s := &Section{Type: typ, Name: name, file: f}
	f.Sections = append(f.Sections, s)
	return s, nil
}

// DeleteSection removes s from f, and with it all of its source text.
func (f *File) DeleteSection(s *Section) {
	// A loop, not slices.DeleteFunc: its instantiation and closure cost
	// more flash on MIPS.
	kept := f.Sections[:0]
	for _, x := range f.Sections {
		if x != s {
			kept = append(kept, x)
		}
	}
	clear(f.Sections[len(kept):])
	f.Sections = kept
}

// Validate reports the first problem that would stop Marshal's output from
// parsing back to the same content: invalid names, types or values,
// duplicate section or option names, options without values. Parse and
// the Section methods never produce such a File; direct field edits can.
func (f *File) Validate() error {
	if f.Package != "" && !ValidPackageName(f.Package) {
		return newError(f.Name, 0, "", "", invalid("package name", f.Package))
	}
	named := make(map[string]bool)
	for i, s := range f.Sections {
		if s == nil {
			return newError(f.Name, 0, "", "", "section "+strconv.Itoa(i)+" is nil")
		}
		if line, opt, msg := s.problem(named); msg != "" {
			return newError(f.Name, line, s.Ref(), opt, msg)
		}
	}
	return nil
}

// problem is Validate for one section: the line and option name for the
// error, and what is wrong ("" if nothing). named holds the names of the
// sections before s; s's is added.
func (s *Section) problem(named map[string]bool) (line int, opt, msg string) {
	switch {
	case !ValidType(s.Type):
		return s.Line, "", invalid("section type", s.Type)
	case s.Name != "" && !ValidName(s.Name):
		return s.Line, "", invalid("section name", s.Name)
	case s.Name != "" && named[s.Name]:
		return s.Line, "", "duplicate section name"
	}
	if s.Name != "" {
		named[s.Name] = true
	}
	seen := make(map[string]bool)
	line = s.Line
	for _, o := range s.opts {
		if o == nil {
			// The previous option's name and line, if any.
			return line, opt, "nil option"
		}
		line, opt = o.Line, o.Name
		switch {
		case !ValidName(o.Name):
			return line, "", invalid("option name", o.Name)
		case seen[o.Name]:
			msg = "duplicate option"
		case len(o.Values) == 0:
			msg = "no values"
		case !o.IsList && len(o.Values) != 1:
			msg = "plain option has " + strconv.Itoa(len(o.Values)) + " values"
		case !o.IsList && o.Values[0] == "":
			msg = "empty value (uci reads it as deleted)"
		default:
			msg = badValue(o.Values...)
		}
		if msg != "" {
			return line, opt, msg
		}
		seen[o.Name] = true
	}
	return 0, "", ""
}

// Ref returns the section's name, or "@type[i]" for an anonymous section
// ("@type[?]" if it is not part of a File).
func (s *Section) Ref() string {
	if s.Name != "" {
		return s.Name
	}
	if s.file != nil {
		i := 0
		for _, x := range s.file.Sections {
			if x == s {
				return "@" + s.Type + "[" + strconv.Itoa(i) + "]"
			}
			if x != nil && x.Type == s.Type {
				i++
			}
		}
	}
	return "@" + s.Type + "[?]"
}

// AutoName returns the name `uci show` would print for the section: its
// Name if it has one, else "cfg" + 2 hex digits (1-based position among all
// sections of the file, as uci counts) + 4 hex digits hashed from the type.
// The hash is not uci's, so the last four digits differ from what the uci
// tool prints; the name is stable for a given file content and Lookup
// accepts it.
func (s *Section) AutoName() string {
	if s.Name != "" {
		return s.Name
	}
	if s.file != nil {
		if i := slices.Index(s.file.Sections, s); i >= 0 {
			return autoName(i, s.Type)
		}
	}
	return autoName(-1, s.Type)
}

func autoName(i int, typ string) string {
	// FNV-1a, folded to 16 bits. Byte-wise, so the same on any endianness.
	h := uint32(2166136261)
	for j := 0; j < len(typ); j++ {
		h ^= uint32(typ[j])
		h *= 16777619
	}
	return fmt.Sprintf("cfg%02x%04x", i+1, (h>>16^h)&0xffff)
}

// Options returns the section's options and lists in order.
func (s *Section) Options() []*Option { return slices.Clone(s.opts) }

// Option returns the option or list called name, or nil. Not inlined:
// every Get and List would carry a copy of the loop, which on MIPS adds
// up to kilobytes of flash for no speed that matters.
//
//go:noinline
func (s *Section) Option(name string) *Option {
	for _, o := range s.opts {
		if o != nil && o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns an option's value. For a list it returns the values joined by
// single spaces, as `uci get` and config_get in shell scripts do; use List
// to get them separately.
//
//go:noinline
func (s *Section) Get(name string) (string, bool) {
	o := s.Option(name)
	if o == nil || len(o.Values) == 0 {
		return "", false
	}
	return strings.Join(o.Values, " "), true
}

// List returns a list's values, a plain option's value as a one-element
// slice, or nil if there is no such option. The slice is a copy.
//
//go:noinline
func (s *Section) List(name string) []string {
	if o := s.Option(name); o != nil {
		return slices.Clone(o.Values)
	}
	return nil
}

// Set sets a plain option, replacing an option or list of that name in
// place. An empty value deletes the option, as in uci.
func (s *Section) Set(name, value string) error {
	return s.put(name, []string{value}, false, false)
}

// SetList replaces the option or list called name with a list of values.
// No values deletes it. Empty strings are kept as empty list items.
func (s *Section) SetList(name string, values []string) error {
	return s.put(name, values, true, false)
}

// AddList appends value to the list called name, turning a plain option of
// that name into a list first, as uci add_list does.
func (s *Section) AddList(name, value string) error {
	return s.put(name, []string{value}, true, true)
}

// put is Set (list false), SetList (list) and AddList (list and add).
// values are copied.
func (s *Section) put(name string, values []string, list, add bool) error {
	if err := s.check(name, values); err != nil {
		return err
	}
	if !add && (len(values) == 0 || !list && values[0] == "") {
		s.Delete(name)
		return nil
	}
	o := s.Option(name)
	if o == nil {
		o = &Option{Name: name}
		s.opts = append(s.opts, o)
	}
	if add {
		// Clip so the append never writes into a slice the caller holds.
		o.Values = append(slices.Clip(o.Values), values...)
	} else {
		o.Values = slices.Clone(values)
	}
	o.IsList = list
	return nil
}

// Delete removes the option or list called name, if present. Not
// inlined: apply and put would each carry a copy.
//
//go:noinline
func (s *Section) Delete(name string) {
	// A loop, not slices.DeleteFunc: see DeleteSection.
	kept := s.opts[:0]
	for _, o := range s.opts {
		if o == nil || o.Name != name {
			kept = append(kept, o)
		}
	}
	clear(s.opts[len(kept):])
	s.opts = kept
}

func (s *Section) check(name string, values []string) error {
	opt, msg := name, badValue(values...)
	if !ValidName(name) {
		opt, msg = "", invalid("option name", name)
	}
	if msg == "" {
		return nil
	}
	file := ""
	if s.file != nil {
		file = s.file.Name
	}
	return newError(file, 0, s.Ref(), opt, msg)
}

func (s *Section) snapshot() *snapshot {
	sn := &snapshot{typ: s.Type, name: s.Name, opts: make([]Option, len(s.opts))}
	for i, o := range s.opts {
		sn.opts[i] = Option{Name: o.Name, Values: slices.Clone(o.Values), IsList: o.IsList}
	}
	return sn
}

// unchanged reports whether s still holds what Parse read.
func (s *Section) unchanged() bool {
	sn := s.orig
	if sn == nil || sn.typ != s.Type || sn.name != s.Name || len(sn.opts) != len(s.opts) {
		return false
	}
	for i, o := range s.opts {
		p := sn.opts[i]
		if o == nil || o.Name != p.Name || o.IsList != p.IsList || !slices.Equal(o.Values, p.Values) {
			return false
		}
	}
	return true
}
