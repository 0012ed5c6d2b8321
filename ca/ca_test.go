package ca

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slackhq/nebula/cert"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newCA makes a CA with a small plan so pools fill quickly.
func newCA(t *testing.T, plan Plan) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	_, err := Init(dir, InitOptions{Name: "test", Plan: plan, Now: testNow,
		Lighthouses: []Lighthouse{{Address: netip.MustParseAddr("10.0.4.1"), Endpoints: []string{"hub.example.net:4242"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return testNow }
	return c, dir
}

func newRequest(t testing.TB, name, role string) *Request {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &Request{Name: name, Role: role, PublicKey: k.PublicKey().Bytes()}
}

func fileBytes(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

func TestInitModesAndRefuseOverwrite(t *testing.T) {
	_, dir := newCA(t, DefaultPlan())
	ents, _ := os.ReadDir(dir)
	if len(ents) < 9 {
		t.Fatalf("%d files", len(ents))
	}
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %o", e.Name(), fi.Mode().Perm())
		}
	}
	if _, err := Init(dir, InitOptions{Plan: DefaultPlan()}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
}

func TestSignAllocatesByRole(t *testing.T) {
	c, dir := newCA(t, DefaultPlan())
	want := map[string]string{"hub": "10.0.4.1/24", "relay": "10.0.4.32/24", "uplink": "10.0.4.64/24", "client": "10.0.4.128/24"}
	for role, addr := range want {
		iss, err := c.Sign(newRequest(t, "n-"+role, role))
		if err != nil {
			t.Fatal(err)
		}
		if iss.Address.String() != addr {
			t.Errorf("%s: got %s want %s", role, iss.Address, addr)
		}
		if _, err := os.Stat(filepath.Join(dir, IssuedDir, "n-"+role, IssuedCert)); err != nil {
			t.Error(err)
		}
		if !bytes.Contains(iss.Lighthouses, []byte("hub.example.net:4242")) {
			t.Errorf("lighthouses: %s", iss.Lighthouses)
		}
	}
	iss, err := c.Sign(newRequest(t, "n2", "uplink"))
	if err != nil || iss.Address.String() != "10.0.4.65/24" {
		t.Fatalf("%v %v", iss, err)
	}
}

// Each bad input: a clear error naming the field, and the ledger unchanged.
func TestSignRefusals(t *testing.T) {
	plan := DefaultPlan()
	c, dir := newCA(t, plan)
	first := newRequest(t, "first", "client")
	if _, err := c.Sign(first); err != nil {
		t.Fatal(err)
	}
	ledger := fileBytes(t, filepath.Join(dir, LedgerFile))
	cases := []struct {
		name string
		req  *Request
		want string
	}{
		{"bad name", newRequest(t, "Bad_Name", "client"), `name "Bad_Name"`},
		{"unknown role", newRequest(t, "x", "gateway"), `role "gateway"`},
		{"signed twice", &Request{Name: "again", Role: "client", PublicKey: first.PublicKey}, "already signed"},
		{"name in use", newRequest(t, "first", "client"), "already enrolled"},
		{"pool full", newRequest(t, "hub2", "hub"), ""},
	}
	// Fill the one-address hub pool first.
	if _, err := c.Sign(newRequest(t, "hub1", "hub")); err != nil {
		t.Fatal(err)
	}
	ledger = fileBytes(t, filepath.Join(dir, LedgerFile))
	for _, tc := range cases {
		_, err := c.Sign(tc.req)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		var pf *PoolFullError
		if tc.want == "" && !errors.As(err, &pf) {
			t.Errorf("%s: %v, want PoolFullError", tc.name, err)
		}
		if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if !bytes.Equal(fileBytes(t, filepath.Join(dir, LedgerFile)), ledger) {
			t.Fatalf("%s: ledger changed", tc.name)
		}
	}
}

func TestOpenRefusesReadableKey(t *testing.T) {
	_, dir := newCA(t, DefaultPlan())
	for _, f := range secrets {
		p := filepath.Join(dir, f)
		os.Chmod(p, 0o640)
		_, err := Open(dir)
		var pe *PermissionError
		if !errors.As(err, &pe) || pe.Path != p || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("%s 0640: %v", f, err)
		}
		os.Chmod(p, 0o600)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
}

func TestTornLedger(t *testing.T) {
	c, dir := newCA(t, DefaultPlan())
	for i := range 3 {
		if _, err := c.Sign(newRequest(t, fmt.Sprintf("n%d", i), "client")); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, LedgerFile)
	data := fileBytes(t, p)
	torn := data[:len(data)-20]
	os.WriteFile(p, torn, 0o600)
	_, err := Open(dir)
	var te *TornError
	if !errors.As(err, &te) || te.Line != 3 || te.Path != p {
		t.Fatalf("torn: %v", err)
	}
	if !bytes.Equal(fileBytes(t, p), torn) {
		t.Fatal("ledger changed")
	}
	// A dropped middle line shows too.
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(p, []byte(lines[0]+lines[2]), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "line 2: seq 3") {
		t.Fatalf("gap: %v", err)
	}
}

func TestRevokeRenewBlocklist(t *testing.T) {
	c, dir := newCA(t, DefaultPlan())
	iss, err := c.Sign(newRequest(t, "a", "uplink"))
	if err != nil {
		t.Fatal(err)
	}
	c.Now = func() time.Time { return testNow.Add(24 * time.Hour) }
	ren, err := c.Renew("a")
	if err != nil || ren.Address != iss.Address || ren.Fingerprint == iss.Fingerprint {
		t.Fatalf("renew: %v %v", ren, err)
	}
	if err := c.Revoke("a", "lost"); err != nil {
		t.Fatal(err)
	}
	fps, err := ParseBlocklist(fileBytes(t, filepath.Join(dir, Blocklist)))
	if err != nil || len(fps) != 2 || fps[0] != iss.Fingerprint || fps[1] != ren.Fingerprint {
		t.Fatalf("blocklist %v %v", fps, err)
	}
	if _, err := os.Stat(filepath.Join(dir, IssuedDir, "a")); !os.IsNotExist(err) {
		t.Fatal("revoked node's certificate still waiting")
	}
	// The name is free again, the address is not.
	again, err := c.Sign(newRequest(t, "a", "uplink"))
	if err != nil || again.Address == iss.Address {
		t.Fatalf("re-enroll: %v %v", again, err)
	}
	if _, err := c.Renew("nobody"); err == nil {
		t.Fatal("renewed an unknown node")
	}
}

// Property: across random sign/renew/revoke sequences and reopenings, no
// address is ever given to two enrollments, and the ledger read back
// agrees with what was handed out.
func TestLedgerNeverReusesAddress(t *testing.T) {
	plan := Plan{Network: netip.MustParsePrefix("10.0.4.0/24"), Pools: map[string]netip.Prefix{
		"hub": netip.MustParsePrefix("10.0.4.1/32"), "relay": netip.MustParsePrefix("10.0.4.32/30"),
		"uplink": netip.MustParsePrefix("10.0.4.64/29"), "client": netip.MustParsePrefix("10.0.4.128/28"),
	}}
	for seed := range uint64(6) {
		r := mrand.New(mrand.NewPCG(seed, 99))
		c, dir := newCA(t, plan)
		given := map[netip.Addr]string{}
		var active []string
		for step := range 120 {
			switch op := r.IntN(10); {
			case op < 5:
				role := Roles[r.IntN(len(Roles))]
				name := fmt.Sprintf("n%d-%d", seed, step)
				iss, err := c.Sign(newRequest(t, name, role))
				var pf *PoolFullError
				if errors.As(err, &pf) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				a := iss.Address.Addr()
				if prev, ok := given[a]; ok {
					t.Fatalf("seed %d: %s given to %s and %s", seed, a, prev, name)
				}
				if plan.RoleOf(a) != role {
					t.Fatalf("%s outside %s pool", a, role)
				}
				given[a] = name
				active = append(active, name)
			case op < 7 && len(active) > 0:
				n := active[r.IntN(len(active))]
				before, _ := c.Ledger().Active(n)
				iss, err := c.Renew(n)
				if err != nil || iss.Address.Addr() != before.Address {
					t.Fatalf("renew %s: %v", n, err)
				}
			case op < 9 && len(active) > 0:
				i := r.IntN(len(active))
				if err := c.Revoke(active[i], ""); err != nil {
					t.Fatal(err)
				}
				active = append(active[:i], active[i+1:]...)
			default:
				var err error
				if c, err = Open(dir); err != nil {
					t.Fatal(err)
				}
				c.Now = func() time.Time { return testNow }
			}
		}
		l, err := OpenLedger(filepath.Join(dir, LedgerFile))
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Nodes()) != len(given) {
			t.Fatalf("ledger has %d enrollments, handed out %d", len(l.Nodes()), len(given))
		}
		for _, n := range l.Nodes() {
			if given[n.Address] != n.Name {
				t.Fatalf("%s: ledger says %s, handed to %s", n.Address, n.Name, given[n.Address])
			}
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	r := newRequest(t, "kitchen-hub", "hub")
	r.Groups = []string{"admins", "kitchen"}
	got, err := ParseRequest(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != r.Name || got.Role != r.Role || strings.Join(got.Groups, ",") != "admins,kitchen" || !bytes.Equal(got.PublicKey, r.PublicKey) {
		t.Fatalf("%+v", got)
	}
	data := r.Marshal()
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{data[:len(data)-5], "incomplete"},
		{bytes.Replace(data, []byte("role hub"), []byte("role boss"), 1), `role "boss"`},
		{bytes.Replace(data, []byte("name kitchen-hub"), []byte("name Kitchen"), 1), `name "Kitchen"`},
		{bytes.Replace(data, []byte("fingerprint "), []byte("fingerprint 0"), 1), "fingerprint"},
	} {
		if _, err := ParseRequest(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want %q, got %v", tc.want, err)
		}
	}
}

func TestPlanValidate(t *testing.T) {
	p := DefaultPlan()
	p.Pools["relay"] = netip.MustParsePrefix("10.0.4.64/27")
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Fatal(err)
	}
}

// TestUplinkCertificateRoutesTheInternet: an uplink's certificate carries
// the unsafe network 0.0.0.0/0 (the agent refuses to run an exit node
// without it); the other roles' do not.
func TestUplinkCertificateRoutesTheInternet(t *testing.T) {
	c, _ := newCA(t, DefaultPlan())
	for _, role := range []string{"hub", "relay", "uplink", "client"} {
		iss, err := c.Sign(newRequest(t, "u-"+role, role))
		if err != nil {
			t.Fatal(err)
		}
		crt, _, err := cert.UnmarshalCertificateFromPEM(iss.Cert)
		if err != nil {
			t.Fatal(err)
		}
		var unsafe []string
		for _, n := range crt.UnsafeNetworks() {
			unsafe = append(unsafe, n.String())
		}
		want := ""
		if role == "uplink" {
			want = "0.0.0.0/0"
		}
		if got := strings.Join(unsafe, ","); got != want {
			t.Errorf("%s: unsafe networks %q, want %q", role, got, want)
		}
	}
}
