#!/usr/bin/env bash
# Throwaway PostgreSQL for tests, never the machine's own server.
#
#   scripts/pg.sh start DIR   initdb + start in DIR on a free loopback port;
#                             prints the admin URL (and nothing else) on stdout
#   scripts/pg.sh stop DIR    stop it and remove DIR
#
# Durability is switched off (fsync, synchronous_commit, full_page_writes):
# the data is thrown away, and tests create and drop a database each.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
log() { echo "pg.sh: $*" >&2; }

marker=.keymint-pg # proves DIR is ours before stop removes it

# find_bin sets BIN to the directory holding initdb, pg_ctl and pg_isready.
# Debian keeps them off PATH under /usr/lib/postgresql/<version>/bin.
find_bin() {
  local v
  v=$(ls -1 /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -V | tail -n1 || true)
  if [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
    BIN=/usr/lib/postgresql/$v/bin
  elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    BIN=$(dirname "$(command -v initdb)")
  else
    return 1
  fi
}

install_postgres() {
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and we are not root; install it (apt-get install postgresql)"
  log "installing PostgreSQL with apt-get"
  # Debian's postinst may create and start its own cluster; that one is not
  # ours and we never use it.
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y postgresql >&2
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

# as_owner runs a command as the user who owns the cluster: postgres refuses
# to run as root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=$1
  [ -e "$dir/$marker" ] && die "$dir already holds a server; run: $0 stop $dir"
  find_bin || { install_postgres; find_bin || die "no initdb found after installing PostgreSQL"; }
  log "using $BIN"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  touch "$dir/$marker"
  if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
    fi
    chown -R postgres: "$dir"
    as_owner test -w "$dir" || die "user postgres cannot reach $dir (a parent directory is closed); use a directory under /tmp"
  fi
  cd "$dir" # postgres warns if it cannot read the working directory

  as_owner "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >&2
  cat >>"$dir/data/postgresql.conf" <<EOF
# scripts/pg.sh: a throwaway test server
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

  local port attempt
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    if as_owner "$BIN/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "-p $port" >&2; then
      break
    fi
    log "start on port $port failed (attempt $attempt); see $dir/postgres.log"
    tail -n 5 "$dir/postgres.log" >&2 || true
    port=
  done
  [ -n "$port" ] || die "could not start PostgreSQL"

  local i
  for i in $(seq 1 100); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
      echo "$port" >"$dir/port"
      echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      return
    fi
    sleep 0.1
  done
  die "PostgreSQL on port $port did not become ready; see $dir/postgres.log"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || { log "$dir does not exist; nothing to stop"; return; }
  [ -e "$dir/$marker" ] || die "$dir was not made by $0 start; not removing it"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/data/postmaster.pid" ]; then
    find_bin || die "cannot find pg_ctl to stop $dir"
    cd "$dir"
    as_owner "$BIN/pg_ctl" stop -D "$dir/data" -m immediate -w >&2 || log "pg_ctl stop failed; removing $dir anyway"
    cd /
  fi
  rm -rf "$dir"
}

case "${1:-}:${2:-}" in
  start:?*) start "$2" ;;
  stop:?*) stop "$2" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
