package errfmt

import (
	"errors"
	"io/fs"
	"testing"
)

func TestErrorfWraps(t *testing.T) {
	err := Errorf("reading %s: %w", "/etc/config/meshnode", fs.ErrNotExist)
	if err.Error() != "reading /etc/config/meshnode: file does not exist" {
		t.Errorf("text %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("%w did not wrap")
	}
	if Errorf("plain").Error() != "plain" {
		t.Error("no-verb format")
	}
}
