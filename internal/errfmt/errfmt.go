// Package errfmt is fmt.Errorf kept out of line. Since Go 1.26 fmt.Errorf
// is inlined, with its errors.New fallback, into every caller; in code
// with hundreds of error paths that is tens of kilobytes of MIPS flash
// for errors that are built rarely. Router code builds its errors here.
package errfmt

import "fmt"

// Errorf is fmt.Errorf: %w wraps, and go vet checks the format.
//
//go:noinline
func Errorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}
