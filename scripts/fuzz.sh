#!/usr/bin/env bash
# Runs every Go fuzz target for $FUZZTIME each (default 10000x; `make fuzz` runs
# longer). Seed corpora live in each package's testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-10000x}
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz: $dir $name ($t)" >&2
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$t" "$dir"
  done
done
