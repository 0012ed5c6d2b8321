package status

import (
	"encoding/json"
	"io"

	"github.com/meshnode/meshnode/internal/errfmt"
)

// RPCD implements the rpcd exec plugin protocol (`list`, `call <method>`)
// for the ubus object "meshnode". Only read-only methods: changing the
// node goes through UCI, which LuCI already writes.
//
// Output is always one JSON object: rpcd turns anything else into an
// error LuCI cannot show.
func RPCD(args []string, stdin io.Reader, stdout io.Writer, c Client) int {
	if len(args) == 0 {
		_, _ = io.WriteString(stdout, `{"error":"usage: list | call <method>"}`+"\n")
		return 2
	}
	switch args[0] {
	case "list":
		_, _ = io.WriteString(stdout, `{"status":{}}`+"\n")
		return 0
	case "call":
		if len(args) < 2 {
			_, _ = io.WriteString(stdout, `{"error":"call needs a method"}`+"\n")
			return 2
		}
		// Arguments are read and ignored (status takes none); LuCI adds
		// ubus_rpc_session, so unknown keys must not be an error.
		_, _ = io.Copy(io.Discard, io.LimitReader(stdin, 1<<16))
		switch args[1] {
		case "status":
			raw, err := c.StatusRaw()
			if err != nil {
				return rpcdError(stdout, err)
			}
			_, _ = stdout.Write(raw)
			return 0
		default:
			return rpcdError(stdout, errfmt.Errorf("unknown method %q", args[1]))
		}
	}
	return rpcdError(stdout, errfmt.Errorf("unknown command %q", args[0]))
}

func rpcdError(w io.Writer, err error) int {
	b, _ := json.Marshal(map[string]any{"running": false, "error": err.Error()})
	_, _ = w.Write(append(b, '\n'))
	return 0
}
