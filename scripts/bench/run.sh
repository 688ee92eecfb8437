#!/usr/bin/env bash
# make bench: keymint's validation hot path against the machine's limit.
#
# In one run, with the same load program and concurrency, the server pinned
# to one core and the load to another (when taskset is present):
#   grpc-echo / grpc-keymint-l1     bare gRPC vs ValidateToken on cached tokens
#   http-echo / rest-keymint-l1     bare net/http vs POST /v1/tokens:validate
#   grpc-echo-again, http-echo-again
#                                   each echo once more after keymint: the
#                                   echo against itself is the run's noise
#   http-echo-malformed / rest-keymint-malformed
#                                   the same with a malformed token (bad checksum)
#   idle                            keymint serve's RSS after start, before any load
#   grpc-keymint-l1-long            the same for BENCH_LONG (60 s), RSS sampled
#   grpc-*-authz, http-*-fa         ext_authz Check and forward-auth, against bare servers
#   grpc-echo-features / grpc-keymint-features, http-echo-features /
#   rest-keymint-features           the same on tokens with scopes, an expiry
#                                   and a CIDR allow-list (validated with client_ip)
#   grpc-keymint-uses, -rate        tokens with a usage limit or a rate limit:
#                                   every call also takes a use / an event in Redis
#   grpc-echo-l2 / grpc-keymint-l2  L1 off: every call reads Redis (each uncached
#                                   case has its own interleaved bare echo)
#   grpc-keymint-store-STORE        no cache: every call reads the store; with
#                                   the embedded store, a second server on a
#                                   throwaway PostgreSQL too (-store-postgres)
#   flood-base-pN / flood-during-pN gRPC ValidateToken without and during 60
#                                   concurrent wrong-password sign-ins (default
#                                   argon2), peak RSS (flood-signins-pN), at
#                                   GOMAXPROCS 1 and 2
#   grpc-trace-off / grpc-trace-1pct, rest-trace-off / rest-trace-1pct
#                                   BENCH_SCENARIOS=tracing only: ValidateToken
#                                   and REST validate on cached tokens with
#                                   tracing off, then on (--otlp-endpoint, a real
#                                   OTLP receiver: load otlp) sampling 1 % of
#                                   root spans; server CPU per call compared
#
# Environment: BENCH_STORE=sqlite|postgres (default sqlite, the embedded
# store), BENCH_ROUNDS (5), BENCH_DURATION (5s a run), BENCH_LONG (60s), BENCH_CONCURRENCY (50),
# BENCH_TOKENS (100), BENCH_CONNS (gRPC connections, 1), BENCH_SCENARIOS
# (all; or a comma-separated list of cached, malformed, features, authz
# (ext_authz and forward-auth), limits (usage- and rate-limited), long, l2,
# store, flood; rest for the HTTP rows alone: REST validate cached and
# MALFORMED, forward-auth; tracing for the tracing cost alone),
# BENCH_FLOOD_CONCURRENCY (60), BENCH_IDLE_WAIT (3, seconds before the idle
# RSS sample), BENCH_RESULTS (a file to keep the raw results in).
# Postgres and Redis are throwaway instances from scripts/pg.sh and
# scripts/redis.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-5}
LONG=${BENCH_LONG:-60s}
CONC=${BENCH_CONCURRENCY:-50}
NTOKENS=${BENCH_TOKENS:-100}
CONNS=${BENCH_CONNS:-1}
STORE=${BENCH_STORE:-sqlite}
SCENARIOS=${BENCH_SCENARIOS:-all}
FLOOD_CONC=${BENCH_FLOOD_CONCURRENCY:-60}

log() { echo "bench: $*" >&2; }
# want GROUP: whether BENCH_SCENARIOS asks for GROUP (all asks for every
# group but tracing).
want() {
  [ "$SCENARIOS" = all ] || [[ ",$SCENARIOS," == *",$1,"* ]] ||
    { [[ ",$SCENARIOS," == *",rest,"* ]] && [[ " cached malformed authz " == *" $1 "* ]]; }
}
# with_grpc: whether the wanted groups' gRPC rows run too (not for rest).
with_grpc() { [[ ",$SCENARIOS," != *",rest,"* ]]; }

work=$(mktemp -d /tmp/keymint-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

SRV=() LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  SRV=(taskset -c 0) LOAD=(taskset -c 1)
  log "server on CPU 0, load on CPU 1"
else
  log "taskset missing or one CPU: server and load share the machine"
fi
# As root, the measured processes run at a higher priority than anything
# else on the machine (BENCH_NICE, default -10; 0 to leave it), so a
# neighbour's burst of CPU use disturbs a round less.
NICE=${BENCH_NICE:--10}
if [ "$(id -u)" -eq 0 ] && [ "$NICE" != 0 ]; then
  SRV=(nice -n "$NICE" "${SRV[@]}") LOAD=(nice -n "$NICE" "${LOAD[@]}")
fi

log "building"
# keymint runs from a copy of the linker's output, as a deployed binary
# (an image layer, install(1)) is: the linker's own file sits in the page
# cache in large folios, each mapped whole on a fault, which put some 7 MB
# more of the same bytes in the idle RSS (RssFile 37 MB against 30 MB).
go build -trimpath -o "$work/keymint.linked" ./services/keymint
cp "$work/keymint.linked" "$work/keymint" && rm "$work/keymint.linked"
go build -trimpath -o "$work/load" ./scripts/bench/load

REDIS_URL=$(bash scripts/redis.sh start "$work/redis")
export KEYMINT_DATA_DIR="$work/data"
if [ "$STORE" = postgres ]; then
  admin=$(bash scripts/pg.sh start "$work/pg")
  psql -q "$admin" -c 'CREATE DATABASE keymint_bench' >/dev/null
  export KEYMINT_DATABASE_URL=${admin%/postgres*}/keymint_bench?sslmode=disable
  export KEYMINT_PEPPER="1:$(head -c 32 /dev/urandom | base64)"
fi
# Cheap password hashing: the bench mints through the password API.
export KEYMINT_ARGON2_MEMORY_KIB=64 KEYMINT_ARGON2_TIME=1
export KEYMINT_LOG_LEVEL=warn KEYMINT_LOG_FORMAT=text
# keymint serve runs with its own GOGC default (400) unless GOGC is set here;
# the baselines with Go's (100).

"$work/keymint" migrate >/dev/null 2>&1 || true
printf '%s\n' 'bench-password' | "$work/keymint" user create --email bench@example.com --org bench --password-stdin >/dev/null

results=$work/results.jsonl

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# start_keymint NAME ARGS...: starts keymint serve pinned to the server CPU;
# sets KM_PID, KM_GRPC, KM_HTTP.
start_keymint() {
  local name=$1; shift
  KM_GRPC=127.0.0.1:$(free_port) KM_HTTP=127.0.0.1:$(free_port)
  "${SRV[@]}" "$work/keymint" serve --grpc-addr "$KM_GRPC" --http-addr "$KM_HTTP" "$@" 2>"$work/$name.log" &
  KM_PID=$!
  pids+=("$KM_PID")
  for _ in $(seq 1 100); do
    curl -fs "http://$KM_HTTP/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  cat "$work/$name.log" >&2
  echo "keymint ($name) did not become ready" >&2
  exit 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# start_echo KIND ARGS...: starts a bare baseline server; sets ECHO_PID, ECHO_ADDR.
# Each start gets an address file of its own: the shell truncates a reused
# one only once the background child runs, so the loop below could read the
# previous (stopped) server's address first, and the next load was refused.
ECHO_STARTS=0
start_echo() {
  local kind=$1; shift
  ECHO_STARTS=$((ECHO_STARTS + 1))
  local addr="$work/$kind.$ECHO_STARTS.addr"
  "${SRV[@]}" "$work/load" "$kind" "$@" >"$addr" 2>"$work/$kind.log" &
  ECHO_PID=$!
  pids+=("$ECHO_PID")
  for _ in $(seq 1 300); do
    # A whole line only: the address may be half written.
    if [ "$(wc -l <"$addr" 2>/dev/null || echo 0)" -ge 1 ]; then
      ECHO_ADDR=$(head -n1 "$addr")
      return
    fi
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/$kind.log" >&2
  echo "bench: $kind did not start" >&2
  exit 1
}

load() { "${LOAD[@]}" "$work/load" "$@" -tokens "$work/tokens" -c "$CONC" -out "$results" >/dev/null; }

log "keymint with L1 (and Redis), store $STORE"
start_keymint l1 --redis-url "$REDIS_URL"
L1_PID=$KM_PID L1_GRPC=$KM_GRPC L1_HTTP=$KM_HTTP
# Idle RSS: the server after start (readiness answered), before any load.
sleep "${BENCH_IDLE_WAIT:-3}"
"$work/load" rss -pid "$L1_PID" -name idle -out "$results" >/dev/null
"$work/load" mint -http "http://$L1_HTTP" -email bench@example.com -password bench-password -n "$NTOKENS" -out "$work/tokens"

# The validation scenarios (all but the login flood), each group under
# its want, not re-indented; rest runs their HTTP rows alone (with_grpc).
if want cached; then

# The baselines answer with a copy of keymint's own answer (for HTTP, its
# headers too: http-echo-body-only, for reference, sends the body alone). grpc-echo has
# keymint's transport options (stream workers) and none of its work;
# grpc-echo-default is grpc-go's defaults, for reference. They idle on the
# server CPU while the others are measured.
start_echo grpc-echo -from "$L1_GRPC" -tokens "$work/tokens"
GRPC_ECHO_PID=$ECHO_PID GRPC_ECHO=$ECHO_ADDR
start_echo http-echo -from "http://$L1_HTTP/v1/tokens:validate" -tokens "$work/tokens"
HTTP_ECHO_PID=$ECHO_PID HTTP_ECHO=$ECHO_ADDR

# Rounds alternate baseline and keymint, so a neighbour's burst of CPU use
# hits both; the report takes the median of the per-round ratios.
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS: gRPC echo, gRPC keymint, gRPC echo, HTTP echo, REST keymint, HTTP echo ($DURATION each)"
  # Each echo runs again after keymint: the echo against itself, one run
  # apart, is the machine's own noise in this run (the noise rows).
  if with_grpc; then
    load grpc -name grpc-echo -addr "$GRPC_ECHO" -conns "$CONNS" -d "$DURATION" -pid "$GRPC_ECHO_PID"
    load grpc -name grpc-keymint-l1 -addr "$L1_GRPC" -conns "$CONNS" -d "$DURATION" -pid "$L1_PID"
    load grpc -name grpc-echo-again -addr "$GRPC_ECHO" -conns "$CONNS" -d "$DURATION" -pid "$GRPC_ECHO_PID"
  fi
  load http -name http-echo -url "http://$HTTP_ECHO/v1/tokens:validate" -d "$DURATION" -pid "$HTTP_ECHO_PID"
  load http -name rest-keymint-l1 -url "http://$L1_HTTP/v1/tokens:validate" -d "$DURATION" -pid "$L1_PID"
  load http -name http-echo-again -url "http://$HTTP_ECHO/v1/tokens:validate" -d "$DURATION" -pid "$HTTP_ECHO_PID"
done
stop_pid "$GRPC_ECHO_PID"
stop_pid "$HTTP_ECHO_PID"
if with_grpc; then
start_echo grpc-echo -from "$L1_GRPC" -tokens "$work/tokens" -workers 0
log "grpc: bare echo with grpc-go defaults"
load grpc -name grpc-echo-default -addr "$ECHO_ADDR" -conns "$CONNS" -d "$DURATION" -pid "$ECHO_PID"
stop_pid "$ECHO_PID"
start_echo http-echo -from "http://$L1_HTTP/v1/tokens:validate" -tokens "$work/tokens" -body-only
log "rest: bare net/http answering keymint's body without its headers"
load http -name http-echo-body-only -url "http://$ECHO_ADDR/v1/tokens:validate" -d "$DURATION" -pid "$ECHO_PID"
stop_pid "$ECHO_PID"
fi
fi
KM_PID=$L1_PID KM_GRPC=$L1_GRPC

# A malformed token (a real one with its last checksum character changed):
# keymint refuses it without a lookup, so this is HTTP and JSON handling
# alone. The bare server answers keymint's MALFORMED answer.
if want malformed; then
awk '{ c = substr($0, length($0)); print substr($0, 1, length($0) - 1) (c == "a" ? "b" : "a") }' "$work/tokens" >"$work/tokens-malformed"
start_echo http-echo -from "http://$L1_HTTP/v1/tokens:validate" -tokens "$work/tokens-malformed" -proto malformed
HTTP_ECHO_PID=$ECHO_PID HTTP_ECHO=$ECHO_ADDR
loadm() { "${LOAD[@]}" "$work/load" "$@" -tokens "$work/tokens-malformed" -proto malformed -c "$CONC" -out "$results" >/dev/null; }
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS malformed token: HTTP echo, REST keymint ($DURATION each)"
  loadm http -name http-echo-malformed -url "http://$HTTP_ECHO/v1/tokens:validate" -d "$DURATION" -pid "$HTTP_ECHO_PID"
  loadm http -name rest-keymint-malformed -url "http://$L1_HTTP/v1/tokens:validate" -d "$DURATION" -pid "$L1_PID"
done
stop_pid "$HTTP_ECHO_PID"
fi

# Every lifecycle check on the token: scopes, an expiry, a CIDR allow-list
# (validated from an address inside it). Baselines copy that answer.
if want features; then
FEATURE_IP=10.1.2.3
"$work/load" mint -http "http://$L1_HTTP" -email bench@example.com -password bench-password -n "$NTOKENS" \
  -ttl 7776000s -cidrs 10.0.0.0/8,192.168.0.0/16 -out "$work/tokens-features"
start_echo grpc-echo -from "$L1_GRPC" -tokens "$work/tokens-features" -client-ip "$FEATURE_IP"
GRPC_ECHO_PID=$ECHO_PID GRPC_ECHO=$ECHO_ADDR
start_echo http-echo -from "http://$L1_HTTP/v1/tokens:validate" -tokens "$work/tokens-features" -client-ip "$FEATURE_IP"
HTTP_ECHO_PID=$ECHO_PID HTTP_ECHO=$ECHO_ADDR
loadf() { "${LOAD[@]}" "$work/load" "$@" -tokens "$work/tokens-features" -client-ip "$FEATURE_IP" -c "$CONC" -out "$results" >/dev/null; }
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS with scopes+expiry+allow-list: gRPC echo, gRPC keymint, HTTP echo, REST keymint ($DURATION each)"
  loadf grpc -name grpc-echo-features -addr "$GRPC_ECHO" -conns "$CONNS" -d "$DURATION" -pid "$GRPC_ECHO_PID"
  loadf grpc -name grpc-keymint-features -addr "$L1_GRPC" -conns "$CONNS" -d "$DURATION" -pid "$L1_PID"
  loadf http -name http-echo-features -url "http://$HTTP_ECHO/v1/tokens:validate" -d "$DURATION" -pid "$HTTP_ECHO_PID"
  loadf http -name rest-keymint-features -url "http://$L1_HTTP/v1/tokens:validate" -d "$DURATION" -pid "$L1_PID"
done
stop_pid "$GRPC_ECHO_PID"
stop_pid "$HTTP_ECHO_PID"
fi

# The sidecar protocols on cached tokens: Envoy ext_authz Check on the gRPC
# port and nginx/Traefik forward-auth on the HTTP port, each against a bare
# server answering with a copy of keymint's answer.
if want authz; then
start_echo grpc-echo -from "$L1_GRPC" -tokens "$work/tokens" -proto authz
GRPC_ECHO_PID=$ECHO_PID GRPC_ECHO=$ECHO_ADDR
start_echo http-echo -from "http://$L1_HTTP/v1/forward-auth" -tokens "$work/tokens" -proto forward-auth
HTTP_ECHO_PID=$ECHO_PID HTTP_ECHO=$ECHO_ADDR
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS sidecar protocols: ext_authz echo, ext_authz keymint, forward-auth echo, forward-auth keymint ($DURATION each)"
  if with_grpc; then
    load grpc -name grpc-echo-authz -proto authz -addr "$GRPC_ECHO" -conns "$CONNS" -d "$DURATION" -pid "$GRPC_ECHO_PID"
    load grpc -name grpc-keymint-authz -proto authz -addr "$L1_GRPC" -conns "$CONNS" -d "$DURATION" -pid "$L1_PID"
  fi
  load http -name http-echo-fa -proto forward-auth -url "http://$HTTP_ECHO/v1/forward-auth" -d "$DURATION" -pid "$HTTP_ECHO_PID"
  load http -name http-keymint-fa -proto forward-auth -url "http://$L1_HTTP/v1/forward-auth" -d "$DURATION" -pid "$L1_PID"
done
stop_pid "$GRPC_ECHO_PID"
stop_pid "$HTTP_ECHO_PID"
fi

# Usage- and rate-limited tokens cannot be answered from the cache alone:
# each call takes a use (a Lua script on a Redis counter leased from the
# store) or a GCRA event (redis_rate). Measured apart, for reference.
if want limits; then
"$work/load" mint -http "http://$L1_HTTP" -email bench@example.com -password bench-password -n "$NTOKENS" \
  -uses 1000000000000 -out "$work/tokens-uses"
"$work/load" mint -http "http://$L1_HTTP" -email bench@example.com -password bench-password -n "$NTOKENS" \
  -rate 1000000/1s -out "$work/tokens-rate"
log "grpc: usage-limited tokens, then rate-limited tokens ($DURATION each)"
"${LOAD[@]}" "$work/load" grpc -name grpc-keymint-uses -tokens "$work/tokens-uses" -addr "$L1_GRPC" -conns "$CONNS" \
  -c "$CONC" -d "$DURATION" -pid "$L1_PID" -out "$results" >/dev/null
"${LOAD[@]}" "$work/load" grpc -name grpc-keymint-rate -tokens "$work/tokens-rate" -addr "$L1_GRPC" -conns "$CONNS" \
  -c "$CONC" -d "$DURATION" -pid "$L1_PID" -out "$results" >/dev/null
fi

if want long; then
log "grpc: keymint ValidateToken for $LONG, RSS sampled"
# keymint serve's own RSS: its hash worker, idle since the mint, exits
# 30 s after its last hash, inside the window, and would read as a fall.
load grpc -name grpc-keymint-l1-long -addr "$KM_GRPC" -conns "$CONNS" -d "$LONG" -pid "$KM_PID" -rss-self
fi
stop_pid "$KM_PID"

# uncached NAME TOKENS: ROUNDS rounds of a bare gRPC echo (answering a copy
# of this server's answer) and keymint at $KM_GRPC, interleaved like the
# cached cases, so a neighbour's burst hits both sides of the ratio.
uncached() {
  local name=$1 toks=$2
  start_echo grpc-echo -from "$KM_GRPC" -tokens "$toks"
  for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS $name: gRPC echo, gRPC keymint ($DURATION each)"
    "${LOAD[@]}" "$work/load" grpc -name "grpc-echo-$name" -tokens "$toks" -addr "$ECHO_ADDR" -conns "$CONNS" \
      -c "$CONC" -d "$DURATION" -pid "$ECHO_PID" -out "$results" >/dev/null
    "${LOAD[@]}" "$work/load" grpc -name "grpc-keymint-$name" -tokens "$toks" -addr "$KM_GRPC" -conns "$CONNS" \
      -c "$CONC" -d "$DURATION" -pid "$KM_PID" -out "$results" >/dev/null
  done
  stop_pid "$ECHO_PID"
}

if want l2; then
log "grpc: keymint with L1 off, Redis L2"
start_keymint l2 --redis-url "$REDIS_URL" --cache-l1-size 0
uncached l2 "$work/tokens"
stop_pid "$KM_PID"
fi

if want store; then
log "grpc: keymint with no cache ($STORE)"
start_keymint store --cache-l1-size 0
uncached "store-$STORE" "$work/tokens"
stop_pid "$KM_PID"
fi

if want store && [ "$STORE" != postgres ]; then
  # #18's store target is PostgreSQL's: a second server on a throwaway one
  # (its own database, pepper and tokens), no cache.
  log "grpc: keymint with no cache (postgres)"
  admin=$(bash scripts/pg.sh start "$work/pg")
  psql -q "$admin" -c 'CREATE DATABASE keymint_bench' >/dev/null
  SAVED_DATA_DIR=$KEYMINT_DATA_DIR
  export KEYMINT_DATABASE_URL=${admin%/postgres*}/keymint_bench?sslmode=disable
  export KEYMINT_PEPPER="1:$(head -c 32 /dev/urandom | base64)" KEYMINT_DATA_DIR="$work/data-pg"
  "$work/keymint" migrate >/dev/null 2>&1 || true
  printf '%s\n' 'bench-password' | "$work/keymint" user create --email bench@example.com --org bench --password-stdin >/dev/null
  start_keymint store-pg --cache-l1-size 0
  "$work/load" mint -http "http://$KM_HTTP" -email bench@example.com -password bench-password -n "$NTOKENS" -out "$work/tokens-pg"
  uncached store-postgres "$work/tokens-pg"
  stop_pid "$KM_PID"
  unset KEYMINT_DATABASE_URL KEYMINT_PEPPER
  export KEYMINT_DATA_DIR=$SAVED_DATA_DIR
  bash scripts/pg.sh stop "$work/pg" >/dev/null
fi

# Tracing cost: the same server with tracing off, then on at 1 % sampling
# (parentbased_traceidratio: the load sends no traceparent, so 1 % of the
# calls start a sampled trace) exporting to a real OTLP/gRPC receiver on
# the load's CPU. One SQLite file cannot serve two processes, so each run
# starts its own server; rounds alternate off and on.
if [ "$SCENARIOS" = tracing ]; then
  "${LOAD[@]}" "$work/load" otlp >"$work/otlp.addr" 2>"$work/otlp.log" &
  OTLP_PID=$!
  pids+=("$OTLP_PID")
  for _ in $(seq 1 100); do
    OTLP_ADDR=$(head -n1 "$work/otlp.addr" 2>/dev/null || true)
    [ -n "$OTLP_ADDR" ] && break
    sleep 0.1
  done
  [ -n "$OTLP_ADDR" ] || { cat "$work/otlp.log" >&2; exit 1; }
  for round in $(seq 1 "$ROUNDS"); do
    for mode in off 1pct; do
      log "round $round/$ROUNDS tracing $mode: gRPC ValidateToken, REST validate ($DURATION each)"
      if [ "$mode" = off ]; then
        start_keymint trace-$mode --redis-url "$REDIS_URL"
      else
        export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
        start_keymint trace-$mode --redis-url "$REDIS_URL" --otlp-endpoint "http://$OTLP_ADDR"
        unset OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG
      fi
      load grpc -name grpc-trace-$mode -addr "$KM_GRPC" -conns "$CONNS" -d "$DURATION" -pid "$KM_PID"
      load http -name rest-trace-$mode -url "http://$KM_HTTP/v1/tokens:validate" -d "$DURATION" -pid "$KM_PID"
      stop_pid "$KM_PID"
    done
  done
  stop_pid "$OTLP_PID"
  log "$(cat "$work/otlp.log")"
fi

# Login flood: gRPC validation of cached tokens without, then during,
# FLOOD_CONC concurrent wrong-password sign-ins (half a known account, half
# unknown emails) at keymint's default argon2 settings (64 MiB, t=2, a
# 256 MiB budget), sign-in throttling off (an attacker with many addresses
# and accounts), and the server's RSS sampled every 100 ms. The server runs
# at GOMAXPROCS 1, then 2, unpinned (it has the CPUs GOMAXPROCS says; the
# load shares them), at the same priority as the load.
SAVED_SRV=("${SRV[@]}")
for procs in 1 2; do
  want flood || break
  SRV=(env GOMAXPROCS="$procs")
  if [ "$(id -u)" -eq 0 ] && [ "$NICE" != 0 ]; then SRV=(nice -n "$NICE" "${SRV[@]}"); fi
  log "login flood at GOMAXPROCS=$procs: validation without, then during $FLOOD_CONC sign-ins in flight ($DURATION each)"
  start_keymint flood-p$procs --redis-url "$REDIS_URL" --argon2-memory-kib 65536 --argon2-time 2 --argon2-budget-mib 256 \
    --signin-account-limit off --signin-ip-limit off
  "$work/load" grpc -name flood-base-p$procs -addr "$KM_GRPC" -tokens "$work/tokens" -c "$CONC" -d "$DURATION" -pid "$KM_PID" -out "$results" >/dev/null
  "$work/load" flood -name flood-signins-p$procs -url "http://$KM_HTTP/api-tokens" -c "$FLOOD_CONC" -pid "$KM_PID" -out "$results" >/dev/null &
  FLOOD_PID=$!
  pids+=("$FLOOD_PID")
  "$work/load" grpc -name flood-during-p$procs -addr "$KM_GRPC" -tokens "$work/tokens" -c "$CONC" -d "$DURATION" -pid "$KM_PID" -out "$results" >/dev/null
  kill -TERM "$FLOOD_PID"
  wait "$FLOOD_PID" || true
  stop_pid "$KM_PID"
done
SRV=("${SAVED_SRV[@]}")

echo
echo "keymint bench: store=$STORE concurrency=$CONC tokens=$NTOKENS grpc-conns=$CONNS rounds=$ROUNDS duration=$DURATION cpus=$(nproc) pinned=$([ ${#SRV[@]} -gt 0 ] && echo yes || echo no)"
# BENCH_RESULTS=FILE keeps the raw results (JSON lines) for `load report FILE`.
if [ -n "${BENCH_RESULTS:-}" ]; then cp "$results" "$BENCH_RESULTS"; fi
"$work/load" report "$results"
