// Package bridge joins the radio link, the journal and the IP peers: it
// accepts messages from each side into the journal (exactly once, by key)
// and delivers them to the other side under the radio's sending rules.
package bridge

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"log"
	"net/netip"
	"sync"
	"time"

	"github.com/meshnode/meshnode/lora-bridge/airtime"
	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/journal"
	"github.com/meshnode/meshnode/lora-bridge/meshpb"
	"github.com/meshnode/meshnode/lora-bridge/message"
	"github.com/meshnode/meshnode/lora-bridge/radio"
)

// DestRadio is the journal destination for the local radio.
const DestRadio = "radio"

// Peer is another bridge reached over UDP.
type Peer struct {
	Name string
	Addr netip.AddrPort
}

// Config is the bridge's validated configuration.
type Config struct {
	NodeID            uint32 // origin of messages posted locally
	HopLimit          uint32
	Channel           uint32
	TextInterval      time.Duration // firmware: 2 s
	AlertInterval     time.Duration // firmware: 10 s
	Modem             airtime.Modem
	Budget            *airtime.Budget
	AlertKeys         []ed25519.PublicKey
	ForwardUnverified bool
	Peers             []Peer
	Listen            netip.AddrPort
	Socket            string
	// Grace waits for a NAK after the radio's QueueStatus before a packet
	// counts as sent [1 s]; RateLimit NAKs come right after.
	Grace time.Duration
	// Retransmit is the first peer retransmission timeout [1 s].
	Retransmit time.Duration
	Log        *log.Logger
	// Now is the clock for pacing, grace, reassembly and retransmission
	// [time.Now]; tests pass a fake one instead of sleeping.
	Now func() time.Time
}

// Radio is the link the bridge sends through: *radio.Link in production,
// a recorder in unit tests.
type Radio interface {
	Send(p *meshpb.MeshPacket) error
	Stats() radio.Stats
}

// Bridge is the running service.
type Bridge struct {
	cfg  Config
	j    *journal.Journal
	link Radio

	mu        sync.Mutex
	up        bool
	info      radio.Info
	queueFree uint32
	inflight  *inflight
	lastSent  map[uint8]time.Time
	parts     map[partKey]*partial
	counters  Counters
	wake      chan struct{}
	peers     *peers
	// toPeers and toAll are the journal destinations of a message heard
	// on the radio and of one posted on the API; built once, read only.
	toPeers, toAll []string
}

// Counters are reported by status.
type Counters struct {
	FromRadio, ToRadio, FromPeers, ToPeers, Dropped, Unverified, NAKs, BudgetWaits uint64
	// BadInput counts garbage from peers and the API, undecodable
	// routing payloads; Ignored counts packets on ports the bridge does
	// not carry (position, telemetry, ...).
	BadInput, Ignored uint64
	// JournalErrors counts messages the journal refused (full, disk
	// error): not accepted, so the sender keeps them (peers retransmit,
	// the API reports the error).
	JournalErrors uint64
}

type inflight struct {
	msg     message.Message
	part    int
	parts   []string
	id      uint32
	sentAt  time.Time
	queued  time.Time // QueueStatus res 0 seen
	nak     int32
	hasNak  bool
	retries int
}

type partKey struct {
	from, tag uint32
}

type partial struct {
	got   []string
	n     int
	first time.Time
	kind  uint8
}

// New makes a bridge over an opened journal. SetLink must be called
// before Run.
func New(cfg Config, j *journal.Journal) *Bridge {
	if cfg.Grace == 0 {
		cfg.Grace = time.Second
	}
	if cfg.Retransmit == 0 {
		cfg.Retransmit = time.Second
	}
	if cfg.HopLimit == 0 {
		cfg.HopLimit = 3
	}
	if cfg.Log == nil {
		cfg.Log = log.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Bridge{cfg: cfg, j: j, lastSent: map[uint8]time.Time{}, parts: map[partKey]*partial{},
		wake: make(chan struct{}, 1), queueFree: 1}
	b.setDests()
	return b
}

// setDests builds toPeers and toAll from cfg.Peers (New, ListenPeers).
func (b *Bridge) setDests() {
	b.toPeers = nil
	for _, p := range b.cfg.Peers {
		b.toPeers = append(b.toPeers, "peer:"+p.Name)
	}
	b.toAll = append([]string{DestRadio}, b.toPeers...)
}

// SetLink attaches the radio link (it is built with the bridge as handler).
func (b *Bridge) SetLink(l Radio) { b.link = l }

func (b *Bridge) now() time.Time { return b.cfg.Now() }

// badInput counts and logs input that was refused. Logging is thinned
// (1st, 2nd, 4th, 8th, ... occurrence) so a peer spraying garbage cannot
// fill the log on flash.
func (b *Bridge) badInput(format string, a ...any) {
	b.mu.Lock()
	b.counters.BadInput++
	n := b.counters.BadInput
	b.mu.Unlock()
	if n&(n-1) == 0 {
		b.cfg.Log.Printf("bad input (%d so far): "+format, append([]any{n}, a...)...)
	}
}

func (b *Bridge) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// RandomID returns a random non-zero 32-bit id: mesh nodes dedupe on
// (from, id) and all bridge traffic shares the radio's from.
func RandomID() uint32 {
	var x [4]byte
	for {
		_, _ = rand.Read(x[:])
		if v := binary.LittleEndian.Uint32(x[:]); v != 0 {
			return v
		}
	}
}

// --- radio.Handler ---

func (b *Bridge) Connected(i radio.Info) {
	b.mu.Lock()
	b.up, b.info, b.queueFree = true, i, 1
	if b.inflight != nil {
		// Resend the part in flight: same id, so the mesh dedupes it if
		// it went out before the link dropped.
		b.inflight.sentAt = time.Time{}
	}
	b.mu.Unlock()
	b.cfg.Log.Printf("radio: connected, node !%08x", i.NodeNum)
	b.kick()
}

func (b *Bridge) Disconnected(err error) {
	b.mu.Lock()
	b.up = false
	b.mu.Unlock()
}

func (b *Bridge) QueueStatus(q meshpb.QueueStatus) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queueFree = q.Free
	if f := b.inflight; f != nil && q.MeshPacketID == f.id && q.Res == 0 && f.queued.IsZero() {
		f.queued = b.now()
		// Step again as soon as the grace for a NAK is over, not on the
		// next tick.
		time.AfterFunc(b.cfg.Grace, b.kick)
	}
}

func (b *Bridge) Notification(n meshpb.ClientNotification) {
	b.cfg.Log.Printf("radio: notification: %s", message.Sanitize(n.Message))
}

func (b *Bridge) Packet(p *meshpb.MeshPacket) {
	if !p.HasDecoded {
		return
	}
	b.mu.Lock()
	own := b.info.NodeNum
	b.mu.Unlock()
	d := &p.Decoded
	if d.Portnum == meshpb.PortRouting {
		r, err := meshpb.UnmarshalRouting(d.Payload)
		if err != nil {
			b.badInput("radio: routing payload from !%08x: %v", p.From, err)
		}
		b.mu.Lock()
		if f := b.inflight; err == nil && f != nil && d.RequestID == f.id && r.ErrorReason != meshpb.ErrNone {
			f.nak, f.hasNak = r.ErrorReason, true
			b.counters.NAKs++
		}
		b.mu.Unlock()
		return
	}
	// Our own packets, MQTT echoes: never back over IP (loops).
	if p.From == own || p.ViaMQTT {
		return
	}
	if d.Portnum != meshpb.PortText && d.Portnum != meshpb.PortAlert {
		// Position, telemetry, unknown and private ports stay on LoRa.
		b.mu.Lock()
		b.counters.Ignored++
		b.mu.Unlock()
		return
	}
	kind := uint8(message.Text)
	if d.Portnum == meshpb.PortAlert {
		kind = message.Alert
	}
	body := message.Sanitize(d.Payload)
	key := message.Key{Origin: p.From, ID: p.ID}
	if part, ok := message.ParsePart(body); ok {
		var done bool
		body, done = b.reassemble(p.From, part, kind)
		if !done {
			return
		}
		key = message.Key{Origin: p.From, ID: 0xff000000 | part.Tag}
	}
	b.accept(message.Message{Key: key, Kind: kind, Time: b.now().Unix(), RadioID: RandomID(),
		Sender: "!" + hex8(p.From), Body: body}, b.toPeers, "radio")
}

func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	var s [8]byte
	for i := 7; i >= 0; i-- {
		s[i] = digits[v&15]
		v >>= 4
	}
	return string(s[:])
}

func (b *Bridge) reassemble(from uint32, p message.Part, kind uint8) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for k, v := range b.parts {
		if now.Sub(v.first) > 10*time.Minute {
			delete(b.parts, k)
		}
	}
	k := partKey{from, p.Tag}
	pa := b.parts[k]
	if pa == nil || pa.n != p.N {
		if len(b.parts) >= 64 {
			return "", false // bounded: drop rather than grow
		}
		pa = &partial{got: make([]string, p.N), n: p.N, first: now, kind: kind}
		b.parts[k] = pa
	}
	pa.got[p.I-1] = p.Body
	var s string
	for _, g := range pa.got {
		if g == "" {
			return "", false
		}
		s += g
	}
	delete(b.parts, k)
	return s, true
}

// accept verifies alerts and journals a message for dests. from is
// "radio", "peer:<name>" or "api", for counters.
func (b *Bridge) accept(m message.Message, dests []string, from string) (dup bool, err error) {
	if m.Kind == message.Alert {
		_, signed, ok := alert.Verify(b.cfg.AlertKeys, m.Body)
		m.Verified = signed && ok
		if !m.Verified {
			b.mu.Lock()
			b.counters.Unverified++
			b.mu.Unlock()
			if !b.cfg.ForwardUnverified {
				// Unverified alerts stay local: not across the IP mesh.
				var keep []string
				for _, d := range dests {
					if d == DestRadio {
						keep = append(keep, d)
					}
				}
				dests = keep
			}
		}
	}
	dup, err = b.j.Accept(m, dests)
	if err != nil {
		b.mu.Lock()
		b.counters.JournalErrors++
		n := b.counters.JournalErrors
		b.mu.Unlock()
		if n&(n-1) == 0 {
			b.cfg.Log.Printf("journal: message %v from %s not accepted (%d so far): %v", m.Key, from, n, err)
		}
		return false, err
	}
	if !dup {
		b.mu.Lock()
		switch from {
		case "radio":
			b.counters.FromRadio++
		case "api":
		default:
			b.counters.FromPeers++
		}
		b.mu.Unlock()
		b.kick()
		if b.peers != nil {
			b.peers.kick()
		}
	}
	return dup, nil
}

// Post accepts a message from the local API; it is durable on return.
// id 0 picks a random id; a client that retries after an error passes
// its own id so that a post whose answer was lost is not accepted twice.
func (b *Bridge) Post(kind uint8, sender, text string, id uint32) (m message.Message, dup bool, err error) {
	if id == 0 {
		id = RandomID()
	}
	m = message.Message{Key: message.Key{Origin: b.cfg.NodeID, ID: id}, Kind: kind,
		Time: b.now().Unix(), RadioID: RandomID(), Sender: sender, Body: text}
	if dup, err = b.accept(m, b.toAll, "api"); err != nil {
		return m, false, err
	}
	return m, dup, b.j.Sync()
}

// Run drives the radio sender and the periodic journal sync until ctx ends.
func (b *Bridge) Run(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sync := time.NewTicker(200 * time.Millisecond)
	defer sync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.wake:
		case <-sync.C:
			// Batched fsync: one per interval, not one per message.
			if err := b.j.Sync(); err != nil {
				b.cfg.Log.Printf("journal: sync: %v", err)
			}
			continue
		}
		b.step(b.now())
	}
}

// payloadFor is what goes on air for m: IP-side senders are named in the
// text, as the radio overwrites from.
func payloadFor(m *message.Message) string {
	if m.Sender != "" && m.Kind == message.Text {
		return m.Sender + ": " + m.Body
	}
	return m.Body
}

// step sends at most one packet, following the sending rules.
func (b *Bridge) step(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.up || b.link == nil {
		return
	}
	f := b.inflight
	if f != nil && !f.sentAt.IsZero() {
		switch {
		case f.hasNak && (f.nak == meshpb.ErrRateLimit || f.nak == meshpb.ErrDutyCycleLimit):
			// Refused for pacing: send the same part again later.
			f.hasNak, f.sentAt, f.queued = false, time.Time{}, time.Time{}
			b.lastSent[f.msg.Kind] = now
			return
		case f.hasNak && f.nak == meshpb.ErrTooLarge:
			b.cfg.Log.Printf("radio: message %v refused as too large; dropped", f.msg.Key)
			b.counters.Dropped++
			b.finishLocked(f)
			f = nil // go on with the next message in this step
		case !f.queued.IsZero() && now.Sub(f.queued) >= b.cfg.Grace:
			f.part++
			if f.part == len(f.parts) {
				b.finishLocked(f)
				f = nil
				break
			}
			f.sentAt, f.queued, f.hasNak = time.Time{}, time.Time{}, false
		case f.queued.IsZero() && now.Sub(f.sentAt) > 10*time.Second:
			f.sentAt = time.Time{} // no QueueStatus: resend, same id
		default:
			return
		}
	}
	if f == nil {
		b.mu.Unlock()
		pend := b.j.Pending(DestRadio, 1)
		b.mu.Lock()
		if len(pend) == 0 {
			return
		}
		m := pend[0]
		f = &inflight{msg: m, parts: message.Split(payloadFor(&m), 232, m.RadioID)}
		b.inflight = f
	}
	if b.queueFree == 0 {
		return
	}
	interval := b.cfg.TextInterval
	port := int32(meshpb.PortText)
	prio := int32(0)
	if f.msg.Kind == message.Alert {
		interval, port, prio = b.cfg.AlertInterval, meshpb.PortAlert, meshpb.PriorityAlert
	}
	if now.Sub(b.lastSent[f.msg.Kind]) < interval {
		return
	}
	payload := []byte(f.parts[f.part])
	d := meshpb.Data{Portnum: port, Payload: payload}
	air := b.cfg.Modem.OnAir(len(meshpb.AppendData(nil, &d)) + airtime.HeaderLen + 2)
	if b.cfg.Budget != nil && !b.cfg.Budget.Allow(now, air) {
		b.counters.BudgetWaits++
		return // wait in the queue: the budget is never exceeded
	}
	f.id = message.PartID(f.msg.RadioID, f.part)
	p := &meshpb.MeshPacket{To: meshpb.Broadcast, Channel: b.cfg.Channel, ID: f.id, HopLimit: b.cfg.HopLimit,
		WantAck: true, Priority: prio, HasDecoded: true, Decoded: d}
	if err := b.link.Send(p); err != nil {
		return
	}
	if b.cfg.Budget != nil {
		b.cfg.Budget.Charge(now, air)
	}
	f.sentAt, f.queued, f.hasNak = now, time.Time{}, false
	b.lastSent[f.msg.Kind] = now
}

func (b *Bridge) finishLocked(f *inflight) {
	b.inflight = nil
	if err := b.j.Done(f.msg.Key, DestRadio); err != nil {
		b.cfg.Log.Printf("journal: %v", err)
	}
	b.counters.ToRadio++
}

// Status is the snapshot served by the API.
type Status struct {
	Radio    radio.Stats   `json:"radio"`
	NodeNum  string        `json:"node"`
	Journal  journal.Stats `json:"journal"`
	Counters Counters      `json:"counters"`
	Airtime  AirtimeStatus `json:"airtime"`
	Peers    []PeerStatus  `json:"peers"`
}

// AirtimeStatus is the budget's state.
type AirtimeStatus struct {
	UsedMs  int64 `json:"used_ms"`
	LimitMs int64 `json:"limit_ms"`
}

// Snapshot returns the status.
func (b *Bridge) Snapshot() Status {
	b.mu.Lock()
	s := Status{NodeNum: "!" + hex8(b.info.NodeNum), Counters: b.counters}
	if b.cfg.Budget != nil {
		s.Airtime = AirtimeStatus{b.cfg.Budget.Used(b.now()).Milliseconds(), b.cfg.Budget.Limit().Milliseconds()}
	}
	b.mu.Unlock()
	if b.link != nil {
		s.Radio = b.link.Stats()
	}
	s.Journal = b.j.Stats()
	if b.peers != nil {
		s.Peers = b.peers.status()
	}
	return s
}

// Recent returns the last n messages.
func (b *Bridge) Recent(n int) []message.Message { return b.j.Recent(n) }
