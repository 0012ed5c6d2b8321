// Package httpconn sends one HTTP/1.1 request over a connection the caller
// dialled and reads the answer.
//
// The agent talks HTTP to its own unix socket and sends HEAD probes, and
// net/http's Client would bring its Transport and the bundled HTTP/2
// client along: about 250 KB of a MIPS router's flash for requests that
// need none of it. The server side of net/http is in the binary anyway
// (Nebula's metrics), and http.ReadResponse is part of it.
package httpconn

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// Request is what Do sends.
type Request struct {
	Method string // GET, POST, HEAD
	Host   string // the Host header
	Path   string // "/status"
	Header map[string]string
	Body   []byte
}

// Response is the answer, its body read in full (at most limit bytes).
type Response struct {
	StatusCode int
	Status     string
	Body       []byte
}

// Do writes r to conn with "Connection: close", reads the response and
// closes conn. The context's deadline bounds the whole exchange.
func Do(ctx context.Context, conn net.Conn, r Request, limit int64) (*Response, error) {
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	// Closing the connection is what interrupts a blocked read when the
	// context is cancelled without a deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	if strings.ContainsAny(r.Method+r.Host+r.Path, " \r\n") || r.Method == "" || !strings.HasPrefix(r.Path, "/") {
		return nil, errfmt.Errorf("httpconn: malformed request %q %q %q", r.Method, r.Host, r.Path)
	}
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.Path + " HTTP/1.1\r\nHost: " + r.Host + "\r\nConnection: close\r\n")
	for k, v := range r.Header {
		if strings.ContainsAny(k+v, "\r\n") {
			return nil, errfmt.Errorf("httpconn: header %q contains a line break", k)
		}
		b.WriteString(k + ": " + v + "\r\n")
	}
	if r.Body != nil || r.Method == http.MethodPost {
		b.WriteString("Content-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	if _, err := conn.Write(b.Bytes()); err != nil {
		return nil, ctxErr(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: r.Method})
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	return &Response{StatusCode: resp.StatusCode, Status: resp.Status, Body: body}, nil
}

// ctxErr reports a cancelled or expired context as such rather than as the
// I/O error it caused (the connection's deadline can fire a moment before
// the context notices its own).
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
