// Package atomicfile writes files so that a power cut or a pulled USB drive
// leaves either the old content or the new one, never a mix.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// WriteFile writes data to path with mode perm: a temporary file in the
// same directory is written, synced and renamed over path, then the
// directory is synced so the rename itself is durable.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileRename(path, data, perm, os.Rename)
}

// WriteFileRename is WriteFile with the rename step given, so callers'
// tests can make it fail and check nothing is left behind.
func WriteFileRename(path string, data []byte, perm os.FileMode, rename func(from, to string) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Chmod is not subject to the umask, so 0600 stays 0600.
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes directory entry changes (creates, renames) in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		return errfmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
