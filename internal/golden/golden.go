// Package golden compares test output with files kept under testdata/,
// and rewrites those files when the tests run with -update, so every
// package's golden tests work the same way.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// The flag is registered once here; packages that import golden must not
// define their own -update.
var update = flag.Bool("update", false, "rewrite golden files under testdata/ from the current output")

// Update reports whether the tests run with -update.
func Update() bool { return *update }

// Check compares got with the file at path. With -update it writes got
// there instead (creating directories), so a reviewer sees the change in
// the diff.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (%d vs %d bytes); rerun with -update if intended, and review the diff:\n%s",
			path, len(got), len(want), excerpt(got))
	}
}

// excerpt keeps failure messages readable for binary or long output.
func excerpt(b []byte) string {
	const max = 2048
	for _, c := range b {
		if c == 0 {
			return "(binary)"
		}
	}
	if len(b) > max {
		return string(b[:max]) + "\n..."
	}
	return string(b)
}
