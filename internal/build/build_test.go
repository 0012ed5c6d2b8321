package build

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/feeds/ipk"
	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
)

func TestSelectTargets(t *testing.T) {
	all, err := SelectTargets("all")
	if err != nil || len(all) != 5 {
		t.Fatalf("all: %v %v", all, err)
	}
	for _, tg := range all {
		env := strings.Join(tg.GoEnv, " ")
		if strings.HasPrefix(tg.Arch, "mips") && !strings.Contains(env, "GOMIPS=softfloat") {
			t.Errorf("%s without softfloat: %s", tg.Arch, env)
		}
	}
	two, err := SelectTargets("x86_64, mips_24kc,x86_64")
	if err != nil || len(two) != 2 || two[0].Arch != "x86_64" {
		t.Errorf("subset: %v %v", two, err)
	}
	if _, err := SelectTargets("mips_74kc"); err == nil || !strings.Contains(err.Error(), "mips_74kc") {
		t.Errorf("unknown arch: %v", err)
	}
}

func TestDevKeysCreatedOnceAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var log bytes.Buffer
	k1, err := LoadKeys(KeySource{}, dir, &log)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Development || !strings.Contains(log.String(), "DEVELOPMENT") || !strings.Contains(log.String(), "created") {
		t.Errorf("no plain dev-key notice: %q", log.String())
	}
	for _, f := range []string{DevUsignSecret, DevPGPSecret} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o, want 600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %o", st.Mode().Perm())
	}
	log.Reset()
	k2, err := LoadKeys(KeySource{}, dir, &log)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Usign.Fingerprint() != k2.Usign.Fingerprint() || k1.PGP.Fingerprint() != k2.PGP.Fingerprint() {
		t.Error("second build made new dev keys")
	}
	if !strings.Contains(log.String(), "using DEVELOPMENT") {
		t.Errorf("reuse notice: %q", log.String())
	}
	// Half a pair is an error, not a silent new key.
	os.Remove(filepath.Join(dir, DevPGPSecret))
	if _, err := LoadKeys(KeySource{}, dir, &log); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Errorf("half pair: %v", err)
	}
}

func TestReleaseKeys(t *testing.T) {
	dir := t.TempDir()
	sk, _ := usign.Generate(rand.Reader, "release")
	sec, _, err := pgp.GenerateKey("release", "", "", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	us, pg := filepath.Join(dir, "usign.sec"), filepath.Join(dir, "pgp.sec.asc")
	os.WriteFile(us, sk.Marshal(), 0o600)
	os.WriteFile(pg, sec, 0o644) // loose mode: warned about
	var log bytes.Buffer
	k, err := LoadKeys(KeySource{UsignFile: us, PGPFile: pg}, filepath.Join(dir, "dev"), &log)
	if err != nil {
		t.Fatal(err)
	}
	if k.Development || k.Usign.Fingerprint() != sk.Fingerprint() {
		t.Error("release key not used")
	}
	if !strings.Contains(log.String(), pg) || !strings.Contains(log.String(), "chmod 600") {
		t.Errorf("no warning about a world-readable key: %q", log.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "dev")); err == nil {
		t.Error("dev keys made although release keys were given")
	}
	// Key content from the environment, as CI secret stores give it.
	env := map[string]string{"MESHNODE_USIGN_SECRET": string(sk.Marshal()), "MESHNODE_PGP_SECRET": string(sec)}
	if _, err := LoadKeys(KeySourceFromEnv(func(n string) string { return env[n] }), dir, &log); err != nil {
		t.Errorf("keys from environment: %v", err)
	}

	cases := []struct {
		name string
		src  KeySource
		want []string
	}{
		{"usign only", KeySource{UsignFile: us}, []string{"MESHNODE_PGP_KEY", "needs both"}},
		{"both ways", KeySource{UsignFile: us, UsignData: "x", PGPFile: pg}, []string{"both MESHNODE_USIGN_KEY and MESHNODE_USIGN_SECRET"}},
		{"missing file", KeySource{UsignFile: filepath.Join(dir, "nope"), PGPFile: pg}, []string{"nope"}},
		{"passphrase usign", KeySource{UsignFile: writePassphraseKey(t, dir, sk), PGPFile: pg}, []string{"pass.sec", "passphrase"}},
		{"public key as secret", KeySource{UsignFile: writeFile(t, dir, "pub", sk.Public().Marshal()), PGPFile: pg}, []string{"pub: usign secret key"}},
		{"garbage pgp", KeySource{UsignFile: us, PGPFile: writeFile(t, dir, "junk.asc", []byte("hello"))}, []string{"junk.asc: OpenPGP secret key"}},
	}
	for _, c := range cases {
		_, err := LoadKeys(c.src, filepath.Join(dir, "dev"), &log)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePassphraseKey stores sk with non-zero kdfrounds, as `usign -G`
// with a passphrase (or signify) would.
func writePassphraseKey(t *testing.T, dir string, sk *usign.SecretKey) string {
	lines := strings.Split(string(sk.Marshal()), "\n")
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	raw[7] = 42 // kdfrounds, big-endian u32 at offset 4
	lines[1] = base64.StdEncoding.EncodeToString(raw)
	return writeFile(t, dir, "pass.sec", []byte(strings.Join(lines, "\n")))
}

func TestPackCache(t *testing.T) {
	c, err := newPackCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &ipk.Package{Control: ipk.Control{Package: "x", Version: "1", Release: "1", Architecture: "all"},
		Files: []ipk.File{{Path: "/etc/x", Mode: 0o644, Data: []byte("one")}}}
	opt := ipk.Options{ModTime: time.Unix(1700000000, 0)}
	k := c.key(p, opt)
	if c.get(k) != nil {
		t.Fatal("hit in an empty cache")
	}
	c.put(k, []byte("ipk bytes"))
	if got := c.get(k); string(got) != "ipk bytes" {
		t.Fatalf("get = %q", got)
	}
	// Every input changes the key.
	variants := []func(p *ipk.Package, o *ipk.Options){
		func(p *ipk.Package, o *ipk.Options) { p.Files[0].Data = []byte("two") },
		func(p *ipk.Package, o *ipk.Options) { p.Files[0].Mode = 0o600 },
		func(p *ipk.Package, o *ipk.Options) { p.Files[0].Path = "/etc/y" },
		func(p *ipk.Package, o *ipk.Options) { p.Control.Release = "2" },
		func(p *ipk.Package, o *ipk.Options) { p.Control.Depends = []string{"libc"} },
		func(p *ipk.Package, o *ipk.Options) { p.Postinst = []byte("true\n") },
		func(p *ipk.Package, o *ipk.Options) { p.Conffiles = []string{"/etc/x"} },
		func(p *ipk.Package, o *ipk.Options) { o.Format = ipk.OpenWrt2305 },
		func(p *ipk.Package, o *ipk.Options) { o.ModTime = o.ModTime.Add(time.Second) },
	}
	for i, v := range variants {
		q := *p
		q.Files = append([]ipk.File{}, p.Files...)
		o := opt
		v(&q, &o)
		if c.key(&q, o) == k {
			t.Errorf("variant %d does not change the key", i)
		}
	}
	hits, misses := c.stats()
	if hits != 1 || misses != 1 {
		t.Errorf("stats %d/%d", hits, misses)
	}
	// prune keeps what this build used and drops old unused entries.
	old := filepath.Join(c.dir, strings.Repeat("0", 64)+".ipk")
	os.WriteFile(old, []byte("stale"), 0o644)
	past := time.Now().Add(-2 * cacheMaxAge)
	os.Chtimes(old, past, past)
	c.prune()
	if _, err := os.Stat(old); err == nil {
		t.Error("stale entry kept")
	}
	if c.get(k) == nil {
		t.Error("used entry pruned")
	}
}

func TestReplaceDir(t *testing.T) {
	tmp := t.TempDir()
	src, dst := filepath.Join(tmp, "new"), filepath.Join(tmp, "out", "feed")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a"), []byte("new"), 0o644)
	os.MkdirAll(dst, 0o755)
	os.WriteFile(filepath.Join(dst, "stale"), []byte("old"), 0o644)
	if err := replaceDir(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "stale")); err == nil {
		t.Error("old content survived")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a")); string(b) != "new" {
		t.Error("new content missing")
	}
	if _, err := os.Stat(dst + ".old"); err == nil {
		t.Error(".old left behind")
	}
}
