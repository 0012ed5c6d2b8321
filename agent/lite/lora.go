package lite

import (
	"errors"
	"syscall"
	"time"
)

// LoRa is what lora-bridge's socket said: Status is the raw "status" object
// of its reply (lora-bridge/bridge.Status), Err why there is none.
type LoRa struct {
	Socket string
	Status []byte
	Err    error
}

// maxReply bounds lora-bridge's answer (a status with every peer is a few KB).
const maxReply = 1 << 20

// loraTimeout is how long the whole exchange may take: rpcd gives a plugin
// a few seconds, and LuCI asks the bridge itself anyway.
const loraTimeout = 3 * time.Second

// QueryLoRa asks the bridge at socket for its status, speaking
// lora-bridge/bridge's API (one JSON request, one JSON reply, then the
// bridge closes): with raw syscalls, since the net package would cost the
// lite binary more than this whole package.
func QueryLoRa(socket string) LoRa {
	l := LoRa{Socket: socket}
	reply, err := callUnix(socket, []byte("{\"method\":\"status\"}\n"), loraTimeout)
	if err != nil {
		l.Err = err
		return l
	}
	f, err := objectFields(trimSpace(reply))
	if err != nil {
		l.Err = errors.New("lora-bridge answered something that is not a JSON object")
		return l
	}
	if e := jsonString(f["error"]); e != "" {
		l.Err = errors.New("lora-bridge: " + e)
		return l
	}
	st, ok := f["status"]
	if !ok || len(st) == 0 || st[0] != '{' {
		l.Err = errors.New("lora-bridge's reply has no status")
		return l
	}
	l.Status = st
	return l
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// callUnix sends req to a unix stream socket and reads until the peer
// closes (or a complete line arrives), within timeout.
func callUnix(path string, req []byte, timeout time.Duration) ([]byte, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, opError("socket", path, err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(timeout))
	// Both bound connect (on a full backlog), write and each read.
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, opError("connect to", path, err)
	}
	deadline := time.Now().Add(timeout)
	for len(req) > 0 {
		n, err := syscall.Write(fd, req)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, opError("write to", path, err)
		}
		req = req[n:]
	}
	var out []byte
	buf := make([]byte, 4096)
	for {
		if time.Now().After(deadline) {
			return nil, opError("read from", path, syscall.ETIMEDOUT)
		}
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, opError("read from", path, err)
		}
		if n <= 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		if len(out) > maxReply {
			return nil, errors.New("lora-bridge's reply is over 1 MiB")
		}
		if out[len(out)-1] == '\n' {
			return out, nil // the bridge ends its reply with a newline
		}
	}
}

func opError(op, path string, err error) error {
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
		err = syscall.ETIMEDOUT
	}
	return errors.New(op + " " + path + ": " + err.Error())
}
