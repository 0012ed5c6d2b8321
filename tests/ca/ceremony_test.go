// Package ca_test runs the key ceremony end to end in a temporary
// directory: create the CA, enroll three nodes, sign, carry a bundle,
// import, check the certificates with stock nebula-cert, and (as root)
// run the real agent on each node in network namespaces with exactly the
// files the import installed: every pair pings over the overlay, and a
// revoked node is refused once the hub reloads with the blocklist.
package ca_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/ca"
	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/feeds/bundle"
	"github.com/meshnode/meshnode/feeds/bundle/export"
	"github.com/meshnode/meshnode/feeds/usign"
)

func TestCeremony(t *testing.T) {
	tmp := t.TempDir()
	caDir := filepath.Join(tmp, "ca")
	drive := filepath.Join(tmp, "usb", "meshnode")

	// 1. CA on the air-gapped laptop.
	fps, err := ca.Init(caDir, ca.InitOptions{Name: "kitchen", Plan: ca.DefaultPlan(),
		// The hub's public address in the namespaces below (mesh.go).
		Lighthouses: []ca.Lighthouse{{Address: ca.DefaultPlan().Pools["hub"].Addr(), Endpoints: []string{hubEndpoint}}}})
	if err != nil {
		t.Fatal(err)
	}
	usignPub, _ := os.ReadFile(filepath.Join(caDir, ca.UsignPub))
	pub, _ := usign.ParsePublicKey(usignPub)

	// 2. Three nodes make keys and requests onto the drive.
	type node struct {
		n          *enroll.Node
		name, role string
	}
	nodes := []node{{name: "hub", role: "hub"}, {name: "home-1", role: "uplink"}, {name: "phone-shop", role: "client"}}
	reqDir := filepath.Join(drive, bundle.RequestsDir)
	for i := range nodes {
		nd := &nodes[i]
		root := filepath.Join(tmp, nd.name)
		nd.n = &enroll.Node{Dir: filepath.Join(root, "etc", "meshnode"), Config: filepath.Join(root, "etc", "config", "meshnode")}
		os.MkdirAll(filepath.Dir(nd.n.Config), 0o755)
		// The package's default configuration, with this node's paths.
		os.WriteFile(nd.n.Config, []byte(defaultConfig(nd.n.Dir)), 0o644)
		// The node already trusts the feed key (meshnode-keyring).
		keys := filepath.Join(root, "etc", "opkg", "keys")
		os.MkdirAll(keys, 0o755)
		os.WriteFile(filepath.Join(keys, pub.Fingerprint()), usignPub, 0o644)
		var out, errb bytes.Buffer
		if rc := enroll.Main(context.Background(), nd.n, []string{"--name", nd.name, "--role", nd.role, "--out", mkdir(t, reqDir)}, &out, &errb); rc != 0 {
			t.Fatalf("enroll %s: %d %s", nd.name, rc, errb.String())
		}
		if !strings.Contains(out.String(), "key fingerprint") {
			t.Fatal(out.String())
		}
	}

	// 3. The CA signs every request from the drive.
	c, err := ca.Open(caDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		data, err := os.ReadFile(filepath.Join(reqDir, nd.name+".req"))
		if err != nil {
			t.Fatal(err)
		}
		req, err := ca.ParseRequest(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Sign(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := export.Export(export.ExportOptions{To: drive, CADir: caDir}); err != nil {
		t.Fatal(err)
	}

	// 4. Each node imports the bundle and finds its certificate.
	want := map[string]string{"hub": "10.0.4.1/24", "home-1": "10.0.4.64/24", "phone-shop": "10.0.4.128/24"}
	for _, nd := range nodes {
		root := filepath.Join(tmp, nd.name)
		im := &bundle.Importer{Node: nd.n, KeyDir: filepath.Join(root, "etc", "opkg", "keys"), State: filepath.Join(nd.n.Dir, "bundle.state")}
		res, err := im.Import(context.Background(), drive)
		if err != nil {
			t.Fatalf("%s: %v", nd.name, err)
		}
		if res.Certificate == nil || res.Certificate.Address.String() != want[nd.name] || res.Certificate.CA != fps.NebulaCA {
			t.Fatalf("%s: %+v", nd.name, res.Certificate)
		}
		conf, _ := os.ReadFile(nd.n.Config)
		if !strings.Contains(string(conf), "option address '"+want[nd.name]+"'") || !strings.Contains(string(conf), "option role '"+nd.role+"'") {
			t.Fatalf("%s config:\n%s", nd.name, conf)
		}
		// The hub lists no lighthouse for itself; the others dial it.
		if hasLH := strings.Contains(string(conf), hubEndpoint); hasLH == (nd.role == "hub") {
			t.Fatalf("%s config lighthouses:\n%s", nd.name, conf)
		}
		if st, err := os.ReadFile(filepath.Join(drive, bundle.StatusDir, nd.name+".txt")); err != nil || !strings.Contains(string(st), "result ok") {
			t.Fatalf("%s status: %s %v", nd.name, st, err)
		}
	}

	// 5. Stock nebula-cert, built from the pinned module, agrees.
	nc := buildNebulaCert(t, tmp)
	for _, nd := range nodes {
		out, err := exec.Command(nc, "verify", "-ca", filepath.Join(nd.n.Dir, enroll.CAFile), "-crt", filepath.Join(nd.n.Dir, enroll.CertFile)).CombinedOutput()
		if err != nil {
			t.Fatalf("nebula-cert verify %s: %v\n%s", nd.name, err, out)
		}
		out, err = exec.Command(nc, "print", "-path", filepath.Join(nd.n.Dir, enroll.CertFile)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want[nd.name]) || !strings.Contains(string(out), `"version": 2`) {
			t.Fatalf("nebula-cert print %s: %v\n%s", nd.name, err, out)
		}
	}

	// 5b. The three nodes form a mesh with those files (root only).
	var m *mesh
	t.Run("mesh", func(st *testing.T) {
		m = startMesh(t, st, tmp, []meshNode{{nodes[0].n, nodes[0].name, "hub"}, {nodes[1].n, nodes[1].name, "uplink1"}, {nodes[2].n, nodes[2].name, "client"}})
		m.pingAll(st)
	})

	// 6. Revocation travels as a blocklist; nebula-cert refuses nothing
	// by itself, but the node's import does.
	if err := c.Revoke("phone-shop", "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, err := export.Export(export.ExportOptions{To: drive, CADir: caDir}); err != nil {
		t.Fatal(err)
	}
	shop := nodes[2]
	im := &bundle.Importer{Node: shop.n, KeyDir: filepath.Join(tmp, shop.name, "etc", "opkg", "keys"), State: filepath.Join(shop.n.Dir, "bundle.state")}
	res, err := im.Import(context.Background(), drive)
	if err != nil || res.Blocklist != 1 {
		t.Fatalf("blocklist: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(drive, bundle.CertsDir, "phone-shop")); !os.IsNotExist(err) {
		t.Fatal("revoked node's certificate still on the drive")
	}
	var errb bytes.Buffer
	rc := enroll.Main(context.Background(), shop.n, []string{"--import", filepath.Join(caDir, ca.IssuedDir, "hub")}, &bytes.Buffer{}, &errb)
	if rc == 0 || !strings.Contains(errb.String(), "another node") {
		t.Fatalf("importing another node's certificate: %d %s", rc, errb.String())
	}

	// 7. The hub takes the same bundle: its agent reloads with the
	// blocklist and refuses the revoked node's tunnel.
	if m != nil {
		t.Run("revoked node refused", func(t *testing.T) {
			hub := nodes[0]
			im := &bundle.Importer{Node: hub.n, KeyDir: filepath.Join(tmp, hub.name, "etc", "opkg", "keys"), State: filepath.Join(hub.n.Dir, "bundle.state")}
			m.revoke(t, "phone-shop", func() error {
				res, err := im.Import(context.Background(), drive)
				if err == nil && res.Blocklist != 1 {
					return fmt.Errorf("hub imported %d blocklist entries", res.Blocklist)
				}
				return err
			})
		})
	}
}

func mkdir(t *testing.T, d string) string {
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// buildNebulaCert builds stock nebula-cert from the pinned module. It needs
// go-qrcode, which the module's go.sum does not list (nothing of ours
// imports it), so the build uses a copy of go.mod/go.sum and the repository's
// files stay untouched.
func buildNebulaCert(t *testing.T, tmp string) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	mod := filepath.Join(tmp, "mod")
	mkdir(t, mod)
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(mod, f), data, 0o644)
	}
	nc := filepath.Join(tmp, "nebula-cert")
	cmd := exec.Command("go", "build", "-mod=mod", "-modfile="+filepath.Join(mod, "go.mod"), "-o", nc, "github.com/slackhq/nebula/cmd/nebula-cert")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("dial tcp")) || bytes.Contains(out, []byte("no such host")) {
			t.Skipf("cannot fetch nebula-cert's go-qrcode dependency offline: %s", out)
		}
		t.Fatalf("build nebula-cert: %v\n%s", err, out)
	}
	return nc
}
