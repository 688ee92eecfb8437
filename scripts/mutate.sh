#!/usr/bin/env bash
# Mutation testing (`make mutate`; not part of make test, and slow): gremlins,
# pinned in go.mod's tool block, mutates each package's code one change at a
# time and runs its tests; a mutant the tests do not fail "lived". Prints the
# share of mutants killed per package (gremlins' "test efficacy": killed over
# killed + lived). Timed-out mutants are shown apart, in neither: on a loaded
# machine a timeout says more about the machine than about the tests.
#
#   MUTATE_PACKAGES   packages to run (default: the list below)
#   MUTATE_WORKERS    gremlins workers (default 1: the machine is shared)
#   MUTATE_TIMEOUT    timeout coefficient over the package's own test time
#                     (default 50: each mutant recompiles on a busy machine)
#
# services/client has no tests of its own package: the ones that drive it run
# a real keymint and live in services/keymint, so it is run in gremlins'
# integration mode (the whole suite per mutant: hours).
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=${MUTATE_PACKAGES:-"services/tokens services/cache services/quota services/throttle services/sidecar services/accounts services/client gateway"}
workers=${MUTATE_WORKERS:-1}
coef=${MUTATE_TIMEOUT:-50}

work=$(mktemp -d /tmp/keymint-mutate.XXXXXX)
chmod 755 "$work"
cleanup() {
  bash scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
KEYMINT_TEST_POSTGRES_URL=$(bash scripts/pg.sh start "$work/pg")
KEYMINT_TEST_REDIS_URL=$(bash scripts/redis.sh start "$work/redis")
export KEYMINT_TEST_POSTGRES_URL KEYMINT_TEST_REDIS_URL KEYMINT_TEST_REQUIRE_SERVICES=1

summary=()
for p in $pkgs; do
  mode=()
  [ "$p" = services/client ] && mode=(--integration)
  log="$work/$(echo "$p" | tr / -).log"
  echo "mutate: $p" >&2
  go tool gremlins unleash "${mode[@]}" --workers "$workers" --test-cpu 1 --timeout-coefficient "$coef" \
    --output-statuses lt "./$p" 2>&1 | tee "$log" | grep -E 'LIVED|completed' >&2 || true
  killed=$(sed -n 's/^Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\1 \2 \3/p' "$log")
  timedout=$(sed -n 's/^Timed out: \([0-9]*\),.*/\1/p' "$log")
  read -r k l nc <<<"${killed:-0 0 0}"
  if [ $((k + l)) -gt 0 ]; then
    share=$(awk -v k="$k" -v l="$l" 'BEGIN { printf "%.1f%%", 100 * k / (k + l) }')
  else
    share="n/a"
  fi
  summary+=("$(printf '%-20s killed %4d  lived %4d  timed out %4d  not covered %4d  killed share %s' \
    "$p" "$k" "$l" "${timedout:-0}" "$nc" "$share")")
done
echo
printf '%s\n' "${summary[@]}"
