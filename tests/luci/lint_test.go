package luci

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestViewLint checks the view's JavaScript without a browser:
//   - node --check (the file is a function body, as LuCI compiles it, so
//     it is wrapped in a function first);
//   - the 'require' directives LuCI needs are at the top;
//   - nothing makes requests of its own or names a URL (the page must work
//     offline and never leave the router; rpc goes through LuCI);
//   - the stand-in is not referenced;
//   - user-visible text is translatable: a string literal that reads like
//     English words (capital letter, then at least two words) must be
//     inside _(...). A heuristic, to catch forgotten _() in review.
func TestViewLint(t *testing.T) {
	src, err := os.ReadFile(viewFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)

	if node, err := exec.LookPath("node"); err != nil {
		t.Log("node not installed: syntax check skipped (apt-get install -y nodejs)")
	} else {
		wrapped := filepath.Join(t.TempDir(), "view.js")
		if err := os.WriteFile(wrapped, []byte("(function() {\n"+text+"\n});\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(node, "--check", wrapped).CombinedOutput(); err != nil {
			t.Errorf("node --check: %v\n%s", err, out)
		}
	}

	header := strings.SplitN(text, "/*", 2)[0]
	for _, d := range []string{"'use strict';", "'require view';", "'require rpc';", "'require poll';"} {
		if !strings.Contains(header, d) {
			t.Errorf("missing directive %s at the top of the file", d)
		}
	}
	if !strings.Contains(text, "return view.extend(") {
		t.Error("the view does not return view.extend({...})")
	}
	for _, hook := range []string{"handleSave: null", "handleSaveApply: null", "handleReset: null"} {
		if !strings.Contains(text, hook) {
			t.Errorf("read-only page must set %s", hook)
		}
	}

	code := stripComments(text)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`\bfetch\s*\(`), regexp.MustCompile(`XMLHttpRequest`), regexp.MustCompile(`\bWebSocket\b`),
		regexp.MustCompile(`\bimport\s*\(`), regexp.MustCompile(`<script`), regexp.MustCompile(`\beval\s*\(`),
		regexp.MustCompile(`https?://(?:[^w'"]|w[^w]|ww[^w]|www[^.])`), // any URL but the SVG namespace below
		regexp.MustCompile(`standin`),
	} {
		if loc := bad.FindStringIndex(code); loc != nil {
			t.Errorf("forbidden %q at line %d", code[loc[0]:loc[1]], lineOf(code, loc[0]))
		}
	}
	if m := regexp.MustCompile(`https?://www\.[^'"]*`).FindAllString(code, -1); len(m) > 0 {
		for _, u := range m {
			if u != "http://www.w3.org/2000/svg" {
				t.Errorf("URL %s in the view", u)
			}
		}
	}

	// String literals, with whether they sit directly inside _( ... ).
	lit := regexp.MustCompile(`(_\(\s*)?'((?:[^'\\\n]|\\.)*)'`)
	english := regexp.MustCompile(`^[A-Z][a-z]+(?:[ ,.;:…’'-]+[A-Za-z][a-z]*){2,}`)
	for _, m := range lit.FindAllStringSubmatchIndex(code, -1) {
		translated := m[2] >= 0
		s := code[m[4]:m[5]]
		if !translated && english.MatchString(s) && !strings.ContainsAny(s, "{}=") {
			t.Errorf("line %d: %q looks like text for people but is not in _()", lineOf(code, m[0]), s)
		}
	}
}

// stripComments blanks /* */ and // comments, keeping line numbers.
func stripComments(s string) string {
	re := regexp.MustCompile(`(?s)/\*.*?\*/|(?m)(^|[^:'"\\])//[^\n]*`)
	return re.ReplaceAllStringFunc(s, func(c string) string {
		keep := ""
		if !strings.HasPrefix(c, "/") {
			keep = c[:1]
		}
		return keep + strings.Repeat("\n", strings.Count(c, "\n"))
	})
}

func lineOf(s string, off int) int { return strings.Count(s[:off], "\n") + 1 }
