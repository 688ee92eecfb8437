#!/usr/bin/env bash
# Throwaway Redis in a network namespace of its own, reached over a veth
# pair, so that a test can cut the network between keymint and Redis while
# both keep running (root only; never the machine's own server).
#
#   scripts/redis-netns.sh start DIR      make the namespace and the veth pair, start
#                                         redis-server inside; prints its URL on stdout
#   scripts/redis-netns.sh partition DIR  the namespace's end of the link down: the host
#                                         end loses its carrier and drops every packet
#                                         silently, both ways (connections stay open)
#   scripts/redis-netns.sh heal DIR       the link up again
#   scripts/redis-netns.sh stop DIR       kill Redis, delete the namespace, remove DIR
#
# Random packet loss (sch_netem) is not offered: the kernel this was written
# on has no netem, no tc classifiers or actions and no iptables; link state
# is what it allows.
set -euo pipefail

die() { echo "redis-netns.sh: $*" >&2; exit 1; }

marker=.keymint-redis-netns # proves DIR is ours before stop removes it

start() {
  [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
  command -v redis-server >/dev/null || die "redis-server is not installed"
  [ -e "$DIR/$marker" ] && die "$DIR already holds a server; run: $0 stop $DIR"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  touch "$DIR/$marker"
  # A name, a /30 and veth names (at most 15 bytes) nobody else uses.
  local id ns a b host peer attempt
  for attempt in $(seq 1 20); do
    id=$(( (RANDOM << 15 | RANDOM) % 16000 ))
    a=$((id / 63 + 1)) b=$(( (id % 63) * 4 ))
    ns=kmredis-$id host=kmr${id}h peer=kmr${id}n
    ip netns list | grep -qw "$ns" && continue
    ip -o addr | grep -q " 10\.251\.$a\.$((b + 1))/" && continue
    ip netns add "$ns" && break
    ns=
  done
  [ -n "$ns" ] || die "no free namespace name"
  echo "$ns $host $peer" >"$DIR/netns"
  ip link add "$host" type veth peer name "$peer"
  ip link set "$peer" netns "$ns"
  ip addr add "10.251.$a.$((b + 1))/30" dev "$host"
  ip link set "$host" up
  ip netns exec "$ns" ip addr add "10.251.$a.$((b + 2))/30" dev "$peer"
  ip netns exec "$ns" ip link set "$peer" up
  ip netns exec "$ns" ip link set lo up
  local addr=10.251.$a.$((b + 2)) port=6390 i
  ip netns exec "$ns" redis-server --port "$port" --bind "$addr" --protected-mode no --save "" --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --dir "$DIR" --logfile "$DIR/redis.log" >&2
  for i in $(seq 1 50); do
    if [ "$(redis-cli -h "$addr" -p "$port" ping 2>/dev/null)" = PONG ]; then
      echo "redis://$addr:$port/0"
      return
    fi
    sleep 0.1
  done
  die "redis-server in $ns did not answer; see $DIR/redis.log"
}

# names sets NS, HOST and PEER from DIR.
names() {
  [ -e "$DIR/$marker" ] || die "$DIR was not made by $0 start"
  read -r NS HOST PEER <"$DIR/netns"
}

stop() {
  [ -d "$DIR" ] || return 0
  [ -e "$DIR/$marker" ] || die "$DIR was not made by $0 start; not removing it"
  if [ -f "$DIR/netns" ]; then
    names
    [ -f "$DIR/redis.pid" ] && kill -KILL "$(cat "$DIR/redis.pid")" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true # deletes the veth pair with it
    ip link del "$HOST" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}

DIR=${2:-}
[ -n "$DIR" ] || { echo "usage: $0 start|partition|heal|stop DIR" >&2; exit 2; }
case "$1" in
  start) start ;;
  partition) names; ip netns exec "$NS" ip link set "$PEER" down ;;
  heal) names; ip netns exec "$NS" ip link set "$PEER" up ;;
  stop) stop ;;
  *) echo "usage: $0 start|partition|heal|stop DIR" >&2; exit 2 ;;
esac
