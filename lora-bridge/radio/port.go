// Package radio speaks the Meshtastic serial API to one radio: framing,
// the want_config_id handshake, heartbeats, and a new handshake after a
// reboot, a silence timeout or an unplug (facts-meshtastic.md §1–4).
package radio

import "io"

// Port is the seam to the serial device. Read may return (0, nil) when no
// data arrived for a while, so the link can notice timeouts and Close.
type Port interface {
	io.ReadWriteCloser
}

// Opener opens the radio's port; it is called again after every failure.
type Opener func() (Port, error)
