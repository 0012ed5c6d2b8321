#!/bin/sh
# Lists the shell scripts that ship or run in the build, for shellcheck.
# Package scripts are fragments sourced by OpenWrt's /bin/sh (ash).
set -eu
cd "$(dirname "$0")/.."
ls scripts/*.sh .ci/run
find packages -path '*/files/*' -type f | while read -r f; do
	case "$f" in
	*.init|*postinst*|*prerm*|*preinst*|*postrm*|*/uci-defaults/*|*/hotplug.d/*) echo "$f" ;;
	*) head -n1 "$f" | grep -q '^#!/bin/sh' && echo "$f" ;;
	esac
done
