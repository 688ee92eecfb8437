#!/usr/bin/env bash
# Whole-call instruction counts: user-space instructions per request of
# keymint serve (or of the bare `load http-echo` / `load grpc-echo` server)
# under callgrind, load-independent where wall-clock ratios on a shared
# machine are not.
#
#   bash scripts/bench/callgrind/run.sh [cached|malformed|forward-auth|grpc-validate|grpc-check ...]
#
# Builds keymint and the load program, starts a throwaway Redis, mints 100
# tokens, then for each case runs keymint (GOMAXPROCS=1, embedded store,
# Redis) and the bare server under valgrind --tool=callgrind: warm-up,
# callgrind_control --zero, the measured calls, --dump. HTTP cases: 2,000
# warm-up requests, 8,000 measured over 8 keep-alive connections, one
# request at a time each. gRPC cases (ValidateToken, Envoy ext_authz Check,
# on cached tokens): the bench's load client, pre-encoded requests on one
# HTTP/2 connection with CALLGRIND_INFLIGHT (50, as in make bench) calls in
# flight, CALLGRIND_WARMUP (2,000) then CALLGRIND_CALLS (8,000) calls.
# keymint runs with its timed work moved out of the
# window (--cache-l1-ttl 1h --webhook-poll 1h --revocation-poll 10s
# --usage-flush 1h): under valgrind a request takes ~100 times as long, so
# work done per second (L1 refreshes every 5 s, outbox and revocation polls)
# lands in the window ~100 times as heavily as at full speed, and differently
# each run. CALLGRIND_EXTRA adds keymint flags; KEYMINT_BIN uses a built binary;
# CALLGRIND_KEEP=DIR keeps the profiles (NAME.cg.*) there for callgrind_annotate;
# CALLGRIND_BARE=0 measures keymint alone (a second run of a change: the bare
# servers do not change).
set -euo pipefail
cd "$(dirname "$0")/../../.."
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(cached malformed forward-auth grpc-validate grpc-check)
WARMUP=${CALLGRIND_WARMUP:-2000} CALLS=${CALLGRIND_CALLS:-8000} INFLIGHT=${CALLGRIND_INFLIGHT:-50}
command -v valgrind >/dev/null || { echo "callgrind: valgrind is not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/keymint-callgrind.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP" && cp "$work"/*.cg.* "$CALLGRIND_KEEP"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
ready() { for _ in $(seq 1 600); do curl -fs "http://$1/readyz" >/dev/null 2>&1 && return; sleep 0.2; done; echo "callgrind: $1 not ready" >&2; exit 1; }

K=${KEYMINT_BIN:-$work/keymint}
[ -n "${KEYMINT_BIN:-}" ] || go build -trimpath -o "$K" ./services/keymint
go build -trimpath -o "$work/load" ./scripts/bench/load
REDIS_URL=$(bash scripts/redis.sh start "$work/redis")
export KEYMINT_DATA_DIR="$work/data" KEYMINT_ARGON2_MEMORY_KIB=64 KEYMINT_ARGON2_TIME=1 KEYMINT_LOG_LEVEL=warn KEYMINT_LOG_FORMAT=text
"$K" migrate >/dev/null 2>&1 || true
printf '%s\n' bench-password | "$K" user create --email bench@example.com --org bench --password-stdin >/dev/null
QUIET=(--usage-flush 1h --cache-l1-ttl 1h --webhook-poll 1h --revocation-poll 10s)
# EXTRA is word-split on purpose: flags.
# shellcheck disable=SC2206
EXTRA=(${CALLGRIND_EXTRA:-})

# A plain server (not under valgrind) mints the tokens and gives each bare
# server the answer it copies; it stops before keymint is measured (one
# SQLite file serves one process).
HTTP=127.0.0.1:$(free_port) GRPC=127.0.0.1:$(free_port)
plain_start() {
  "$K" serve --grpc-addr "$GRPC" --http-addr "$HTTP" --redis-url "$REDIS_URL" "${QUIET[@]}" 2>>"$work/plain.log" &
  PLAIN=$!; pids+=("$PLAIN")
  ready "$HTTP"
}
plain_stop() { kill "$PLAIN"; wait "$PLAIN" 2>/dev/null || true; }
plain_start
"$work/load" mint -http "http://$HTTP" -email bench@example.com -password bench-password -n 100 -out "$work/tokens"
plain_stop
awk '{ c = substr($0, length($0)); print substr($0, 1, length($0) - 1) (c == "a" ? "b" : "a") }' "$work/tokens" >"$work/tokens-malformed"

export GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1
# Each server with its own GOGC default, as in make bench (keymint serve's
# is 400, the bare server's Go's 100). CALLGRIND_GOGC=off counts the calls'
# own work alone: a collection costs ~15M instructions, so one more or
# fewer in the window moves a count by ~600 a call at 24,000 calls.
unset GOGC
[ -z "${CALLGRIND_GOGC:-}" ] || export GOGC=$CALLGRIND_GOGC
# drive N: N calls of the current case to $addr (set by measure).
drive() {
  if [ "$proto" = grpc ]; then
    "$work/load" grpc -addr "$addr" -tokens "$toks" -proto "$gproto" -c "$INFLIGHT" -n "$1"
  else
    python3 scripts/bench/callgrind/client.py "$addr" "$path" "$toks" "$hproto" "$1" 8
  fi
}
# measure NAME READY ADDR CMD...: instructions per call of CMD, driven at
# ADDR once READY (an HTTP address) answers /readyz. A bare server prints
# its address instead, and the plain server it copied its answer from stops.
declare -A IR
measure() {
  local name=$1 readyaddr=$2
  addr=$3; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" "$@" >"$work/$name.out" 2>"$work/$name.log" &
  local p=$!
  pids+=("$p")
  if [[ $name == bare-* ]]; then
    for _ in $(seq 1 300); do [ "$(wc -l <"$work/$name.out")" -ge 1 ] && break; sleep 0.2; done
    addr=$(head -n1 "$work/$name.out")
    plain_stop
  else
    ready "$readyaddr"
  fi
  drive "$WARMUP" 2>/dev/null
  callgrind_control --zero "$p" >/dev/null 2>&1
  drive "$CALLS"
  callgrind_control --dump=measured "$p" >/dev/null 2>&1
  sleep 1
  kill "$p"; wait "$p" 2>/dev/null || true
  local ir
  ir=$(grep -h -m1 '^summary:' "$work/$name.cg".* | awk '{print $2}')
  IR[$name]=$((ir / CALLS))
  printf '%-24s %9d instructions per call\n' "$name" "${IR[$name]}"
}

for c in "${cases[@]}"; do
  toks=$work/tokens path=/v1/tokens:validate proto=http hproto=validate echoproto=validate gproto=validate
  case $c in
    cached) ;;
    malformed) toks=$work/tokens-malformed echoproto=malformed ;;
    forward-auth) path=/v1/forward-auth hproto=forward-auth echoproto=forward-auth ;;
    grpc-validate) proto=grpc ;;
    grpc-check) proto=grpc gproto=authz ;;
    *) echo "callgrind: unknown case $c (cached, malformed, forward-auth, grpc-validate, grpc-check)" >&2; exit 2 ;;
  esac
  KM=127.0.0.1:$(free_port) KMG=127.0.0.1:$(free_port)
  target=$KM
  [ "$proto" = grpc ] && target=$KMG
  measure "keymint-$c" "$KM" "$target" "$K" serve --grpc-addr "$KMG" --http-addr "$KM" \
    --redis-url "$REDIS_URL" "${QUIET[@]}" "${EXTRA[@]}"
  [ "${CALLGRIND_BARE:-1}" != 0 ] || continue
  plain_start
  if [ "$proto" = grpc ]; then
    measure "bare-$c" "" "" "$work/load" grpc-echo -listen 127.0.0.1:0 -from "$GRPC" -tokens "$toks" -proto "$gproto"
  else
    measure "bare-$c" "" "" "$work/load" http-echo -listen 127.0.0.1:0 -from "http://$HTTP$path" -tokens "$toks" -proto "$echoproto"
  fi
  # bare / keymint: calls per CPU-second relative to the bare server's.
  printf '%-24s %9s\n' "ratio-$c" "$(awk -v b="${IR[bare-$c]}" -v k="${IR[keymint-$c]}" 'BEGIN { printf "%.3f", b / k }')"
done
