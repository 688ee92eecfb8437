#!/usr/bin/env bash
# Fails when the committed generated code differs from a fresh `make gen`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen.sh
if ! git diff --quiet -- proto || [ -n "$(git status --porcelain --untracked-files=all -- proto)" ]; then
  echo "gen-check: generated code is out of date; run 'make gen' and commit:" >&2
  git status --short -- proto >&2
  git --no-pager diff --stat -- proto >&2
  exit 1
fi
echo "gen-check: generated code is current"
