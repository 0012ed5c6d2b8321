#!/usr/bin/env bash
# make demo: brings up hub, relay, two NATed uplinks and two clients in
# network namespaces (nothing touches the machine's real network), shows
# how to look at them, and removes everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../../.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces)" >&2; exit 1; }
# The topology code is the integration test's: the test binary keeps
# everything up while MESHNODE_DEMO is set and tears it down on exit.
exec env MESHNODE_DEMO=1 go test -count=1 -timeout 0 -run TestDemo -v ./tests/overlay/
