package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/feeds/pgp"
	"github.com/meshnode/meshnode/feeds/usign"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env2(env, &out, &errb)
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

func env2(vars map[string]string, out, errb *bytes.Buffer) env {
	return env{stdout: out, stderr: errb, getenv: func(n string) string { return vars[n] },
		now: func() time.Time { return time.Unix(1700000000, 0) }}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: meshkit"},
		{[]string{"frob"}, 2, `unknown command "frob"`},
		{[]string{"feed"}, 2, "usage: meshkit"},
		{[]string{"feed", "sign"}, 2, "unknown command 'feed sign'"},
		{[]string{"feed", "verify"}, 2, "at least one feed directory"},
		{[]string{"feed", "verify", "out/feed/x86_64"}, 2, "needs --keys DIR"},
		{[]string{"build", "extra"}, 2, "build takes no arguments"},
		{[]string{"build", "--arch", "sparc"}, 1, `unknown architecture "sparc"`},
		{[]string{"build", "--openwrt", "22.03"}, 1, "want 24.10 or 23.05"},
		{[]string{"build", "--feed-name", "my feed"}, 1, "--feed-name"},
		{[]string{"build", "--feed-url", "10.0.4.1/feed"}, 1, "--feed-url"},
		{[]string{"feed", "keygen"}, 2, "exactly one directory"},
	}
	for _, c := range cases {
		code, _, errs := runCmd(t, nil, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errs, c.code, c.want)
		}
	}
}

func TestBadSourceDateEpoch(t *testing.T) {
	code, _, errs := runCmd(t, map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, "build", "--out", t.TempDir())
	if code != 1 || !strings.Contains(errs, `SOURCE_DATE_EPOCH="yesterday"`) {
		t.Errorf("exit %d: %s", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, nil, "--version")
	if code != 0 || !strings.HasPrefix(out, "meshkit ") {
		t.Errorf("exit %d: %q", code, out)
	}
}

func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	code, out, errs := runCmd(t, nil, "feed", "keygen", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	sec, err := os.ReadFile(filepath.Join(dir, "usign.sec"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := usign.ParseSecretKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, sk.Fingerprint()) {
		t.Errorf("output lacks the usign fingerprint %s: %s", sk.Fingerprint(), out)
	}
	asc, _ := os.ReadFile(filepath.Join(dir, "pgp.sec.asc"))
	signer, err := pgp.LoadSigner(asc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, signer.Fingerprint()) {
		t.Errorf("output lacks the OpenPGP fingerprint: %s", out)
	}
	for _, f := range []string{"usign.sec", "pgp.sec.asc"} {
		if st, _ := os.Stat(filepath.Join(dir, f)); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", f, st.Mode().Perm())
		}
	}
	// Never overwrite a key.
	code, _, errs = runCmd(t, nil, "feed", "keygen", dir)
	if code != 1 || !strings.Contains(errs, "refusing to overwrite") {
		t.Errorf("second keygen: exit %d: %s", code, errs)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "usign.sec")); !bytes.Equal(again, sec) {
		t.Error("key changed")
	}
}

func TestVerifyTrustDirErrors(t *testing.T) {
	empty := t.TempDir()
	code, _, errs := runCmd(t, nil, "feed", "verify", "--keys", empty, t.TempDir())
	if code != 1 || !strings.Contains(errs, "no usign public keys") {
		t.Errorf("empty trust dir: exit %d: %s", code, errs)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "junk"), []byte("not a key\n"), 0o644)
	code, _, errs = runCmd(t, nil, "feed", "verify", "--keys", bad, t.TempDir())
	if code != 1 || !strings.Contains(errs, filepath.Join(bad, "junk")) {
		t.Errorf("junk in trust dir: exit %d: %s", code, errs)
	}
}

func TestFeedDirsExpandsAFeedRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"mips_24kc", "x86_64", "keys"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "mips_24kc", "Packages"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "x86_64", "Packages"), nil, 0o644)
	got := feedDirs([]string{root, filepath.Join(root, "x86_64"), filepath.Join(root, "keys")})
	want := []string{filepath.Join(root, "mips_24kc"), filepath.Join(root, "x86_64"), filepath.Join(root, "x86_64"), filepath.Join(root, "keys")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
