// Package luci tests luci-app-meshnode's view in a real browser: headless
// Chromium loads the view with the stand-in loader in standin/, fed with
// the JSON a real agent (shaping and failover in the namespace topology of
// tests/overlay, capture_test.go) and a real lora-bridge (simulated radio)
// returned in each state a node host may meet. A few states are edits of
// that JSON, said where they are made.
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/status"
)

const (
	viewDir    = "../../packages/luci-app-meshnode/files/htdocs/luci-static/resources/view"
	viewFile   = viewDir + "/meshnode/status.js"
	standinDir = "standin"
	shotDir    = "../../out/screenshots"
)

// reply is one ubus answer: code 0 with data, or an error code; hang makes
// the server never answer (the stand-in's rpc timeout fires).
type reply struct {
	code int
	data any
	hang bool
}

func raw(b []byte) reply { return reply{data: json.RawMessage(b)} }

type scenario struct {
	status, lora, recent reply
	share                *reply // nil: the share methods on the live agent's config
	// live: status, lora status and recent come from the running agent
	// and bridge at each call.
	live bool
}

func clone(t *testing.T, raw []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("agent JSON: %v\n%s", err, raw)
	}
	return m
}

func scenarios(t *testing.T, c *captured) map[string]scenario {
	// snap is a captured state with one edit: the test CA's certificates
	// last two days, a node in service has months.
	snap := func(name string) map[string]any {
		m := clone(t, c.snaps[name])
		cert := m["certificate"].(map[string]any)
		cert["not_after"] = time.Now().Add(200*24*time.Hour + time.Hour).UTC().Format(time.RFC3339)
		cert["days_left"], cert["warning"] = 200, ""
		return m
	}
	loraOK, recent := raw(c.lora["ok"]), raw(c.lora["recent"])
	sc := map[string]scenario{}
	add := func(name, state string) {
		sc[name] = scenario{status: reply{data: snap(state)}, lora: loraOK, recent: recent}
	}
	add("all-good", "good")
	add("uplink-down", "wan-down")
	add("uplink-probing", "probing")
	add("uplink-damped", "damped")
	add("no-internet", "no-internet")
	add("schedule", "schedule")
	add("shaping-off", "shaping-off")
	sh := raw(c.shares["shaping-off"])
	s := sc["shaping-off"]
	s.share = &sh
	sc["shaping-off"] = s

	// Edited: every lighthouse unreachable (the agent's view of a dead
	// tunnel; getting there for real takes Nebula's timeouts).
	m := snap("good")
	for _, l := range m["lighthouses"].([]any) {
		l.(map[string]any)["reachable"] = false
	}
	m["peers"] = []any{}
	sc["tunnel-down"] = scenario{status: reply{data: m}, lora: loraOK, recent: recent}

	sc["radio-unplugged"] = scenario{status: reply{data: snap("good")}, lora: raw(c.lora["unplugged"]), recent: recent}
	sc["lora-stopped"] = scenario{status: reply{data: snap("good")}, lora: raw(c.lora["stopped"]), recent: raw(c.lora["stopped"])}

	// Edited: the certificate runs out in 12 days.
	m = snap("good")
	cert := m["certificate"].(map[string]any)
	cert["not_after"] = time.Now().Add(12*24*time.Hour + time.Hour).UTC().Format(time.RFC3339)
	cert["days_left"] = 12
	cert["warning"] = "certificate expires in 12 days: ask the CA for a new one"
	sc["cert-expiring"] = scenario{status: reply{data: m}, lora: loraOK, recent: recent}

	// Edited: an agent from before the uplinks, shaping, lora, routed and
	// certificate sections, on a node without lora-bridge.
	m = clone(t, c.snaps["good"])
	for _, k := range []string{"uplinks", "shaping", "lora", "routed", "certificate", "last_reload"} {
		delete(m, k)
	}
	sc["old-agent"] = scenario{status: reply{data: m}, lora: reply{code: 4}, recent: reply{code: 4}}

	sc["agent-down"] = scenario{status: raw(c.down), lora: loraOK, recent: recent}
	sc["rpcd-error"] = scenario{status: reply{code: 6}, lora: reply{code: 6}, recent: reply{code: 6}}
	sc["rpcd-timeout"] = scenario{status: reply{hang: true}, lora: reply{hang: true}, recent: reply{hang: true}}
	sc["live"] = scenario{live: true}
	return sc
}

// server serves the view, the stand-in and /ubus for the scenarios. The
// share methods run the real status.ShareRPCD on the live agent's config,
// and set_share has that agent reload it, as the rpcd plugin does.
type server struct {
	t        *testing.T
	c        *captured
	sc       map[string]scenario
	mu       sync.Mutex
	calls    int
	added    map[string]float64 // synthetic bytes added per counter
	setCalls int
	done     chan struct{}
}

// grow returns a copy of a captured snapshot whose byte counters (the
// shaped WAN's classes, the routed bytes) went on growing: a page polling
// for an hour on the stand-in's advanced clock has an hour of traffic to
// draw. The rates stay under the snapshot's own limits in force. Only the
// counters are synthetic.
func (s *server) grow(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var cp map[string]any
	_ = json.Unmarshal(b, &cp)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	c := float64(s.calls)
	rates := map[string]float64{
		"upload":   4000 + 3500*math.Sin(c/18) + 900*math.Sin(c/3),
		"download": 9000 + 7000*math.Sin(c/25+1) + 1500*math.Sin(c/4),
	}
	var dirs []map[string]any
	if sh, ok := cp["shaping"].(map[string]any); ok {
		for _, l := range asList(sh["links"]) {
			for _, d := range asList(l["directions"]) {
				dirs = append(dirs, d)
				if lim, ok := d["limit_kbit"].(float64); ok && lim > 0 {
					name := d["direction"].(string)
					rates[name] = math.Min(rates[name], lim*0.97)
				}
			}
		}
	}
	for k, r := range rates {
		s.added[k] += math.Max(r, 100) * 1000 / 8 * 10 // 10 s per poll (load's rounds)
	}
	for _, d := range dirs {
		cls := asList(d["classes"])
		if len(cls) > 0 {
			last := cls[len(cls)-1]
			last["bytes"] = last["bytes"].(float64) + s.added[d["direction"].(string)]
		}
	}
	if r, ok := cp["routed"].(map[string]any); ok {
		r["bytes_out"] = r["bytes_out"].(float64) + s.added["upload"]
		r["bytes_in"] = r["bytes_in"].(float64) + s.added["download"]
	}
	return cp
}

func asList(v any) []map[string]any {
	var out []map[string]any
	l, _ := v.([]any)
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
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
	run := func(args ...string) reply {
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			return reply{code: 9}
		}
		return raw(out)
	}
	switch req.Object + "/" + req.Method {
	case "meshnode/status":
		if sc.live {
			answer(run(s.c.bin, "rpcd", "--socket", s.c.sock, "call", "status"))
			return
		}
		rp := sc.status
		if m, ok := rp.data.(map[string]any); ok {
			rp.data = s.grow(m)
		}
		answer(rp)
	case "meshnode/share", "meshnode/set_share":
		if sc.status.code != 0 || sc.status.hang {
			answer(sc.status)
			return
		}
		if sc.share != nil && req.Method == "share" {
			answer(*sc.share)
			return
		}
		if req.Method == "set_share" {
			s.mu.Lock()
			s.setCalls++
			s.mu.Unlock()
		}
		in, _ := json.Marshal(req.Params)
		var out strings.Builder
		status.ShareRPCD(req.Method, strings.NewReader(string(in)), &out, s.c.cfg, func() error {
			r, err := status.Client{Socket: s.c.sock}.Reload()
			if err == nil && !r.OK {
				err = fmt.Errorf("configuration rejected: %s", r.Error)
			}
			return err
		})
		answer(raw([]byte(out.String())))
	case "lora-bridge/status":
		if sc.live {
			answer(run(s.c.loraBin, "status", "-s", s.c.loraSk))
			return
		}
		answer(sc.lora)
	case "lora-bridge/recent":
		if sc.live {
			answer(run(s.c.loraBin, "recent", "-s", s.c.loraSk, "-n", "20"))
			return
		}
		answer(sc.recent)
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

type uplinkItem struct {
	Name, State, Level, Text string
}

type alertItem struct {
	Verified bool
	Text     string
}

type page struct {
	Overall, Title, Hint string
	Rows                 []row
	Uplinks              []uplinkItem
	Alerts               []alertItem
	Text, Details, Form  string
	HasChart             bool
	Lines                map[string]int     // polyline points by series (up, down, total)
	Limits               map[string]float64 // dashed limit lines by series, kbit/s
}

const readPage = `(() => {
	const o = document.querySelector('.meshnode-overall');
	const all = (sel) => Array.from(document.querySelectorAll(sel));
	const suffix = (el, p) => el.getAttribute('class').split(' ').filter(c => c.startsWith(p)).map(c => c.slice(p.length))[0];
	return {
		Overall: o ? o.className.replace(/.*meshnode-/, '') : '',
		Title: o ? o.firstChild.textContent : '',
		Hint: o && o.querySelector('.meshnode-hint') ? o.querySelector('.meshnode-hint').textContent : '',
		Rows: all('.meshnode-row').map(r => ({ID: r.dataset.row, Level: r.dataset.level,
			Text: r.querySelector('.meshnode-text').textContent,
			Hint: r.querySelector('.meshnode-hint') ? r.querySelector('.meshnode-hint').textContent : ''})),
		Uplinks: all('.meshnode-uplink').map(u => ({Name: u.dataset.uplink, State: u.dataset.state, Level: u.dataset.level, Text: u.textContent})),
		Alerts: all('.meshnode-alert').map(a => ({Verified: a.dataset.verified == '1', Text: a.textContent})),
		Text: document.getElementById('view').innerText,
		Details: (document.querySelector('.meshnode-details') || {}).textContent || '',
		Form: (document.querySelector('.meshnode-share-box') || {}).textContent || '',
		HasChart: !!document.querySelector('svg.meshnode-chart'),
		Lines: Object.fromEntries(all('polyline.meshnode-rate').map(l => [suffix(l, 'meshnode-rate-'), l.getAttribute('points').split(' ').length])),
		Limits: Object.fromEntries(all('line.meshnode-limit').map(l => [suffix(l, 'meshnode-limit-'), Number(l.dataset.kbit)])),
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

func (p page) uplink(name string) uplinkItem {
	for _, u := range p.Uplinks {
		if u.Name == name {
			return u
		}
	}
	return uplinkItem{}
}

// rateRe reads "Right now: 4.9 Mbit/s up, 12 Mbit/s down" in kbit/s.
var rateRe = regexp.MustCompile(`Right now: ([\d.]+) (k|M)bit/s up, ([\d.]+) (k|M)bit/s down`)

func kbitOf(num, unit string) float64 {
	v, _ := strconv.ParseFloat(num, 64)
	if unit == "M" {
		v *= 1000
	}
	return v
}

func TestStatusPage(t *testing.T) {
	start := time.Now()
	c := capture(t)

	srv := &server{t: t, c: c, sc: scenarios(t, c), added: map[string]float64{}, done: make(chan struct{})}
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

	// load opens a scenario and runs rounds polls on the advanced clock,
	// 10 s apart (the view polls every 5 s; a background tab less often).
	load := func(t *testing.T, name string, rounds int) {
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
			if err := b.eval(fmt.Sprintf(`window.standin.advance(%d, 10).then(() => true)`, rounds), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// read returns what the page shows and saves a screenshot.
	read := func(t *testing.T, shot string) page {
		t.Helper()
		var p page
		if err := b.eval(readPage, &p); err != nil {
			t.Fatal(err)
		}
		if err := b.screenshot(filepath.Join(shotDir, shot+".png")); err != nil {
			t.Error(err)
		}
		for _, bad := range []string{"undefined", "NaN", "[object", "Infinity"} {
			if strings.Contains(p.Text+p.Details, bad) {
				t.Errorf("page shows broken values (%s):\n%s\n%s", bad, p.Text, p.Details)
			}
		}
		return p
	}
	open := func(t *testing.T, name string, rounds int) page {
		t.Helper()
		load(t, name, rounds)
		return read(t, name)
	}
	want := func(t *testing.T, p page, overall, rowID, level, text string) {
		t.Helper()
		if overall != "" && p.Overall != overall {
			t.Errorf("overall = %s (%q), want %s; rows %+v", p.Overall, p.Title, overall, p.Rows)
		}
		if rowID == "" {
			return
		}
		r := p.row(rowID)
		if r.Level != level || !strings.Contains(r.Text+" "+r.Hint, text) {
			t.Errorf("row %s = %+v, want level %s with %q\npage:\n%s", rowID, r, level, text, p.Text)
		}
	}
	wantUplink := func(t *testing.T, p page, name, state, level string, texts ...string) {
		t.Helper()
		u := p.uplink(name)
		if u.State != state || u.Level != level {
			t.Errorf("uplink %s = %+v, want %s (%s)", name, u, state, level)
		}
		for _, s := range texts {
			if !strings.Contains(u.Text, s) {
				t.Errorf("uplink %s shows %q, want %q in it", name, u.Text, s)
			}
		}
	}

	t.Run("all-good", func(t *testing.T) {
		// 360 polls 10 s apart: an hour of samples for the chart.
		p := open(t, "all-good", 360)
		want(t, p, "ok", "tunnel", "ok", "Connected to the mesh")
		for _, id := range []string{"share", "uplinks", "lora", "cert", "version"} {
			if r := p.row(id); r.Level != "ok" {
				t.Errorf("row %s = %+v, want ok", id, r)
			}
		}
		if p.Title != "Your node is working" || !p.HasChart || p.Lines["up"] < 300 || p.Lines["down"] < 300 {
			t.Errorf("title %q chart %v lines %v", p.Title, p.HasChart, p.Lines)
		}
		// The limit in force, from the agent's shaping section.
		if p.Limits["up"] != 10000 || p.Limits["down"] != 50000 {
			t.Errorf("limit lines %v, want up 10000 down 50000", p.Limits)
		}
		want(t, p, "", "share", "ok", "Limit: 10 Mbit/s up, 50 Mbit/s down.")
		if !rateRe.MatchString(p.row("share").Text) {
			t.Errorf("share row %q has no current rates", p.row("share").Text)
		}
		want(t, p, "", "uplinks", "ok", "All working; in use: wan")
		wantUplink(t, p, "wan", "up", "ok", "working", "(in use)", "Test messages through this connection are answered.")
		wantUplink(t, p, "lte", "up", "ok", "working")
		want(t, p, "", "lora", "ok", "Radio connected")
		// Newest first: the signed alert, then the unsigned one; the text
		// message is no alert.
		if len(p.Alerts) != 2 || !p.Alerts[0].Verified || p.Alerts[1].Verified ||
			!strings.Contains(p.Alerts[0].Text, "Flood warning for the river district until 18:00") ||
			!strings.Contains(p.Alerts[1].Text, "Boil water") || strings.Contains(p.Text, "sig:") || strings.Contains(p.Text, "water at the school") {
			t.Errorf("alerts %+v", p.Alerts)
		}
		for _, s := range []string{"RTT", "loss", "Shaping upload", "LoRa node"} {
			if !strings.Contains(p.Details, s) {
				t.Errorf("technical details lack %q:\n%s", s, p.Details)
			}
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
		load(t, "uplink-down", 2)
		// The technical details, opened, show RTT and loss.
		if err := b.eval(`document.querySelector('.meshnode-details').open = true, true`, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		p := read(t, "uplink-down")
		want(t, p, "warn", "uplinks", "warn", "wan: not working; traffic goes through lte")
		wantUplink(t, p, "wan", "down", "bad", "not working", "got no answer", "restarting the modem")
		wantUplink(t, p, "lte", "up", "ok", "(in use)")
		if !regexp.MustCompile(`Uplink wan.*down; .*loss \d+ %.*why: 2 probe rounds failed in a row`).MatchString(p.Details) {
			t.Errorf("details lack wan's loss and raw reason:\n%s", p.Details)
		}
	})
	t.Run("uplink-probing", func(t *testing.T) {
		p := open(t, "uplink-probing", 2)
		want(t, p, "warn", "uplinks", "warn", "lte: checking")
		wantUplink(t, p, "lte", "probing", "warn", "checking", "The connection is back; the node is testing it.", "a few seconds")
		wantUplink(t, p, "wan", "up", "ok", "(in use)")
	})
	t.Run("uplink-damped", func(t *testing.T) {
		p := open(t, "uplink-damped", 2)
		want(t, p, "warn", "uplinks", "warn", "wan: unstable, held back")
		wantUplink(t, p, "wan", "damped", "warn", "unstable, held back", "dropped out", "times in a short while", "used again at")
	})
	t.Run("no-internet", func(t *testing.T) {
		p := open(t, "no-internet", 2)
		want(t, p, "bad", "uplinks", "bad", "No uplink reaches the internet")
		if p.Title != "Your node has no internet connection" {
			t.Errorf("title %q", p.Title)
		}
		wantUplink(t, p, "lte", "down", "bad", "not working")
	})
	t.Run("schedule", func(t *testing.T) {
		p := open(t, "schedule", 3)
		want(t, p, "ok", "share", "ok", "Limit: 5.0 Mbit/s up, 30 Mbit/s down. (schedule "+c.window+" in force)")
		if p.Limits["up"] != 5000 || p.Limits["down"] != 30000 {
			t.Errorf("limit lines %v, want the window's 5000 and 30000", p.Limits)
		}
		if !strings.Contains(p.Form, "schedule sets another limit") || !strings.Contains(p.Form, "Upload limit") {
			t.Errorf("share form:\n%s", p.Form)
		}
	})
	t.Run("shaping-off", func(t *testing.T) {
		p := open(t, "shaping-off", 3)
		want(t, p, "ok", "share", "ok", "in total. No limit set")
		if p.Lines["total"] < 2 || len(p.Limits) != 0 || p.Lines["up"] != 0 {
			t.Errorf("chart lines %v limits %v: want the routed total without limit", p.Lines, p.Limits)
		}
	})
	t.Run("radio-unplugged", func(t *testing.T) {
		p := open(t, "radio-unplugged", 0)
		want(t, p, "warn", "lora", "bad", "Plug the LoRa radio")
		if !strings.Contains(p.Details, "LoRa radio error") {
			t.Errorf("details lack the radio's error:\n%s", p.Details)
		}
	})
	t.Run("lora-stopped", func(t *testing.T) {
		p := open(t, "lora-stopped", 0)
		want(t, p, "warn", "lora", "bad", "The LoRa bridge is not running")
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
		if p.HasChart {
			t.Error("chart drawn without counters")
		}
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

	t.Run("live", func(t *testing.T) {
		// Traffic through the shaped wan: 20 Mbit/s offered upload against
		// the window's 5 Mbit/s, 12 Mbit/s download under its 30.
		stop := make(chan struct{})
		defer close(stop)
		if err := blast(c.client.NS, inetAddr+":9", 20000, stop); err != nil {
			t.Fatal(err)
		}
		if err := blast(c.inet, clientWAN+":9", 12000, stop); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		load(t, "live", 0)
		// Real polls on the real clock: the rates come from the kernel's
		// class counters as the agent reports them.
		for i := 0; i < 5; i++ {
			time.Sleep(time.Second)
			if err := b.eval(`window.standin.poll().then(() => true)`, nil); err != nil {
				t.Fatal(err)
			}
		}
		p := read(t, "live")
		// The test CA's certificates last two days: live, that is a warning.
		want(t, p, "warn", "cert", "warn", "Expires in 1 day")
		want(t, p, "", "share", "ok", "(schedule "+c.window+" in force)")
		m := rateRe.FindStringSubmatch(p.row("share").Text)
		if m == nil {
			t.Fatalf("share row %q has no current rates", p.row("share").Text)
		}
		up, down := kbitOf(m[1], m[2]), kbitOf(m[3], m[4])
		t.Logf("page shows %.0f kbit/s up (limit 5000), %.0f kbit/s down (offered 12000)", up, down)
		if math.Abs(up-5000) > 750 || math.Abs(down-12000) > 1800 {
			t.Errorf("rates %.0f up, %.0f down kbit/s: want about 5000 (shaped) and 12000 (offered)", up, down)
		}
		if p.Limits["up"] != 5000 || p.Lines["up"] < 4 || p.Lines["down"] < 4 {
			t.Errorf("limits %v lines %v", p.Limits, p.Lines)
		}
		want(t, p, "", "uplinks", "ok", "All working; in use: wan")
		want(t, p, "", "lora", "ok", "Radio connected")
	})

	t.Run("sharing-limit", func(t *testing.T) {
		load(t, "all-good", 0)
		read(t, "sharing-limit")
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
		var msg string
		_ = b.eval(`document.querySelector('.meshnode-share-msg').textContent`, &msg)
		if msg != "Saved and applied." {
			t.Errorf("after saving: %q, want the agent to have applied it", msg)
		}
		data, _ := os.ReadFile(c.cfg)
		if !strings.Contains(string(data), "option upload '15000'") || !strings.Contains(string(data), "option upload_max '20000'") {
			t.Errorf("config after save:\n%s", data)
		}
		if s, err := (status.Client{Socket: c.sock}).Status(); err != nil || s.LastReload == nil || !s.LastReload.OK {
			t.Errorf("the agent did not apply the new limit: %v %+v", err, s.LastReload)
		}
	})

	t.Run("pure-functions", func(t *testing.T) {
		// The view's logic runs on plain data: checkShare, buildModel,
		// chartModel, whyPlain.
		var r struct {
			Low, OK, NoBounds map[string]any
			Level             string
			Reset             []int
			Why               []string
		}
		js := `(() => { const v = window.standin.instance; const b = {min: 2000, max: 20000};
			const ch = v.chartModel([{t: 0, up: 0, down: 0}, {t: 5000, up: 625000, down: 10}, {t: 10000, up: 100, down: 20}, {t: 15000, up: 625100, down: 30}], 15000);
			return { Low: v.checkShare('1', b), OK: v.checkShare('2,5', b), NoBounds: v.checkShare('5', null),
				Level: v.buildModel({now: Date.now(), status: {ok: true, value: {}}, samples: []}).rows[0].level,
				Reset: ch.series.map(s => s.points.length),
				Why: ['starting', 'path via wan ready, probing', '5 good probe rounds in a row', 'damping hold over, probes still good',
					'flapped 3 times: held back 10s after 5 good probe rounds', '3 probe rounds failed in a row: 1.2.3.4 timeout',
					'failed while damped, 2 probe rounds in a row: x', 'no carrier on wan (or it is down)', 'interface wwan0 does not exist',
					"netifd reports interface 'wan' down", "waiting for netifd's ifup of interface 'wan' to learn its device (or set option device)",
					'no gateway for wan: set option gateway, or netifd has no default route on it', 'something new'].map(v.whyPlain) }; })()`
		if err := b.eval(js, &r); err != nil {
			t.Fatal(err)
		}
		if r.Low["ok"] != false || r.OK["kbit"] != float64(2500) || r.NoBounds["ok"] != false || r.Level != "unknown" {
			t.Errorf("%+v", r)
		}
		// The upload counter went back (queues rebuilt): no rate for that step.
		if fmt.Sprint(r.Reset) != "[2 3]" {
			t.Errorf("rates per series %v, want [2 3]", r.Reset)
		}
		for i, w := range r.Why[:len(r.Why)-1] {
			if strings.Contains(w, "probe") || strings.Contains(w, "netifd") || w == "" {
				t.Errorf("reason %d not in plain words: %q", i, w)
			}
		}
		if r.Why[len(r.Why)-1] != "something new" {
			t.Errorf("unknown reason shown as %q", r.Why[len(r.Why)-1])
		}
	})

	reqMu.Lock()
	defer reqMu.Unlock()
	if len(foreign) > 0 {
		t.Errorf("the page made requests off the server: %v", foreign)
	}
	t.Logf("screenshots in out/screenshots/ (%v total)", time.Since(start).Round(time.Millisecond))
}
