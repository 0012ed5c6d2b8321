package uci

import (
	"os"
	"strconv"
)

// ReadFile reads and parses a UCI file; errors name path.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses UCI text. name is used in errors and as File.Name.
//
// Grammar, as the uci tool reads it: one statement per line, "package",
// "config <type> [name]", "option <name> <value>", "list <name> <value>"
// (or p, c, o, l). Arguments are made of concatenated segments: 'single'
// (no escapes), "double" (backslash takes the next character literally, so
// "\n" is "n"; no $ expansion) and unquoted (\x is x). Quoted segments may
// span lines, keeping the newline; an unquoted backslash at the end of a
// line joins the next line. An unquoted # starts a comment, even inside a
// word. An empty option value deletes the option; list after option of the
// same name turns it into a list; option after list replaces the list; a
// named section declared again continues the first declaration.
//
// Choices where uci is unclear or inconsistent: an unquoted ';' is an error
// (uci's handling of ';' separators is unreliable), a backslash at the very
// end of the file is an error, a comment never continues onto the next
// line, a config statement with an empty name is anonymous, and empty list
// items are kept.
func Parse(name string, data []byte) (*File, error) {
	lx := &lexer{file: name, data: data, line: 1}
	var stmts []stmt
	for lx.pos < len(data) {
		st, err := lx.statement()
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
	}
	// A backslash-newline ending the file would join whatever Marshal
	// writes after that text; remember it so Marshal can end the line.
	f := &File{Name: name, src: true, eofSplice: len(data) > 0 && lx.spliceEnd == len(data)}
	spans, err := f.build(stmts)
	if err != nil {
		return nil, err
	}
	f.split(data, stmts, spans)
	for _, s := range f.Sections {
		s.orig = s.snapshot()
	}
	return f, nil
}

// token is one argument after unquoting.
type token struct {
	val  string
	line int
}

// stmt is the source text [start, end) of one statement, from the start of
// its first line through the newline that ends it. Comment-only and blank
// lines are statements without tokens.
type stmt struct {
	start, end int
	toks       []token
}

type lexer struct {
	file      string
	data      []byte
	pos       int
	line      int
	spliceEnd int // offset just past the last backslash-newline
}

func (lx *lexer) fail(line int, msg string) error {
	return newError(lx.file, line, "", "", msg)
}

func isSpace(c byte) bool {
	// As C isspace() minus '\n', which ends a statement. '\r' makes CRLF
	// files read like LF files.
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// splice reports the length of a backslash-newline at pos (0 if none).
// "\\\r\n" counts too, so continuations work in CRLF files.
func (lx *lexer) splice() int {
	d, p := lx.data, lx.pos
	if p+1 < len(d) && d[p] == '\\' && d[p+1] == '\n' {
		return 2
	}
	if p+2 < len(d) && d[p] == '\\' && d[p+1] == '\r' && d[p+2] == '\n' {
		return 3
	}
	return 0
}

func (lx *lexer) statement() (stmt, error) {
	st := stmt{start: lx.pos}
	for lx.pos < len(lx.data) {
		c := lx.data[lx.pos]
		switch {
		case isSpace(c):
			lx.pos++
		case c == '\n':
			lx.pos++
			lx.line++
			st.end = lx.pos
			return st, nil
		case c == '#':
			for lx.pos < len(lx.data) && lx.data[lx.pos] != '\n' {
				lx.pos++
			}
		default:
			if n := lx.splice(); n > 0 {
				lx.pos += n
				lx.line++
				lx.spliceEnd = lx.pos
				continue
			}
			tok, err := lx.word()
			if err != nil {
				return st, err
			}
			st.toks = append(st.toks, tok)
		}
	}
	st.end = lx.pos
	return st, nil
}

// word reads one argument: concatenated quoted and unquoted segments up to
// unquoted whitespace, newline, '#' or end of input.
func (lx *lexer) word() (token, error) {
	tok := token{line: lx.line}
	var b []byte
	d := lx.data
	for lx.pos < len(d) {
		c := d[lx.pos]
		switch {
		case isSpace(c) || c == '\n' || c == '#':
			tok.val = string(b)
			return tok, nil
		case c == ';':
			return tok, lx.fail(lx.line, "unquoted ';': write one statement per line, or quote the value")
		case c == '\\':
			if n := lx.splice(); n > 0 {
				lx.pos += n
				lx.line++
				lx.spliceEnd = lx.pos
				continue
			}
			if lx.pos+1 >= len(d) {
				return tok, lx.fail(lx.line, "backslash at end of file")
			}
			b = append(b, d[lx.pos+1])
			lx.pos += 2
		case c == '\'' || c == '"':
			// One loop for both quotes; only in "double" does a
			// backslash take the next character literally.
			start, quote := lx.line, c
			lx.pos++
			for {
				esc := quote == '"' && lx.pos < len(d) && d[lx.pos] == '\\'
				if esc {
					lx.pos++
				}
				if lx.pos >= len(d) {
					if quote == '"' {
						return tok, lx.fail(start, "unterminated double-quoted string")
					}
					return tok, lx.fail(start, "unterminated single-quoted string")
				}
				c := d[lx.pos]
				lx.pos++
				if c == quote && !esc {
					break
				}
				if c == '\n' {
					lx.line++
				}
				b = append(b, c)
			}
		default:
			b = append(b, c)
			lx.pos++
		}
	}
	tok.val = string(b)
	return tok, nil
}

// span is a config statement and the statements that belong to it, as
// indexes into the statement list.
type span struct {
	sec         *Section
	first, last int
}

// build applies the statements to f and returns the config spans.
func (f *File) build(stmts []stmt) ([]span, error) {
	var (
		spans   []span
		cur     *Section
		named   = make(map[string]*Section)
		pkgLine int // of the package statement, 0 if none yet
	)
	for i := range stmts {
		toks := stmts[i].toks
		if len(toks) == 0 {
			continue
		}
		kw, line, args := toks[0].val, toks[0].line, toks[1:]
		// The error, if msg is set: one exit, so the error is built in
		// one place.
		var (
			msg      string
			errLine  = line
			sec, opt string
		)
		switch kw {
		case "package", "p":
			switch {
			case cur != nil:
				msg = "package statement after the first config statement"
			case pkgLine > 0:
				msg = "second package statement (first on line " + strconv.Itoa(pkgLine) + ")"
			case len(args) == 0:
				msg = "package: missing package name"
			case len(args) > 1:
				msg = "package: too many arguments"
			case !ValidPackageName(args[0].val):
				errLine, msg = args[0].line, invalid("package name", args[0].val)
			default:
				pkgLine, f.Package = line, args[0].val
			}
		case "config", "c":
			typ, name := "", ""
			if len(args) > 0 {
				typ = args[0].val
			}
			if len(args) == 2 {
				name = args[1].val
			}
			s := named[name] // nil for "": anonymous sections are never continued
			switch {
			case len(args) == 0:
				msg = "config: missing section type"
			case len(args) > 2:
				msg = "config: too many arguments"
			case !ValidType(typ):
				errLine, msg = args[0].line, invalid("section type", typ)
			case name != "" && !ValidName(name):
				errLine, msg = args[1].line, invalid("section name", name)
			case s != nil && s.Type != typ:
				sec, msg = name, "declared with type "+quoted(typ)+" here but with type "+quoted(s.Type)+" on line "+strconv.Itoa(s.Line)
			default:
				if s == nil {
					s = &Section{Type: typ, Name: name, Line: line, file: f}
					f.Sections = append(f.Sections, s)
					if name != "" {
						named[name] = s
					}
				}
				cur = s
				spans = append(spans, span{sec: s, first: i, last: i})
			}
		case "option", "o", "list", "l":
			isList := kw[0] == 'l'
			what := "option"
			if isList {
				what = "list"
			}
			switch {
			case cur == nil:
				msg = what + " outside of a section"
			case len(args) == 0:
				msg = what + ": missing name"
			case len(args) == 1:
				msg = what + " " + quoted(args[0].val) + ": missing value"
			case len(args) > 2:
				msg = what + " " + quoted(args[0].val) + ": too many arguments"
			case !ValidName(args[0].val):
				errLine, msg = args[0].line, invalid("option name", args[0].val)
			default:
				name, val := args[0].val, args[1].val
				if msg = badValue(val); msg != "" {
					errLine, sec, opt = args[1].line, cur.Ref(), name
				} else {
					apply(cur, name, val, isList, line)
					spans[len(spans)-1].last = i
				}
			}
		default:
			msg = "unknown statement " + quoted(kw)
		}
		if msg != "" {
			return nil, newError(f.Name, errLine, sec, opt, msg)
		}
	}
	return spans, nil
}

// apply performs one option or list statement.
func apply(s *Section, name, val string, isList bool, line int) {
	o := s.Option(name)
	switch {
	case isList && o != nil:
		o.Values, o.IsList = append(o.Values, val), true
	case isList:
		s.opts = append(s.opts, &Option{Name: name, Values: []string{val}, IsList: true, Line: line})
	case val == "":
		s.Delete(name)
	case o != nil:
		o.Values, o.IsList, o.Line = []string{val}, false, line
	default:
		s.opts = append(s.opts, &Option{Name: name, Values: []string{val}, Line: line})
	}
}

// split cuts the source into header, one chunk per config statement, and
// trailer. Comment lines right after a section's last statement stay with
// it (commented-out defaults); from the first blank line on, comments
// belong to the next section. Before the first section, everything up to
// the last blank line is the file's header, which is never dropped.
func (f *File) split(data []byte, stmts []stmt, spans []span) {
	if len(spans) == 0 {
		f.header = data
		return
	}
	// The header starts after any package statement.
	pre := 0
	for _, st := range stmts[:spans[0].first] {
		if len(st.toks) > 0 {
			pre = st.end
		}
	}
	gapEnd := stmts[spans[0].first].start
	cut := gapEnd
	if n := afterLastBlank(data[pre:gapEnd]); n >= 0 {
		cut = pre + n
	}
	f.header = data[:cut]
	lead := data[cut:gapEnd]
	for k, sp := range spans {
		bodyStart, lastEnd := stmts[sp.first].start, stmts[sp.last].end
		next := len(data)
		if k+1 < len(spans) {
			next = stmts[spans[k+1].first].start
		}
		end := lastEnd + firstBlank(data[lastEnd:next])
		sp.sec.chunks = append(sp.sec.chunks, len(f.layout))
		f.layout = append(f.layout, chunk{sec: sp.sec, lead: lead, body: data[bodyStart:end]})
		lead = data[end:next]
	}
	f.trailer = lead
}

// lines calls fn with the offset just past each line of b and whether the
// line is blank (whitespace only). A last line without '\n' counts.
func lines(b []byte, fn func(end int, blank bool) bool) {
	start := 0
	for start < len(b) {
		end, blank := start, true
		for end < len(b) && b[end] != '\n' {
			blank = blank && isSpace(b[end])
			end++
		}
		if end < len(b) {
			end++
		}
		if !fn(end, blank) {
			return
		}
		start = end
	}
}

// firstBlank returns the offset of the first blank line in b, or len(b).
func firstBlank(b []byte) int {
	at, prev := len(b), 0
	lines(b, func(end int, blank bool) bool {
		if blank {
			at = prev
			return false
		}
		prev = end
		return true
	})
	return at
}

// afterLastBlank returns the offset just past the last blank line in b, or
// -1 if there is none.
func afterLastBlank(b []byte) int {
	at := -1
	lines(b, func(end int, blank bool) bool {
		if blank {
			at = end
		}
		return true
	})
	return at
}
