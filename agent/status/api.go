package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/httpconn"
)

// Agent is what the API serves: the seam between the API and the running
// agent, so the API is tested without Nebula.
type Agent interface {
	Snapshot() Snapshot
	// Reload re-reads the configuration and applies it.
	Reload() Reload
}

// Handler serves the local API: GET /status, POST /reload.
func Handler(a Agent) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.Snapshot())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.Reload())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Listen opens the unix socket at path, replacing a stale one left by a
// killed agent. The socket is 0600: reload is root's business.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, errfmt.Errorf("%s: another meshnode agent is running", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves h on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Client talks to a running agent over its socket.
type Client struct {
	Socket string
}

func (c Client) do(method, path string, out any) error {
	// Reloads that restart Nebula take a few seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return errfmt.Errorf("cannot reach the agent at %s (is meshnode running? /etc/init.d/meshnode status): %w", c.Socket, err)
	}
	resp, err := httpconn.Do(ctx, conn, httpconn.Request{Method: method, Host: "meshnode", Path: path}, maxReply)
	if err != nil {
		return errfmt.Errorf("agent at %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		return errfmt.Errorf("agent answered %s: %s", resp.Status, clipReply(resp.Body))
	}
	return json.Unmarshal(resp.Body, out)
}

// maxReply bounds what the client reads; a snapshot of a large mesh is
// well under it.
const maxReply = 4 << 20

func clipReply(b []byte) string {
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(bytes.TrimSpace(b))
}

// Status fetches the snapshot.
func (c Client) Status() (Snapshot, error) {
	var s Snapshot
	err := c.do(http.MethodGet, "/status", &s)
	return s, err
}

// StatusRaw fetches the snapshot as the agent's JSON, unchanged, so
// sections this binary does not know about pass through.
func (c Client) StatusRaw() (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.do(http.MethodGet, "/status", &raw)
	return raw, err
}

// Reload asks the agent to re-read its configuration.
func (c Client) Reload() (Reload, error) {
	var r Reload
	err := c.do(http.MethodPost, "/reload", &r)
	return r, err
}
