package overlay

import (
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// PingEnv makes a test binary act as ping: the tests run it inside a
// namespace with `ip netns exec`, since the machine may have no ping.
const PingEnv = "MESHNODE_TEST_PING"

// Ping sends one ICMP echo to dst and waits up to timeout for the reply.
func Ping(dst string, timeout time.Duration) error {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: 1, Data: []byte("meshnode")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	ip := net.ParseIP(dst)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: ip}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && peer.String() == ip.String() {
			return nil
		}
	}
}

// PingMain runs Ping when the binary was started as the ping helper and
// exits; otherwise it returns.
func PingMain() {
	dst := os.Getenv(PingEnv)
	if dst == "" {
		return
	}
	if err := Ping(dst, time.Second); err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			os.Stderr.WriteString(err.Error() + "\n")
		}
		os.Exit(1)
	}
	os.Exit(0)
}
