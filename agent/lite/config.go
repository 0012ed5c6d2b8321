package lite

import (
	"strconv"
	"strings"
)

// The lite agent's part of /etc/config/meshnode, all optional:
//
//	config lite 'lite'
//		list interface 'wlan0'    # links status reports (default: all but lo)
//		list interface 'eth0'
//		option lora_socket '/var/run/lora-bridge.sock'   # default: lora-bridge's own setting
//
// Sections of the full agent (overlay, lighthouse, route, rule, uplink,
// failover, shape, share) are allowed, so one file serves both packages,
// and ignored: `config check` says so.

// Settings is what the lite agent takes from its configuration.
type Settings struct {
	Interfaces  []string
	LoRaSocket  string // "" when no lora-bridge is configured
	LoRaFrom    string // the file that named it
	LoRaEnabled bool
}

// fullSections are the full agent's section types and what needs them.
var fullSections = map[string]string{
	"overlay":    "the overlay (Nebula)",
	"lighthouse": "the overlay (Nebula)",
	"route":      "the overlay (Nebula)",
	"rule":       "the overlay (Nebula)",
	"uplink":     "uplink probing and failover",
	"failover":   "uplink probing and failover",
	"shape":      "shaping",
	"share":      "shaping",
}

var liteOptions = []string{"interface", "lora_socket"}

// LoadSettings reads the configuration. A missing file means defaults; a
// broken one gives the defaults and the error.
func LoadSettings(o Options) (Settings, error) {
	var st Settings
	var problem error
	path := o.configPath()
	data, err := readFile(path)
	switch {
	case notExist(err):
	case err != nil:
		problem = err
	default:
		f, err := ParseUCI(path, data)
		if err != nil {
			problem = err
			break
		}
		if ls := f.OfType("lite"); len(ls) > 0 {
			st.Interfaces = ls[0].List("interface")
			if v, ok := ls[0].Get("lora_socket"); ok && v != "" {
				st.LoRaSocket, st.LoRaFrom, st.LoRaEnabled = o.Root+v, path, true
			}
		}
	}
	if o.LoRaSocket != "" {
		st.LoRaSocket, st.LoRaFrom, st.LoRaEnabled = o.LoRaSocket, "--lora-socket", true
	}
	if st.LoRaSocket == "" {
		st.LoRaSocket, st.LoRaEnabled = loraBridgeSocket(o.Root)
		st.LoRaFrom = o.Root + LoRaConfig
	}
	return st, problem
}

// loraBridgeSocket reads lora-bridge's socket option and whether it is
// enabled; "" when lora-bridge is not installed.
func loraBridgeSocket(root string) (string, bool) {
	data, err := readFile(root + LoRaConfig)
	if err != nil {
		return "", false
	}
	sock := DefaultLoRaSocket
	enabled := false
	if f, err := ParseUCI(root+LoRaConfig, data); err == nil {
		var main *Section
		for _, s := range f.Sections {
			if s.Name == "main" || (main == nil && s.Type == "bridge") {
				main = s
			}
		}
		if main != nil {
			if v, ok := main.Get("socket"); ok && v != "" {
				sock = v
			}
			v, _ := main.Get("enabled")
			enabled = truthy(v)
		}
	}
	return root + sock, enabled
}

func truthy(v string) bool {
	switch v {
	case "1", "on", "true", "yes", "enabled":
		return true
	}
	return false
}

// Check validates the configuration file for the lite agent: UCI syntax,
// the lite section, and no section types neither agent knows. notes say
// what the lite agent ignores.
func Check(o Options) (notes []string, err error) {
	path := o.configPath()
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseUCI(path, data)
	if err != nil {
		return nil, err
	}
	fail := func(s *Section, line int, opt, msg string) error {
		m := "section '" + f.Ref(s) + "'"
		if opt != "" {
			m += " option '" + opt + "'"
		}
		return &Error{File: path, Line: line, Msg: m + ": " + msg}
	}
	ignored := map[string]bool{}
	lites := 0
	for _, s := range f.Sections {
		if what, ok := fullSections[s.Type]; ok {
			if !ignored[s.Type] {
				ignored[s.Type] = true
				notes = append(notes, "config "+s.Type+" (line "+strconv.Itoa(s.Line)+"): ignored: "+what+" needs the full meshnode package")
			}
			continue
		}
		if s.Type != "lite" {
			return notes, fail(s, s.Line, "", "unknown section type "+quote(s.Type)+
				" (meshnode-lite reads 'config lite'; the full agent's sections are ignored)")
		}
		if lites++; lites > 1 {
			return notes, fail(s, s.Line, "", "more than one 'config lite' section")
		}
		for _, opt := range s.Options {
			known := false
			for _, k := range liteOptions {
				known = known || k == opt.Name
			}
			if !known {
				return notes, fail(s, opt.Line, opt.Name, "unknown option (known: "+strings.Join(liteOptions, ", ")+")")
			}
			switch opt.Name {
			case "interface":
				for _, v := range opt.Values {
					if !validIfname(v) {
						return notes, fail(s, opt.Line, opt.Name, quote(v)+" is not an interface name (up to 15 letters, digits, _ . -)")
					}
				}
			case "lora_socket":
				if opt.IsList || len(opt.Values) != 1 || !strings.HasPrefix(opt.Values[0], "/") {
					return notes, fail(s, opt.Line, opt.Name, "must be one absolute path")
				}
				if len(opt.Values[0]) > 107 {
					return notes, fail(s, opt.Line, opt.Name, "longer than a unix socket path can be (107 bytes)")
				}
			}
		}
	}
	return notes, nil
}

func validIfname(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
