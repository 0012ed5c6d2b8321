package status

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeAgent struct{}

func (fakeAgent) Snapshot() Snapshot {
	return Snapshot{Role: "hub", Address: "10.0.4.1/24", Peers: []Peer{{Address: "10.0.4.64", Name: "uplink1", BytesIn: 5}},
		Uplinks: json.RawMessage(`{"active":"wan"}`)}
}
func (fakeAgent) Reload() Reload { return Reload{OK: true} }

func TestSocketAndRPCD(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, l, Handler(fakeAgent{}))
	c := Client{Socket: sock}
	s, err := c.Status()
	if err != nil || s.Role != "hub" || s.Peers[0].Name != "uplink1" || !strings.Contains(string(s.Uplinks), `"active": "wan"`) {
		t.Fatalf("%v %+v", err, s)
	}
	if r, err := c.Reload(); err != nil || !r.OK {
		t.Fatalf("%v %+v", err, r)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "another meshnode") {
		t.Errorf("second listener: %v", err)
	}

	var out bytes.Buffer
	RPCD([]string{"list"}, nil, &out, c)
	if strings.TrimSpace(out.String()) != `{"status":{}}` {
		t.Errorf("list: %s", out.String())
	}
	out.Reset()
	RPCD([]string{"call", "status"}, strings.NewReader(`{"ubus_rpc_session":"x"}`), &out, c)
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["role"] != "hub" {
		t.Errorf("call status: %v %s", err, out.String())
	}
	out.Reset()
	RPCD([]string{"call", "status"}, strings.NewReader(`{}`), &out, Client{Socket: sock + ".none"})
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["running"] != false {
		t.Errorf("agent down: %v %s", err, out.String())
	}

	var metrics bytes.Buffer
	WriteMetrics(&metrics, fakeAgent{}.Snapshot())
	if !strings.Contains(metrics.String(), `meshnode_peer_received_bytes_total{peer="10.0.4.64",name="uplink1"} 5`) {
		t.Errorf("metrics:\n%s", metrics.String())
	}
	if d, w := CertWarning(time.Now(), time.Now().Add(10*24*time.Hour+time.Hour)); d != 10 || w == "" {
		t.Errorf("warning %d %q", d, w)
	}
}
