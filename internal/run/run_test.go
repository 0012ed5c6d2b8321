package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOutput(t *testing.T) {
	ctx := context.Background()
	out, err := Output(ctx, "sh", "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\n" {
		t.Fatalf("Output = %q, %v; want \"out\\n\"", out, err)
	}
	out, err = CombinedOutput(ctx, "sh", "-c", "echo out; echo err >&2")
	if err != nil || string(out) != "out\nerr\n" {
		t.Fatalf("CombinedOutput = %q, %v", out, err)
	}
}

func TestExitStatus(t *testing.T) {
	out, err := CombinedOutput(context.Background(), "sh", "-c", "echo why; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	if string(out) != "why\n" {
		t.Errorf("output of a failed program = %q, want it kept", out)
	}
	if !strings.Contains(err.Error(), "sh: exit status 3") {
		t.Errorf("error %q does not name the program and status", err)
	}
}

func TestNotFound(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Output(context.Background(), "ubus", "call")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "ubus") {
		t.Fatalf("err = %v, want ErrNotFound naming ubus", err)
	}
	if _, err := LookPath("/nonexistent/ubus"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookPath with a slash: %v", err)
	}
	// A file that is not executable is not a program.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "opkg"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if _, err := LookPath("opkg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("non-executable file found: %v", err)
	}
}

func TestContextKills(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Output(ctx, "sleep", "30")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v after the deadline", d)
	}
}

// A daemon forked by the program keeps the pipe open; the call must
// still return soon after the program itself exits.
func TestForkedChildHoldsPipe(t *testing.T) {
	start := time.Now()
	out, err := Output(context.Background(), "sh", "-c", "echo started; sleep 30 2>/dev/null & exit 0")
	if err != nil || string(out) != "started\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
	if d := time.Since(start); d > readGrace+3*time.Second {
		t.Fatalf("took %v", d)
	}
}
