#!/usr/bin/env bash
# The whole Go test suite against throwaway PostgreSQL and Redis instances on
# free loopback ports (never the machine's own services), then short fuzz runs.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/keymint-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  bash scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

KEYMINT_TEST_POSTGRES_URL=$(bash scripts/pg.sh start "$work/pg")
KEYMINT_TEST_REDIS_URL=$(bash scripts/redis.sh start "$work/redis")
export KEYMINT_TEST_POSTGRES_URL KEYMINT_TEST_REDIS_URL
# Tests that need these services fail, rather than skip, when they are missing.
export KEYMINT_TEST_REQUIRE_SERVICES=1
echo "test: postgres and redis started on loopback" >&2

# The TypeScript client's test (run by TestTypeScriptClient) needs its
# pinned npm packages.
if [ ! -d clients/typescript/node_modules ]; then
  npm ci --prefix clients/typescript --no-audit --no-fund --loglevel=error >&2
fi
# The web page's browser tests inject axe-core (pinned) into every view.
if [ ! -d gateway/web/a11y/node_modules ]; then
  npm ci --prefix gateway/web/a11y --no-audit --no-fund --loglevel=error >&2
fi

go test -race -shuffle=on -count=1 -timeout=15m ./...
# Allocation counts need a build without the race detector (its
# instrumentation allocates): the "0 allocs/op" of the validation path, and
# the one allocation of an L2 entry's encoding and of an ext_authz allow answer.
go test -count=1 -run 'AllocatesNothing|AllocatesOnce' ./services/tokens/ ./services/cache/ ./services/sidecar/

# A count, not a duration: a duration ending mid-run can fail with "context
# deadline exceeded" on a loaded machine (a Go fuzzing engine flake).
FUZZTIME=${FUZZTIME:-10000x} bash scripts/fuzz.sh
