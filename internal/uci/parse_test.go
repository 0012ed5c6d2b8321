package uci

import (
	"errors"
	"strings"
	"testing"
)

// Each case is one grammar rule from facts-openwrt.md §7.
func TestParseGrammar(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"keywords", "package net\nconfig t 'n'\noption a b\nlist l x\n",
			"config \"t\" \"n\"\n\toption a = \"b\"\n\tlist l = \"x\"\n"},
		{"abbreviations", "p net\nc t n\no a b\nl l x\n",
			"config \"t\" \"n\"\n\toption a = \"b\"\n\tlist l = \"x\"\n"},
		{"anonymous", "config t\nconfig t ''\n",
			"config \"t\" -\nconfig \"t\" -\n"},
		{"comment line", "# c\n  # indented\nconfig t\n\t#option a b\n", "config \"t\" -\n"},
		{"comment mid word", "config t\noption a a#b\n", "config \"t\" -\n\toption a = \"a\"\n"},
		{"comment after value", "config t\noption a 'x' # note\n", "config \"t\" -\n\toption a = \"x\"\n"},
		{"hash quoted", "config t\noption a 'x#y'\noption b \"#\"\n",
			"config \"t\" -\n\toption a = \"x#y\"\n\toption b = \"#\"\n"},
		{"segments concatenate", "config t\noption a 'a'\"b\"c\n", "config \"t\" -\n\toption a = \"abc\"\n"},
		{"single quotes no escapes", `config t
option a 'x\ny\'
`, "config \"t\" -\n\toption a = \"x\\\\ny\\\\\"\n"},
		{"export quote", `config t
option a 'It'\''s'
`, "config \"t\" -\n\toption a = \"It's\"\n"},
		{"double backslash literal", `config t
option a "x\ny\"z\\w\$HOME"
`, "config \"t\" -\n\toption a = \"xny\\\"z\\\\w$HOME\"\n"},
		{"no dollar expansion", "config t\noption a \"$HOME\"\n", "config \"t\" -\n\toption a = \"$HOME\"\n"},
		{"unquoted backslash", `config t
option a a\ b\'c\\
`, "config \"t\" -\n\toption a = \"a b'c\\\\\"\n"},
		{"continuation", "config t \\\n  n\noption a b\\\nc\n", "config \"t\" \"n\"\n\toption a = \"bc\"\n"},
		{"continuation between args", "config t\noption a \\\n\t'b'\n", "config \"t\" -\n\toption a = \"b\"\n"},
		{"quoted spans lines", "config t\noption a 'x\ny'\noption b \"1\n2\"\n",
			"config \"t\" -\n\toption a = \"x\\ny\"\n\toption b = \"1\\n2\"\n"},
		{"double-quoted escaped newline", "config t\noption a \"x\\\ny\"\n",
			"config \"t\" -\n\toption a = \"x\\ny\"\n"},
		{"crlf", "config t 'n'\r\n\toption a 'b'\r\n\toption c d\r\n",
			"config \"t\" \"n\"\n\toption a = \"b\"\n\toption c = \"d\"\n"},
		{"crlf continuation", "config t\r\noption a b\\\r\nc\r\n", "config \"t\" -\n\toption a = \"bc\"\n"},
		{"cr kept in quotes", "config t\noption a 'x\r\ny'\n", "config \"t\" -\n\toption a = \"x\\r\\ny\"\n"},
		{"tabs", "config\tt\tn\n\t\toption\ta\t'x\ty'\n", "config \"t\" \"n\"\n\toption a = \"x\\ty\"\n"},
		{"no final newline", "config t\noption a b", "config \"t\" -\n\toption a = \"b\"\n"},
		{"empty deletes", "config t\noption a x\noption b y\noption a ''\noption c \"\"\n",
			"config \"t\" -\n\toption b = \"y\"\n"},
		{"readd after delete goes last", "config t\noption a x\noption b y\noption a ''\noption a z\n",
			"config \"t\" -\n\toption b = \"y\"\n\toption a = \"z\"\n"},
		{"option replaces in place", "config t\noption a x\noption b y\noption a z\n",
			"config \"t\" -\n\toption a = \"z\"\n\toption b = \"y\"\n"},
		{"list after option converts", "config t\noption a x\nlist a y\n",
			"config \"t\" -\n\tlist a = \"x\", \"y\"\n"},
		{"option after list replaces", "config t\nlist a x\nlist a y\noption a z\n",
			"config \"t\" -\n\toption a = \"z\"\n"},
		{"empty list item kept", "config t\nlist a ''\nlist a x\n", "config \"t\" -\n\tlist a = \"\", \"x\"\n"},
		{"merge named", "config t n\noption a 1\nconfig u\nconfig t n\noption b 2\noption a 3\n",
			"config \"t\" \"n\"\n\toption a = \"3\"\n\toption b = \"2\"\nconfig \"u\" -\n"},
		{"anonymous never merge", "config t\noption a 1\nconfig t\noption a 2\n",
			"config \"t\" -\n\toption a = \"1\"\nconfig \"t\" -\n\toption a = \"2\"\n"},
		{"type printable", "config 'a#b[0]'\nconfig \"x'y\"\n", "config \"a#b[0]\" -\nconfig \"x'y\" -\n"},
		{"quoted keyword and names", "'config' \"t\" 'n'\n'option' 'a' b\n", "config \"t\" \"n\"\n\toption a = \"b\"\n"},
		{"unicode", "config t\noption a 'grüße ☃'\noption b ✓\n",
			"config \"t\" -\n\toption a = \"grüße ☃\"\n\toption b = \"✓\"\n"},
		{"only comments", "# nothing\n\n", ""},
		{"empty", "", ""},
		{"semicolon quoted", "config t\noption a 'x;y'\n", "config \"t\" -\n\toption a = \"x;y\"\n"},
		{"package dash", "package my-pkg\n", ""},
		{"comment does not continue", "# c \\\nconfig t\n", "config \"t\" -\n"},
		{"escaped backslash before newline", "config t\noption a b\\\\\noption c d\n",
			"config \"t\" -\n\toption a = \"b\\\\\"\n\toption c = \"d\"\n"},
		{"splice at end of file", "config t\noption a b \\\n", "config \"t\" -\n\toption a = \"b\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("test", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := dump(f, false); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			checkRoundTrip(t, []byte(tt.in))
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"dash in option name", "config t\n\n\toption foo-bar 1\n", `f:3: invalid option name "foo-bar"`},
		{"dash in section name", "config t my-sec\n", `f:1: invalid section name "my-sec"`},
		{"bad package name", "package 'a.b'\n", `f:1: invalid package name "a.b"`},
		{"bad type", "config 'a b'\n", `f:1: invalid section type "a b"`},
		{"empty type", "config ''\n", `f:1: invalid section type ""`},
		{"empty option name", "config t\noption '' x\n", `f:2: invalid option name ""`},
		{"unterminated single", "config t\noption a 'x\n\n\n", "f:2: unterminated single-quoted string"},
		{"unterminated double", "config t\n\noption a \"x\\\"\n", "f:3: unterminated double-quoted string"},
		{"unterminated escape at eof", "config t\noption a \"x\\", "f:2: unterminated double-quoted string"},
		{"option outside", "# c\noption a b\n", "f:2: option outside of a section"},
		{"list outside", "l a b\n", "f:1: list outside of a section"},
		{"missing value", "config t\noption a\n", `f:2: option "a": missing value`},
		{"missing name", "config t\nlist\n", "f:2: list: missing name"},
		{"missing type", "config\n", "f:1: config: missing section type"},
		{"missing package", "package\n", "f:1: package: missing package name"},
		{"extra args option", "config t\noption a b c\n", `f:2: option "a": too many arguments`},
		{"extra args config", "config t n x\n", "f:1: config: too many arguments"},
		{"extra args package", "package a b\n", "f:1: package: too many arguments"},
		{"type conflict", "config t n\n\nconfig u n\n", `f:3: section "n": declared with type "u" here but with type "t" on line 1`},
		{"control char", "config t\noption a 'x\x01'\n", `f:2: section "@t[0]": option "a": value contains control character 0x01`},
		{"del char", "config t n\noption a \x7f\n", `f:2: section "n": option "a": value contains control character 0x7f`},
		{"unknown statement", "config t\nopt a b\n", `f:2: unknown statement "opt"`},
		{"semicolon", "config t; option a b\n", "f:1: unquoted ';': write one statement per line, or quote the value"},
		{"backslash at eof", "config t\noption a b\\", "f:2: backslash at end of file"},
		{"package after config", "config t\npackage x\n", "f:2: package statement after the first config statement"},
		{"two packages", "package a\npackage b\n", "f:2: second package statement (first on line 1)"},
		{"line after continuation", "config t\noption a \\\nb\noption-x 1\n", `f:4: unknown statement "option-x"`},
		{"line after multiline quote", "config t\noption a 'x\ny'\noption b-c 1\n", `f:4: invalid option name "b-c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %q\nwant %q", err.Error(), tt.want)
			}
		})
	}
}

func TestParseLines(t *testing.T) {
	in := "# head\n\nconfig t 'a'\n\toption x 'multi\nline'\n\tlist y 1 \\\n\n\tlist y 2\nconfig t\n\toption z 3\n"
	f, err := Parse("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Sections[0], f.Sections[1]
	if a.Line != 3 || b.Line != 9 {
		t.Errorf("section lines %d, %d; want 3, 9", a.Line, b.Line)
	}
	if l := a.Option("x").Line; l != 4 {
		t.Errorf("x line %d, want 4", l)
	}
	if l := a.Option("y").Line; l != 6 {
		t.Errorf("y line %d, want 6", l)
	}
	if l := b.Option("z").Line; l != 10 {
		t.Errorf("z line %d, want 10", l)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "/etc/config/x", Line: 12, Msg: "bad"}, "/etc/config/x:12: bad"},
		{Error{File: "x", Msg: "bad"}, "x: bad"},
		{Error{Line: 3, Msg: "bad"}, "line 3: bad"},
		{Error{File: "x", Line: 1, Section: "s", Option: "o", Msg: "bad"}, `x:1: section "s": option "o": bad`},
		{Error{Msg: "bad", Option: "o"}, `option "o": bad`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestValidators(t *testing.T) {
	for _, s := range []string{"a", "A_9", "_", "lan0"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a-b", "a.b", "a b", "ü", "a\n"} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
	if !ValidPackageName("my-pkg_1") || ValidPackageName("a.b") || ValidPackageName("") {
		t.Error("ValidPackageName")
	}
	for _, s := range []string{"a", "wifi-iface", "!~", `a'"#;\[]`} {
		if !ValidType(s) {
			t.Errorf("ValidType(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a\tb", "\x7f", "ü"} {
		if ValidType(s) {
			t.Errorf("ValidType(%q) = true", s)
		}
	}
	for _, s := range []string{"", "x", "a\tb\nc\rd", "ü ☃", "\x80\xff", "'\"\\#;$"} {
		if !ValidValue(s) {
			t.Errorf("ValidValue(%q) = false", s)
		}
	}
	for _, s := range []string{"\x00", "a\x01", "\x1b[0m", "\x7f", "\v", "\f"} {
		if ValidValue(s) {
			t.Errorf("ValidValue(%q) = true", s)
		}
	}
}

func TestReadFile(t *testing.T) {
	_, err := ReadFile("testdata/err-dash-name.uci")
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/err-dash-name.uci:") {
		t.Errorf("error %v does not name the file", err)
	}
	if _, err := ReadFile("testdata/does-not-exist"); err == nil {
		t.Error("no error for a missing file")
	}
	f, err := ReadFile("testdata/export.uci")
	if err != nil || f.Name != "testdata/export.uci" || len(f.Sections) == 0 {
		t.Errorf("ReadFile = %v, %v", f, err)
	}
}
