#!/usr/bin/env bash
# Throwaway Redis Cluster for tests: three masters (and, with REPLICAS=1,
# one replica each) on free loopback ports, never the machine's own Redis.
#
#   scripts/redis-cluster.sh start DIR   start the nodes in DIR/node-N, create the
#                                        cluster; prints its redis+cluster:// URL
#                                        (and nothing else) on stdout
#   scripts/redis-cluster.sh stop DIR    stop every node and remove DIR
#
# Each node's pid is in DIR/node-N/redis.pid and its port in DIR/node-N/port,
# so a test can SIGSTOP or kill one. No persistence.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/redis-lib.sh
source "$here/redis-lib.sh"
marker=.keymint-redis-cluster

start() {
  local dir=$1 replicas=${REPLICAS:-0}
  [ -e "$dir/$marker" ] && die "$dir already holds a cluster; run: $0 stop $dir"
  need_redis
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  touch "$dir/$marker"
  local n=$((3 * (1 + replicas))) i addrs=() port
  for i in $(seq 1 "$n"); do
    port=$(start_node "$dir/node-$i" --cluster-enabled yes --cluster-config-file "$dir/node-$i/nodes.conf" \
      --cluster-node-timeout 1000)
    addrs+=("127.0.0.1:$port")
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 ||
    { cat "$dir/create.log" >&2; die "cluster create failed"; }
  for i in $(seq 1 100); do
    if [ "$(redis-cli -p "${addrs[0]#*:}" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p')" = ok ]; then
      local IFS=,
      echo "redis+cluster://${addrs[*]}"
      return
    fi
    sleep 0.1
  done
  die "cluster never reached cluster_state:ok"
}

case "${1:-}:${2:-}" in
  start:?*) start "$2" ;;
  stop:?*) stop_all "$2" "$marker" ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
