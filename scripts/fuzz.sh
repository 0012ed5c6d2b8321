#!/bin/sh
# Runs every fuzz target for the given time each, then keeps the corpus
# the fuzzer grew (in the Go cache) in the package's testdata/fuzz, so
# every later `go test` replays it. Crashers land there too and must be
# fixed, not deleted.
set -eu
cd "$(dirname "$0")/.."
t=${1:-30s}
cache=$(go env GOCACHE)/fuzz/$(go list -m)
grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./out/' | while read -r f; do
	dir=$(dirname "$f")
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r target; do
		echo "fuzz $dir $target ($t)"
		go test -run='^$' -fuzz="^$target\$" -fuzztime="$t" "./$dir"
		grown="$cache/${dir#./}/$target"
		if [ -d "$grown" ]; then
			mkdir -p "$dir/testdata/fuzz/$target"
			cp -n "$grown"/* "$dir/testdata/fuzz/$target/" 2>/dev/null || true
		fi
	done
done
