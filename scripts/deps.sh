#!/bin/sh
# Installs the Debian packages the tests need when run as root; otherwise
# says exactly which are missing. Called by `make test`.
set -eu

need="qemu-user-static shellcheck iproute2 nftables iperf3 xz-utils iputils-ping chromium nodejs git ca-certificates"
missing=""
for p in $need; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if ! command -v go >/dev/null 2>&1; then
	# Debian's Go then fetches the go.mod toolchain through the module proxy.
	missing="$missing golang-go"
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is intended
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	exit 0
fi
echo "deps: missing Debian packages:$missing" >&2
echo "deps: run as root: apt-get install$missing" >&2
exit 1
