package ca

import (
	"bytes"
	"net/netip"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(RequestMagic + "\nname a\nrole hub\ngroups \npublic-key AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nfingerprint 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			return
		}
		// What parses must survive a round trip unchanged.
		r2, err := ParseRequest(r.Marshal())
		if err != nil || r2.Fingerprint() != r.Fingerprint() || r2.Name != r.Name {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2025-03-01T12:00:00Z","op":"revoke","name":"a","address":"10.0.4.65"}`))
	f.Add([]byte(`{"seq":1,"time":"2025-03-01T12:00:00Z","op":"sign","name":"a","address":"10.0.4.65","role":"uplink","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","cert":"66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925","not_after":"2026-03-01T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseEntry(line)
		if err != nil {
			return
		}
		// A parsed line is applied (or refused) without panicking.
		l := &Ledger{byAddr: map[netip.Addr]*Node{}, byKey: map[string]*Node{}, byName: map[string]*Node{}}
		_ = l.apply(e)
		if _, err := ParseLedger(append(line, '\n')); err != nil && e.Seq == 1 && !bytes.Contains(line, []byte("\n")) {
			t.Fatalf("line parses alone but not as a ledger: %v", err)
		}
	})
}

func FuzzParseBlocklist(f *testing.F) {
	f.Add([]byte("# x\n66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925 # a 10.0.4.65\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fps, err := ParseBlocklist(data)
		if err != nil {
			return
		}
		for _, fp := range fps {
			if !isHex64(fp) {
				t.Fatalf("accepted %q", fp)
			}
		}
	})
}
