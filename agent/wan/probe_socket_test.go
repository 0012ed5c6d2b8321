package wan

import (
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/agent/config"
)

// TestProbesAgainstRealSockets runs the TCP, HTTP and DNS probers against
// servers on loopback (bound to "lo", as an uplink's probes are bound to
// its device), and checks each reports silence as a failure.
func TestProbesAgainstRealSockets(t *testing.T) {
	if testing.Short() {
		// make test-cross runs -short under qemu-user, which passes some
		// host errnos through untranslated (ECONNREFUSED arrives as 111,
		// not MIPS's 146); real sockets are covered by the native run.
		t.Skip("real sockets: native runs only")
	}
	path := Path{Device: "lo"}
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}

	// TCP: an accepting port and a refusing one both prove the path; a
	// silent address does not.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcp, _ := NewProber(config.Uplink{Probe: config.ProbeTCP}, path)
	if _, err := tcp.Probe(ctx(), ln.Addr().String()); err != nil {
		t.Errorf("tcp to a listener: %v", err)
	}
	closed, _ := net.Listen("tcp4", "127.0.0.1:0")
	refused := closed.Addr().String()
	closed.Close()
	if _, err := tcp.Probe(ctx(), refused); err != nil {
		t.Errorf("tcp refused should count as an answer: %v", err)
	}

	// HTTP HEAD: any status counts; a server that never answers fails.
	hl, _ := net.Listen("tcp4", "127.0.0.1:0")
	var gotUA, gotMethod string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotMethod = r.UserAgent(), r.Method
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go srv.Serve(hl)
	defer srv.Close()
	hp, _ := NewProber(config.Uplink{Probe: config.ProbeHTTP}, path)
	if _, err := hp.Probe(ctx(), "http://"+hl.Addr().String()+"/generate_204"); err != nil {
		t.Errorf("http: %v", err)
	}
	if gotMethod != http.MethodHead || gotUA != "meshnode-probe" {
		t.Errorf("server saw %s with User-Agent %q", gotMethod, gotUA)
	}
	mute, _ := net.Listen("tcp4", "127.0.0.1:0") // accepts (kernel backlog) but never answers
	defer mute.Close()
	if _, err := hp.Probe(ctx(), "http://"+mute.Addr().String()+"/"); err == nil {
		t.Error("http to a server that never answers succeeded")
	}

	// DNS: a resolver answering with the query's id counts; a wrong id is
	// ignored until the deadline.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var wrongID atomic.Bool
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append([]byte{}, buf[:n]...)
			reply[2] |= 0x80 // QR: a response
			if wrongID.Load() {
				binary.BigEndian.PutUint16(reply, binary.BigEndian.Uint16(reply)+1)
			}
			pc.WriteTo(reply, addr)
		}
	}()
	dp, _ := NewProber(config.Uplink{Probe: config.ProbeDNS, DNSName: "example.org"}, path)
	if _, err := dp.Probe(ctx(), pc.LocalAddr().String()); err != nil {
		t.Errorf("dns: %v", err)
	}
	wrongID.Store(true)
	if _, err := dp.Probe(ctx(), pc.LocalAddr().String()); err == nil {
		t.Error("dns reply with another id was taken as an answer")
	}
}
