package lite

import (
	"encoding/json"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "<a&b>", "ünïcødé ✓",
		"bad \xff utf8", "\u2028\u2029", "trunc \xe2\x82"} {
		want, _ := json.Marshal(s)
		if got := string(appendString(nil, s)); got != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func TestObjectFields(t *testing.T) {
	valid := []string{`{}`, ` {"a":1} `, `{"a":{"b":[1,2.5e-3,-0,"x",true,false,null]},"c":"\u00e9\n"}`,
		`{"a":[],"b":{},"a":2}`, "{\"status\":{\"radio\":{\"Connected\":true}}}\n"}
	invalid := []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":+1}`, `{"a":tru}`,
		`{"a":"x` + "\n" + `"}`, `{"a":1} x`, `{"a":"\q"}`, `{"a":[1 2]}`, `{a:1}`}
	for _, s := range valid {
		if !json.Valid([]byte(s)) {
			t.Fatalf("fixture %q is not valid JSON", s)
		}
		if _, err := objectFields([]byte(s)); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range invalid {
		if _, err := objectFields([]byte(s)); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	f, err := objectFields([]byte(`{"a":[],"s":"x\"y\u00e9","a":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(f["a"]) != "2" || jsonString(f["s"]) != "x\"yé" {
		t.Errorf("fields %q", f)
	}
}

func FuzzObjectFields(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,"x",null]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := objectFields(data)
		var m map[string]json.RawMessage
		jerr := json.Unmarshal(data, &m)
		if (err == nil) != (jerr == nil && m != nil) {
			t.Errorf("%q: lite %v, encoding/json %v", data, err, jerr)
		}
	})
}
