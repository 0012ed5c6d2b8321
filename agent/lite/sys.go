package lite

import "syscall"

// File access with raw syscalls. os.ReadFile, os.Stat and os.ReadDir box
// os.fileStat, whose time.Time field keeps time's formatting and time zone
// loading in the binary, and ReadDir adds a generic sort: ~90 KB on MIPS
// together, for reading a few small sysfs files.

// fileError is an *os.PathError without os.
type fileError struct {
	Op, Path string
	Err      syscall.Errno
}

func (e *fileError) Error() string { return e.Op + " " + e.Path + ": " + e.Err.Error() }
func (e *fileError) Unwrap() error { return e.Err }

func notExist(err error) bool {
	fe, ok := err.(*fileError)
	return ok && fe.Err == syscall.ENOENT
}

func open(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, &fileError{"open", path, err.(syscall.Errno)}
		}
		return fd, nil
	}
}

// maxFile bounds what readFile reads: configuration and sysfs files are small.
const maxFile = 4 << 20

// readFile reads a whole file (sysfs files report size 4096 whatever they
// hold, so it reads to EOF rather than trusting the size).
func readFile(path string) ([]byte, error) {
	fd, err := open(path, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fileError{"read", path, err.(syscall.Errno)}
		}
		if n <= 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		if len(out) > maxFile {
			return nil, &fileError{"read", path, syscall.EFBIG}
		}
	}
}

func exists(path string) bool {
	var st syscall.Stat_t
	return syscall.Stat(path, &st) == nil
}

// listDir returns the names in a directory, sorted, without . and ..
func listDir(path string) ([]string, error) {
	fd, err := open(path, syscall.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fileError{"readdir", path, err.(syscall.Errno)}
		}
		if n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	// Insertion sort: a handful of interfaces, and no generic sort linked.
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && names[j] < names[j-1]; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	return names, nil
}
