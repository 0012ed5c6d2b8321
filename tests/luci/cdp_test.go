package luci

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// browser is a headless Chromium driven over the DevTools protocol: one
// page, commands by id, events to a callback.
type browser struct {
	cmd  *exec.Cmd
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
	wait map[int]chan cdpMsg
	// onEvent sees every event (method, params); set before use.
	onEvent func(method string, params json.RawMessage)
}

type cdpMsg struct {
	ID     int             `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func findChromium() string {
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// startBrowser runs Chromium with a fresh profile and connects to its page.
func startBrowser(t *testing.T) *browser {
	bin := findChromium()
	if bin == "" {
		t.Skip("chromium not installed: `apt-get install -y chromium` (make test installs it as root)")
	}
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile while it is removed; a leftover in /tmp is no failure.
	prof, err := os.MkdirTemp("", "meshnode-luci-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+prof, "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--window-size=1000,1200", "about:blank")
	logf, err := os.Create(filepath.Join(prof, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so cleanup ends Chromium's helpers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{cmd: cmd, wait: map[int]chan cdpMsg{}}
	t.Cleanup(func() {
		if b.ws != nil {
			b.ws.Close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_, _ = cmd.Process.Wait()
		logf.Close()
		for i := 0; i < 10 && os.RemoveAll(prof) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Chromium writes the port it chose to DevToolsActivePort.
	var port string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if data, err := os.ReadFile(filepath.Join(prof, "DevToolsActivePort")); err == nil {
			if line, _, _ := strings.Cut(string(data), "\n"); line != "" {
				port = strings.TrimSpace(line)
				break
			}
		}
	}
	if port == "" {
		log, _ := os.ReadFile(filepath.Join(prof, "chromium.log"))
		t.Fatalf("chromium did not open its DevTools port:\n%s", log)
	}
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(targets) == 0; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			continue
		}
		var all []struct {
			Type                 string `json:"type"`
			WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&all)
		resp.Body.Close()
		for _, x := range all {
			if x.Type == "page" {
				targets = append(targets, struct{ Type, WebSocketDebuggerURL string }{x.Type, x.WebSocketDebuggerURL})
			}
		}
	}
	if len(targets) == 0 {
		t.Fatal("chromium has no page target")
	}
	ws, err := websocket.Dial(targets[0].WebSocketDebuggerURL, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	ws.MaxPayloadBytes = 64 << 20
	b.ws = ws
	go b.read()
	return b
}

func (b *browser) read() {
	for {
		var m cdpMsg
		if err := websocket.JSON.Receive(b.ws, &m); err != nil {
			b.mu.Lock()
			for id, ch := range b.wait {
				close(ch)
				delete(b.wait, id)
			}
			b.mu.Unlock()
			return
		}
		if m.ID == 0 {
			b.mu.Lock()
			f := b.onEvent
			b.mu.Unlock()
			if f != nil {
				f(m.Method, m.Params)
			}
			continue
		}
		b.mu.Lock()
		ch := b.wait[m.ID]
		delete(b.wait, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends one command and waits for its result.
func (b *browser) call(method string, params any, out any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpMsg, 1)
	b.wait[id] = ch
	b.mu.Unlock()
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return errors.New("devtools connection closed")
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: no answer in 30 s", method)
	}
}

// eval runs a JavaScript expression (promises awaited) and decodes its
// JSON-able value into out.
func (b *browser) eval(expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		return json.Unmarshal(r.Result.Value, out)
	}
	return nil
}

// waitFor evaluates cond until it is true.
func (b *browser) waitFor(cond string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		err := b.eval("!!("+cond+")", &ok)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for %s (last error %v)", timeout, cond, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot writes the whole page as PNG.
func (b *browser) screenshot(path string) error {
	var r struct {
		Data string `json:"data"`
	}
	if err := b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &r); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}
