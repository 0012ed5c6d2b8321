package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const shareConfig = `# meshnode: shipped defaults
config overlay 'overlay'
	option role 'client'

# Operator's bounds for the node host.
config share 'share'
	option shape 'wan'
	option upload_min '2000'
	option upload_max '20mbit'

config shape 'wan'
	option device 'eth0'
	# keep this comment
	option upload '10000'
	option download '50mbit'
`

func writeShareConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "meshnode")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadShare(t *testing.T) {
	sh, err := ReadShare(writeShareConfig(t, shareConfig))
	if err != nil {
		t.Fatal(err)
	}
	if sh.Section != "wan" || sh.Device != "eth0" || sh.UploadKbit != 10000 || sh.DownloadKbit != 50000 {
		t.Errorf("got %+v", sh)
	}
	if sh.Upload == nil || *sh.Upload != (Bounds{2000, 20000}) || sh.Download != nil {
		t.Errorf("bounds %+v %+v", sh.Upload, sh.Download)
	}
}

func TestSetShare(t *testing.T) {
	p := writeShareConfig(t, shareConfig)
	for _, tc := range []struct {
		up, down int64
		want     string // error substring, "" = ok
	}{
		{1999, 0, "outside the operator's bounds"},
		{20001, 0, "outside the operator's bounds"},
		{-5, 0, "above zero"},
		{0, 0, "nothing to change"},
		{0, 60000, "not allowed changing the download"},
	} {
		_, err := SetShare(p, tc.up, tc.down)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetShare(%d,%d) = %v, want %q", tc.up, tc.down, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(p); string(b) != shareConfig {
		t.Fatalf("refused values changed the file:\n%s", b)
	}
	sh, err := SetShare(p, 15000, 0)
	if err != nil || sh.UploadKbit != 15000 {
		t.Fatalf("SetShare = %+v, %v", sh, err)
	}
	b, _ := os.ReadFile(p)
	for _, keep := range []string{"# meshnode: shipped defaults", "# Operator's bounds for the node host.",
		"option upload_max '20mbit'", "config overlay 'overlay'", "option upload '15000'", "option download '50mbit'"} {
		if !bytes.Contains(b, []byte(keep)) {
			t.Errorf("after write, %q missing:\n%s", keep, b)
		}
	}
	if !errors.Is(func() error { _, err := SetShare(p, 1, 0); return err }(), ErrShareOutOfBounds) {
		t.Error("out-of-bounds error does not wrap ErrShareOutOfBounds")
	}
}

func TestShareNoShapeSection(t *testing.T) {
	_, err := ReadShare(writeShareConfig(t, "config overlay 'overlay'\n\toption role 'client'\n"))
	if err == nil || !strings.Contains(err.Error(), "no `config shape` section") {
		t.Errorf("got %v", err)
	}
	_, err = ReadShare(writeShareConfig(t, "config share\n\toption upload_min '5'\n\nconfig shape 'wan'\n\toption device 'eth0'\n\toption upload '10'\n"))
	if err == nil || !strings.Contains(err.Error(), "set both upload_min and upload_max") {
		t.Errorf("half bounds: got %v", err)
	}
}

func TestShareRPCD(t *testing.T) {
	p := writeShareConfig(t, shareConfig)
	reloads := 0
	reload := func() error { reloads++; return nil }
	call := func(method, in string) ShareResult {
		t.Helper()
		var out bytes.Buffer
		ShareRPCD(method, strings.NewReader(in), &out, p, reload)
		var r ShareResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%s: not one JSON object: %q", method, out.String())
		}
		return r
	}
	// Refused after submission too: the page's own check can be bypassed.
	if r := call("set_share", `{"upload_kbit":999999,"ubus_rpc_session":"x"}`); r.OK || !strings.Contains(r.Error, "choose from 2000 to 20000") {
		t.Errorf("out of bounds: %+v", r)
	}
	if r := call("set_share", `{"upload_kbit":1.5}`); r.OK || !strings.Contains(r.Error, "whole number") {
		t.Errorf("fraction: %+v", r)
	}
	if r := call("set_share", `{"upload_kbit":"x"`); r.OK || r.Error == "" {
		t.Errorf("bad JSON: %+v", r)
	}
	if reloads != 0 {
		t.Errorf("refused values reloaded the agent %d times", reloads)
	}
	r := call("set_share", `{"upload_kbit":12000}`)
	if !r.OK || !r.Applied || r.Share.UploadKbit != 12000 || reloads != 1 {
		t.Errorf("valid: %+v reloads %d", r, reloads)
	}
	var out bytes.Buffer
	ShareRPCD("share", strings.NewReader(""), &out, p, nil)
	if !strings.Contains(out.String(), `"upload_kbit":12000`) || !strings.Contains(out.String(), `"upload_bounds":{"min":2000,"max":20000}`) {
		t.Errorf("share: %s", out.String())
	}
	reload = func() error { return errors.New("cannot reach the agent") }
	if r := call("set_share", `{"upload_kbit":13000}`); !r.OK || r.Applied || !strings.Contains(r.Hint, "applies when the agent next starts") {
		t.Errorf("agent down: %+v", r)
	}
}

func TestRPCDWithShareList(t *testing.T) {
	var out bytes.Buffer
	RPCDWithShare([]string{"list"}, strings.NewReader(""), &out, Client{Socket: "/nonexistent"}, "/nonexistent")
	var m map[string]map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	for _, k := range []string{"status", "share", "set_share"} {
		if _, ok := m[k]; !ok {
			t.Errorf("list lacks %s: %s", k, out.String())
		}
	}
	out.Reset()
	RPCDWithShare([]string{"call", "status"}, strings.NewReader("{}"), &out, Client{Socket: "/nonexistent"}, "/nonexistent")
	if !strings.Contains(out.String(), `"running":false`) {
		t.Errorf("status with agent down: %s", out.String())
	}
}
