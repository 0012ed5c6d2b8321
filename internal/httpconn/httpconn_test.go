package httpconn

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetPostHead(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Host != "meshnode" || r.Header.Get("X-Probe") != "1" && r.Method == http.MethodHead {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", "12")
		w.WriteHeader(http.StatusTeapot)
		if r.Method != http.MethodHead {
			io.WriteString(w, r.Method+" "+string(body)[:min(len(body), 12-len(r.Method)-1)])
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := Do(ctx, dial(t, addr), Request{Method: "POST", Host: "meshnode", Path: "/x", Body: []byte("hello world!")}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTeapot || string(resp.Body) != "POST hello w" {
		t.Errorf("POST: %d %q", resp.StatusCode, resp.Body)
	}
	// HEAD must not wait for the body its Content-Length announces.
	resp, err = Do(ctx, dial(t, addr), Request{Method: "HEAD", Host: "meshnode", Path: "/", Header: map[string]string{"X-Probe": "1"}}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTeapot || len(resp.Body) != 0 {
		t.Errorf("HEAD: %d %q", resp.StatusCode, resp.Body)
	}
}

func TestLimitAndDeadline(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * time.Second)
		}
		io.WriteString(w, strings.Repeat("x", 100))
	}))
	resp, err := Do(context.Background(), dial(t, addr), Request{Method: "GET", Host: "h", Path: "/"}, 10)
	if err != nil || len(resp.Body) != 10 {
		t.Fatalf("limit: %v %d", err, len(resp.Body))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Do(ctx, dial(t, addr), Request{Method: "GET", Host: "h", Path: "/slow"}, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow server: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("deadline not honoured: %v", time.Since(start))
	}
}

func TestMalformedRequestRefused(t *testing.T) {
	for _, r := range []Request{
		{Method: "GET", Host: "h", Path: "no-slash"},
		{Method: "GET\r\nX: y", Host: "h", Path: "/"},
		{Method: "GET", Host: "h", Path: "/", Header: map[string]string{"X": "a\r\nInjected: 1"}},
		{Host: "h", Path: "/"},
	} {
		a, b := net.Pipe()
		go io.Copy(io.Discard, b)
		if _, err := Do(context.Background(), a, r, 10); err == nil || !strings.Contains(err.Error(), "httpconn") {
			t.Errorf("%+v: %v", r, err)
		}
		b.Close()
	}
}
