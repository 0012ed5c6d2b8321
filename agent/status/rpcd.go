package status

import (
	"encoding/json"
	"fmt"
	"io"
)

// RPCD implements the rpcd exec plugin protocol (`list`, `call <method>`)
// for the ubus object "meshnode". Only read-only methods: changing the
// node goes through UCI, which LuCI already writes.
//
// Output is always one JSON object: rpcd turns anything else into an
// error LuCI cannot show.
func RPCD(args []string, stdin io.Reader, stdout io.Writer, c Client) int {
	if len(args) == 0 {
		fmt.Fprintln(stdout, `{"error":"usage: list | call <method>"}`)
		return 2
	}
	switch args[0] {
	case "list":
		fmt.Fprintln(stdout, `{"status":{}}`)
		return 0
	case "call":
		if len(args) < 2 {
			fmt.Fprintln(stdout, `{"error":"call needs a method"}`)
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
			return rpcdError(stdout, fmt.Errorf("unknown method %q", args[1]))
		}
	}
	return rpcdError(stdout, fmt.Errorf("unknown command %q", args[0]))
}

func rpcdError(w io.Writer, err error) int {
	b, _ := json.Marshal(map[string]any{"running": false, "error": err.Error()})
	fmt.Fprintln(w, string(b))
	return 0
}
