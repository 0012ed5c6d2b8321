// Package luci tests luci-app-meshnode's view in a real browser: headless
// Chromium loads the view with the stand-in loader in standin/, fed with
// JSON from a real agent running in the namespace topology of
// tests/overlay, edited for each state a node host may meet.
package luci

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/status"
	"github.com/meshnode/meshnode/tests/overlay"
)

const (
	viewDir    = "../../packages/luci-app-meshnode/files/htdocs/luci-static/resources/view"
	viewFile   = viewDir + "/meshnode/status.js"
	standinDir = "standin"
	shotDir    = "../../out/screenshots"
)

const shareUCI = `config overlay 'overlay'
	option role 'client'

config share 'share'
	option upload_min '2000'
	option upload_max '20000'

config shape 'wan'
	option device 'wan'
	option upload '10000'
	option download '50000'
`

// agentJSON returns the rpcd reply of a real agent (a client joined to a
// hub in network namespaces) and of the plugin when the agent is down.
func agentJSON(t *testing.T) (running, down []byte) {
	bin := filepath.Join(t.TempDir(), "meshnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/meshnode/meshnode/cmd/meshnode")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	rpcd := func(sock string) []byte {
		out, err := exec.Command(bin, "rpcd", "--socket", sock, "call", "status").Output()
		if err != nil {
			t.Fatalf("meshnode rpcd call status: %v", err)
		}
		return out
	}
	down = rpcd(filepath.Join(t.TempDir(), "no-agent.sock"))
	if os.Geteuid() != 0 {
		t.Skip("needs root for the agent in network namespaces (run `make test` as root)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("no /dev/net/tun for the agent")
	}
	topo, err := overlay.Build(fmt.Sprintf("lu%d-", os.Getpid()%100000), bin, t.TempDir())
	defer topo.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Certify(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"hub", "relay", "client"} {
		if err := topo.Start(topo.Nodes[n]); err != nil {
			t.Fatal(err)
		}
	}
	client := topo.Nodes["client"]
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		s, err := status.Client{Socket: client.Socket()}.Status()
		if err == nil && len(s.Lighthouses) > 0 && allReachable(s.Lighthouses) {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(client.Dir, "agent.log"))
			t.Fatalf("client never reached the hub (last %v, %+v)\n%s", err, s, log)
		}
	}
	return rpcd(client.Socket()), down
}

func allReachable(ls []status.Lighthouse) bool {
	for _, l := range ls {
		if !l.Reachable {
			return false
		}
	}
	return true
}

// reply is one ubus answer: code 0 with data, or an error code; hang makes
// the server never answer (the stand-in's rpc timeout fires).
type reply struct {
	code int
	data any
	hang bool
}

type scenario struct {
	status, lora reply
}

func clone(t *testing.T, raw []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("agent JSON: %v\n%s", err, raw)
	}
	return m
}

var loraOK = map[string]any{"status": map[string]any{"radio": map[string]any{"Connected": true, "Frames": 42},
	"node": "!a1b2c3d4", "peers": []any{}}}

func scenarios(t *testing.T, running, down []byte) map[string]scenario {
	good := func() map[string]any {
		m := clone(t, running)
		m["uplinks"] = []any{map[string]any{"name": "wan", "up": true, "active": true}, map[string]any{"name": "wwan", "up": true}}
		// The test CA's certificates last two days; a node in service has months.
		c := m["certificate"].(map[string]any)
		c["not_after"] = time.Now().Add(200*24*time.Hour + time.Hour).UTC().Format(time.RFC3339)
		c["days_left"], c["warning"] = 200, ""
		return m
	}
	sc := map[string]scenario{}
	sc["all-good"] = scenario{status: reply{data: good()}, lora: reply{data: loraOK}}

	m := good()
	for _, l := range m["lighthouses"].([]any) {
		l.(map[string]any)["reachable"] = false
	}
	m["peers"] = []any{}
	sc["tunnel-down"] = scenario{status: reply{data: m}, lora: reply{data: loraOK}}

	m = good()
	m["uplinks"] = []any{map[string]any{"name": "wan", "up": false}, map[string]any{"name": "wwan", "up": true, "active": true}}
	sc["uplink-down"] = scenario{status: reply{data: m}, lora: reply{data: loraOK}}

	sc["radio-unplugged"] = scenario{status: reply{data: good()}, lora: reply{data: map[string]any{"status": map[string]any{
		"radio": map[string]any{"Connected": false, "LastError": "open /dev/ttyUSB0: no such file or directory"}}}}}

	m = good()
	c := m["certificate"].(map[string]any)
	c["not_after"] = time.Now().Add(12*24*time.Hour + time.Hour).UTC().Format(time.RFC3339)
	c["days_left"] = 12
	c["warning"] = "certificate expires in 12 days: ask the CA for a new one"
	sc["cert-expiring"] = scenario{status: reply{data: m}, lora: reply{data: loraOK}}

	// An agent from before the uplinks/shaping/lora/certificate sections.
	m = clone(t, running)
	for _, k := range []string{"uplinks", "shaping", "lora", "routed", "certificate", "last_reload"} {
		delete(m, k)
	}
	sc["old-agent"] = scenario{status: reply{data: m}, lora: reply{code: 4}}

	sc["agent-down"] = scenario{status: reply{data: clone(t, down)}, lora: reply{data: loraOK}}
	sc["rpcd-error"] = scenario{status: reply{code: 6}, lora: reply{code: 6}}
	sc["rpcd-timeout"] = scenario{status: reply{hang: true}, lora: reply{hang: true}}
	return sc
}

// server serves the view, the stand-in and /ubus for the scenarios. The
// share methods run the real status.ShareRPCD on a temporary config.
type server struct {
	t        *testing.T
	sc       map[string]scenario
	cfg      string
	mu       sync.Mutex
	counter  uint64 // routed bytes, grows with each status call
	calls    int
	setCalls int
	recent   any
	done     chan struct{}
}

func (s *server) ubus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Object, Method string
		Params         map[string]any
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	name := r.URL.Query().Get("scenario")
	sc, ok := s.sc[name]
	if !ok {
		http.Error(w, "no scenario "+name, 404)
		return
	}
	answer := func(rp reply) {
		if rp.hang {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		}
		res := []any{rp.code}
		if rp.code == 0 {
			res = append(res, rp.data)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": 1, "result": res})
	}
	switch req.Object + "/" + req.Method {
	case "meshnode/status":
		rp := sc.status
		if m, ok := rp.data.(map[string]any); ok {
			if _, ok := m["routed"].(map[string]any); ok {
				// A varying exit rate: 5 s of traffic per call (the view polls every 5 s).
				s.mu.Lock()
				s.calls++
				kbit := 4000 + 2500*math.Sin(float64(s.calls)/18) + 800*math.Sin(float64(s.calls)/3)
				s.counter += uint64(kbit * 1000 / 8 * 5)
				n := s.counter
				s.mu.Unlock()
				cp := map[string]any{}
				for k, v := range m {
					cp[k] = v
				}
				cp["routed"] = map[string]any{"bytes_in": float64(n) / 10, "bytes_out": float64(n) * 0.9}
				rp.data = cp
			}
		}
		answer(rp)
	case "meshnode/share", "meshnode/set_share":
		if sc.status.code != 0 || sc.status.hang {
			answer(sc.status)
			return
		}
		if req.Method == "set_share" {
			s.mu.Lock()
			s.setCalls++
			s.mu.Unlock()
		}
		in, _ := json.Marshal(req.Params)
		var out strings.Builder
		status.ShareRPCD(req.Method, strings.NewReader(string(in)), &out, s.cfg, func() error { return nil })
		answer(reply{data: json.RawMessage(out.String())})
	case "lora-bridge/status":
		answer(sc.lora)
	case "lora-bridge/recent":
		if sc.lora.code != 0 || sc.lora.hang {
			answer(sc.lora)
			return
		}
		answer(reply{data: s.recent})
	case "rc/init":
		answer(reply{data: map[string]any{}})
	default:
		answer(reply{code: 4})
	}
}

// row is what the page shows for one line.
type row struct {
	ID, Level, Text, Hint string
}

type page struct {
	Overall, Title, Hint string
	Rows                 []row
	Text                 string
	HasChart             bool
	ChartPoints          int
}

const readPage = `(() => {
	const o = document.querySelector('.meshnode-overall');
	return {
		Overall: o ? o.className.replace(/.*meshnode-/, '') : '',
		Title: o ? o.firstChild.textContent : '',
		Hint: o && o.querySelector('.meshnode-hint') ? o.querySelector('.meshnode-hint').textContent : '',
		Rows: Array.from(document.querySelectorAll('.meshnode-row')).map(r => ({ID: r.dataset.row, Level: r.dataset.level,
			Text: r.querySelector('.meshnode-text').textContent,
			Hint: r.querySelector('.meshnode-hint') ? r.querySelector('.meshnode-hint').textContent : ''})),
		Text: document.getElementById('view').innerText,
		HasChart: !!document.querySelector('svg.meshnode-chart'),
		ChartPoints: (() => { const p = document.querySelector('polyline.meshnode-rate'); return p ? p.getAttribute('points').split(' ').length : 0; })(),
	};
})()`

func (p page) row(id string) row {
	for _, r := range p.Rows {
		if r.ID == id {
			return r
		}
	}
	return row{}
}

func TestStatusPage(t *testing.T) {
	start := time.Now()
	running, down := agentJSON(t)
	t.Logf("real agent JSON (%v): %s", time.Since(start).Round(time.Millisecond), running)

	cfg := filepath.Join(t.TempDir(), "meshnode")
	if err := os.WriteFile(cfg, []byte(shareUCI), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &server{t: t, sc: scenarios(t, running, down), cfg: cfg, done: make(chan struct{}),
		recent: map[string]any{"messages": []any{
			map[string]any{"kind": "alert", "time": time.Now().Add(-20 * time.Minute).Unix(), "sender": "ops", "text": "Flood warning for the river district until 18:00", "verified": true},
			map[string]any{"kind": "text", "time": time.Now().Unix(), "sender": "x", "text": "hello"}}}}
	mux := http.NewServeMux()
	mux.Handle("/view/", http.StripPrefix("/view/", http.FileServer(http.Dir(viewDir))))
	mux.Handle("/standin/", http.StripPrefix("/standin/", http.FileServer(http.Dir(standinDir))))
	mux.HandleFunc("/ubus", srv.ubus)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { close(srv.done); hs.Close() })
	base := "http://" + ln.Addr().String()

	b := startBrowser(t)
	var reqMu sync.Mutex
	var foreign []string
	b.onEvent = func(method string, params json.RawMessage) {
		if method != "Network.requestWillBeSent" {
			return
		}
		var p struct {
			Request struct{ URL string } `json:"request"`
		}
		_ = json.Unmarshal(params, &p)
		if !strings.HasPrefix(p.Request.URL, base+"/") && !strings.HasPrefix(p.Request.URL, "data:") {
			reqMu.Lock()
			foreign = append(foreign, p.Request.URL)
			reqMu.Unlock()
		}
	}
	for _, m := range []string{"Network.enable", "Page.enable", "Runtime.enable"} {
		if err := b.call(m, map[string]any{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1000, "height": 1200, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}

	var openShot func(t *testing.T, name, shot string, rounds int) page
	open := func(t *testing.T, name string, rounds int) page {
		return openShot(t, name, name, rounds)
	}
	openShot = func(t *testing.T, name, shot string, rounds int) page {
		t.Helper()
		if err := b.call("Page.navigate", map[string]any{"url": base + "/standin/index.html?scenario=" + name + "&rpctimeout=1"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.waitFor(`window.standin && (window.standin.rendered || window.standin.failed)`, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		var failed string
		_ = b.eval(`window.standin.failed || ''`, &failed)
		if failed != "" {
			t.Fatalf("view failed to load: %s", failed)
		}
		if rounds > 0 {
			if err := b.eval(fmt.Sprintf(`window.standin.advance(%d).then(() => true)`, rounds), nil); err != nil {
				t.Fatal(err)
			}
		}
		var p page
		if err := b.eval(readPage, &p); err != nil {
			t.Fatal(err)
		}
		if err := b.screenshot(filepath.Join(shotDir, shot+".png")); err != nil {
			t.Error(err)
		}
		if strings.Contains(p.Text, "undefined") || strings.Contains(p.Text, "NaN") || strings.Contains(p.Text, "[object") {
			t.Errorf("page shows broken values:\n%s", p.Text)
		}
		return p
	}
	want := func(t *testing.T, p page, overall, rowID, level, text string) {
		t.Helper()
		if overall != "" && p.Overall != overall {
			t.Errorf("overall = %s (%q), want %s", p.Overall, p.Title, overall)
		}
		if rowID == "" {
			return
		}
		r := p.row(rowID)
		if r.Level != level || !strings.Contains(r.Text+" "+r.Hint, text) {
			t.Errorf("row %s = %+v, want level %s with %q\npage:\n%s", rowID, r, level, text, p.Text)
		}
	}

	t.Run("all-good", func(t *testing.T) {
		// 720 polls of 5 s: an hour of samples for the chart.
		p := open(t, "all-good", 720)
		want(t, p, "ok", "tunnel", "ok", "Connected to the mesh")
		for _, id := range []string{"share", "uplinks", "lora", "cert", "version"} {
			if r := p.row(id); r.Level != "ok" {
				t.Errorf("row %s = %+v, want ok", id, r)
			}
		}
		if p.Title != "Your node is working" || !p.HasChart || p.ChartPoints < 600 {
			t.Errorf("title %q chart %v points %d", p.Title, p.HasChart, p.ChartPoints)
		}
		if !strings.Contains(p.Text, "Flood warning") {
			t.Errorf("latest alert not shown:\n%s", p.Text)
		}
	})
	t.Run("tunnel-down", func(t *testing.T) {
		p := open(t, "tunnel-down", 0)
		want(t, p, "bad", "tunnel", "bad", "Not connected to the mesh")
		if !strings.Contains(p.Hint, "internet access") {
			t.Errorf("hint %q", p.Hint)
		}
	})
	t.Run("uplink-down", func(t *testing.T) {
		p := open(t, "uplink-down", 0)
		want(t, p, "warn", "uplinks", "warn", "wan is down; using wwan")
	})
	t.Run("radio-unplugged", func(t *testing.T) {
		p := open(t, "radio-unplugged", 0)
		want(t, p, "warn", "lora", "bad", "Plug the LoRa radio")
	})
	t.Run("cert-expiring", func(t *testing.T) {
		p := open(t, "cert-expiring", 0)
		want(t, p, "warn", "cert", "warn", "Expires in 12 days")
	})
	t.Run("old-agent", func(t *testing.T) {
		p := open(t, "old-agent", 2)
		want(t, p, "ok", "uplinks", "unknown", "Not reported by this agent version")
		want(t, p, "", "cert", "unknown", "Not reported")
		want(t, p, "", "share", "unknown", "Not reported")
		want(t, p, "", "lora", "none", "No LoRa bridge installed")
		want(t, p, "", "tunnel", "ok", "Connected")
	})
	t.Run("agent-down", func(t *testing.T) {
		p := open(t, "agent-down", 0)
		want(t, p, "bad", "tunnel", "unknown", "Unknown while the agent is stopped")
		if p.Title != "The mesh agent is not running" || !strings.Contains(p.Hint, "Restart the mesh agent") {
			t.Errorf("title %q hint %q", p.Title, p.Hint)
		}
	})
	t.Run("rpcd-error", func(t *testing.T) {
		p := open(t, "rpcd-error", 0)
		want(t, p, "unknown", "tunnel", "unknown", "Unknown")
		if !strings.Contains(p.Hint, "Permission denied") {
			t.Errorf("hint %q", p.Hint)
		}
	})
	t.Run("rpcd-timeout", func(t *testing.T) {
		p := open(t, "rpcd-timeout", 0)
		want(t, p, "unknown", "lora", "unknown", "did not answer")
		if !strings.Contains(p.Hint, "timed out") || !strings.Contains(p.Text, "The sharing limit is unknown") {
			t.Errorf("hint %q\n%s", p.Hint, p.Text)
		}
	})

	t.Run("sharing-limit", func(t *testing.T) {
		openShot(t, "all-good", "sharing-limit", 0)
		type formState struct {
			Disabled bool
			Msg      string
		}
		typeIn := func(v string) formState {
			var s formState
			js := fmt.Sprintf(`(() => { const i = document.querySelector('.meshnode-share-form input[name=upload_kbit]');
				i.focus(); i.value = %q; i.dispatchEvent(new Event('input'));
				return {Disabled: document.querySelector('.meshnode-share-save').disabled,
					Msg: document.querySelector('.meshnode-share-msg').textContent}; })()`, v)
			if err := b.eval(js, &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		for _, v := range []string{"25", "1.5", "ten", "-3"} {
			s := typeIn(v)
			if !s.Disabled || s.Msg == "" {
				t.Errorf("value %q accepted by the form: %+v", v, s)
			}
			// Submitting anyway (Enter) must not reach the router.
			_ = b.eval(`document.querySelector('.meshnode-share-form').requestSubmit(), true`, nil)
		}
		if err := b.screenshot(filepath.Join(shotDir, "sharing-limit-refused.png")); err != nil {
			t.Error(err)
		}
		srv.mu.Lock()
		n := srv.setCalls
		srv.mu.Unlock()
		if n != 0 {
			t.Errorf("form sent %d out-of-bounds values to the router", n)
		}
		// The agent refuses them too (a page is not a security boundary).
		var r map[string]any
		if err := b.eval(`window.standin.rpc('meshnode', 'set_share', {upload_kbit: 999999})`, &r); err != nil {
			t.Fatal(err)
		}
		if r["ok"] == true || !strings.Contains(fmt.Sprint(r["error"]), "outside the operator's bounds") {
			t.Errorf("set_share accepted 999999: %v", r)
		}
		if s := typeIn("15"); s.Disabled {
			t.Fatalf("15 Mbit/s refused: %+v", s)
		}
		_ = b.eval(`document.querySelector('.meshnode-share-save').click(), true`, nil)
		if err := b.waitFor(`document.querySelector('.meshnode-share-msg').textContent.startsWith('Saved')`, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(cfg)
		if !strings.Contains(string(data), "option upload '15000'") || !strings.Contains(string(data), "option upload_max '20000'") {
			t.Errorf("config after save:\n%s", data)
		}
	})

	t.Run("pure-functions", func(t *testing.T) {
		// The view's logic runs without LuCI's DOM: checkShare and buildModel on plain data.
		var r struct {
			Low, OK, NoBounds map[string]any
			Level             string
		}
		js := `(() => { const v = window.standin.instance; const b = {min: 2000, max: 20000};
			return { Low: v.checkShare('1', b), OK: v.checkShare('2,5', b), NoBounds: v.checkShare('5', null),
				Level: v.buildModel({now: Date.now(), status: {ok: true, value: {}}, samples: []}).rows[0].level }; })()`
		if err := b.eval(js, &r); err != nil {
			t.Fatal(err)
		}
		if r.Low["ok"] != false || r.OK["kbit"] != float64(2500) || r.NoBounds["ok"] != false || r.Level != "unknown" {
			t.Errorf("%+v", r)
		}
	})

	reqMu.Lock()
	defer reqMu.Unlock()
	if len(foreign) > 0 {
		t.Errorf("the page made requests off the server: %v", foreign)
	}
	t.Logf("screenshots in out/screenshots/ (%v total)", time.Since(start).Round(time.Millisecond))
}
