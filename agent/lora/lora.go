// Package lora is the agent's side of lora-bridge: a small client for the
// bridge's unix-socket API (one JSON object per connection, answered by
// one JSON object), the bridge's section of the status snapshot, and an
// HTTP handler that relays POST /lora/<method> to that socket.
//
// It does not import lora-bridge/bridge: that would link the bridge's
// radio, journal and codec into meshnode. The wire format is plain JSON;
// the bridge owns its fields and this package passes them through.
package lora

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// Methods the bridge's API answers; anything else is refused here, before
// it reaches the bridge.
var Methods = []string{"send", "alert", "status", "recent"}

// MaxRequest is the bridge's own bound on one request (a 2048-byte text,
// JSON-escaped); maxReply bounds what is read back (100 recent messages).
const (
	MaxRequest = 8 << 10
	maxReply   = 1 << 20
)

// ErrNotRunning wraps a failure to reach the bridge's socket.
var ErrNotRunning = errors.New("lora-bridge is not running")

// Call sends req (a JSON object) to the bridge at socket and returns its
// reply, unchanged. A reply with an "error" field is still returned, with
// err nil: the bridge answered.
func Call(ctx context.Context, socket string, req []byte) (json.RawMessage, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := d.DialContext(dctx, "unix", socket)
	if err != nil {
		return nil, errfmt.Errorf("%w (%s): %v", ErrNotRunning, socket, err)
	}
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(append(bytes.TrimSpace(req), '\n')); err != nil {
		return nil, errfmt.Errorf("lora-bridge at %s: %w", socket, err)
	}
	// One JSON object; the bridge closes the connection after it.
	// Read whole and unmarshalled, not streamed through a json.Decoder:
	// the Decoder is ~6 KB of flash that nothing else here needs.
	data, err := io.ReadAll(io.LimitReader(c, maxReply))
	if err != nil {
		return nil, errfmt.Errorf("lora-bridge at %s: %w", socket, err)
	}
	var reply json.RawMessage
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, errfmt.Errorf("lora-bridge at %s: bad reply: %w", socket, err)
	}
	if len(reply) == 0 || reply[0] != '{' {
		return nil, errfmt.Errorf("lora-bridge at %s: reply is not a JSON object", socket)
	}
	return reply, nil
}

// Request builds the bridge request for method from an HTTP body: a JSON
// object (or nothing) whose fields pass through; method is set from the
// path, whatever the body says.
func Request(method string, body []byte) ([]byte, error) {
	if !slices.Contains(Methods, method) {
		return nil, errfmt.Errorf("unknown method %q (%s)", clip(method), strings.Join(Methods, ", "))
	}
	fields := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, errfmt.Errorf("body is not a JSON object: %v", err)
		}
	}
	fields["method"], _ = json.Marshal(method)
	return json.Marshal(fields)
}

// Section is the bridge's part of the agent's status snapshot ("lora").
type Section struct {
	Running bool   `json:"running"`
	Socket  string `json:"socket"`
	Error   string `json:"error,omitempty"`
	// Status is the bridge's own status reply, as it sent it.
	Status json.RawMessage `json:"status,omitempty"`
}

// Status asks the bridge for its status. A bridge that is not there or
// does not answer gives a section that says so, never an error: the rest
// of the snapshot does not depend on it.
func Status(ctx context.Context, socket string) Section {
	s := Section{Socket: socket}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reply, err := Call(ctx, socket, []byte(`{"method":"status"}`))
	if err != nil {
		s.Error = err.Error()
		return s
	}
	var r struct {
		Error  string          `json:"error"`
		Status json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(reply, &r); err != nil || r.Error != "" || len(r.Status) == 0 {
		s.Error = "lora-bridge answered without a status: " + clip(string(reply))
		return s
	}
	s.Running, s.Status = true, r.Status
	return s
}

// StatusJSON is Status marshalled for the snapshot.
func StatusJSON(ctx context.Context, socket string) json.RawMessage {
	b, _ := json.Marshal(Status(ctx, socket))
	return b
}

// Relay serves POST /lora/<method> by forwarding it to the bridge.
type Relay struct {
	// Socket returns the bridge's socket (it follows reloads).
	Socket func() string
	// Allow decides whether the caller may use the bridge; nil allows all
	// (the unix socket and loopback).
	Allow func(*http.Request) error
}

// ServeHTTP relays one call. Status codes: 200 the bridge accepted it,
// 400 a bad request or one the bridge refused (its "error" field), 403 a
// caller the access rule refuses, 503 no bridge on the socket.
func (rl Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST /lora/<method>")
		return
	}
	if rl.Allow != nil {
		if err := rl.Allow(r); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
	}
	method := strings.TrimPrefix(r.URL.Path, "/lora/")
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequest+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(body) > MaxRequest {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request over %d bytes", MaxRequest))
		return
	}
	req, err := Request(method, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	reply, err := Call(r.Context(), rl.Socket(), req)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, ErrNotRunning) {
			code = http.StatusServiceUnavailable
		}
		writeError(w, code, err.Error())
		return
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(reply, &e)
	w.Header().Set("Content-Type", "application/json")
	if e.Error != "" {
		w.WriteHeader(http.StatusBadRequest)
	}
	_, _ = w.Write(append(reply, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(append(b, '\n'))
}

// GroupRule is the overlay's access rule: the caller's overlay address
// must belong to a peer (or this node) whose certificate carries one of
// Allowed. Groups looks the address up in Nebula's host map; Nebula
// guarantees a packet from a tunnel comes from an address in the peer's
// certificate, so the address names the certificate. Not inlined: its
// caller would get a copy of the rule itself.
//
//go:noinline
func GroupRule(allowed []string, groups func(netip.Addr) ([]string, bool)) func(*http.Request) error {
	return func(r *http.Request) error {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			return errfmt.Errorf("caller %q: %v", clip(r.RemoteAddr), err)
		}
		addr := ap.Addr().Unmap()
		gs, ok := groups(addr)
		if !ok {
			return errfmt.Errorf("%s has no tunnel to this node", addr)
		}
		for _, g := range gs {
			if slices.Contains(allowed, g) {
				return nil
			}
		}
		return errfmt.Errorf("%s (groups %s) is not in an allowed group (%s)", addr, strings.Join(gs, ","), strings.Join(allowed, ","))
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
