package lite

import (
	"io"
)

// NoShare is the answer to the share method: LuCI shows it where the full
// agent offers the sharing limit.
const NoShare = "this node runs meshnode-lite, which does not shape or share an internet connection"

// RPCD is the rpcd exec plugin (ubus object "meshnode") of the lite agent:
// status as the full agent's, and share answering why there is none.
// Output is always one JSON object.
func RPCD(args []string, stdin io.Reader, stdout io.Writer, o Options) int {
	if len(args) == 0 {
		return rpcdError(stdout, "usage: list | call <method>", 2)
	}
	switch args[0] {
	case "list":
		_, _ = io.WriteString(stdout, `{"status":{},"share":{}}`+"\n")
		return 0
	case "call":
		if len(args) < 2 {
			return rpcdError(stdout, "call needs a method", 2)
		}
		// Arguments (LuCI adds ubus_rpc_session) are read and ignored.
		drain(stdin)
		switch args[1] {
		case "status":
			_, _ = stdout.Write(Gather(o).JSON())
			return 0
		case "share":
			return rpcdError(stdout, NoShare, 0)
		}
		return rpcdError(stdout, "unknown method "+quote(args[1]), 0)
	}
	return rpcdError(stdout, "unknown command "+quote(args[0]), 0)
}

func rpcdError(w io.Writer, msg string, code int) int {
	var o object
	o.str("error", msg)
	_, _ = w.Write(append(o.bytes(), '\n'))
	return code
}

// drain reads and drops up to 64 KiB (io.Copy would link os.File's
// splice and sendfile paths).
func drain(r io.Reader) {
	if r == nil {
		return
	}
	buf := make([]byte, 4096)
	for total := 0; total < 1<<16; {
		n, err := r.Read(buf)
		total += n
		if err != nil || n == 0 {
			return
		}
	}
}
