#!/usr/bin/env bash
# Mutation testing (`make mutate`; not part of make test, and slow): gremlins,
# pinned in go.mod's tool block, mutates each package's code one change at a
# time and runs its tests; a mutant the tests do not fail "lived". Prints the
# share of mutants killed per package (gremlins' "test efficacy": killed over
# killed + lived). Timed-out and not-viable mutants are shown apart, in
# neither: on a loaded machine a timeout says more about the machine than
# about the tests, and a mutant that does not compile proves nothing.
#
#   MUTATE_PACKAGES   packages to run (default: the list below)
#   MUTATE_WORKERS    gremlins workers (default 1: the machine is shared)
#   MUTATE_TIMEOUT    timeout coefficient over the package's own test time
#                     (default 50: each mutant recompiles on a busy machine)
#   MUTATE_EXCLUDE    regexp of files not to mutate (gremlins -E; matched
#                     against the path inside the package, e.g. ^format\.go$), to narrow a
#                     run to the files that carry the README's guarantees
#   MUTATE_LOG_DIR    keep each package's full gremlins log (every mutant and
#                     its status) in this directory
#
# Two traps of gremlins v0.6.0 this script steps around:
# - --test-cpu N is passed to `go test` as the single argument "-cpu N",
#   which go test rejects ("[setup failed]", exit 1): every mutant is then
#   booked KILLED without a test having run. The flag is not used.
# - any failing `go test` counts as a kill, a mutant that does not compile
#   included; the `go` put in front of the real one below turns a build
#   failure into exit 2, which gremlins books NOT VIABLE.
#
# services/client's own tests are few; the ones that drive it run a real
# keymint and live in services/server/e2e. It is run in gremlins' integration
# mode (coverage taken over services/client only), with the `go` in front
# narrowing "the whole suite" to services/client and the end-to-end tests that
# use the client (MUTATE_CLIENT_RUN: every services/client test and every
# e2e test that calls the client package or runs the sidecar, which
# validates through it; a new one belongs in the list).
# gremlins reads each file to mutate from the tree when it reaches it, long
# after the coverage run: edit no file of a package while it is mutated (a
# run on a copy of the tree leaves the working tree free), or the mutants
# land at the wrong places and are booked NOT VIABLE.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=${MUTATE_PACKAGES:-"services/tokens services/cache services/quota services/throttle services/sidecar services/accounts services/client gateway"}
workers=${MUTATE_WORKERS:-1}
coef=${MUTATE_TIMEOUT:-50}
client_run=${MUTATE_CLIENT_RUN:-'^(TestStoreReplacingEntryKeepsMapping|TestRevokedIDNeverValidAgain|TestValidatorConfigDefaultsAndOverrides|TestValidatorNeedsTargetOrConn|TestClientCloseOwnsOnlyItsDial|TestAllowsIP|TestHasScopes|TestEntryFromKeepsTheAnswer|TestValidateTokenShape|TestDeletedEntryTakesItsMapping|TestMiddlewareAnswers|TestMiddlewareConfiguredClientIP|TestInterceptorAnswers|TestBackoffDoublesToItsBound|TestResubscribePauses|TestClientValidator|TestClientInterceptor|TestWatchRevocationsAcrossReplicas|TestUsageLimitThroughEveryClient|TestClientHonoursNoStore|TestWatchRequiresScope|TestRevokeDoesNotWaitForHungRedis|TestValidatorResumesOnAnotherReplica|TestValidatorRedialsAfterSilence|TestValidatorStaysSubscribedAcrossRevocations|TestIntrospectionSidecar|TestDisableUserRefusedEverywhere)$'}

work=$(mktemp -d /tmp/keymint-mutate.XXXXXX)
chmod 755 "$work"
cleanup() {
  # The process groups of this run's go tests (see the go in front below).
  for g in "$work"/groups/*; do
    [ -e "$g" ] && kill -KILL -- -"${g##*/}" 2>/dev/null || true
  done
  bash scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
KEYMINT_TEST_POSTGRES_URL=$(bash scripts/pg.sh start "$work/pg")
KEYMINT_TEST_REDIS_URL=$(bash scripts/redis.sh start "$work/redis")
export KEYMINT_TEST_POSTGRES_URL KEYMINT_TEST_REDIS_URL KEYMINT_TEST_REQUIRE_SERVICES=1
# The tests' t.TempDir, so the redis-server a test starts (its --dir is
# one) is known to be this run's: leftovers() lists what outlived a test.
mkdir "$work/tmp"
export TMPDIR=$work/tmp
leftovers() {
  local d
  for d in /proc/[0-9]*; do
    case $(readlink "$d/cwd" 2>/dev/null) in "$work/tmp"/*) echo "${d#/proc/}" ;; esac
  done
}

real_go=$(command -v go)
# gremlins is run as its built binary, not through `go tool gremlins`: the
# go command puts its own bin directory first in a tool's PATH, and the go
# in front below would never be reached.
gremlins=$(go tool -n gremlins)
mkdir "$work/bin" "$work/groups"
cat >"$work/bin/go" <<EOF
#!/usr/bin/env bash
# In front of the real go for gremlins (see scripts/mutate.sh).
[ "\${1:-}" = test ] || exec "$real_go" "\$@"
args=("\$@")
# batches: the package lists of the go tests to run, one after the other.
batches=("")
if [ -n "\${MUTATE_NARROW_PKGS:-}" ] && [ "\${args[-1]}" = ./... ]; then
  unset 'args[-1]'
  args+=(-run "\$MUTATE_NARROW_RUN")
  case " \${args[*]} " in
  # The coverage run: one go test, so one profile holds every package.
  *" -coverprofile "*) batches=("\$MUTATE_NARROW_PKGS") ;;
  # A mutant: one package at a time, in the order given, stopping at the
  # first that fails, so a mutant the package's own tests kill costs no
  # end-to-end run.
  *) read -ra batches <<<"\$MUTATE_NARROW_PKGS" ;;
  esac
fi
# go test runs in a process group of its own (setsid), killed whole once it
# is done: a test binary that panics, or that gremlins' timeout cuts short,
# runs no t.Cleanup, and the redis-server a test started (redistest.Start)
# would outlive it. The watcher kills the group if gremlins kills this
# script first (SIGKILL on a timeout); the script's exit trap, for the
# groups any watcher missed.
run_go() {
  local out_file pg watcher
  out_file=\$(mktemp "$work/out.XXXXXX")
  setsid "$real_go" "\${args[@]}" "\$@" >"\$out_file" 2>&1 &
  pg=\$!
  : >"$work/groups/\$pg"
  ( while kill -0 \$\$ 2>/dev/null; do sleep 1; done
    kill -KILL -- -"\$pg" 2>/dev/null; rm -f "$work/groups/\$pg" ) </dev/null >/dev/null 2>&1 &
  watcher=\$!
  wait "\$pg" && rc=0 || rc=\$?
  kill "\$watcher" 2>/dev/null || true
  kill -KILL -- -"\$pg" 2>/dev/null || true
  rm -f "$work/groups/\$pg"
  out=\$(cat "\$out_file"); rm -f "\$out_file"
}
for b in "\${batches[@]}"; do
  # \$b unquoted: "" adds no argument, a list adds each package.
  run_go \$b
  printf '%s\n' "\$out"
  if [ "\$rc" -ne 0 ]; then
    if grep -qE '\[(build|setup) failed\]' <<<"\$out"; then exit 2; fi
    exit "\$rc"
  fi
done
exit 0
EOF
chmod 755 "$work/bin/go"
export PATH="$work/bin:$PATH"

summary=()
for p in $pkgs; do
  mode=()
  narrow_pkgs="" narrow_run=""
  if [ "$p" = services/client ]; then
    mode=(--integration --coverpkg ./services/client)
    narrow_pkgs="./services/client ./services/server/e2e" narrow_run=$client_run
  fi
  # redistest is test support (it starts Redis for tests), not keymint.
  mode+=(--exclude-files '(^|/)redistest/')
  [ -n "${MUTATE_EXCLUDE:-}" ] && mode+=(--exclude-files "$MUTATE_EXCLUDE")
  log="$work/$(echo "$p" | tr / -).log"
  echo "mutate: $p" >&2
  start=$(date +%s)
  MUTATE_NARROW_PKGS=$narrow_pkgs MUTATE_NARROW_RUN=$narrow_run \
    "$gremlins" unleash "${mode[@]}" --workers "$workers" --timeout-coefficient "$coef" \
    "./$p" 2>&1 | tee "$log" | grep -E 'LIVED|completed' >&2 || true
  secs=$(($(date +%s) - start))
  left=$(leftovers | wc -l)
  [ "$left" -eq 0 ] || echo "mutate: $p: $left processes of this run's tests outlived them: $(leftovers | tr '\n' ' ')" >&2
  [ -n "${MUTATE_LOG_DIR:-}" ] && mkdir -p "$MUTATE_LOG_DIR" && cp "$log" "$MUTATE_LOG_DIR/"
  killed=$(sed -n 's/^Killed: \([0-9]*\), Lived: \([0-9]*\), Not covered: \([0-9]*\).*/\1 \2 \3/p' "$log")
  rest=$(sed -n 's/^Timed out: \([0-9]*\), Not viable: \([0-9]*\).*/\1 \2/p' "$log")
  read -r k l nc <<<"${killed:-0 0 0}"
  read -r to nv <<<"${rest:-0 0}"
  if [ $((k + l)) -gt 0 ]; then
    share=$(awk -v k="$k" -v l="$l" 'BEGIN { printf "%.1f%%", 100 * k / (k + l) }')
  else
    share="n/a"
  fi
  summary+=("$(printf '%-18s killed %4d  lived %4d  timed out %3d  not viable %3d  not covered %4d  killed share %-6s  %ds' \
    "$p" "$k" "$l" "$to" "$nv" "$nc" "$share" "$secs")")
done
echo
printf '%s\n' "${summary[@]}"
