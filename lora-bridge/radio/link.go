package radio

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/frame"
	"github.com/meshnode/meshnode/lora-bridge/meshpb"
)

// Info is what the handshake learned about the radio.
type Info struct {
	NodeNum     uint32
	RebootCount uint32
	LoRa        meshpb.LoRaConfig
	HaveLoRa    bool
}

// Handler receives the link's events, on the link's goroutine: it must
// not block for long (the radio's to-phone queue is small and drops
// alerts when full).
type Handler interface {
	Connected(Info)
	Disconnected(err error)
	// Packet delivers a received packet; its slices are only valid
	// during the call (use Clone).
	Packet(p *meshpb.MeshPacket)
	QueueStatus(q meshpb.QueueStatus)
	Notification(n meshpb.ClientNotification)
}

// Config tunes the link; zero values take the defaults in brackets.
type Config struct {
	Open Opener
	// Heartbeat interval [60 s]; the firmware drops a client after 15 min
	// without any ToRadio.
	Heartbeat time.Duration
	// Silence: no frame for this long means the session is dead and a new
	// handshake is needed [Heartbeat + 30 s].
	Silence time.Duration
	// HandshakeTimeout waits for config_complete_id [15 s].
	HandshakeTimeout time.Duration
	// Reopen is the delay between attempts to open the port [500 ms].
	Reopen time.Duration
	// WakeDelay after the wake bytes [100 ms].
	WakeDelay time.Duration
	Log       *log.Logger
}

// Stats are counters for status output.
type Stats struct {
	Connected    bool
	Handshakes   uint64
	Reconnects   uint64
	Frames       uint64
	BadFrames    uint64
	TextBytes    uint64
	Sent         uint64
	LastError    string
	ConnectedFor time.Duration
}

// Link is one radio connection, kept alive by Run.
type Link struct {
	cfg Config
	h   Handler

	mu   sync.Mutex // guards port and connected for Send
	port Port
	up   bool

	// wakeup asks Run to drop the session and reconnect now (hotplug).
	wakeup chan struct{}

	handshakes, reconnects, sent atomic.Uint64
	frames, badFrames, text      atomic.Uint64
	since                        atomic.Int64
	lastErr                      atomic.Value
}

// New returns a link; call Run to drive it.
func New(cfg Config, h Handler) *Link {
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 60 * time.Second
	}
	if cfg.Silence == 0 {
		cfg.Silence = cfg.Heartbeat + 30*time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 15 * time.Second
	}
	if cfg.Reopen == 0 {
		cfg.Reopen = 500 * time.Millisecond
	}
	if cfg.WakeDelay == 0 {
		cfg.WakeDelay = 100 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = log.New(discard{}, "", 0)
	}
	return &Link{cfg: cfg, h: h, wakeup: make(chan struct{}, 1)}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ErrNotConnected is returned by Send outside a session.
var ErrNotConnected = errors.New("radio: not connected")

// Send writes one packet to the radio. The caller applies the sending
// rules (ids, hop_limit, pacing); Send only frames and writes.
func (l *Link) Send(p *meshpb.MeshPacket) error {
	var buf [frame.MaxFrameLen]byte
	payload := meshpb.AppendToRadio(buf[frame.HeaderLen:frame.HeaderLen], &meshpb.ToRadio{Packet: p})
	if len(payload) > frame.MaxPayload {
		return fmt.Errorf("radio: packet encodes to %d bytes", len(payload))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return ErrNotConnected
	}
	if err := writeFrame(l.port, payload); err != nil {
		return err
	}
	l.sent.Add(1)
	return nil
}

// Reconnect drops the current session (if any) and opens the port again,
// e.g. when hotplug reports the device came back.
func (l *Link) Reconnect() {
	select {
	case l.wakeup <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	s := Stats{Connected: up, Handshakes: l.handshakes.Load(), Reconnects: l.reconnects.Load(),
		Frames: l.frames.Load(), BadFrames: l.badFrames.Load(), TextBytes: l.text.Load(), Sent: l.sent.Load()}
	if e, ok := l.lastErr.Load().(string); ok {
		s.LastError = e
	}
	if up {
		s.ConnectedFor = time.Since(time.Unix(0, l.since.Load()))
	}
	return s
}

func writeFrame(p Port, payload []byte) error {
	var hdr [frame.HeaderLen]byte
	f := frame.Append(hdr[:0], nil)
	binary.BigEndian.PutUint16(f[2:], uint16(len(payload)))
	// One write per frame: short writes tore frames on ESP32-S3
	// (firmware#10975), so the whole frame goes in one call.
	buf := make([]byte, 0, len(f)+len(payload))
	buf = append(append(buf, f...), payload...)
	_, err := p.Write(buf)
	return err
}

// Run keeps the radio connected until ctx ends. On return it sends
// disconnect so the radio frees its client slot.
func (l *Link) Run(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		if !first {
			l.reconnects.Add(1)
		}
		first = false
		err := l.session(ctx)
		if err != nil && ctx.Err() == nil {
			l.lastErr.Store(err.Error())
			l.cfg.Log.Printf("radio: %v; reconnecting", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(l.cfg.Reopen):
		case <-l.wakeup:
		}
	}
}

// event is what the reader goroutine hands to the session loop.
type event struct {
	msg  meshpb.FromRadio
	raw  []byte // backing store of msg's slices
	text bool   // log text arrived (no frame)
	err  error
}

type splitHandler struct {
	l   *Link
	out chan<- event
	ctx context.Context
}

func (s *splitHandler) Frame(p []byte) bool {
	raw := append([]byte(nil), p...)
	var ev event
	if meshpb.UnmarshalFromRadio(raw, &ev.msg) != nil {
		s.l.badFrames.Add(1)
		return false
	}
	ev.raw = raw
	s.l.frames.Add(1)
	select {
	case s.out <- ev:
	case <-s.ctx.Done():
	}
	return true
}

func (s *splitHandler) Text(t []byte) {
	s.l.text.Add(uint64(len(t)))
	select {
	case s.out <- event{text: true}:
	case <-s.ctx.Done():
	}
}

// reader pumps the port into the splitter until an error or ctx ends.
func (l *Link) reader(ctx context.Context, p Port, out chan<- event) {
	sp := frame.NewSplitter(&splitHandler{l: l, out: out, ctx: ctx})
	var buf [512]byte
	idle := 0
	for ctx.Err() == nil {
		n, err := p.Read(buf[:])
		if n > 0 {
			idle = 0
			sp.Write(buf[:n])
		} else if idle++; idle == 2 {
			// A false header in log text must not hold text back.
			sp.Flush()
		}
		if err != nil {
			select {
			case out <- event{err: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

func nonce() uint32 {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		n := binary.LittleEndian.Uint32(b[:])
		// 69420/69421 are commands, not nonces, since firmware 2.6.8.
		if n != 0 && n != meshpb.ConfigOnly && n != meshpb.NodesOnly {
			return n
		}
	}
}

// session opens the port and serves it until something fails.
func (l *Link) session(ctx context.Context) error {
	p, err := l.cfg.Open()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	events := make(chan event, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.reader(sctx, p, events) }()
	defer func() {
		l.mu.Lock()
		wasUp := l.up
		l.up, l.port = false, nil
		l.mu.Unlock()
		if ctx.Err() != nil {
			// Clean shutdown: free the radio's client slot.
			_ = writeFrame(p, meshpb.AppendToRadio(nil, &meshpb.ToRadio{Disconnect: true}))
		}
		cancel()
		p.Close()
		wg.Wait()
		if wasUp {
			l.h.Disconnected(err)
		}
	}()
	l.mu.Lock()
	l.port = p
	l.mu.Unlock()

	for {
		var info Info
		info, err = l.handshake(sctx, p, events)
		if err != nil {
			return err
		}
		l.handshakes.Add(1)
		l.mu.Lock()
		l.up = true
		l.mu.Unlock()
		l.since.Store(time.Now().UnixNano())
		l.h.Connected(info)
		err = l.serve(sctx, p, events, info)
		if !errors.Is(err, errRehandshake) {
			return err
		}
		l.mu.Lock()
		l.up = false
		l.mu.Unlock()
		l.h.Disconnected(err)
		l.cfg.Log.Printf("radio: %v", err)
	}
}

var errRehandshake = errors.New("new handshake needed")

func (l *Link) handshake(ctx context.Context, p Port, events <-chan event) (Info, error) {
	// 516 x 0xC3 flushes the radio's parser even in the middle of a torn
	// frame left by a previous client; the radio ignores the bytes.
	var wake [frame.MaxFrameLen]byte
	for i := range wake {
		wake[i] = frame.Start2
	}
	l.mu.Lock()
	_, err := p.Write(wake[:])
	l.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	select {
	case <-ctx.Done():
		return Info{}, ctx.Err()
	case <-time.After(l.cfg.WakeDelay):
	}
	n := nonce()
	l.mu.Lock()
	err = writeFrame(p, meshpb.AppendToRadio(nil, &meshpb.ToRadio{WantConfigID: n}))
	l.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	var info Info
	deadline := time.NewTimer(l.cfg.HandshakeTimeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return Info{}, ctx.Err()
		case <-deadline.C:
			return Info{}, fmt.Errorf("radio: no config_complete_id %d within %v", n, l.cfg.HandshakeTimeout)
		case <-l.wakeup:
			return Info{}, errors.New("radio: reconnect requested")
		case ev := <-events:
			if ev.err != nil {
				return Info{}, ev.err
			}
			switch ev.msg.Kind {
			case meshpb.KindMyInfo:
				info.NodeNum, info.RebootCount = ev.msg.MyInfo.MyNodeNum, ev.msg.MyInfo.RebootCount
			case meshpb.KindLoRaConfig:
				info.LoRa, info.HaveLoRa = ev.msg.LoRa, true
			case meshpb.KindConfigComplete:
				// Stale completes from an earlier nonce can arrive.
				if ev.msg.ConfigCompleteID == n {
					return info, nil
				}
			}
		}
	}
}

func (l *Link) serve(ctx context.Context, p Port, events <-chan event, info Info) error {
	hb := time.NewTicker(l.cfg.Heartbeat)
	defer hb.Stop()
	lastAny := time.Now()
	silence := time.NewTimer(l.cfg.Silence)
	defer silence.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.wakeup:
			return errors.New("radio: reconnect requested")
		case <-hb.C:
			l.mu.Lock()
			err := writeFrame(p, meshpb.AppendToRadio(nil, &meshpb.ToRadio{Heartbeat: true}))
			l.mu.Unlock()
			if err != nil {
				return err
			}
		case <-silence.C:
			return fmt.Errorf("radio: no frame for %v: %w", l.cfg.Silence, errRehandshake)
		case ev := <-events:
			if ev.err != nil {
				return ev.err
			}
			quiet := time.Since(lastAny)
			lastAny = time.Now()
			if ev.text {
				// Boot text after a long quiet spell: the radio restarted
				// without a rebooted frame (2.8 may not send one).
				if quiet > l.cfg.Silence/2 {
					return fmt.Errorf("radio: log text after %v of silence: %w", quiet.Round(time.Millisecond), errRehandshake)
				}
				continue
			}
			silence.Reset(l.cfg.Silence)
			m := &ev.msg
			switch m.Kind {
			case meshpb.KindRebooted:
				return fmt.Errorf("radio: rebooted: %w", errRehandshake)
			case meshpb.KindMyInfo:
				if m.MyInfo.RebootCount != info.RebootCount {
					return fmt.Errorf("radio: reboot count changed: %w", errRehandshake)
				}
			case meshpb.KindPacket:
				l.h.Packet(&m.Packet)
			case meshpb.KindQueueStatus:
				l.h.QueueStatus(m.QueueStatus)
			case meshpb.KindClientNotification:
				l.h.Notification(m.Notification)
			}
		}
	}
}
