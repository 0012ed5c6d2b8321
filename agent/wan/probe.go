package wan

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/httpconn"

	"github.com/meshnode/meshnode/agent/config"
)

// Path is what pins a probe to one uplink: the device it must leave by and
// the firewall mark that selects the uplink's routing table.
type Path struct {
	_      [0]func() // not comparable: no equality function in the binary
	Device string
	Mark   uint32
}

// Prober sends one probe to a target and reports the round-trip time.
type Prober interface {
	Probe(ctx context.Context, target string) (time.Duration, error)
	Close() error
}

// ProberFactory makes the prober of an uplink; tests pass a fake.
type ProberFactory func(u config.Uplink, p Path) (Prober, error)

// NewProber is the real ProberFactory: sockets bound to the uplink's
// device and marked for its routing table.
func NewProber(u config.Uplink, p Path) (Prober, error) {
	d := &dialer{path: p}
	switch u.Probe {
	case config.ProbeICMP:
		return newICMPProber(p)
	case config.ProbeTCP:
		return &tcpProber{d: d}, nil
	case config.ProbeDNS:
		return &dnsProber{d: d, name: u.DNSName}, nil
	case config.ProbeHTTP:
		return newHTTPProber(d), nil
	}
	return nil, errfmt.Errorf("unknown probe method %q", u.Probe)
}

// dialer makes sockets on one uplink's path.
type dialer struct{ path Path }

// dial connects along the path; one out-of-line copy of the net.Dialer
// set-up instead of one per prober.
func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	nd := net.Dialer{Control: d.path.control}
	return nd.DialContext(ctx, network, address)
}

type tcpProber struct{ d *dialer }

func (p *tcpProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	start := time.Now()
	c, err := p.d.dial(ctx, "tcp4", target)
	if err != nil {
		// A refusal came from the far end: the path works.
		if isRefused(err) {
			return time.Since(start), nil
		}
		return 0, err
	}
	rtt := time.Since(start)
	c.Close()
	return rtt, nil
}

func (p *tcpProber) Close() error { return nil }

type dnsProber struct {
	_    [0]func() // not comparable: no equality function in the binary
	d    *dialer
	name string
	id   atomic.Uint32
}

func (p *dnsProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	if _, err := netip.ParseAddr(target); err == nil {
		target = net.JoinHostPort(target, "53")
	}
	c, err := p.d.dial(ctx, "udp4", target)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	id := uint16(p.id.Add(1))
	q, err := dnsQuery(id, p.name)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := c.Write(q); err != nil {
		return 0, err
	}
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0, err
		}
		// Stray or spoofed datagrams are skipped, not counted as answers.
		if ok, _ := dnsAnswers(buf[:n], id); ok {
			return time.Since(start), nil
		}
	}
}

func (p *dnsProber) Close() error { return nil }

// httpProber sends HEAD over a connection dialled along the uplink's path.
// Any status counts: a server answered through this uplink.
type httpProber struct{ d *dialer }

func newHTTPProber(d *dialer) *httpProber { return &httpProber{d: d} }

func (p *httpProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return 0, errfmt.Errorf("%q is not an http:// URL", target)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
	start := time.Now()
	// A fresh connection per probe tests the path, not a pooled socket.
	conn, err := p.d.dial(ctx, "tcp4", host)
	if err != nil {
		return 0, err
	}
	if _, err := httpconn.Do(ctx, conn, httpconn.Request{Method: http.MethodHead, Host: u.Host, Path: path,
		Header: map[string]string{"User-Agent": "meshnode-probe"}}, 0); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func (p *httpProber) Close() error { return nil }

// errTimeout is what a probe that got no answer reports.
var errTimeout = errors.New("no answer")

// describe shortens a probe error for status and logs.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errTimeout),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
