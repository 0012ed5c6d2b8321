// Command meshnode is the node agent that runs on every router of the mesh.
//
// The agent itself (overlay, uplink failover, shaping, status) arrives with
// its own issues; this binary already links the Nebula version the agent
// embeds so that packages, sizes and `--version` reflect what ships.
package main

import (
	"fmt"
	"io"
	"os"

	// Linked now so the flash-size table and --version describe the real
	// agent: the overlay package will call nebula.Main.
	_ "github.com/slackhq/nebula"

	"github.com/meshnode/meshnode/internal/version"
)

const usage = `usage: meshnode <command>

commands:
  version     print the agent and Nebula versions (also --version, -V)
  help        show this text
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-V":
		fmt.Fprintln(stdout, version.String("meshnode", "github.com/slackhq/nebula"))
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "meshnode: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
