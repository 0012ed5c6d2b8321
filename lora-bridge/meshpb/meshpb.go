// Package meshpb encodes and decodes the few Meshtastic protobuf messages
// the bridge needs, on protowire, from the field numbers in
// shared/docs/facts-meshtastic.md §5 (written from the field tables; the
// upstream .proto files are GPL-3.0 and the generated code costs ~2.3 MB).
//
// Decoding copies nothing it does not keep, skips unknown fields, reads all
// radio text as bytes (it may be invalid UTF-8) and never allocates more
// than the input's length: every byte slice it returns is a sub-slice of
// the input. Callers that keep a message beyond the input's lifetime must
// Clone it.
package meshpb

import (
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Port numbers (portnums.proto) the bridge handles.
const (
	PortText      = 1
	PortRouting   = 5
	PortAlert     = 11
	PortTelemetry = 67
)

// Broadcast is the "to" address of channel messages.
const Broadcast = 0xFFFFFFFF

// Priorities (MeshPacket.Priority).
const (
	PriorityDefault = 64
	PriorityAlert   = 110
	PriorityAck     = 120
)

// Special want_config_id values the firmware interprets (since 2.6.8).
const (
	ConfigOnly = 69420
	NodesOnly  = 69421
)

// Routing error codes the bridge reacts to.
const (
	ErrNone           = 0
	ErrMaxRetransmit  = 5
	ErrTooLarge       = 7
	ErrDutyCycleLimit = 9
	ErrRateLimit      = 38
)

// MaxPayload is the largest Data.payload the radio accepts; larger ToRadio
// frames are dropped silently.
const MaxPayload = 233

// ErrInvalid reports a malformed message.
var ErrInvalid = errors.New("meshpb: invalid protobuf")

// Data is a decoded payload (mesh.proto Data).
type Data struct {
	Portnum      int32
	Payload      []byte
	WantResponse bool
	RequestID    uint32
	ReplyID      uint32
	Emoji        uint32
	Bitfield     uint32
}

// MeshPacket is mesh.proto MeshPacket. HasDecoded is false for encrypted
// packets (the radio could not decrypt them); Encrypted then holds the
// bytes.
type MeshPacket struct {
	From, To   uint32
	Channel    uint32
	Decoded    Data
	HasDecoded bool
	Encrypted  []byte
	ID         uint32
	RxTime     uint32
	RxSNR      float32
	HopLimit   uint32
	WantAck    bool
	Priority   int32
	RxRSSI     int32
	ViaMQTT    bool
	HopStart   uint32
	PKI        bool
	Transport  int32
}

// ToRadio is the host-to-radio envelope; exactly one field is set.
type ToRadio struct {
	Packet       *MeshPacket
	WantConfigID uint32 // sent when non-zero
	Disconnect   bool
	Heartbeat    bool // always nonce 0: nonce 1 triggers a NodeInfo broadcast
}

// MyNodeInfo is the radio's own identity.
type MyNodeInfo struct {
	MyNodeNum   uint32
	RebootCount uint32
	MinAppVer   uint32
}

// QueueStatus is the radio's TX queue report.
type QueueStatus struct {
	Res          int32
	Free, MaxLen uint32
	MeshPacketID uint32
}

// LogRecord is a structured log line (only with debug_log_api_enabled).
type LogRecord struct {
	Message []byte
	Source  []byte
	Level   uint32
}

// ClientNotification is a message from the firmware to the client, e.g.
// how long to wait after a duty-cycle refusal.
type ClientNotification struct {
	ReplyID uint32
	Level   uint32
	Message []byte
}

// LoRaConfig is the part of Config.lora the bridge uses.
type LoRaConfig struct {
	UsePreset         bool
	ModemPreset       int32
	Region            int32
	HopLimit          uint32
	TxEnabled         bool
	OverrideDutyCycle bool
}

// Kind tells which FromRadio variant was set.
type Kind uint8

const (
	KindUnknown Kind = iota
	KindPacket
	KindMyInfo
	KindConfigComplete
	KindRebooted
	KindQueueStatus
	KindLogRecord
	KindClientNotification
	KindLoRaConfig
	KindOther // a variant the bridge does not decode (node_info, channel, ...)
)

// FromRadio is the radio-to-host envelope.
type FromRadio struct {
	Kind             Kind
	Packet           MeshPacket
	MyInfo           MyNodeInfo
	ConfigCompleteID uint32
	Rebooted         bool
	QueueStatus      QueueStatus
	LogRecord        LogRecord
	Notification     ClientNotification
	LoRa             LoRaConfig
}

// Routing is the ROUTING_APP payload; only the error is decoded.
type Routing struct {
	ErrorReason int32
	HasError    bool
}

// --- encoding ---

// AppendToRadio appends the encoding of m to b.
func AppendToRadio(b []byte, m *ToRadio) []byte {
	switch {
	case m.Packet != nil:
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte { return AppendMeshPacket(b, m.Packet) })
	case m.WantConfigID != 0:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.WantConfigID))
	case m.Disconnect:
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	case m.Heartbeat:
		// Empty Heartbeat message: nonce 0 is the default and not written.
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
	}
	return b
}

// appendLen appends a length-delimited submessage produced by f. Messages
// here are < 128 bytes or close to it, so encode then prefix.
func appendLen(b []byte, f func([]byte) []byte) []byte {
	start := len(b)
	b = f(b)
	n := len(b) - start
	var hdr [binaryMaxVarint]byte
	h := protowire.AppendVarint(hdr[:0], uint64(n))
	b = append(b, h...)
	copy(b[start+len(h):], b[start:start+n])
	copy(b[start:], h)
	return b
}

const binaryMaxVarint = 10

// AppendMeshPacket appends p's encoding (fields in number order).
func AppendMeshPacket(b []byte, p *MeshPacket) []byte {
	if p.From != 0 {
		b = appendFixed(b, 1, p.From)
	}
	if p.To != 0 {
		b = appendFixed(b, 2, p.To)
	}
	b = appendVarint(b, 3, uint64(p.Channel))
	if p.HasDecoded {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte { return AppendData(b, &p.Decoded) })
	} else if p.Encrypted != nil {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, p.Encrypted)
	}
	if p.ID != 0 {
		b = appendFixed(b, 6, p.ID)
	}
	if p.RxTime != 0 {
		b = appendFixed(b, 7, p.RxTime)
	}
	if p.RxSNR != 0 {
		b = protowire.AppendTag(b, 8, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(p.RxSNR))
	}
	b = appendVarint(b, 9, uint64(p.HopLimit))
	b = appendBool(b, 10, p.WantAck)
	b = appendVarint(b, 11, uint64(int64(p.Priority)))
	b = appendVarint(b, 12, uint64(int64(p.RxRSSI)))
	b = appendBool(b, 14, p.ViaMQTT)
	b = appendVarint(b, 15, uint64(p.HopStart))
	b = appendBool(b, 17, p.PKI)
	b = appendVarint(b, 21, uint64(int64(p.Transport)))
	return b
}

// AppendData appends d's encoding.
func AppendData(b []byte, d *Data) []byte {
	b = appendVarint(b, 1, uint64(int64(d.Portnum)))
	if len(d.Payload) > 0 {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, d.Payload)
	}
	b = appendBool(b, 3, d.WantResponse)
	if d.RequestID != 0 {
		b = appendFixed(b, 6, d.RequestID)
	}
	if d.ReplyID != 0 {
		b = appendFixed(b, 7, d.ReplyID)
	}
	if d.Emoji != 0 {
		b = appendFixed(b, 8, d.Emoji)
	}
	b = appendVarint(b, 9, uint64(d.Bitfield))
	return b
}

// AppendFromRadio encodes the variants the simulated radio sends.
func AppendFromRadio(b []byte, m *FromRadio) []byte {
	switch m.Kind {
	case KindPacket:
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte { return AppendMeshPacket(b, &m.Packet) })
	case KindMyInfo:
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte {
			b = appendVarint(b, 1, uint64(m.MyInfo.MyNodeNum))
			b = appendVarint(b, 8, uint64(m.MyInfo.RebootCount))
			return appendVarint(b, 11, uint64(m.MyInfo.MinAppVer))
		})
	case KindConfigComplete:
		b = protowire.AppendTag(b, 7, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(m.ConfigCompleteID))
	case KindRebooted:
		b = protowire.AppendTag(b, 8, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	case KindQueueStatus:
		q := m.QueueStatus
		b = protowire.AppendTag(b, 11, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte {
			b = appendVarint(b, 1, uint64(int64(q.Res)))
			b = appendVarint(b, 2, uint64(q.Free))
			b = appendVarint(b, 3, uint64(q.MaxLen))
			return appendVarint(b, 4, uint64(q.MeshPacketID))
		})
	case KindLogRecord:
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			return protowire.AppendBytes(b, m.LogRecord.Message)
		})
	case KindClientNotification:
		n := m.Notification
		b = protowire.AppendTag(b, 16, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte {
			b = appendVarint(b, 1, uint64(n.ReplyID))
			b = appendVarint(b, 3, uint64(n.Level))
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			return protowire.AppendBytes(b, n.Message)
		})
	case KindLoRaConfig:
		l := m.LoRa
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = appendLen(b, func(b []byte) []byte {
			b = protowire.AppendTag(b, 6, protowire.BytesType)
			return appendLen(b, func(b []byte) []byte {
				b = appendBool(b, 1, l.UsePreset)
				b = appendVarint(b, 2, uint64(int64(l.ModemPreset)))
				b = appendVarint(b, 7, uint64(int64(l.Region)))
				b = appendVarint(b, 8, uint64(l.HopLimit))
				b = appendBool(b, 9, l.TxEnabled)
				return appendBool(b, 12, l.OverrideDutyCycle)
			})
		})
	}
	return b
}

// AppendRouting encodes a Routing with an explicit error_reason: the
// firmware writes NONE as 18 00 too.
func AppendRouting(b []byte, reason int32) []byte {
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(int64(reason)))
}

func appendFixed(b []byte, num protowire.Number, v uint32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return appendVarint(b, num, 1)
}
