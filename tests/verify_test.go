package tests

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
)

// meshkitBinary builds the real CLI once per test run.
func meshkitBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshkit")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshkit")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build meshkit: %v\n%s", err, out)
	}
	return bin
}

// TestVerifyCatchesTampering runs `meshkit feed verify` on a real feed
// after each kind of tampering; the output must name exactly the file.
func TestVerifyCatchesTampering(t *testing.T) {
	out, keys, _ := sharedBuild(t)
	bin := meshkitBinary(t)
	arch := "mips_24kc"
	ipkName := "meshnode_0.1.0-r1_" + arch + ".ipk"

	// Trusted keys as an operator keeps them: public halves only.
	trusted := t.TempDir()
	for _, f := range []string{"dev-usign.pub", "dev-pgp.pub.asc"} {
		data, err := os.ReadFile(filepath.Join(keys, f))
		if err != nil {
			t.Fatal(err)
		}
		name := f
		if f == "dev-usign.pub" {
			pub, err := usign.ParsePublicKey(data)
			if err != nil {
				t.Fatal(err)
			}
			name = pub.Fingerprint()
		}
		os.WriteFile(filepath.Join(trusted, name), data, 0o644)
	}
	// Strangers' keys, for the swapped-key cases.
	strangerUsign, _ := usign.Generate(rand.Reader, "stranger")
	_, strangerPGP, err := pgp.GenerateKey("stranger", "", "", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}

	flip := func(name string, at func(n int) int) func(t *testing.T, dir, keyDir string) {
		return func(t *testing.T, dir, keyDir string) {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[at(len(data))] ^= 0x01
			os.WriteFile(p, data, 0o644)
		}
	}
	middle := func(n int) int { return n / 2 }
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir, keyDir string)
		file   string // the file the report must name
	}{
		{"byte in ipk", flip(ipkName, middle), ipkName},
		{"byte in Packages", func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "Packages")
			data, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(data, []byte("Section: net"), []byte("Section: nat"), 1), 0o644)
		}, "Packages"},
		// A valid base64 character swapped inside the signature: the file
		// still parses, only the signature check can catch it.
		{"byte in Packages.sig", func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "Packages.sig")
			data, _ := os.ReadFile(p)
			i := bytes.IndexByte(data, '\n') + 20
			if data[i] == 'A' {
				data[i] = 'B'
			} else {
				data[i] = 'A'
			}
			os.WriteFile(p, data, 0o644)
		}, "Packages"},
		{"byte in SHA256SUMS", func(t *testing.T, dir, _ string) {
			p := filepath.Join(dir, "SHA256SUMS")
			data, _ := os.ReadFile(p)
			if data[0] == 'a' {
				data[0] = 'b'
			} else {
				data[0] = 'a'
			}
			os.WriteFile(p, data, 0o644)
		}, "SHA256SUMS"},
		{"usign key swapped", func(t *testing.T, _, keyDir string) {
			os.RemoveAll(keyDir)
			os.MkdirAll(keyDir, 0o755)
			pub := strangerUsign.Public()
			os.WriteFile(filepath.Join(keyDir, pub.Fingerprint()), pub.Marshal(), 0o644)
			data, _ := os.ReadFile(filepath.Join(trusted, "dev-pgp.pub.asc"))
			os.WriteFile(filepath.Join(keyDir, "feed.asc"), data, 0o644)
		}, "Packages.sig"},
		{"PGP key swapped", func(t *testing.T, _, keyDir string) {
			os.Remove(filepath.Join(keyDir, "dev-pgp.pub.asc"))
			os.WriteFile(filepath.Join(keyDir, "stranger.asc"), strangerPGP, 0o644)
		}, "SHA256SUMS.asc"},
		{"ipk removed", func(t *testing.T, dir, _ string) { os.Remove(filepath.Join(dir, ipkName)) }, ipkName},
		{"unlisted file added", func(t *testing.T, dir, _ string) {
			os.WriteFile(filepath.Join(dir, "evil_1.0_all.ipk"), []byte("x"), 0o644)
		}, "evil_1.0_all.ipk"},
	}

	// Untampered first: exit 0.
	if outp, code := meshkit(t, bin, "feed", "verify", "--keys", trusted, filepath.Join(out, "feed", arch)); code != 0 || !strings.Contains(outp, "OK") {
		t.Fatalf("clean feed: exit %d\n%s", code, outp)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), arch)
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(out, "feed", arch))); err != nil {
				t.Fatal(err)
			}
			keyDir := filepath.Join(t.TempDir(), "keys")
			os.CopyFS(keyDir, os.DirFS(trusted))
			c.tamper(t, dir, keyDir)
			outp, code := meshkit(t, bin, "feed", "verify", "--keys", keyDir, dir)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, outp)
			}
			if !strings.Contains(outp, filepath.Join(dir, c.file)+": ") {
				t.Errorf("report does not name %s:\n%s", c.file, outp)
			}
		})
	}
}

func meshkit(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}
