#!/usr/bin/env bash
# Fails when the committed generated code (proto/, the OpenAPI document, the
# TypeScript client's types) differs from a fresh `make gen`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen.sh
paths=(proto clients/typescript)
if ! git diff --quiet -- "${paths[@]}" || [ -n "$(git status --porcelain --untracked-files=all -- "${paths[@]}")" ]; then
  echo "gen-check: generated code is out of date; run 'make gen' and commit:" >&2
  git status --short -- "${paths[@]}" >&2
  git --no-pager diff --stat -- "${paths[@]}" >&2
  exit 1
fi
echo "gen-check: generated code is current"
