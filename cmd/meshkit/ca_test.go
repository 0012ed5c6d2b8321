package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/ca/enroll"
	"github.com/meshnode/meshnode/internal/golden"
)

func runMeshkit(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		now: func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }}
	rc := run(context.Background(), e, args)
	return rc, out.String(), errb.String()
}

func TestCASignInventory(t *testing.T) {
	tmp := t.TempDir()
	caDir := filepath.Join(tmp, "ca")
	rc, out, errs := runMeshkit(t, "ca", "init", "--lighthouse", "10.0.4.1=hub.example.net:4242", caDir)
	if rc != 0 || !strings.Contains(out, "Nebula CA") || !strings.Contains(out, "alert key") {
		t.Fatalf("init: %d %s %s", rc, out, errs)
	}
	var reqs []string
	for _, n := range [][2]string{{"hub", "hub"}, {"home-1", "uplink"}, {"relay-1", "relay"}, {"shop", "client"}} {
		node := &enroll.Node{Dir: filepath.Join(tmp, n[0])}
		p := filepath.Join(tmp, n[0]+".req")
		if rc := enroll.Main(context.Background(), node, []string{"--name", n[0], "--role", n[1], "--out", p}, &bytes.Buffer{}, &bytes.Buffer{}); rc != 0 {
			t.Fatal(rc)
		}
		reqs = append(reqs, p)
	}
	rc, out, errs = runMeshkit(t, append([]string{"ca", "sign", "--ca", caDir, "--out", filepath.Join(tmp, "usb")}, reqs...)...)
	if rc != 0 || strings.Count(out, "signed ") != 4 {
		t.Fatalf("sign: %d %s %s", rc, out, errs)
	}
	// The same request again: refused, named, exit 1.
	rc, _, errs = runMeshkit(t, "ca", "sign", "--ca", caDir, reqs[0])
	if rc != 1 || !strings.Contains(errs, reqs[0]+": this request") || !strings.Contains(errs, "already signed") {
		t.Fatalf("twice: %d %s", rc, errs)
	}
	if rc, _, errs = runMeshkit(t, "ca", "revoke", "--ca", caDir, "--reason", "stolen", "shop"); rc != 0 {
		t.Fatal(errs)
	}
	if rc, _, errs = runMeshkit(t, "ca", "renew", "--ca", caDir, "--expiring", "9000h"); rc != 0 {
		t.Fatal(errs)
	}
	inv := filepath.Join(tmp, "inv")
	if rc, _, errs = runMeshkit(t, "inventory", "--ca", caDir, "--out", inv); rc != 0 {
		t.Fatal(errs)
	}
	for _, f := range []string{invTargets, invHosts} {
		got, _ := os.ReadFile(filepath.Join(inv, f))
		golden.Check(t, filepath.Join("testdata", "inventory", f), got)
	}
	if rc, out, errs = runMeshkit(t, "bundle", "export", "--ca", caDir, "--to", filepath.Join(tmp, "usb", "bundle")); rc != 0 || !strings.Contains(out, "bundle version 1") {
		t.Fatalf("export: %d %s %s", rc, out, errs)
	}
	// A CA key others can read is refused.
	os.Chmod(filepath.Join(caDir, "ca.key"), 0o644)
	if rc, _, errs = runMeshkit(t, "ca", "renew", "--ca", caDir, "hub"); rc != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("perm: %d %s", rc, errs)
	}
}
