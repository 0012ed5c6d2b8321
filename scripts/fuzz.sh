#!/bin/sh
# Runs every fuzz target for the given time each; new crashers land in
# the package's testdata/fuzz and must be fixed and kept.
set -eu
cd "$(dirname "$0")/.."
t=${1:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./out/' | while read -r f; do
	dir=$(dirname "$f")
	grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r target; do
		echo "fuzz $dir $target ($t)"
		go test -run='^$' -fuzz="^$target\$" -fuzztime="$t" "./$dir"
	done
done
