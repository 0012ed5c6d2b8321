//go:build lite

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func liteRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for n, c := range map[string]string{
		"proc/uptime":                  "61.5 0\n",
		"sys/class/net/eth0/operstate": "up\n",
		"sys/class/net/lo/operstate":   "unknown\n",
		"etc/config/meshnode":          "config lite 'lite'\n\tlist interface 'eth0'\nconfig overlay 'overlay'\n",
	} {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("MESHNODE_LITE_ROOT", root)
	return root
}

func TestLiteStatus(t *testing.T) {
	liteRoot(t)
	var out, errb bytes.Buffer
	if code := run([]string{"status", "--json"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if m["role"] != "lite" || m["uptime_seconds"] != 61.0 || len(m["links"].([]any)) != 1 {
		t.Errorf("status %v", m)
	}
	out.Reset()
	if code := run([]string{"status"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "link        eth0       up") {
		t.Errorf("text: exit %d\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"rpcd", "call", "status"}, strings.NewReader("{}"), &out, &errb); code != 0 || !strings.Contains(out.String(), `"role":"lite"`) {
		t.Errorf("rpcd: exit %d %s", code, out.String())
	}
}

func TestLiteFlags(t *testing.T) {
	root := liteRoot(t)
	var out, errb bytes.Buffer
	if code := run([]string{"status", "--bogus"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown flag --bogus") {
		t.Errorf("exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"status", "--lora-socket"}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "needs a value") {
		t.Errorf("exit %d %q", code, errb.String())
	}
	out.Reset()
	code := run([]string{"status", "-json", "--lora-socket=" + filepath.Join(root, "none.sock")}, nil, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `"lora":{"socket":"`+filepath.Join(root, "none.sock")+`","running":false`) {
		t.Errorf("exit %d %s", code, out.String())
	}
}

func TestLiteConfigCheck(t *testing.T) {
	root := liteRoot(t)
	var out, errb bytes.Buffer
	if code := run([]string{"config", "check"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "note: config overlay (line 3): ignored") || !strings.HasSuffix(out.String(), "/etc/config/meshnode: ok\n") {
		t.Errorf("output %q", out.String())
	}
	bad := filepath.Join(root, "bad")
	os.WriteFile(bad, []byte("config lite\n\toption nope '1'\n"), 0o600)
	errb.Reset()
	if code := run([]string{"config", "check", "--config", bad}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), bad+":2:") {
		t.Errorf("exit %d %q", code, errb.String())
	}
	if code := run([]string{"config", "show"}, nil, &out, &errb); code != 2 {
		t.Errorf("config show: exit %d", code)
	}
}

func TestLiteFullOnlyCommands(t *testing.T) {
	for _, c := range []string{"run", "reload", "wan", "enroll", "bundle"} {
		var out, errb bytes.Buffer
		if code := run([]string{c}, nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "meshnode-lite") {
			t.Errorf("%s: exit %d %q", c, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	run([]string{"--version"}, nil, &out, &errb)
	if !strings.Contains(out.String(), " lite (go") {
		t.Errorf("version %q", out.String())
	}
}
