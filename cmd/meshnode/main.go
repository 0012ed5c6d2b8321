// Command meshnode is the node agent that runs on every router of the mesh.
//
// One binary serves procd (`run`), the node host (`status`, `config show`,
// `reload`) and rpcd (installed as the exec plugin
// /usr/libexec/rpcd/meshnode), so the ~1.5 MB Go runtime and Nebula are on
// flash once.
//
// Built with the 'lite' tag (package meshnode-lite) it is the agent for
// boards without room for Nebula: status, the rpcd plugin and config check
// only (lite.go, agent/lite). This file is what both builds share: it
// imports neither fmt nor flag, which the lite build cannot afford.
package main

import (
	"io"
	"os"
	"strings"
)

func main() {
	args := os.Args[1:]
	// rpcd runs plugins by path with list/call as the only arguments.
	if strings.Contains(os.Args[0], "/rpcd/") {
		args = append([]string{"rpcd"}, args...)
	}
	os.Exit(run(args, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		_, _ = io.WriteString(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-V":
		_, _ = io.WriteString(stdout, versionLine()+"\n")
		return 0
	case "help", "--help", "-h":
		_, _ = io.WriteString(stdout, usage)
		return 0
	}
	if code, ok := command(args, stdin, stdout, stderr); ok {
		return code
	}
	_, _ = io.WriteString(stderr, "meshnode: unknown command \""+args[0]+"\"\n\n"+usage)
	return 2
}
