package lora

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/bridge"
	"github.com/meshnode/meshnode/lora-bridge/journal"
)

// realBridge runs lora-bridge's own API (no radio) on a socket, so the
// client is tested against the server it talks to in production.
func realBridge(t *testing.T) (string, *bridge.Bridge) {
	t.Helper()
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "journal"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	b := bridge.New(bridge.Config{NodeID: 0x42, Socket: sock, Log: log.New(io.Discard, "", 0)}, j)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.ServeAPI(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; j.Close() })
	for i := 0; ; i++ {
		if _, err := bridge.Call(sock, bridge.Request{Method: "status"}); err == nil {
			break
		}
		if i == 200 {
			t.Fatal("bridge API did not come up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sock, b
}

func TestStatusSection(t *testing.T) {
	sock, _ := realBridge(t)
	s := Status(context.Background(), sock)
	if !s.Running || s.Error != "" || s.Socket != sock {
		t.Fatalf("running bridge: %+v", s)
	}
	var st bridge.Status
	if err := json.Unmarshal(s.Status, &st); err != nil || !strings.HasPrefix(st.NodeNum, "!") || !strings.Contains(string(s.Status), `"journal"`) {
		t.Fatalf("status passed through: %s %v", s.Status, err)
	}

	absent := filepath.Join(t.TempDir(), "none.sock")
	s = Status(context.Background(), absent)
	if s.Running || !strings.Contains(s.Error, "lora-bridge is not running") || s.Status != nil {
		t.Fatalf("absent bridge: %+v", s)
	}
	var m map[string]any
	if err := json.Unmarshal(StatusJSON(context.Background(), absent), &m); err != nil || m["running"] != false {
		t.Fatalf("section JSON: %v %v", m, err)
	}
}

func TestRequest(t *testing.T) {
	got, err := Request("alert", []byte(`{"text":"flood","method":"status","n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	var r bridge.Request
	if err := json.Unmarshal(got, &r); err != nil || r.Method != "alert" || r.Text != "flood" || r.N != 3 {
		t.Fatalf("%s -> %+v %v", got, r, err)
	}
	if got, err := Request("status", nil); err != nil || string(got) != `{"method":"status"}` {
		t.Fatalf("empty body: %s %v", got, err)
	}
	for _, bad := range []struct{ method, body string }{{"reboot", ""}, {"", ""}, {"send", "[1]"}, {"send", "text"}} {
		if _, err := Request(bad.method, []byte(bad.body)); err == nil {
			t.Errorf("%q %q accepted", bad.method, bad.body)
		}
	}
}

func post(t *testing.T, h http.Handler, remote, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s: reply is not JSON: %q", path, w.Body.String())
	}
	return w.Code, m
}

func TestRelay(t *testing.T) {
	sock, _ := realBridge(t)
	mux := http.NewServeMux()
	mux.Handle("/lora/", Relay{Socket: func() string { return sock }})

	code, m := post(t, mux, "127.0.0.1:5000", "/lora/alert", `{"text":"flood at the bridge","sender":"hub","id":7}`)
	if code != 200 || m["key"] == "" || m["verified"] != false {
		t.Fatalf("alert: %d %v", code, m)
	}
	// The bridge's idempotency passes through.
	if code, m = post(t, mux, "127.0.0.1:5000", "/lora/alert", `{"text":"flood at the bridge","sender":"hub","id":7}`); code != 200 || m["duplicate"] != true {
		t.Fatalf("repeated alert: %d %v", code, m)
	}
	code, m = post(t, mux, "127.0.0.1:5000", "/lora/recent", `{"n":5}`)
	msgs, _ := m["messages"].([]any)
	if code != 200 || len(msgs) != 1 || !strings.Contains(msgs[0].(map[string]any)["text"].(string), "flood") {
		t.Fatalf("recent: %d %v", code, m)
	}
	// Refused by the bridge: its error, 400.
	if code, m = post(t, mux, "127.0.0.1:5000", "/lora/send", `{"text":""}`); code != 400 || !strings.Contains(m["error"].(string), "text must be") {
		t.Fatalf("empty text: %d %v", code, m)
	}
	// Refused here, never sent.
	if code, m = post(t, mux, "127.0.0.1:5000", "/lora/shutdown", ``); code != 400 || !strings.Contains(m["error"].(string), "unknown method") {
		t.Fatalf("unknown method: %d %v", code, m)
	}
	if code, _ = post(t, mux, "127.0.0.1:5000", "/lora/send", `{"text":"`+strings.Repeat("x", MaxRequest)+`"}`); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %d", code)
	}
	req := httptest.NewRequest(http.MethodGet, "/lora/status", nil)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", w.Code)
	}

	gone := Relay{Socket: func() string { return filepath.Join(t.TempDir(), "gone.sock") }}
	if code, m = post(t, gone, "127.0.0.1:5000", "/lora/status", ``); code != 503 || !strings.Contains(m["error"].(string), "not running") {
		t.Fatalf("no bridge: %d %v", code, m)
	}
}

func TestGroupRule(t *testing.T) {
	peers := map[netip.Addr][]string{
		netip.MustParseAddr("10.0.4.1"):   {"hub"},
		netip.MustParseAddr("10.0.4.130"): {"client", "ops"},
	}
	lookup := func(a netip.Addr) ([]string, bool) { g, ok := peers[a]; return g, ok }
	sock, _ := realBridge(t)
	h := Relay{Socket: func() string { return sock }, Allow: GroupRule([]string{"hub"}, lookup)}
	if code, m := post(t, h, "10.0.4.1:40000", "/lora/status", ``); code != 200 || m["status"] == nil {
		t.Fatalf("hub: %d %v", code, m)
	}
	if code, m := post(t, h, "10.0.4.130:40000", "/lora/alert", `{"text":"x"}`); code != 403 || !strings.Contains(m["error"].(string), "not in an allowed group") {
		t.Fatalf("client: %d %v", code, m)
	}
	if code, m := post(t, h, "10.0.4.77:40000", "/lora/status", ``); code != 403 || !strings.Contains(m["error"].(string), "no tunnel") {
		t.Fatalf("unknown: %d %v", code, m)
	}
	ops := Relay{Socket: func() string { return sock }, Allow: GroupRule([]string{"ops"}, lookup)}
	if code, _ := post(t, ops, "[::ffff:10.0.4.130]:40000", "/lora/status", ``); code != 200 {
		t.Fatalf("ops group, v4-mapped: %d", code)
	}
	// Nothing was posted by the refused callers.
	if _, err := Call(context.Background(), sock, []byte(`{"method":"recent"}`)); err != nil {
		t.Fatal(err)
	}
	r, _ := bridge.Call(sock, bridge.Request{Method: "recent"})
	if len(r.Messages) != 0 {
		t.Fatalf("refused callers posted: %+v", r.Messages)
	}
	if _, err := Call(context.Background(), filepath.Join(t.TempDir(), "x"), nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("absent socket: %v", err)
	}
}
