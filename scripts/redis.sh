#!/usr/bin/env bash
# Throwaway Redis for tests, never the machine's own server.
#
#   scripts/redis.sh start DIR   start redis-server in DIR on a free loopback
#                                port; prints its URL (and nothing else) on stdout
#   scripts/redis.sh stop DIR    stop it and remove DIR
#
# No persistence (--save "", --appendonly no): the data is thrown away.
set -euo pipefail

die() { echo "redis.sh: $*" >&2; exit 1; }
log() { echo "redis.sh: $*" >&2; }

marker=.keymint-redis # proves DIR is ours before stop removes it

install_redis() {
  [ "$(id -u)" -eq 0 ] || die "redis-server is not installed and we are not root; install it (apt-get install redis-server)"
  log "installing redis-server with apt-get"
  # Debian's postinst starts its own server on 6379; that one is not ours.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y redis-server >&2
}

# free_port prints a loopback port nobody listens on. The kernel picks it
# (bind to port 0); start retries if another process grabs it first.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    # A refused connection means the port is free.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# ping reports whether a Redis answers PONG on port.
ping() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 1 reply <&3 || true
  exec 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

start() {
  local dir=$1
  [ -e "$dir/$marker" ] && die "$dir already holds a server; run: $0 stop $dir"
  command -v redis-server >/dev/null || install_redis
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  touch "$dir/$marker"

  local port attempt i
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" >&2
    for i in $(seq 1 50); do
      if ping "$port" 2>/dev/null; then
        echo "$port" >"$dir/port"
        echo "redis://127.0.0.1:$port/0"
        return
      fi
      sleep 0.1
    done
    log "redis-server on port $port did not answer (attempt $attempt); see $dir/redis.log"
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  die "could not start redis-server"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || { log "$dir does not exist; nothing to stop"; return; }
  [ -e "$dir/$marker" ] || die "$dir was not made by $0 start; not removing it"
  if [ -f "$dir/redis.pid" ]; then
    local pid i
    pid=$(cat "$dir/redis.pid")
    if kill "$pid" 2>/dev/null; then
      for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    fi
  fi
  rm -rf "$dir"
}

case "${1:-}:${2:-}" in
  start:?*) start "$2" ;;
  stop:?*) stop "$2" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
