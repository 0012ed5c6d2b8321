#!/bin/sh
# Runs the format and codec tests as big-endian MIPS (softfloat) binaries
# under qemu-user, as on an ath79 router.
set -eu
cd "$(dirname "$0")/.."
qemu=$(command -v qemu-mips-static || command -v qemu-mips || true)
if [ -z "$qemu" ]; then
	echo "test-cross: qemu-mips-static not found (Debian package qemu-user-static)" >&2
	exit 1
fi
root=$(pwd)
dir=out/cross
mkdir -p "$dir"
for pkg in "$@"; do
	name=$(echo "$pkg" | tr '/.' '__')
	CGO_ENABLED=0 GOOS=linux GOARCH=mips GOMIPS=softfloat go test -c -trimpath -o "$dir/$name.test" "$pkg"
	# Tests read testdata relative to their package directory.
	(cd "$pkg" && "$qemu" "$root/$dir/$name.test" -test.count=1 -test.short) || {
		echo "test-cross: $pkg FAILED under $qemu" >&2
		exit 1
	}
	echo "ok   $pkg (linux/mips softfloat under qemu)"
done
