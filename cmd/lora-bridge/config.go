package main

import (
	"crypto/ed25519"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/internal/uci"
	"github.com/meshnode/meshnode/lora-bridge/airtime"
	"github.com/meshnode/meshnode/lora-bridge/alert"
	"github.com/meshnode/meshnode/lora-bridge/bridge"
)

// settings is /etc/config/lora-bridge, validated.
type settings struct {
	Port        string
	Journal     string
	Heartbeat   time.Duration
	Silence     time.Duration
	Bridge      bridge.Config
	Region      string
	RegionCode  int32
	PresetName  string
	DutyPercent float64
}

// loadConfig reads and validates the UCI file; errors name the file,
// section and option.
func loadConfig(path string) (*settings, error) {
	f, err := uci.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secs := f.SectionsOfType("bridge")
	if len(secs) != 1 {
		return nil, &uci.Error{File: path, Msg: "want exactly one 'config bridge' section"}
	}
	s := secs[0]
	bad := func(opt, format string, a ...any) error {
		return &uci.Error{File: path, Line: s.Line, Section: s.Ref(), Option: opt, Msg: fmt.Sprintf(format, a...)}
	}
	get := func(opt, def string) string {
		if v, ok := s.Get(opt); ok {
			return v
		}
		return def
	}
	num := func(opt string, def, lo, hi int) (int, error) {
		v := get(opt, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, bad(opt, "%q: want a number from %d to %d", v, lo, hi)
		}
		return n, nil
	}
	st := &settings{Port: get("port", "/dev/ttyUSB0"), Journal: get("journal", "/etc/lora-bridge/journal")}
	b := &st.Bridge
	b.Socket = get("socket", "/var/run/lora-bridge.sock")
	st.Region = get("region", "EU_868")
	r, known := airtime.Regions[st.Region]
	st.DutyPercent = r.Duty
	st.RegionCode = r.Code
	if d, ok := s.Get("duty_cycle"); ok {
		v, err := strconv.ParseFloat(d, 64)
		if err != nil || v <= 0 || v > 100 {
			return nil, bad("duty_cycle", "%q: want a percentage above 0, at most 100", d)
		}
		st.DutyPercent = v
	} else if !known {
		return nil, bad("region", "%q: unknown duty cycle; set option duty_cycle (percent) for this region", st.Region)
	}
	st.PresetName = get("preset", "LONG_FAST")
	p, ok := airtime.PresetNames[st.PresetName]
	if !ok {
		return nil, bad("preset", "%q: not a Meshtastic modem preset (LONG_FAST, MEDIUM_FAST, SHORT_FAST, ...)", st.PresetName)
	}
	b.Modem, _ = airtime.Preset(p)
	share, err := num("airtime_share", 50, 1, 100)
	if err != nil {
		return nil, err
	}
	b.Budget = airtime.NewBudget(st.DutyPercent, float64(share))
	ch, err := num("channel", 0, 0, 7)
	if err != nil {
		return nil, err
	}
	b.Channel = uint32(ch)
	hl, err := num("hop_limit", 3, 1, 7)
	if err != nil {
		return nil, err
	}
	b.HopLimit = uint32(hl)
	// Intervals in milliseconds; the defaults are the firmware's own
	// limits, lower values only make sense against a simulated radio.
	ti, err := num("text_interval", 2000, 0, 600000)
	if err != nil {
		return nil, err
	}
	ai, err := num("alert_interval", 10000, 0, 600000)
	if err != nil {
		return nil, err
	}
	hb, err := num("heartbeat", 60, 1, 300)
	if err != nil {
		return nil, err
	}
	grace, err := num("grace", 1000, 0, 60000)
	if err != nil {
		return nil, err
	}
	b.TextInterval, b.AlertInterval = time.Duration(ti)*time.Millisecond, time.Duration(ai)*time.Millisecond
	b.Grace = time.Duration(grace) * time.Millisecond
	if b.Grace == 0 {
		b.Grace = time.Millisecond
	}
	st.Heartbeat = time.Duration(hb) * time.Second
	b.ForwardUnverified = get("forward_unverified", "0") == "1"
	for _, k := range s.List("alert_key") {
		pk, err := alert.ParseKey(k)
		if err != nil {
			return nil, bad("alert_key", "%v", err)
		}
		b.AlertKeys = append(b.AlertKeys, ed25519.PublicKey(pk))
	}
	lis := get("listen", "0.0.0.0:4404")
	if b.Listen, err = netip.ParseAddrPort(lis); err != nil {
		return nil, bad("listen", "%q: want address:port", lis)
	}
	if id, ok := s.Get("node_id"); ok {
		v, err := strconv.ParseUint(id, 16, 32)
		if err != nil || v == 0 {
			return nil, bad("node_id", "%q: want 8 hex digits", id)
		}
		b.NodeID = uint32(v)
	} else {
		// Stable per router: the origin of locally posted messages.
		h, _ := os.Hostname()
		b.NodeID = crc32.ChecksumIEEE([]byte("lora-bridge:"+h)) | 1
	}
	for _, ps := range f.SectionsOfType("peer") {
		name, _ := ps.Get("name")
		if name == "" {
			name = ps.Ref()
		}
		a, _ := ps.Get("address")
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, &uci.Error{File: path, Line: ps.Line, Section: ps.Ref(), Option: "address", Msg: fmt.Sprintf("%q: want address:port", a)}
		}
		b.Peers = append(b.Peers, bridge.Peer{Name: name, Addr: ap})
	}
	return st, nil
}
