package status

// The sharing limit: how much of the node host's connection the mesh may
// use. It is the upload/download rate of a `config shape` section (see
// agent/shape), and a node host may change it from LuCI only within bounds
// the operator put in the same file:
//
//	config share 'share'
//		option shape 'wan'            # the shape section it applies to (default: the first)
//		option upload_min '2000'      # kbit/s; a direction without both bounds
//		option upload_max '20000'     # cannot be changed from LuCI
//		option download_min '5000'
//		option download_max '100000'
//
// The bounds live in their own section because agent/shape rejects options
// it does not know in a shape section.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/meshnode/meshnode/agent/shape"
	"github.com/meshnode/meshnode/internal/errfmt"
	"github.com/meshnode/meshnode/internal/uci"
)

// ShareSectionType is the UCI section type holding the operator's bounds.
const ShareSectionType = "share"

// Bounds is an inclusive range of rates in kbit/s.
type Bounds struct {
	Min int64 `json:"min"`
	Max int64 `json:"max"`
}

// Share is the sharing limit as LuCI shows it: the current rates and what
// the node host may set them to. A nil bound means "not changeable here".
type Share struct {
	Section      string  `json:"section,omitempty"` // the shape section
	Device       string  `json:"device,omitempty"`
	UploadKbit   int64   `json:"upload_kbit"`   // 0: not shaped
	DownloadKbit int64   `json:"download_kbit"` // 0: not shaped
	Upload       *Bounds `json:"upload_bounds,omitempty"`
	Download     *Bounds `json:"download_bounds,omitempty"`
}

// ShareResult is the reply of set_share.
type ShareResult struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	Applied bool   `json:"applied"`        // the agent re-read its configuration
	Hint    string `json:"hint,omitempty"` // what the node host can do next
	Share   *Share `json:"share,omitempty"`
}

// ErrShareOutOfBounds is wrapped by SetShare's errors for refused values.
var ErrShareOutOfBounds = errors.New("outside the operator's bounds")

// ReadShare reads the sharing limit and its bounds from the UCI file.
func ReadShare(path string) (Share, error) {
	f, err := uci.ReadFile(path)
	if err != nil {
		return Share{}, err
	}
	var sh Share
	_, err = shareOf(f, &sh)
	return sh, err
}

// shareOf finds the shape section the limit applies to and the bounds,
// filling sh as it reads them.
func shareOf(f *uci.File, sh *Share) (*uci.Section, error) {
	var bounds *uci.Section
	if bs := f.SectionsOfType(ShareSectionType); len(bs) > 0 {
		bounds = bs[0]
	}
	var target *uci.Section
	shapes := f.SectionsOfType("shape")
	if bounds != nil {
		if name, ok := bounds.Get("shape"); ok && name != "" {
			for _, s := range shapes {
				if s.Name == name {
					target = s
				}
			}
			if target == nil {
				return nil, optError(f, bounds, "shape", "no `config shape '"+name+"'` section: the sharing limit has nothing to apply to")
			}
		}
	}
	if target == nil {
		if len(shapes) == 0 {
			return nil, &uci.Error{File: f.Name, Msg: "no `config shape` section: this node does not limit what it shares (the operator sets it up)"}
		}
		target = shapes[0]
	}
	sh.Section = target.Ref()
	sh.Device, _ = target.Get("device")
	var err error
	if sh.UploadKbit, err = optKbit(f, target, "upload"); err != nil {
		return nil, err
	}
	if sh.DownloadKbit, err = optKbit(f, target, "download"); err != nil {
		return nil, err
	}
	if bounds != nil {
		if sh.Upload, err = boundsOf(f, bounds, "upload"); err != nil {
			return nil, err
		}
		if sh.Download, err = boundsOf(f, bounds, "download"); err != nil {
			return nil, err
		}
	}
	return target, nil
}

// optError is an error in option opt of section s. Not inlined: a copy
// at each of its error paths costs flash on MIPS.
//
//go:noinline
func optError(f *uci.File, s *uci.Section, opt, msg string) error {
	return &uci.Error{File: f.Name, Line: s.Line, Section: s.Ref(), Option: opt, Msg: msg}
}

func optKbit(f *uci.File, s *uci.Section, name string) (int64, error) {
	v, ok := s.Get(name)
	if !ok {
		return 0, nil
	}
	n, err := shape.ParseKbit(v)
	if err != nil {
		return 0, optError(f, s, name, err.Error())
	}
	return n, nil
}

func boundsOf(f *uci.File, s *uci.Section, dir string) (*Bounds, error) {
	lo, okLo := s.Get(dir + "_min")
	hi, okHi := s.Get(dir + "_max")
	if !okLo && !okHi {
		return nil, nil
	}
	if !okLo || !okHi {
		return nil, optError(f, s, dir+"_min", "set both "+dir+"_min and "+dir+"_max, or neither")
	}
	var b Bounds
	var err error
	if b.Min, err = shape.ParseKbit(lo); err != nil {
		return nil, optError(f, s, dir+"_min", err.Error())
	}
	if b.Max, err = shape.ParseKbit(hi); err != nil {
		return nil, optError(f, s, dir+"_max", err.Error())
	}
	if b.Min > b.Max {
		return nil, optError(f, s, dir+"_min", fmt.Sprintf("%s_min %d is above %s_max %d", dir, b.Min, dir, b.Max))
	}
	return &b, nil
}

// SetShare checks the new rates (kbit/s; 0 leaves a direction as it is)
// against the operator's bounds and writes them atomically into the shape
// section, keeping every other section and comment of the file.
func SetShare(path string, upKbit, downKbit int64) (Share, error) {
	f, err := uci.ReadFile(path)
	if err != nil {
		return Share{}, err
	}
	var sh Share
	target, err := shareOf(f, &sh)
	if err != nil {
		return sh, err
	}
	if upKbit == 0 && downKbit == 0 {
		return sh, errors.New("nothing to change: give upload_kbit and/or download_kbit")
	}
	if err := checkRate("upload", upKbit, sh.UploadKbit, sh.Upload); err != nil {
		return sh, err
	}
	if err := checkRate("download", downKbit, sh.DownloadKbit, sh.Download); err != nil {
		return sh, err
	}
	if upKbit > 0 {
		if err := target.Set("upload", strconv.FormatInt(upKbit, 10)); err != nil {
			return sh, err
		}
		sh.UploadKbit = upKbit
	}
	if downKbit > 0 {
		if err := target.Set("download", strconv.FormatInt(downKbit, 10)); err != nil {
			return sh, err
		}
		sh.DownloadKbit = downKbit
	}
	return sh, uci.WriteFile(path, f)
}

// checkRate checks a new rate v for direction dir (0: unchanged) whose
// current rate is cur, against its bounds b.
func checkRate(dir string, v, cur int64, b *Bounds) error {
	switch {
	case v == 0:
		return nil
	case v < 0:
		return errfmt.Errorf("%s %d kbit/s: %w (a rate is above zero)", dir, v, ErrShareOutOfBounds)
	case cur == 0:
		// Turning shaping on for a direction is the operator's decision.
		return errfmt.Errorf("%s is not limited on this node; ask the operator to set it up", dir)
	case b == nil:
		return errfmt.Errorf("the operator has not allowed changing the %s limit here (no %s_min/%s_max in `config share`)", dir, dir, dir)
	case v < b.Min || v > b.Max:
		return errfmt.Errorf("%s %d kbit/s is %w: choose from %d to %d kbit/s", dir, v, ErrShareOutOfBounds, b.Min, b.Max)
	}
	return nil
}

// ShareRPCD answers the rpcd methods "share" (read) and "set_share"
// (write: {"upload_kbit":N,"download_kbit":N}). reload asks the running
// agent to apply the file; nil skips that. The reply is always one JSON
// object.
func ShareRPCD(method string, stdin io.Reader, stdout io.Writer, path string, reload func() error) int {
	_ = json.NewEncoder(stdout).Encode(shareReply(method, stdin, path, reload))
	return 0
}

// shareReply is ShareRPCD's reply: a *Share or a *ShareResult.
func shareReply(method string, stdin io.Reader, path string, reload func() error) any {
	switch method {
	case "share":
		sh, err := ReadShare(path)
		if err != nil {
			return &ShareResult{Error: err.Error(), Hint: "ask the operator to check " + path}
		}
		return &sh
	case "set_share":
		var args struct {
			Up   json.Number `json:"upload_kbit"`
			Down json.Number `json:"download_kbit"`
		}
		// LuCI adds ubus_rpc_session: unknown keys are fine. No arguments
		// at all reads as none given.
		data, err := io.ReadAll(io.LimitReader(stdin, 1<<16))
		if err == nil && len(bytes.TrimSpace(data)) > 0 {
			err = json.Unmarshal(data, &args)
		}
		if err != nil {
			return &ShareResult{Error: "bad arguments: " + err.Error()}
		}
		up, err1 := wholeKbit(args.Up, "upload_kbit")
		down, err2 := wholeKbit(args.Down, "download_kbit")
		if err := errors.Join(err1, err2); err != nil {
			return &ShareResult{Error: err.Error()}
		}
		sh, err := SetShare(path, up, down)
		if err != nil {
			return &ShareResult{Error: err.Error(), Share: &sh}
		}
		res := &ShareResult{OK: true, Share: &sh}
		if reload != nil {
			if err := reload(); err != nil {
				res.Hint = "saved; the agent did not apply it (" + err.Error() + "): it applies when the agent next starts"
			} else {
				res.Applied = true
			}
		}
		return res
	}
	return &ShareResult{Error: fmt.Sprintf("unknown method %q", method)}
}

func wholeKbit(n json.Number, name string) (int64, error) {
	if n == "" {
		return 0, nil
	}
	v, err := n.Int64()
	if err != nil {
		return 0, errfmt.Errorf("%s: %q is not a whole number of kbit/s", name, n)
	}
	return v, nil
}

// ShareMethods is the `list` entry of the share methods (merge it into
// the plugin's list reply). Numbers are int32 to rpcd; 64 would make them
// int64 but LuCI sends plain numbers either way.
const ShareMethods = `"share":{},"set_share":{"upload_kbit":32,"download_kbit":32}`

// RPCDWithShare is RPCD plus the share methods, for the plugin entry
// point: reload goes through c to the running agent.
func RPCDWithShare(args []string, stdin io.Reader, stdout io.Writer, c Client, path string) int {
	if len(args) >= 1 && args[0] == "list" {
		_, _ = io.WriteString(stdout, `{"status":{},`+ShareMethods+"}\n")
		return 0
	}
	if len(args) >= 2 && args[0] == "call" && (args[1] == "share" || args[1] == "set_share") {
		return ShareRPCD(args[1], stdin, stdout, path, func() error {
			r, err := c.Reload()
			if err != nil {
				return err
			}
			if !r.OK {
				return errors.New("configuration rejected: " + r.Error)
			}
			return nil
		})
	}
	return RPCD(args, stdin, stdout, c)
}
