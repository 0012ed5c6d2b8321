package enroll

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/ca/exchange"
	"github.com/meshnode/meshnode/internal/atomicfile"
)

const usage = `usage:
  meshnode enroll --name NAME --role hub|relay|uplink|client [--groups G1,G2] [--out FILE|DIR|-]
  meshnode enroll --import FILE|DIR [--ca-fingerprint FP]
`

// Main is `meshnode enroll`: args are what follows "enroll". n may be nil
// for the OpenWrt defaults (Default()).
func Main(ctx context.Context, n *Node, args []string, stdout, stderr io.Writer) int {
	if n == nil {
		n = Default()
	}
	fs := flag.NewFlagSet("meshnode enroll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	name := fs.String("name", "", "the node's name: lower-case letters, digits, '-'")
	role := fs.String("role", "", "hub, relay, uplink or client")
	groups := fs.String("groups", "", "extra Nebula groups, comma-separated")
	out := fs.String("out", "-", "where to write the request: a file, a directory (NAME.req inside, e.g. the USB drive) or - for stdout")
	imp := fs.String("import", "", "install the certificate from this directory (node.crt, ca.crt, lighthouses) or node.crt file")
	caFP := fs.String("ca-fingerprint", "", "the CA fingerprint read out at the ceremony; checked on import")
	dir := fs.String("dir", n.Dir, "the node's key and certificate directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	n.Dir = *dir
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshnode enroll: unexpected arguments: %s\n%s", strings.Join(fs.Args(), " "), usage)
		return 2
	}
	if *imp != "" {
		if *name != "" || *role != "" {
			fmt.Fprintf(stderr, "meshnode enroll: --import takes no --name or --role\n%s", usage)
			return 2
		}
		r, err := ReadResponse(*imp)
		if err != nil {
			return failed(stderr, err)
		}
		bl, _ := readBlocklist(n)
		inst, err := n.Import(ctx, r, ImportOptions{CAFingerprint: *caFP, Blocklist: bl})
		if err != nil {
			return failed(stderr, err)
		}
		fmt.Fprintln(stdout, inst.Summary())
		return 0
	}
	if *name == "" || *role == "" {
		fmt.Fprintf(stderr, "meshnode enroll: --name and --role are required\n%s", usage)
		return 2
	}
	var gs []string
	if *groups != "" {
		gs = strings.Split(*groups, ",")
	}
	req, err := n.Request(*name, *role, gs)
	if err != nil {
		return failed(stderr, err)
	}
	info := stdout
	switch {
	case *out == "-":
		stdout.Write(req.Marshal())
		info = stderr
	default:
		path := *out
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, req.Name+".req")
		}
		if err := atomicfile.WriteFile(path, req.Marshal(), 0o644); err != nil {
			return failed(stderr, err)
		}
		fmt.Fprintf(info, "request written to %s\n", path)
	}
	fmt.Fprintf(info, "node %s, role %s, key fingerprint:\n  %s\nRead this to the CA operator; they compare it before signing.\n",
		req.Name, req.Role, GroupedFingerprint(req.Fingerprint()))
	return 0
}

// failed reports err and returns Main's exit code for it. Not inlined
// (nor a closure, which was): a copy at each call costs flash on MIPS.
//
//go:noinline
func failed(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "meshnode enroll: %v\n", err)
	return 1
}

// GroupedFingerprint splits a hex fingerprint in groups of four, easier
// to read aloud.
func GroupedFingerprint(fp string) string {
	var b []byte
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, fp[i:min(i+4, len(fp))]...)
	}
	return string(b)
}

// Summary is one line for the node host.
func (i *Installed) Summary() string {
	if !i.Changed {
		return "certificate for " + i.Name + " (" + i.Address.String() + ") is already installed"
	}
	return "installed certificate for " + i.Name + ": address " + i.Address.String() + ", groups " + strings.Join(i.Groups, ",") +
		", valid until " + i.NotAfter.UTC().Format("2006-01-02") + ", CA " + i.CA
}

func readBlocklist(n *Node) ([]string, error) {
	data, err := os.ReadFile(n.path(BlocklistFile))
	if err != nil {
		return nil, err
	}
	return exchange.ParseBlocklist(data)
}
