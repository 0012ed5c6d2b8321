#!/bin/sh
# Lists the shell scripts that ship in packages, for shellcheck -s sh.
# Many are fragments sourced by OpenWrt's /bin/sh (ash), without a #! line.
set -eu
cd "$(dirname "$0")/.."
find packages -path '*/files/*' -type f | while read -r f; do
	case "$f" in
	*.init|*.hotplug|*.rpcd|*postinst*|*prerm*|*preinst*|*postrm*|*/[0-9][0-9]-*|*/[0-9][0-9]_*) echo "$f" ;;
	*) head -n1 "$f" | grep -q '^#!/bin/sh' && echo "$f" ;;
	esac
done
