package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/message"
)

// rawCall writes raw bytes as one API request on a unix socket pair,
// half-closes, and decodes the answer.
func rawCall(t *testing.T, b *Bridge, req string) Reply {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c, s := conn(fds[0]), conn(fds[1])
	defer c.Close()
	go b.serveConn(s)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		_, _ = io.WriteString(c, req)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	var r Reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		t.Fatalf("%.40q: no reply: %v", req, err)
	}
	return r
}

func TestAPIBadInput(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	for _, tc := range []struct{ name, req, want string }{
		{"garbage", "\x94\xc3\x00\x05hello}\n", "bad request"},
		{"truncated", `{"method":"send","text":"cut`, "bad request"},
		{"wrong type", `{"method":"send","text":5}`, "bad request"},
		{"over size", `{"method":"send","text":"` + strings.Repeat("x", 9000) + `"}`, "bad request"},
		{"unknown method", `{"method":"reboot\u001b[2J"}`, "unknown method"},
		{"empty text", `{"method":"send","text":""}`, "1 to 2048"},
		{"only control characters", `{"method":"send","text":"\u0007\u001b"}`, "1 to 2048"},
		{"text over max", `{"method":"send","text":"` + strings.Repeat("y", 2049) + `"}`, "1 to 2048"},
		{"long sender", `{"method":"send","text":"a","sender":"` + strings.Repeat("s", 33) + `"}`, "sender"},
	} {
		rep := rawCall(t, r.b, tc.req)
		if !strings.Contains(rep.Error, tc.want) {
			t.Errorf("%s: reply %+v, want error containing %q", tc.name, rep, tc.want)
		}
		if strings.ContainsRune(rep.Error, 0x1b) {
			t.Errorf("%s: control character echoed: %q", tc.name, rep.Error)
		}
	}
	if n := len(r.j.Pending(DestRadio, 10)); n != 0 {
		t.Fatalf("%d messages accepted from bad requests", n)
	}
	if c := r.b.Snapshot().Counters; c.BadInput != 9 {
		t.Fatalf("counters %+v", c)
	}
}

func TestAPISendSanitisesAndIsIdempotent(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	rep := rawCall(t, r.b, `{"method":"send","text":"caf\u00e9 \u001b[31mred","sender":"ops","id":77,"ubus_rpc_session":"x"}`)
	if rep.Error != "" || rep.Key != "00000042/0000004d" || rep.Duplicate {
		t.Fatalf("reply %+v", rep)
	}
	// The same id again (a client retrying after a lost answer).
	rep = rawCall(t, r.b, `{"method":"send","text":"café red","id":77}`)
	if rep.Error != "" || !rep.Duplicate {
		t.Fatalf("retry reply %+v", rep)
	}
	pend := r.j.Pending(DestRadio, 10)
	if len(pend) != 1 || pend[0].Body != "café [31mred" || pend[0].Sender != "ops" {
		t.Fatalf("pending %+v", pend)
	}
	// Invalid UTF-8 cannot come through JSON decoding as such; Go's
	// decoder turns it into U+FFFD, which is kept.
	rep = rawCall(t, r.b, "{\"method\":\"send\",\"text\":\"a\xffb\"}")
	if rep.Error != "" {
		t.Fatalf("reply %+v", rep)
	}
	rec := r.b.Handle(Request{Method: "recent", N: 1000})
	if len(rec.Messages) != 2 || rec.Messages[1].Text != "a\ufffdb" {
		t.Fatalf("recent %+v", rec.Messages)
	}
}

func TestAPIOverUnixSocket(t *testing.T) {
	r := newRig(t, Config{}, journal.Options{})
	r.b.cfg.Socket = filepath.Join(t.TempDir(), "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.b.ServeAPI(ctx) }()
	defer func() { cancel(); <-done }()
	var rep Reply
	var err error
	for i := 0; i < 200; i++ {
		if rep, err = Call(r.b.cfg.Socket, Request{Method: "alert", Text: "storm"}); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil || rep.Verified == nil || *rep.Verified {
		t.Fatalf("alert: %+v, %v", rep, err)
	}
	st, err := Call(r.b.cfg.Socket, Request{Method: "status"})
	if err != nil || st.Status == nil || st.Status.NodeNum != "!5eed0001" || st.Status.Journal.Accepted != 1 {
		t.Fatalf("status %+v, %v", st.Status, err)
	}
	if _, err := Call(r.b.cfg.Socket, Request{Method: "nope"}); err == nil {
		t.Fatal("unknown method accepted")
	}
	if m := r.j.Pending(DestRadio, 1); len(m) != 1 || m[0].Kind != message.Alert {
		t.Fatalf("pending %+v", m)
	}
}

// chunks returns one chunk per Read and never EOF: readRequest must stop
// at the end of the object, not wait for the client to close.
type chunks []string

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, errors.New("read past the request")
	}
	n := copy(p, (*c)[0])
	*c = (*c)[1:]
	return n, nil
}

func TestReadRequestSplit(t *testing.T) {
	in := chunks{`{"method":"se`, `nd","text":"a}b\"","n":1`, "2}\n"}
	buf := make([]byte, maxRequest)
	req, err := readRequest(&in, buf)
	if err != nil || req.Method != "send" || req.Text != `a}b"` || req.N != 12 {
		t.Fatalf("%+v %v", req, err)
	}
	big := chunks{`{"method":"send","text":"` + strings.Repeat("x", maxRequest)}
	if _, err := readRequest(&big, buf); err == nil {
		t.Fatal("request over the cap accepted")
	}
}
