#!/usr/bin/env bash
# Revocation propagation under faults (not part of make test): see main.go.
#   bash scripts/chaos/run.sh [-redis standalone|cluster|sentinel|netns|none] [-rounds N] [-faults a,b]
# Faults: baseline, redis-down, redis-sigstop (standalone), sentinel-failover
# (sentinel), cluster-failover (cluster), replica-kill (any), and with
# -redis netns (root: Redis in a network namespace over a veth pair)
# redis-partition (the link down: packets dropped silently both ways) and
# redis-congested (tbf, 8 kbit/s with a 2 KiB queue: drops and delay).
# Random packet loss needs sch_netem, which this machine's kernel lacks
# (no modules; no tc classifiers/actions, no iptables either).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./scripts/chaos "$@"
