#!/usr/bin/env bash
# Regenerates the TypeScript client's types (clients/typescript/schema.d.ts)
# from the OpenAPI 3.1 document with openapi-typescript, pinned in the
# client's package-lock.json. Installs the pinned npm packages when
# node_modules is missing (the npm registry is reachable; `make run` needs
# no Node).
set -euo pipefail
cd "$(dirname "$0")/../clients/typescript"
command -v npm >/dev/null 2>&1 || { echo "gen-ts: npm is missing (Node 20 or later)" >&2; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error >&2
npx --no-install openapi-typescript ../../proto/keymint/v1/openapi.json --output schema.d.ts --silent >&2
npx --no-install tsc --noEmit
