#!/usr/bin/env bash
# A throwaway PostgreSQL primary with a streaming standby, for failover and
# read-replica tests; never the machine's own server.
#
#   scripts/pg-standby.sh start DIR     initdb a primary, pg_basebackup -R a standby
#                                       from it, both on free loopback ports; prints
#                                       two lines: the primary's URL, the standby's URL
#   scripts/pg-standby.sh kill-primary DIR   crash the primary (immediate shutdown)
#   scripts/pg-standby.sh promote DIR   promote the standby to primary (waits)
#   scripts/pg-standby.sh stop-standby DIR   stop the standby (fast shutdown)
#   scripts/pg-standby.sh start-standby DIR  start it again on its port
#   scripts/pg-standby.sh pause-standby DIR  freeze the standby (SIGSTOP its postmaster
#                                       and every backend: a hung host; connections are
#                                       accepted by the kernel, nothing is answered)
#   scripts/pg-standby.sh resume-standby DIR thaw it (SIGCONT)
#   scripts/pg-standby.sh stop DIR      stop both and remove DIR
#
# Replication is synchronous (synchronous_standby_names = 'FIRST 1 (standby1)',
# synchronous_commit = on): the primary confirms a commit only once the
# standby has flushed its WAL, so a commit keymint answered for survives a
# failover to the standby. fsync is off on both (the data is thrown away; a
# killed process, not a lost machine, is the fault under test).
set -euo pipefail

die() { echo "pg-standby.sh: $*" >&2; exit 1; }
log() { echo "pg-standby.sh: $*" >&2; }

marker=.keymint-pg-standby # proves DIR is ours before stop removes it

find_bin() {
  local v
  v=$(ls -1 /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+(\.[0-9]+)?$' | sort -V | tail -n1 || true)
  if [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/pg_basebackup" ]; then
    BIN=/usr/lib/postgresql/$v/bin
  elif command -v pg_basebackup >/dev/null && command -v pg_ctl >/dev/null; then
    BIN=$(dirname "$(command -v pg_ctl)")
  else
    die "PostgreSQL server binaries not found (scripts/install-deps.sh installs them)"
  fi
}

# free_port prints a loopback port nobody listens on (as scripts/pg.sh).
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

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

wait_ready() {
  local port=$1 i
  for i in $(seq 1 300); do
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then return 0; fi
    sleep 0.1
  done
  return 1
}

psql_at() { "$BIN/psql" -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }

start_one() { # start_one NAME: start DIR/NAME on the port in DIR/NAME.port
  local name=$1 port
  port=$(cat "$DIR/$name.port")
  as_owner "$BIN/pg_ctl" start -D "$DIR/$name" -l "$DIR/$name.log" -w -t 120 -o "-p $port" >&2 ||
    { tail -n 20 "$DIR/$name.log" >&2; die "$name did not start; see $DIR/$name.log"; }
  wait_ready "$port" || die "$name on port $port did not become ready"
}

start() {
  [ -e "$DIR/$marker" ] && die "$DIR already holds servers; run: $0 stop $DIR"
  find_bin
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  touch "$DIR/$marker"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 ||
      useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin postgres
    chown -R postgres: "$DIR"
    as_owner test -w "$DIR" || die "user postgres cannot reach $DIR; use a directory under /tmp"
  fi
  cd "$DIR"

  as_owner "$BIN/initdb" -D "$DIR/primary" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >&2
  cat >>"$DIR/primary/postgresql.conf" <<CONF
# scripts/pg-standby.sh: a throwaway primary
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
max_connections = 200
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = '256MB'
hot_standby = on
synchronous_commit = on
synchronous_standby_names = 'FIRST 1 (standby1)'
CONF
  free_port >"$DIR/primary.port"
  start_one primary
  local pport sport
  pport=$(cat "$DIR/primary.port")

  # -R writes primary_conninfo and standby.signal; cluster_name is the
  # application_name the primary's synchronous_standby_names names.
  as_owner "$BIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$DIR/standby" -R -X stream --no-sync >&2
  cat >>"$DIR/standby/postgresql.conf" <<CONF
# the standby
cluster_name = 'standby1'
# Promoted, it has no standby of its own to wait for.
synchronous_standby_names = ''
hot_standby_feedback = on
CONF
  free_port >"$DIR/standby.port"
  start_one standby
  sport=$(cat "$DIR/standby.port")

  # Ready when the primary streams to the standby synchronously.
  local i state=""
  for i in $(seq 1 300); do
    state=$(psql_at "$pport" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'" || true)
    [ "$state" = sync ] && break
    sleep 0.1
  done
  [ "$state" = sync ] || die "the standby never became a synchronous streaming replica; see $DIR/*.log"
  url "$pport"
  url "$sport"
}

kill_primary() {
  find_bin
  as_owner "$BIN/pg_ctl" stop -D "$DIR/primary" -m immediate -w >&2
}

promote() {
  find_bin
  as_owner "$BIN/pg_ctl" promote -D "$DIR/standby" -w -t 120 >&2
}

stop_standby() {
  find_bin
  as_owner "$BIN/pg_ctl" stop -D "$DIR/standby" -m fast -w >&2
}

start_standby() {
  find_bin
  start_one standby
}

# signal_standby SIG: the standby's postmaster and all its children.
signal_standby() {
  local pid
  pid=$(head -n1 "$DIR/standby/postmaster.pid" 2>/dev/null) || die "the standby is not running"
  kill -"$1" "$pid" $(pgrep -P "$pid") || die "kill -$1 the standby failed"
}

stop() {
  [ -d "$DIR" ] || { log "$DIR does not exist; nothing to stop"; return; }
  [ -e "$DIR/$marker" ] || die "$DIR was not made by $0 start; not removing it"
  DIR=$(cd "$DIR" && pwd)
  find_bin
  cd "$DIR"
  # A paused standby would never act on pg_ctl's signal.
  ( signal_standby CONT ) 2>/dev/null || true
  local n
  for n in standby primary; do
    if [ -f "$DIR/$n/postmaster.pid" ]; then
      as_owner "$BIN/pg_ctl" stop -D "$DIR/$n" -m immediate -w >&2 || log "pg_ctl stop $n failed"
    fi
  done
  cd /
  rm -rf "$DIR"
}

DIR=${2:-}
[ -n "$DIR" ] || { echo "usage: $0 start|kill-primary|promote|stop-standby|start-standby|pause-standby|resume-standby|stop DIR" >&2; exit 2; }
case "$1" in
  start) start ;;
  kill-primary) kill_primary ;;
  promote) promote ;;
  stop-standby) stop_standby ;;
  start-standby) start_standby ;;
  pause-standby) signal_standby STOP ;;
  resume-standby) signal_standby CONT ;;
  stop) stop ;;
  *) echo "usage: $0 start|kill-primary|promote|stop-standby|start-standby|pause-standby|resume-standby|stop DIR" >&2; exit 2 ;;
esac
