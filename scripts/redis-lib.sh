# Shared by scripts/redis-cluster.sh and scripts/redis-sentinel.sh (sourced).

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

need_redis() {
  command -v redis-server >/dev/null || die "redis-server is not installed (scripts/install-deps.sh installs it)"
  command -v redis-cli >/dev/null || die "redis-cli is not installed (it comes with redis-server)"
}

# free_port prints a loopback port nobody listens on (start_node retries if
# another process takes it first).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# start_node DIR [--sentinel-conf FILE] [redis-server options...] starts one
# redis-server (or sentinel) in DIR on a free port and prints the port once
# it answers PING. Retries on a port taken meanwhile.
start_node() {
  local dir=$1 attempt i port conf=()
  shift
  if [ "${1:-}" = --sentinel-conf ]; then
    conf=("$2" --sentinel)
    shift 2
  fi
  mkdir -p "$dir"
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    rm -f "$dir/redis.pid"
    redis-server "${conf[@]}" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" "$@" >&2
    # Up to 30 s: on a loaded machine (a whole suite under -race starting
    # clusters side by side) a node can take several seconds to answer. A
    # node that died (its port taken meanwhile) is retried on another port
    # at once.
    for i in $(seq 1 300); do
      if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
        echo "$port" >"$dir/port"
        echo "$port"
        return
      fi
      if [ -f "$dir/redis.pid" ] && ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        break
      fi
      if [ "$i" -ge 50 ] && [ ! -f "$dir/redis.pid" ]; then
        break # never got as far as its pid file
      fi
      sleep 0.1
    done
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  die "could not start redis-server in $dir"
}

# stop_all DIR MARKER stops every process under DIR (a paused one too) and
# removes DIR, which must carry MARKER.
stop_all() {
  local dir=$1 marker=$2 pidfile pid i
  [ -d "$dir" ] || return 0
  [ -e "$dir/$marker" ] || die "$dir was not made by $0 start; not removing it"
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  for pidfile in "$dir"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
