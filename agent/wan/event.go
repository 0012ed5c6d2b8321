package wan

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/httpconn"
	"github.com/meshnode/meshnode/internal/run"
)

// EventPath is where the status socket takes hotplug events.
const EventPath = "/wan/event"

// EventHandler serves POST EventPath for the status socket. The body is
// read whole and unmarshalled: json.Decoder is ~6 KB of MIPS flash that
// nothing else in the agent needs.
//
//go:noinline
func (m *Manager) EventHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ev HotplugEvent
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		if err != nil {
			http.Error(w, "bad event: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := m.Event(r.Context(), ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// SendEvent passes a hotplug event to the agent listening on socket
// (`meshnode wan event`, run by /etc/hotplug.d/iface/).
func SendEvent(socket string, ev HotplugEvent) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return errfmt.Errorf("cannot reach the agent at %s: %w", socket, err)
	}
	body, _ := json.Marshal(ev)
	resp, err := httpconn.Do(ctx, conn, httpconn.Request{Method: http.MethodPost, Host: "meshnode", Path: EventPath,
		Header: map[string]string{"Content-Type": "application/json"}, Body: body}, 1024)
	if err != nil {
		return errfmt.Errorf("agent at %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusNoContent {
		return errfmt.Errorf("agent answered %s: %s", resp.Status, bytes.TrimSpace(resp.Body))
	}
	return nil
}

// askNetifd asks netifd for an interface's device, for uplinks whose ifup
// happened before the agent started (hotplug told nobody then). Off
// OpenWrt there is no ubus and nothing is learned. (Named results: a
// bare return is smaller than a zero event at each.)
func askNetifd(ctx context.Context, iface string) (ev HotplugEvent, ok bool) {
	if _, err := run.LookPath("ubus"); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := run.Output(ctx, "ubus", "call", "network.interface."+iface, "status")
	if err != nil {
		return
	}
	var st struct {
		Up        bool   `json:"up"`
		L3Device  string `json:"l3_device"`
		Device    string `json:"device"`
		Available bool   `json:"available"`
	}
	if json.Unmarshal(out, &st) != nil {
		return
	}
	dev := st.L3Device
	if dev == "" {
		dev = st.Device
	}
	if !st.Up || dev == "" {
		return
	}
	return HotplugEvent{Action: "ifup", Interface: iface, Device: dev}, true
}
