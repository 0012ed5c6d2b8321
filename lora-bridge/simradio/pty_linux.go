package simradio

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's master and the slave's path.
func openPTY() (*os.File, string, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("pty number: %w", err)
	}
	path := "/dev/pts/" + strconv.Itoa(n)
	// Raw mode on the slave side, so the line discipline neither echoes
	// nor translates bytes before the bridge opens it.
	sfd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	t, err := unix.IoctlGetTermios(sfd, unix.TCGETS)
	if err == nil {
		t.Iflag = 0
		t.Oflag = 0
		t.Lflag = 0
		t.Cflag = unix.CS8 | unix.CREAD | unix.CLOCAL
		err = unix.IoctlSetTermios(sfd, unix.TCSETS, t)
	}
	unix.Close(sfd)
	if err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), path, nil
}
