#!/usr/bin/env bash
# Throwaway Redis Sentinel set for tests: a master, one replica and three
# sentinels (quorum 2, a master is down after 1 s) on free loopback ports,
# never the machine's own Redis.
#
#   scripts/redis-sentinel.sh start DIR   start them in DIR/{master,replica,sentinel-N};
#                                         prints the redis+sentinel:// URL (master
#                                         name "keymint") and nothing else on stdout
#   scripts/redis-sentinel.sh stop DIR    stop every process and remove DIR
#
# Pids are in DIR/*/redis.pid and ports in DIR/*/port, so a test can SIGSTOP
# the master and watch the sentinels fail over. No persistence.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/redis-lib.sh
source "$here/redis-lib.sh"
marker=.keymint-redis-sentinel

start() {
  local dir=$1
  [ -e "$dir/$marker" ] && die "$dir already holds a sentinel set; run: $0 stop $dir"
  need_redis
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  touch "$dir/$marker"
  local master replica i port sentinels=()
  master=$(start_node "$dir/master")
  replica=$(start_node "$dir/replica" --replicaof 127.0.0.1 "$master")
  for i in $(seq 1 100); do
    redis-cli -p "$replica" info replication 2>/dev/null | tr -d '\r' | grep -q '^master_link_status:up' && break
    [ "$i" = 100 ] && die "replica never synced"
    sleep 0.1
  done
  for i in 1 2 3; do
    mkdir -p "$dir/sentinel-$i"
    cat >"$dir/sentinel-$i/sentinel.conf" <<CONF
sentinel monitor keymint 127.0.0.1 $master 2
sentinel down-after-milliseconds keymint 1000
sentinel failover-timeout keymint 5000
sentinel parallel-syncs keymint 1
CONF
    port=$(start_node "$dir/sentinel-$i" --sentinel-conf "$dir/sentinel-$i/sentinel.conf")
    sentinels+=("127.0.0.1:$port")
  done
  # Ready when every sentinel knows the master and the other two.
  for i in $(seq 1 150); do
    local ok=0 s
    for s in "${sentinels[@]}"; do
      [ "$(redis-cli -p "${s#*:}" sentinel master keymint 2>/dev/null | tr -d '\r' | sed -n '/^num-other-sentinels$/{n;p}')" = 2 ] && ok=$((ok + 1))
    done
    if [ "$ok" = 3 ]; then
      local IFS=,
      echo "redis+sentinel://${sentinels[*]}/keymint"
      return
    fi
    sleep 0.1
  done
  die "sentinels never saw each other"
}

case "${1:-}:${2:-}" in
  start:?*) start "$2" ;;
  stop:?*) stop_all "$2" "$marker" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
