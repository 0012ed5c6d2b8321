package radio

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tarm/serial"
	"golang.org/x/sys/unix"
)

// serialPort is a radio on a USB serial device (or, in tests, a pty).
type serialPort struct {
	p    *serial.Port
	ctl  *os.File // second descriptor on the same tty, for what tarm lacks
	path string
}

// pollTimeout bounds a read so that Close and a hung-up device are noticed.
const pollTimeout = 200 * time.Millisecond

// OpenSerial opens a radio at 115200 8N1 with the settings the firmware
// needs (facts-meshtastic.md §2): exclusive lock, HUPCL cleared so closing
// does not reset ESP32 boards, DTR and RTS asserted together.
func OpenSerial(path string) (Port, error) {
	p, err := serial.OpenPort(&serial.Config{Name: path, Baud: 115200, Size: 8,
		Parity: serial.ParityNone, StopBits: serial.Stop1, ReadTimeout: pollTimeout})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// tarm does not expose its descriptor; termios and modem lines belong
	// to the tty, not the descriptor, so a second one reaches them.
	ctl, err := os.OpenFile(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sp := &serialPort{p: p, ctl: ctl, path: path}
	if err := sp.configure(); err != nil {
		sp.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sp, nil
}

func (s *serialPort) configure() error {
	fd := int(s.ctl.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	t.Cflag &^= unix.HUPCL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("clear HUPCL: %w", err)
	}
	// Both lines in one call: one line alone resets ESP32 boards or puts
	// them into the bootloader. ptys have no modem lines (ENOTTY/EINVAL).
	bits := unix.TIOCM_DTR | unix.TIOCM_RTS
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCMBIS, bits); err != nil &&
		!errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("assert DTR/RTS: %w", err)
	}
	// A second client (another program) would compete for the radio's
	// single to-phone queue.
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		return fmt.Errorf("exclusive lock: %w", err)
	}
	return nil
}

// Read returns (0, nil) when nothing arrived within pollTimeout, and an
// error once the device is gone (unplugged, or the pty's other end closed).
func (s *serialPort) Read(b []byte) (int, error) {
	n, err := s.p.Read(b)
	if n > 0 {
		return n, nil
	}
	if err != nil && err != io.EOF {
		return 0, err
	}
	// os.File reports VTIME expiry as EOF; tell it apart from a hangup.
	fds := []unix.PollFd{{Fd: int32(s.ctl.Fd()), Events: unix.POLLIN}}
	if _, perr := unix.Poll(fds, 0); perr == nil && fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
		return 0, fmt.Errorf("%s: device hung up", s.path)
	}
	if _, serr := os.Stat(s.path); serr != nil {
		return 0, fmt.Errorf("%s: device gone", s.path)
	}
	return 0, nil
}

func (s *serialPort) Write(b []byte) (int, error) { return s.p.Write(b) }

func (s *serialPort) Close() error {
	s.ctl.Close()
	return s.p.Close()
}
