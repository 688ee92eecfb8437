#!/usr/bin/env bash
# Revocation propagation under faults (not part of make test): see main.go.
#   bash scripts/chaos/run.sh [-redis standalone|cluster|sentinel|none] [-rounds N] [-faults a,b]
# Faults: baseline, redis-down, redis-sigstop (standalone), sentinel-failover
# (sentinel), cluster-failover (cluster), replica-kill (any). Packet loss
# needs tc netem or iptables, which this machine lacks.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go run ./scripts/chaos "$@"
