package meshpb

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Byte vectors from facts-meshtastic.md §10 (checked against the real
// protobuf runtime), without the 4-byte frame header.
func TestToRadioVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ToRadio
		want string
	}{
		{"want_config", ToRadio{WantConfigID: 0x12345678}, "18 f8 ac d1 91 01"},
		{"heartbeat", ToRadio{Heartbeat: true}, "3a 00"},
		{"disconnect", ToRadio{Disconnect: true}, "20 01"},
		{"text", ToRadio{Packet: &MeshPacket{To: Broadcast, HasDecoded: true,
			Decoded: Data{Portnum: PortText, Payload: []byte("hi")}, ID: 0x0a0b0c0d, HopLimit: 3, WantAck: true}},
			"0a 16 15 ff ff ff ff 22 06 08 01 12 02 68 69 35 0d 0c 0b 0a 48 03 50 01"},
		{"alert", ToRadio{Packet: &MeshPacket{To: Broadcast, HasDecoded: true,
			Decoded: Data{Portnum: PortAlert, Payload: []byte("FIRE")}, ID: 0x0a0b0c0e, HopLimit: 3, WantAck: true, Priority: PriorityAlert}},
			"0a 1a 15 ff ff ff ff 22 08 08 0b 12 04 46 49 52 45 35 0e 0c 0b 0a 48 03 50 01 58 6e"},
	} {
		got := AppendToRadio(nil, &tc.m)
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("%s: got % x, want % x", tc.name, got, want)
		}
		// And back, through the decoder the simulated radio uses.
		var m ToRadio
		var p MeshPacket
		if err := UnmarshalToRadio(got, &m, &p); err != nil {
			t.Fatalf("%s: decode: %v", tc.name, err)
		}
		if again := AppendToRadio(nil, &m); !bytes.Equal(again, got) {
			t.Errorf("%s: round trip % x != % x", tc.name, again, got)
		}
	}
}

func TestFromRadioVectors(t *testing.T) {
	var m FromRadio
	if err := UnmarshalFromRadio(unhex(t, "40 01"), &m); err != nil || m.Kind != KindRebooted || !m.Rebooted {
		t.Errorf("rebooted: %+v %v", m, err)
	}
	if err := UnmarshalFromRadio(unhex(t, "08 05 38 f8 ac d1 91 01"), &m); err != nil || m.Kind != KindConfigComplete || m.ConfigCompleteID != 0x12345678 {
		t.Errorf("config_complete: %+v %v", m, err)
	}
	if err := UnmarshalFromRadio(unhex(t, "5a 09 10 0f 18 10 20 8d 98 ac 50"), &m); err != nil || m.Kind != KindQueueStatus ||
		m.QueueStatus != (QueueStatus{Free: 15, MaxLen: 16, MeshPacketID: 0x0a0b0c0d}) {
		t.Errorf("queueStatus: %+v %v", m.QueueStatus, err)
	}
	ack := unhex(t, "08 09 12 1e 0d ef be ad de 15 ef be ad de 22 0b 08 05 12 02 18 00 35 0d 0c 0b 0a 35 44 33 22 11 58 78")
	if err := UnmarshalFromRadio(ack, &m); err != nil || m.Kind != KindPacket {
		t.Fatalf("ack: %+v %v", m, err)
	}
	p := m.Packet
	if p.From != 0xdeadbeef || p.To != 0xdeadbeef || p.ID != 0x11223344 || p.Priority != PriorityAck ||
		!p.HasDecoded || p.Decoded.Portnum != PortRouting || p.Decoded.RequestID != 0x0a0b0c0d {
		t.Errorf("ack packet: %+v", p)
	}
	r, err := UnmarshalRouting(p.Decoded.Payload)
	if err != nil || !r.HasError || r.ErrorReason != ErrNone {
		t.Errorf("routing: %+v %v", r, err)
	}
	// Re-encoding the decoded ACK gives the firmware's bytes back (the
	// FromRadio.id field aside, which the bridge does not model).
	if got := AppendFromRadio(nil, &m); !bytes.Equal(got, ack[2:]) {
		t.Errorf("ack re-encode:\n got % x\nwant % x", got, ack[2:])
	}
}

func TestFromRadioRoundTrip(t *testing.T) {
	for _, m := range []FromRadio{
		{Kind: KindMyInfo, MyInfo: MyNodeInfo{MyNodeNum: 0xdeadbeef, RebootCount: 7, MinAppVer: 30200}},
		{Kind: KindLogRecord, LogRecord: LogRecord{Message: []byte("bad \xff utf8")}},
		{Kind: KindClientNotification, Notification: ClientNotification{ReplyID: 9, Level: 40, Message: []byte("wait 3 min")}},
		{Kind: KindLoRaConfig, LoRa: LoRaConfig{UsePreset: true, ModemPreset: 4, Region: 3, HopLimit: 3, TxEnabled: true}},
		{Kind: KindPacket, Packet: MeshPacket{From: 1, To: Broadcast, ID: 42, RxTime: 1700000000, RxSNR: -7.25, RxRSSI: -110, HopLimit: 2, HopStart: 3,
			HasDecoded: true, Decoded: Data{Portnum: PortText, Payload: []byte("\xc3\x28 invalid utf-8 kept as bytes")}, Transport: 1}},
	} {
		b := AppendFromRadio(nil, &m)
		var got FromRadio
		if err := UnmarshalFromRadio(b, &got); err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		if again := AppendFromRadio(nil, &got); !bytes.Equal(again, b) {
			t.Errorf("kind %v: % x != % x", m.Kind, again, b)
		}
	}
}

func TestUnknownAndWrongType(t *testing.T) {
	// Unknown field 99 (varint), a fixed64 field, then config_complete_id.
	b := unhex(t, "98 06 01 21 01 02 03 04 05 06 07 08 38 05")
	var m FromRadio
	if err := UnmarshalFromRadio(b, &m); err != nil || m.ConfigCompleteID != 5 {
		t.Fatalf("%+v %v", m, err)
	}
	// MeshPacket.id declared fixed32 but sent as varint: ignored, not misread.
	var p MeshPacket
	if err := UnmarshalMeshPacket(unhex(t, "30 05"), &p); err != nil || p.ID != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"0a", "0a 05 01", "38", "3d 01 02", "ff ff ff ff ff ff ff ff ff ff ff"} {
		if err := UnmarshalFromRadio(unhex(t, bad), &m); err == nil {
			t.Errorf("%s: decoded without error", bad)
		}
	}
}

func TestDecodeAllocations(t *testing.T) {
	ack := unhex(t, "08 09 12 1e 0d ef be ad de 15 ef be ad de 22 0b 08 05 12 02 18 00 35 0d 0c 0b 0a 35 44 33 22 11 58 78")
	var m FromRadio
	n := testing.AllocsPerRun(100, func() { _ = UnmarshalFromRadio(ack, &m) })
	if n > 8 {
		t.Errorf("%v allocations per decode", n)
	}
}
