package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/message"
)

// Request is one API call on the unix socket: one JSON object per
// connection, answered by one JSON object. Unknown keys are ignored.
type Request struct {
	Method string `json:"method"` // send, alert, status, recent
	Text   string `json:"text,omitempty"`
	Sender string `json:"sender,omitempty"`
	N      int    `json:"n,omitempty"`
	// ID (send, alert; optional, non-zero) makes a retried post
	// idempotent: the same id is accepted once.
	ID uint32 `json:"id,omitempty"`
}

// Reply is the answer; Error is set on failure.
type Reply struct {
	Error     string        `json:"error,omitempty"`
	Key       string        `json:"key,omitempty"`
	Duplicate bool          `json:"duplicate,omitempty"`
	Verified  *bool         `json:"verified,omitempty"`
	Status    *Status       `json:"status,omitempty"`
	Messages  []MessageJSON `json:"messages,omitempty"`
}

// MessageJSON is a message as the API shows it.
type MessageJSON struct {
	Key      string `json:"key"`
	Kind     string `json:"kind"`
	Time     int64  `json:"time"`
	Sender   string `json:"sender"`
	Text     string `json:"text"`
	Verified bool   `json:"verified,omitempty"`
}

// maxRequest bounds one API request: a 2048-byte text, JSON-escaped.
const maxRequest = 8 << 10

// ServeAPI listens on the unix socket until ctx ends.
func (b *Bridge) ServeAPI(ctx context.Context) error {
	os.Remove(b.cfg.Socket)
	l, err := net.Listen("unix", b.cfg.Socket)
	if err != nil {
		return err
	}
	// The socket accepts alerts: root and the rpcd plugin only.
	os.Chmod(b.cfg.Socket, 0o600)
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		go b.serveConn(c)
	}
}

// reqBufs recycles request buffers: under a burst of posts a fresh
// decoder buffer per connection was most of the bridge's allocations.
var reqBufs = sync.Pool{New: func() any { return new([maxRequest]byte) }}

func (b *Bridge) serveConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := reqBufs.Get().(*[maxRequest]byte)
	req, err := readRequest(c, buf[:])
	reqBufs.Put(buf)
	var r Reply
	if err != nil {
		b.badInput("api: %v", err)
		r = Reply{Error: "bad request: " + err.Error()}
	} else {
		r = b.Handle(req)
	}
	json.NewEncoder(c).Encode(r)
}

// readRequest reads one JSON object of at most len(buf) bytes (a client
// cannot make us buffer more) and decodes it. Like a json.Decoder it
// stops at the end of the object and does not wait for EOF; unlike one
// it reads into the caller's buffer.
func readRequest(c io.Reader, buf []byte) (Request, error) {
	var req Request
	n := 0
	for {
		k, rerr := c.Read(buf[n:])
		n += k
		err := json.Unmarshal(buf[:n], &req)
		var se *json.SyntaxError
		if !errors.As(err, &se) || se.Offset < int64(n) {
			return req, err // decoded, or a syntax error before the end
		}
		// Incomplete so far: read on.
		switch {
		case n == len(buf):
			return req, fmt.Errorf("request over %d bytes", len(buf))
		case rerr == io.EOF:
			return req, io.ErrUnexpectedEOF
		case rerr != nil:
			return req, rerr
		}
	}
}

// Handle answers one request (also used by tests).
func (b *Bridge) Handle(req Request) Reply {
	switch req.Method {
	case "send", "alert":
		kind := uint8(message.Text)
		if req.Method == "alert" {
			kind = message.Alert
		}
		text := message.Sanitize([]byte(req.Text))
		if text == "" || len(text) > message.MaxBody {
			b.badInput("api: %s: text of %d bytes", req.Method, len(text))
			return Reply{Error: "text must be 1 to 2048 bytes"}
		}
		if len(req.Sender) > 32 {
			b.badInput("api: %s: sender of %d bytes", req.Method, len(req.Sender))
			return Reply{Error: "sender name over 32 bytes"}
		}
		m, dup, err := b.Post(kind, message.Sanitize([]byte(req.Sender)), text, req.ID)
		if err != nil {
			return Reply{Error: "not accepted: " + err.Error()}
		}
		r := Reply{Key: m.Key.String(), Duplicate: dup}
		if kind == message.Alert {
			_, signed, ok := alert.Verify(b.cfg.AlertKeys, text)
			v := signed && ok
			r.Verified = &v
		}
		return r
	case "status":
		s := b.Snapshot()
		return Reply{Status: &s}
	case "recent":
		n := req.N
		if n <= 0 || n > 100 {
			n = 20
		}
		var out []MessageJSON
		for _, m := range b.Recent(n) {
			k := "text"
			if m.Kind == message.Alert {
				k = "alert"
			}
			out = append(out, MessageJSON{Key: m.Key.String(), Kind: k, Time: m.Time, Sender: m.Sender, Text: m.Body, Verified: m.Verified})
		}
		return Reply{Messages: out}
	}
	b.badInput("api: unknown method %q", req.Method)
	return Reply{Error: "unknown method " + message.Sanitize([]byte(req.Method))}
}

// Call sends one request to a bridge's socket.
func Call(socket string, req Request) (Reply, error) {
	c, err := net.DialTimeout("unix", socket, 3*time.Second)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Reply{}, err
	}
	var r Reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return Reply{}, err
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}
