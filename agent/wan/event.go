package wan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/internal/httpconn"
	"github.com/meshnode/meshnode/internal/run"
)

// EventPath is where the status socket takes hotplug events.
const EventPath = "/wan/event"

// EventHandler serves POST EventPath for the status socket.
func (m *Manager) EventHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ev HotplugEvent
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&ev); err != nil {
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
		return fmt.Errorf("cannot reach the agent at %s: %w", socket, err)
	}
	body, _ := json.Marshal(ev)
	resp, err := httpconn.Do(ctx, conn, httpconn.Request{Method: http.MethodPost, Host: "meshnode", Path: EventPath,
		Header: map[string]string{"Content-Type": "application/json"}, Body: body}, 1024)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("agent answered %s: %s", resp.Status, bytes.TrimSpace(resp.Body))
	}
	return nil
}

// askNetifd asks netifd for an interface's device, for uplinks whose ifup
// happened before the agent started (hotplug told nobody then). Off
// OpenWrt there is no ubus and nothing is learned.
func askNetifd(ctx context.Context, iface string) (HotplugEvent, bool) {
	if _, err := run.LookPath("ubus"); err != nil {
		return HotplugEvent{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := run.Output(ctx, "ubus", "call", "network.interface."+iface, "status")
	if err != nil {
		return HotplugEvent{}, false
	}
	var st struct {
		Up        bool   `json:"up"`
		L3Device  string `json:"l3_device"`
		Device    string `json:"device"`
		Available bool   `json:"available"`
	}
	if json.Unmarshal(out, &st) != nil {
		return HotplugEvent{}, false
	}
	dev := st.L3Device
	if dev == "" {
		dev = st.Device
	}
	if !st.Up || dev == "" {
		return HotplugEvent{}, false
	}
	return HotplugEvent{Action: "ifup", Interface: iface, Device: dev}, true
}
