package meshpb

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded field: v for varint and fixed32, b for bytes.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// each calls f for every field of msg. Groups and fixed64 are skipped as
// unknown; any malformed field fails the whole message.
func each(msg []byte, f func(field) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return ErrInvalid
		}
		msg = msg[n:]
		fd := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			fd.v, n = protowire.ConsumeVarint(msg)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(msg)
			fd.v = uint64(v)
		case protowire.BytesType:
			fd.b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
			if n < 0 {
				return ErrInvalid
			}
			msg = msg[n:]
			continue
		}
		if n < 0 {
			return ErrInvalid
		}
		msg = msg[n:]
		if err := f(fd); err != nil {
			return err
		}
	}
	return nil
}

// Wire-type checks: a known field number with the wrong wire type is what
// the Go runtime treats as unknown, so do the same: ignore it.
func (f field) isV() bool { return f.typ == protowire.VarintType }
func (f field) isI() bool { return f.typ == protowire.Fixed32Type }
func (f field) isL() bool { return f.typ == protowire.BytesType }

// UnmarshalFromRadio decodes b into m (reset first). Slices in m alias b.
func UnmarshalFromRadio(b []byte, m *FromRadio) error {
	*m = FromRadio{}
	return each(b, func(f field) error {
		switch {
		case f.num == 2 && f.isL():
			m.Kind = KindPacket
			m.Packet = MeshPacket{}
			return UnmarshalMeshPacket(f.b, &m.Packet)
		case f.num == 3 && f.isL():
			m.Kind = KindMyInfo
			m.MyInfo = MyNodeInfo{}
			return each(f.b, func(f field) error {
				if f.isV() {
					switch f.num {
					case 1:
						m.MyInfo.MyNodeNum = uint32(f.v)
					case 8:
						m.MyInfo.RebootCount = uint32(f.v)
					case 11:
						m.MyInfo.MinAppVer = uint32(f.v)
					}
				}
				return nil
			})
		case f.num == 5 && f.isL():
			m.Kind = KindOther
			// Config oneof: only lora (6) is decoded.
			return each(f.b, func(c field) error {
				if c.num != 6 || !c.isL() {
					return nil
				}
				m.Kind = KindLoRaConfig
				m.LoRa = LoRaConfig{}
				return each(c.b, func(f field) error {
					if !f.isV() {
						return nil
					}
					switch f.num {
					case 1:
						m.LoRa.UsePreset = f.v != 0
					case 2:
						m.LoRa.ModemPreset = int32(f.v)
					case 7:
						m.LoRa.Region = int32(f.v)
					case 8:
						m.LoRa.HopLimit = uint32(f.v)
					case 9:
						m.LoRa.TxEnabled = f.v != 0
					case 12:
						m.LoRa.OverrideDutyCycle = f.v != 0
					}
					return nil
				})
			})
		case f.num == 6 && f.isL():
			m.Kind = KindLogRecord
			m.LogRecord = LogRecord{}
			return each(f.b, func(f field) error {
				switch {
				case f.num == 1 && f.isL():
					m.LogRecord.Message = f.b
				case f.num == 3 && f.isL():
					m.LogRecord.Source = f.b
				case f.num == 4 && f.isV():
					m.LogRecord.Level = uint32(f.v)
				}
				return nil
			})
		case f.num == 7 && f.isV():
			m.Kind = KindConfigComplete
			m.ConfigCompleteID = uint32(f.v)
		case f.num == 8 && f.isV():
			m.Kind = KindRebooted
			m.Rebooted = f.v != 0
		case f.num == 11 && f.isL():
			m.Kind = KindQueueStatus
			m.QueueStatus = QueueStatus{}
			return each(f.b, func(f field) error {
				if !f.isV() {
					return nil
				}
				switch f.num {
				case 1:
					m.QueueStatus.Res = int32(f.v)
				case 2:
					m.QueueStatus.Free = uint32(f.v)
				case 3:
					m.QueueStatus.MaxLen = uint32(f.v)
				case 4:
					m.QueueStatus.MeshPacketID = uint32(f.v)
				}
				return nil
			})
		case f.num == 16 && f.isL():
			m.Kind = KindClientNotification
			m.Notification = ClientNotification{}
			return each(f.b, func(f field) error {
				switch {
				case f.num == 1 && f.isV():
					m.Notification.ReplyID = uint32(f.v)
				case f.num == 3 && f.isV():
					m.Notification.Level = uint32(f.v)
				case f.num == 4 && f.isL():
					m.Notification.Message = f.b
				}
				return nil
			})
		case f.num >= 4 && f.num <= 19 && f.isL():
			// node_info, channel, moduleConfig, metadata, ...: valid, unused.
			m.Kind = KindOther
		}
		return nil
	})
}

// UnmarshalMeshPacket decodes b into p (which should be zero).
func UnmarshalMeshPacket(b []byte, p *MeshPacket) error {
	return each(b, func(f field) error {
		switch {
		case f.num == 1 && f.isI():
			p.From = uint32(f.v)
		case f.num == 2 && f.isI():
			p.To = uint32(f.v)
		case f.num == 3 && f.isV():
			p.Channel = uint32(f.v)
		case f.num == 4 && f.isL():
			p.HasDecoded, p.Encrypted = true, nil
			p.Decoded = Data{}
			return UnmarshalData(f.b, &p.Decoded)
		case f.num == 5 && f.isL():
			p.HasDecoded, p.Encrypted = false, f.b
		case f.num == 6 && f.isI():
			p.ID = uint32(f.v)
		case f.num == 7 && f.isI():
			p.RxTime = uint32(f.v)
		case f.num == 8 && f.isI():
			p.RxSNR = math.Float32frombits(uint32(f.v))
		case f.num == 9 && f.isV():
			p.HopLimit = uint32(f.v)
		case f.num == 10 && f.isV():
			p.WantAck = f.v != 0
		case f.num == 11 && f.isV():
			p.Priority = int32(f.v)
		case f.num == 12 && f.isV():
			p.RxRSSI = int32(f.v)
		case f.num == 14 && f.isV():
			p.ViaMQTT = f.v != 0
		case f.num == 15 && f.isV():
			p.HopStart = uint32(f.v)
		case f.num == 17 && f.isV():
			p.PKI = f.v != 0
		case f.num == 21 && f.isV():
			p.Transport = int32(f.v)
		}
		return nil
	})
}

// UnmarshalData decodes b into d (which should be zero).
func UnmarshalData(b []byte, d *Data) error {
	return each(b, func(f field) error {
		switch {
		case f.num == 1 && f.isV():
			d.Portnum = int32(f.v)
		case f.num == 2 && f.isL():
			d.Payload = f.b
		case f.num == 3 && f.isV():
			d.WantResponse = f.v != 0
		case f.num == 6 && f.isI():
			d.RequestID = uint32(f.v)
		case f.num == 7 && f.isI():
			d.ReplyID = uint32(f.v)
		case f.num == 8 && f.isI():
			d.Emoji = uint32(f.v)
		case f.num == 9 && f.isV():
			d.Bitfield = uint32(f.v)
		}
		return nil
	})
}

// UnmarshalToRadio decodes what a host sends; used by the simulated radio.
func UnmarshalToRadio(b []byte, m *ToRadio, pkt *MeshPacket) error {
	*m = ToRadio{}
	return each(b, func(f field) error {
		switch {
		case f.num == 1 && f.isL():
			*pkt = MeshPacket{}
			m.Packet = pkt
			return UnmarshalMeshPacket(f.b, pkt)
		case f.num == 3 && f.isV():
			m.WantConfigID = uint32(f.v)
		case f.num == 4 && f.isV():
			m.Disconnect = f.v != 0
		case f.num == 7 && f.isL():
			m.Heartbeat = true
		}
		return nil
	})
}

// UnmarshalRouting decodes a ROUTING_APP payload.
func UnmarshalRouting(b []byte) (Routing, error) {
	var r Routing
	err := each(b, func(f field) error {
		if f.num == 3 && f.isV() {
			r.ErrorReason, r.HasError = int32(f.v), true
		}
		return nil
	})
	return r, err
}

// Clone returns a copy of p whose slices do not alias the decode buffer.
func (p MeshPacket) Clone() MeshPacket {
	if p.Encrypted != nil {
		p.Encrypted = append([]byte(nil), p.Encrypted...)
	}
	if p.Decoded.Payload != nil {
		p.Decoded.Payload = append([]byte(nil), p.Decoded.Payload...)
	}
	return p
}
