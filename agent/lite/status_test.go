package lite

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot is a router tree: three interfaces, an uptime, and optionally
// lora-bridge's configuration naming socket.
func fakeRoot(t *testing.T, loraConfig string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"proc/uptime":                              "3725.42 7000.00\n",
		"sys/class/net/lo/operstate":               "unknown\n",
		"sys/class/net/eth0/operstate":             "up\n",
		"sys/class/net/eth0/carrier":               "1\n",
		"sys/class/net/eth0/type":                  "1\n",
		"sys/class/net/eth0/statistics/rx_bytes":   "1536\n",
		"sys/class/net/eth0/statistics/tx_bytes":   "100\n",
		"sys/class/net/wlan0/operstate":            "down\n",
		"sys/class/net/wlan0/type":                 "1\n",
		"sys/class/net/wlan0/phy80211/name":        "phy0\n",
		"sys/class/net/wlan0/statistics/rx_bytes":  "0\n",
		"sys/class/net/tun0/operstate":             "unknown\n",
		"sys/class/net/tun0/carrier":               "1\n",
		"sys/class/net/br-lan/operstate":           "up\n",
		"sys/class/net/br-lan/bridge/stp_state":    "2\n",
		"sys/class/net/br-lan/statistics/tx_bytes": "5000000\n",
	}
	if loraConfig != "" {
		files["etc/config/lora-bridge"] = loraConfig
	}
	for n, c := range files {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeBridge answers lora-bridge's API on a unix socket as bridge.ServeAPI
// does: one request, one JSON line, close.
func fakeBridge(t *testing.T, path, reply string) <-chan string {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	reqs := make(chan string, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			reqs <- line
			c.Write([]byte(reply + "\n"))
			c.Close()
		}
	}()
	return reqs
}

const bridgeStatus = `{"status":{"radio":{"Connected":true,"Handshakes":1,"LastError":""},"node":"!a1b2c3d4","journal":{},"counters":{},"airtime":{"used_ms":5,"limit_ms":36000},"peers":[]}}`

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return m
}

func TestStatusWithBridge(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "lite")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "lb.sock")
	reqs := fakeBridge(t, sock, bridgeStatus)
	root := fakeRoot(t, "config bridge 'main'\n\toption enabled '1'\n")
	s := Gather(Options{Root: root, LoRaSocket: sock, Version: "9.9-r1"})
	if got := <-reqs; got != "{\"method\":\"status\"}\n" {
		t.Errorf("request %q", got)
	}
	m := decode(t, s.JSON())
	if m["role"] != "lite" || m["version"] != "9.9-r1" || m["uptime_seconds"] != 3725.0 {
		t.Errorf("snapshot %v", m)
	}
	// The overlay's fields are absent, not empty: LuCI shows "not reported".
	for _, k := range []string{"nebula", "address", "certificate", "lighthouses", "peers", "routed", "uplinks", "running", "problems"} {
		if _, ok := m[k]; ok {
			t.Errorf("field %s present: %v", k, m[k])
		}
	}
	links, _ := m["links"].([]any)
	var got []string
	for _, l := range links {
		l := l.(map[string]any)
		got = append(got, l["name"].(string)+" "+l["kind"].(string)+" "+map[bool]string{true: "up", false: "down"}[l["up"].(bool)])
	}
	if strings.Join(got, ", ") != "br-lan bridge up, eth0 ethernet up, tun0 other up, wlan0 wireless down" {
		t.Errorf("links %v", got)
	}
	if l0 := links[1].(map[string]any); l0["rx_bytes"] != 1536.0 || l0["tx_bytes"] != 100.0 {
		t.Errorf("eth0 %v", l0)
	}
	lora, _ := m["lora"].(map[string]any)
	st, _ := lora["status"].(map[string]any)
	if lora["running"] != true || st["node"] != "!a1b2c3d4" || lora["socket"] != sock {
		t.Errorf("lora %v", lora)
	}
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"role        lite", "uptime      1h 2m 5s", "eth0       up    ethernet  rx 1.5 KiB, tx 100 B (up)",
		"lora        bridge running, node !a1b2c3d4, radio connected"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

func TestStatusLoRaStates(t *testing.T) {
	// Not installed: no lora section at all.
	s := Gather(Options{Root: fakeRoot(t, "")})
	if _, ok := decode(t, s.JSON())["lora"]; ok || len(s.Problems) > 0 {
		t.Errorf("lora-bridge not installed: %s", s.JSON())
	}
	// Installed and enabled, socket from its configuration, not running.
	root := fakeRoot(t, "config bridge 'main'\n\toption enabled '1'\n\toption socket '/var/run/x.sock'\n")
	lora := decode(t, Gather(Options{Root: root}).JSON())["lora"].(map[string]any)
	if lora["running"] != false || lora["socket"] != root+"/var/run/x.sock" || !strings.Contains(lora["error"].(string), "connect to") {
		t.Errorf("stopped bridge: %v", lora)
	}
	// Installed, disabled.
	root = fakeRoot(t, "config bridge 'main'\n\toption enabled '0'\n")
	lora = decode(t, Gather(Options{Root: root}).JSON())["lora"].(map[string]any)
	if !strings.Contains(lora["error"].(string), "not enabled") {
		t.Errorf("disabled bridge: %v", lora)
	}
	// A bridge answering an error, and one answering garbage.
	sockDir, _ := os.MkdirTemp("", "lite")
	defer os.RemoveAll(sockDir)
	for reply, want := range map[string]string{`{"error":"radio busy"}`: "lora-bridge: radio busy", `nonsense`: "not a JSON object", `{"ok":1}`: "no status"} {
		sock := filepath.Join(sockDir, "s"+want[:3]+".sock")
		fakeBridge(t, sock, reply)
		l := QueryLoRa(sock)
		if l.Err == nil || !strings.Contains(l.Err.Error(), want) {
			t.Errorf("reply %s: %v, want %q", reply, l.Err, want)
		}
	}
}

func TestConfiguredInterfacesAndProblems(t *testing.T) {
	root := fakeRoot(t, "")
	cfg := filepath.Join(root, "etc/config/meshnode")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte("config lite\n\tlist interface 'wlan0'\n\tlist interface 'gone0'\n"), 0o600)
	s := Gather(Options{Root: root})
	if len(s.Links) != 2 || s.Links[0].Name != "wlan0" || s.Links[1].State != "absent" || s.Links[1].Up {
		t.Errorf("links %+v", s.Links)
	}
	os.WriteFile(cfg, []byte("config lite\n\toption x 'unterminated\n"), 0o600)
	os.Remove(filepath.Join(root, "proc/uptime"))
	m := decode(t, Gather(Options{Root: root}).JSON())
	p, _ := m["problems"].([]any)
	if len(p) != 2 || !strings.Contains(p[0].(string), "meshnode:2: unterminated") || !strings.Contains(p[1].(string), "no such file") {
		t.Errorf("problems %v", p)
	}
	if links, _ := m["links"].([]any); len(links) != 4 {
		t.Errorf("a broken file falls back to every link: %v", links)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ text, err, note string }{
		{"config lite 'lite'\n\tlist interface 'eth0'\n\toption lora_socket '/var/run/l.sock'\n", "", ""},
		{"config overlay 'overlay'\n\toption role 'relay'\nconfig lighthouse\nconfig shape 'wan'\n", "", "config overlay (line 1): ignored: the overlay (Nebula) needs the full meshnode package"},
		{"config lite\n\tlist interface 'way-too-long-name0'\n", "meshnode:2: section '@lite[0]' option 'interface': \"way-too-long-name0\" is not an interface name", ""},
		{"config lite\n\toption lora_socket 'relative'\n", "option 'lora_socket': must be one absolute path", ""},
		{"config lite\n\toption colour 'blue'\n", "option 'colour': unknown option (known: interface, lora_socket)", ""},
		{"config lite\nconfig lite\n", "meshnode:2: section '@lite[1]': more than one 'config lite' section", ""},
		{"config lit\n", "meshnode:1: section '@lit[0]': unknown section type \"lit\"", ""},
		{"config lite\n\toption x 'y\n", "meshnode:2: unterminated single-quoted string", ""},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "meshnode")
		os.WriteFile(p, []byte(c.text), 0o600)
		notes, err := Check(Options{Config: p})
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.text, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.text, err, c.err)
		}
		if c.note != "" && (len(notes) == 0 || notes[0] != c.note) {
			t.Errorf("%q: notes %q", c.text, notes)
		}
	}
	if _, err := Check(Options{Config: filepath.Join(dir, "none")}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	// The file the package ships passes.
	if notes, err := Check(Options{Config: "../../packages/meshnode-lite/files/meshnode.config"}); err != nil || len(notes) > 0 {
		t.Errorf("shipped config: %v %v", notes, err)
	}
}

func TestRPCD(t *testing.T) {
	root := fakeRoot(t, "")
	var out bytes.Buffer
	if RPCD([]string{"list"}, nil, &out, Options{Root: root}) != 0 || out.String() != "{\"status\":{},\"share\":{}}\n" {
		t.Errorf("list: %q", out.String())
	}
	for method, want := range map[string]string{"status": `"role":"lite"`, "share": NoShare, "set_share": `unknown method \"set_share\"`} {
		out.Reset()
		code := RPCD([]string{"call", method}, strings.NewReader(`{"ubus_rpc_session":"x"}`), &out, Options{Root: root})
		if code != 0 || !strings.Contains(out.String(), want) {
			t.Errorf("call %s: exit %d %s", method, code, out.String())
		}
		decode(t, out.Bytes())
	}
	out.Reset()
	if RPCD(nil, nil, &out, Options{}) != 2 {
		t.Error("no arguments")
	}
	decode(t, out.Bytes())
}

func TestHumanAndDuration(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[int64]string{0: "0s", 59: "59s", 3600: "1h 0m 0s", 90061: "1d 1h 1m 1s"} {
		if got := duration(s); got != want {
			t.Errorf("duration(%d) = %q, want %q", s, got, want)
		}
	}
}
