// Package run starts OpenWrt's helper programs (ubus, opkg, init scripts)
// and collects what they print. It is os/exec cut down to what the agent
// needs: os/exec costs about 26 KB of xz-compressed flash on MIPS, this
// about 5 KB.
package run

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// DefaultPath is searched when PATH is unset, as procd starts services.
const DefaultPath = "/usr/sbin:/usr/bin:/sbin:/bin"

// ErrNotFound is returned by LookPath for a program not on the path.
var ErrNotFound = errors.New("executable file not found")

// readGrace bounds how long output is still read once the program has
// exited: a daemon it forked may hold the pipe open for good.
const readGrace = time.Second

// LookPath finds an executable named name in PATH. A name with a slash
// is only checked.
func LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if isExec(name) {
			return name, nil
		}
		return "", errfmt.Errorf("%s: %w", name, ErrNotFound)
	}
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = DefaultPath
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		if p := filepath.Join(dir, name); isExec(p) {
			return p, nil
		}
	}
	return "", errfmt.Errorf("%s: %w in %s", name, ErrNotFound, path)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Output runs name with args and returns its standard output; standard
// error goes to the agent's (the system log). A non-zero exit is an error.
func Output(ctx context.Context, name string, args ...string) ([]byte, error) {
	return start(ctx, false, name, args)
}

// CombinedOutput is Output with standard error mixed into the result.
func CombinedOutput(ctx context.Context, name string, args ...string) ([]byte, error) {
	return start(ctx, true, name, args)
}

func start(ctx context.Context, combined bool, name string, args []string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := LookPath(name)
	if err != nil {
		return nil, err
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, errfmt.Errorf("%s: %w", os.DevNull, err)
	}
	defer syscall.Close(null)
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, errfmt.Errorf("pipe: %w", err)
	}
	// Non-blocking, so that closing r ends a read the runtime poller waits on.
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, err
	}
	r := os.NewFile(uintptr(p[0]), "|"+name)
	defer r.Close()
	stderr := uintptr(2)
	if combined {
		stderr = uintptr(p[1])
	}
	// syscall.ForkExec rather than os.StartProcess: the os layer (pidfd,
	// Process, cleanups) is another ~9 KB of xz-compressed flash on MIPS.
	pid, err := syscall.ForkExec(path, append([]string{name}, args...), &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{uintptr(null), uintptr(p[1]), stderr},
	})
	syscall.Close(p[1]) // the child holds its own copy
	if err != nil {
		return nil, errfmt.Errorf("%s: %w", name, err)
	}

	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&out, r) //nolint: errors end the output, as EOF does
	}()
	exited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(pid, syscall.SIGKILL)
		case <-exited:
		}
	}()
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	close(exited)
	if err != nil {
		return nil, errfmt.Errorf("%s: wait: %w", name, err)
	}
	select {
	case <-read:
	case <-time.After(readGrace):
		r.Close() // ends io.Copy
		<-read
	}
	switch cerr := ctx.Err(); {
	case ws.Exited() && ws.ExitStatus() == 0:
	case cerr != nil:
		err = errfmt.Errorf("%s: %w", name, cerr)
	default:
		err = &ExitError{Name: name, Status: ws}
	}
	return out.Bytes(), err
}

// ExitError is a program that ran and failed.
type ExitError struct {
	Name   string
	Status syscall.WaitStatus
}

// ExitCode is the program's exit status, -1 if a signal ended it.
func (e *ExitError) ExitCode() int { return e.Status.ExitStatus() }

func (e *ExitError) Error() string {
	if e.Status.Signaled() {
		return e.Name + ": killed by signal " + e.Status.Signal().String()
	}
	return e.Name + ": exit status " + strconv.Itoa(e.Status.ExitStatus())
}
