// Package simradio is a Meshtastic radio simulated at its serial wire
// protocol on a pseudo-terminal, for tests and benchmarks. It reproduces
// the firmware behaviours in facts-meshtastic.md: log text between frames
// (with invalid UTF-8 and false frame starts), the want_config_id
// handshake with a stale config_complete_id first, dropping of reused
// packet ids, the per-port rate limits, reboots, and the idle timeout
// after which only a new handshake restores delivery.
package simradio

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/frame"
	"github.com/meshnode/meshnode/lora-bridge/meshpb"
)

// Config sets the radio's identity and (scaled-down) firmware timings.
type Config struct {
	NodeNum       uint32
	Region        int32 // meshpb region code, e.g. 3 = EU_868
	Preset        int32
	HopLimit      uint32
	DebugText     bool          // 2.5–2.7 style log text between frames
	TextInterval  time.Duration // firmware: 2 s
	AlertInterval time.Duration // firmware: 10 s
	IdleTimeout   time.Duration // firmware: 15 min
	// Link is a stable path (symlink) to the current pty, like a device
	// name that stays the same across re-plugs. Optional.
	Link string
	// OnAir, if set, is called with each host packet the radio transmits,
	// as soon as its frame is read (benchmarks time the bridge with it).
	// It runs with the radio locked: it must not call the radio.
	OnAir func(p meshpb.MeshPacket)
}

// Stats counts what the radio did with the host's packets.
type Stats struct {
	Handshakes, RateLimited, DupDropped, TooLarge, ZeroHop int
}

// Radio is one simulated radio.
type Radio struct {
	cfg Config

	mu        sync.Mutex
	master    *os.File
	path      string
	protocol  bool // a valid ToRadio was seen: frames from now on
	attached  bool // handshake completed: packets flow
	lastTo    time.Time
	recent    []uint32
	lastPort  map[int32]time.Time
	reboots   uint32
	toPhone   [][]byte // encoded FromRadio awaiting a client
	air       []meshpb.MeshPacket
	stats     Stats
	closed    bool
	wg        sync.WaitGroup
	unplugged bool
}

// New starts a radio on a fresh pty.
func New(cfg Config) (*Radio, error) {
	if cfg.NodeNum == 0 {
		cfg.NodeNum = 0x5eed0001
	}
	if cfg.HopLimit == 0 {
		cfg.HopLimit = 3
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 15 * time.Minute
	}
	r := &Radio{cfg: cfg, lastPort: map[int32]time.Time{}}
	if err := r.plug(); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go r.deliver()
	return r, nil
}

// Path is where the bridge opens the radio: Config.Link if set, else the
// pty's own path (which changes on Replug).
func (r *Radio) Path() string {
	if r.cfg.Link != "" {
		return r.cfg.Link
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

func (r *Radio) plug() error {
	m, p, err := openPTY()
	if err != nil {
		return err
	}
	if r.cfg.Link != "" {
		os.Remove(r.cfg.Link)
		if err := os.Symlink(p, r.cfg.Link); err != nil {
			m.Close()
			return err
		}
	}
	r.mu.Lock()
	r.master, r.path, r.unplugged = m, p, false
	r.protocol, r.attached = false, false
	r.mu.Unlock()
	r.wg.Add(1)
	go r.read(m)
	return nil
}

// Unplug closes the pty as a USB unplug would: the bridge's reads fail.
func (r *Radio) Unplug() {
	r.mu.Lock()
	m := r.master
	r.unplugged, r.attached, r.protocol = true, false, false
	r.mu.Unlock()
	if r.cfg.Link != "" {
		os.Remove(r.cfg.Link)
	}
	m.Close()
}

// Replug makes the radio appear again (a new pty behind the same Link).
func (r *Radio) Replug() error { return r.plug() }

// Reboot behaves like a firmware restart: rebooted frame, boot text, and
// no packets until a new handshake.
func (r *Radio) Reboot() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reboots++
	r.recent = nil
	r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindRebooted})
	r.writeLocked([]byte("\x1b[34mINFO  | 00:00:01 1 \x1b[0mBooted, wake by power\r\n"))
	r.protocol, r.attached = false, false
}

// Close stops the radio.
func (r *Radio) Close() {
	r.mu.Lock()
	r.closed = true
	m := r.master
	r.mu.Unlock()
	m.Close()
	if r.cfg.Link != "" {
		os.Remove(r.cfg.Link)
	}
	r.wg.Wait()
}

// Type queues a text message as if a user of node from typed it on the
// mesh; it reaches the host once a client is attached.
func (r *Radio) Type(from uint32, text string) uint32 {
	return r.Receive(meshpb.MeshPacket{From: from, To: meshpb.Broadcast, HopLimit: 2, HopStart: 3,
		HasDecoded: true, Decoded: meshpb.Data{Portnum: meshpb.PortText, Payload: []byte(text)}})
}

// Receive queues a packet heard over the air (id assigned if zero).
func (r *Radio) Receive(p meshpb.MeshPacket) uint32 {
	if p.ID == 0 {
		p.ID = randID()
	}
	p.RxTime = uint32(time.Now().Unix())
	p.Transport = 1
	b := meshpb.AppendFromRadio(nil, &meshpb.FromRadio{Kind: meshpb.KindPacket, Packet: p})
	r.mu.Lock()
	r.toPhone = append(r.toPhone, b)
	r.mu.Unlock()
	return p.ID
}

// Air returns copies of the packets the radio transmitted for the host.
func (r *Radio) Air() []meshpb.MeshPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]meshpb.MeshPacket(nil), r.air...)
}

// Stats returns the counters.
func (r *Radio) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Attached reports whether a client completed the handshake.
func (r *Radio) Attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached
}

func randID() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		if v := binary.LittleEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

func (r *Radio) writeLocked(b []byte) {
	if r.master != nil && !r.unplugged {
		_, _ = r.master.Write(b)
	}
}

func (r *Radio) writeFrameLocked(m *meshpb.FromRadio) {
	r.writeLocked(frame.Append(nil, meshpb.AppendFromRadio(nil, m)))
	if r.cfg.DebugText {
		// Log text between frames, with invalid UTF-8 and an em dash
		// followed by 0xC3: a false frame start.
		r.writeLocked([]byte("DEBUG | ??:??:?? 5 [Router] \xff\xfe queue \xe2\x80\x94\xc3\xa9 ok\r\n"))
	}
}

// deliver drains the to-phone queue to an attached client and enforces
// the idle timeout.
func (r *Radio) deliver() {
	defer r.wg.Done()
	for {
		time.Sleep(2 * time.Millisecond)
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if r.attached && time.Since(r.lastTo) > r.cfg.IdleTimeout {
			// The firmware closes an idle client; only a new
			// want_config_id restores delivery.
			r.attached = false
		}
		for r.attached && len(r.toPhone) > 0 {
			b := r.toPhone[0]
			r.toPhone = r.toPhone[1:]
			r.writeLocked(frame.Append(nil, b))
		}
		r.mu.Unlock()
	}
}

type toRadioHandler struct{ r *Radio }

func (h toRadioHandler) Frame(p []byte) bool {
	var m meshpb.ToRadio
	var pkt meshpb.MeshPacket
	if meshpb.UnmarshalToRadio(p, &m, &pkt) != nil {
		return false
	}
	h.r.handle(&m)
	return true
}

func (h toRadioHandler) Text([]byte) {} // wake bytes and garbage

func (r *Radio) read(m *os.File) {
	defer r.wg.Done()
	sp := frame.NewSplitter(toRadioHandler{r})
	buf := make([]byte, 4096)
	for {
		n, err := m.Read(buf)
		if n > 0 {
			sp.Write(buf[:n])
		}
		if err != nil {
			r.mu.Lock()
			stop := r.closed || r.unplugged || r.master != m
			if !stop {
				// EIO: no client has the slave open. The session is
				// gone; a torn frame must not survive into the next.
				r.attached, r.protocol = false, false
				sp.Reset()
			}
			r.mu.Unlock()
			if stop || !errors.Is(err, errEIO) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (r *Radio) handle(m *meshpb.ToRadio) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.protocol = true
	r.lastTo = time.Now()
	switch {
	case m.WantConfigID != 0:
		r.stats.Handshakes++
		r.attached = false
		r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindMyInfo, MyInfo: meshpb.MyNodeInfo{MyNodeNum: r.cfg.NodeNum, RebootCount: r.reboots, MinAppVer: 30200}})
		// A stale complete from an earlier nonce: must be ignored.
		r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindConfigComplete, ConfigCompleteID: m.WantConfigID ^ 0x5a5a})
		r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindLoRaConfig, LoRa: meshpb.LoRaConfig{UsePreset: true,
			ModemPreset: r.cfg.Preset, Region: r.cfg.Region, HopLimit: r.cfg.HopLimit, TxEnabled: true}})
		r.writeLocked(frame.Append(nil, []byte{0x22, 0x02, 0x08, 0x07})) // a node_info
		r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindConfigComplete, ConfigCompleteID: m.WantConfigID})
		r.attached = true
	case m.Heartbeat:
		r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindQueueStatus, QueueStatus: meshpb.QueueStatus{Free: 16, MaxLen: 16}})
	case m.Disconnect:
		r.attached = false
	case m.Packet != nil:
		r.packet(m.Packet)
	}
}

func (r *Radio) queueStatus(id uint32, res int32) {
	r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindQueueStatus, QueueStatus: meshpb.QueueStatus{Res: res, Free: 15, MaxLen: 16, MeshPacketID: id}})
}

func (r *Radio) routing(id uint32, reason int32) {
	p := meshpb.MeshPacket{From: r.cfg.NodeNum, To: r.cfg.NodeNum, ID: randID(), Priority: meshpb.PriorityAck, HasDecoded: true,
		Decoded: meshpb.Data{Portnum: meshpb.PortRouting, Payload: meshpb.AppendRouting(nil, reason), RequestID: id}}
	r.writeFrameLocked(&meshpb.FromRadio{Kind: meshpb.KindPacket, Packet: p})
}

func (r *Radio) packet(p *meshpb.MeshPacket) {
	if p.HasDecoded && len(p.Decoded.Payload) > meshpb.MaxPayload {
		return // the firmware cannot decode it: silently dropped
	}
	for _, id := range r.recent {
		if id == p.ID {
			r.stats.DupDropped++
			r.queueStatus(p.ID, 0)
			return
		}
	}
	if r.recent = append(r.recent, p.ID); len(r.recent) > 20 {
		r.recent = r.recent[1:]
	}
	port := p.Decoded.Portnum
	now := time.Now()
	last, seen := r.lastPort[port]
	switch {
	case port == meshpb.PortText && seen && now.Sub(last) < r.cfg.TextInterval:
		r.stats.RateLimited++
		r.queueStatus(p.ID, 0)
		r.routing(p.ID, meshpb.ErrRateLimit)
		return
	case port == meshpb.PortAlert && seen && now.Sub(last) < r.cfg.AlertInterval:
		// Silently dropped: res 0 and no NAK.
		r.stats.RateLimited++
		r.queueStatus(p.ID, 0)
		return
	}
	if len(meshpb.AppendData(nil, &p.Decoded))+16 > 255 {
		r.stats.TooLarge++
		r.queueStatus(p.ID, 0)
		r.routing(p.ID, meshpb.ErrTooLarge)
		return
	}
	r.lastPort[port] = now
	if p.HopLimit == 0 {
		r.stats.ZeroHop++
	}
	q := p.Clone()
	q.From = r.cfg.NodeNum // the firmware overwrites from
	r.air = append(r.air, q)
	if r.cfg.OnAir != nil {
		r.cfg.OnAir(q)
	}
	r.queueStatus(p.ID, 0)
	if p.WantAck {
		// Broadcast: a neighbour's rebroadcast is an implicit ACK whose
		// from is our own node.
		r.routing(p.ID, meshpb.ErrNone)
	}
}
