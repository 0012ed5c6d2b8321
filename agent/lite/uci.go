package lite

import "strconv"

// A reader for UCI files with the grammar of internal/uci (see its Parse),
// without fmt: internal/uci's error messages use fmt, which with reflect
// costs the lite binary ~95 KB of squashfs on MIPS, a fifth of its budget.
// A test keeps the two in agreement on internal/uci's corpus.

// Section is one `config` section.
type Section struct {
	Type, Name string
	Line       int
	Options    []*Option
}

// Option is an option or a list.
type Option struct {
	Name   string
	Values []string
	IsList bool
	Line   int
}

// Get returns a plain option's value (a list's values joined by spaces, as
// uci get prints them).
func (s *Section) Get(name string) (string, bool) {
	o := s.option(name)
	if o == nil {
		return "", false
	}
	v := ""
	for i, x := range o.Values {
		if i > 0 {
			v += " "
		}
		v += x
	}
	return v, true
}

// List returns an option's values.
func (s *Section) List(name string) []string {
	if o := s.option(name); o != nil {
		return o.Values
	}
	return nil
}

func (s *Section) option(name string) *Option {
	for _, o := range s.Options {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Ref names the section as uci show does: its name, else @type[i].
func (f *File) Ref(s *Section) string {
	if s.Name != "" {
		return s.Name
	}
	i := 0
	for _, x := range f.Sections {
		if x == s {
			break
		}
		if x.Type == s.Type {
			i++
		}
	}
	return "@" + s.Type + "[" + strconv.Itoa(i) + "]"
}

// File is a parsed UCI file.
type File struct {
	Name     string
	Package  string
	Sections []*Section
}

// OfType lists the sections of one type.
func (f *File) OfType(typ string) []*Section {
	var out []*Section
	for _, s := range f.Sections {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Error is a problem in a file, at a line when Line > 0.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

type token struct {
	val  string
	line int
}

type lexer struct {
	file string
	d    []byte
	pos  int
	line int
}

func (lx *lexer) fail(line int, msg string) error { return &Error{File: lx.file, Line: line, Msg: msg} }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func (lx *lexer) splice() int {
	d, p := lx.d, lx.pos
	if p+1 < len(d) && d[p] == '\\' && d[p+1] == '\n' {
		return 2
	}
	if p+2 < len(d) && d[p] == '\\' && d[p+1] == '\r' && d[p+2] == '\n' {
		return 3
	}
	return 0
}

// statement reads the tokens of one statement.
func (lx *lexer) statement() ([]token, error) {
	var toks []token
	for lx.pos < len(lx.d) {
		c := lx.d[lx.pos]
		switch {
		case isSpace(c):
			lx.pos++
		case c == '\n':
			lx.pos++
			lx.line++
			return toks, nil
		case c == '#':
			for lx.pos < len(lx.d) && lx.d[lx.pos] != '\n' {
				lx.pos++
			}
		case lx.splice() > 0:
			lx.pos += lx.splice()
			lx.line++
		default:
			t, err := lx.word()
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
		}
	}
	return toks, nil
}

func (lx *lexer) quoted(q byte, escapes bool, b []byte) ([]byte, error) {
	start := lx.line
	lx.pos++
	what := "unterminated single-quoted string"
	if escapes {
		what = "unterminated double-quoted string"
	}
	for {
		if lx.pos >= len(lx.d) {
			return b, lx.fail(start, what)
		}
		c := lx.d[lx.pos]
		lx.pos++
		if c == q {
			return b, nil
		}
		if escapes && c == '\\' {
			if lx.pos >= len(lx.d) {
				return b, lx.fail(start, what)
			}
			c = lx.d[lx.pos]
			lx.pos++
		}
		if c == '\n' {
			lx.line++
		}
		b = append(b, c)
	}
}

func (lx *lexer) word() (token, error) {
	t := token{line: lx.line}
	var b []byte
	var err error
	for lx.pos < len(lx.d) {
		c := lx.d[lx.pos]
		switch {
		case isSpace(c) || c == '\n' || c == '#':
			t.val = string(b)
			return t, nil
		case c == ';':
			return t, lx.fail(lx.line, "unquoted ';': write one statement per line, or quote the value")
		case c == '\\':
			if n := lx.splice(); n > 0 {
				lx.pos += n
				lx.line++
				continue
			}
			if lx.pos+1 >= len(lx.d) {
				return t, lx.fail(lx.line, "backslash at end of file")
			}
			b = append(b, lx.d[lx.pos+1])
			lx.pos += 2
		case c == '\'' || c == '"':
			if b, err = lx.quoted(c, c == '"', b); err != nil {
				return t, err
			}
		default:
			b = append(b, c)
			lx.pos++
		}
	}
	t.val = string(b)
	return t, nil
}

func validName(s string) bool {
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

func validType(s string) bool {
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

func validPackage(s string) bool {
	b := []byte(s)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	return validName(string(b))
}

// ParseUCI parses UCI text; name is used in errors.
func ParseUCI(name string, data []byte) (*File, error) {
	lx := &lexer{file: name, d: data, line: 1}
	f := &File{Name: name}
	var cur *Section
	named := map[string]*Section{}
	sawPkg, pkgLine := false, 0
	for lx.pos < len(data) {
		toks, err := lx.statement()
		if err != nil {
			return nil, err
		}
		if len(toks) == 0 {
			continue
		}
		kw, line, args := toks[0].val, toks[0].line, toks[1:]
		fail := func(msg string) error { return &Error{File: name, Line: line, Msg: msg} }
		switch kw {
		case "package", "p":
			switch {
			case cur != nil:
				return nil, fail("package statement after the first config statement")
			case sawPkg:
				return nil, fail("second package statement (first on line " + strconv.Itoa(pkgLine) + ")")
			case len(args) == 0:
				return nil, fail("package: missing package name")
			case len(args) > 1:
				return nil, fail("package: too many arguments")
			case !validPackage(args[0].val):
				return nil, &Error{File: name, Line: args[0].line, Msg: "invalid package name " + quote(args[0].val)}
			}
			sawPkg, pkgLine, f.Package = true, line, args[0].val
		case "config", "c":
			if len(args) == 0 {
				return nil, fail("config: missing section type")
			}
			if len(args) > 2 {
				return nil, fail("config: too many arguments")
			}
			typ, sname := args[0].val, ""
			if !validType(typ) {
				return nil, &Error{File: name, Line: args[0].line, Msg: "invalid section type " + quote(typ)}
			}
			if len(args) == 2 {
				sname = args[1].val
				if sname != "" && !validName(sname) {
					return nil, &Error{File: name, Line: args[1].line, Msg: "invalid section name " + quote(sname)}
				}
			}
			if s := named[sname]; sname != "" && s != nil {
				if s.Type != typ {
					return nil, fail("section '" + sname + "': declared with type " + quote(typ) +
						" here but with type " + quote(s.Type) + " on line " + strconv.Itoa(s.Line))
				}
				cur = s
			} else {
				cur = &Section{Type: typ, Name: sname, Line: line}
				f.Sections = append(f.Sections, cur)
				if sname != "" {
					named[sname] = cur
				}
			}
		case "option", "o", "list", "l":
			isList := kw[0] == 'l'
			what := "option"
			if isList {
				what = "list"
			}
			switch {
			case cur == nil:
				return nil, fail(what + " outside of a section")
			case len(args) == 0:
				return nil, fail(what + ": missing name")
			case len(args) == 1:
				return nil, fail(what + " " + quote(args[0].val) + ": missing value")
			case len(args) > 2:
				return nil, fail(what + " " + quote(args[0].val) + ": too many arguments")
			}
			oname, val := args[0].val, args[1].val
			if !validName(oname) {
				return nil, &Error{File: name, Line: args[0].line, Msg: "invalid option name " + quote(oname)}
			}
			for i := 0; i < len(val); i++ {
				if c := val[i]; !(c == '\t' || c == '\n' || c == '\r' || c >= 0x20 && c != 0x7f) {
					return nil, &Error{File: name, Line: args[1].line, Msg: "option '" + oname +
						"': value contains control character 0x" + hex2(c)}
				}
			}
			apply(cur, oname, val, isList, line)
		default:
			return nil, fail("unknown statement " + quote(kw))
		}
	}
	return f, nil
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func apply(s *Section, name, val string, isList bool, line int) {
	o := s.option(name)
	switch {
	case isList && o != nil:
		o.Values, o.IsList = append(o.Values, val), true
	case isList:
		s.Options = append(s.Options, &Option{Name: name, Values: []string{val}, IsList: true, Line: line})
	case val == "":
		for i, x := range s.Options {
			if x.Name == name {
				s.Options = append(s.Options[:i], s.Options[i+1:]...)
				break
			}
		}
	case o != nil:
		o.Values, o.IsList, o.Line = []string{val}, false, line
	default:
		s.Options = append(s.Options, &Option{Name: name, Values: []string{val}, Line: line})
	}
}
