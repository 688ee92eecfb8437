#!/usr/bin/env bash
# Installs the Debian packages keymint's tests need, only when missing:
# PostgreSQL server binaries, redis-server, nginx and caddy for the
# forward-auth proxy tests (they run the configurations in deploy/),
# chromium (headless) for the web page's browser test, curl for the
# introspection test, and Node with npm for the TypeScript client.
# Go tools come from go.mod.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
# Debian's caddy package (2.6 on bookworm); its service is not started here.
command -v caddy >/dev/null 2>&1 || need+=(caddy)
[ -x /usr/bin/chromium ] || need+=(chromium)
# curl: the introspection test calls the endpoint the way operators do.
command -v curl >/dev/null 2>&1 || need+=(curl)
# Node and npm: the TypeScript client's generation and its node --test run.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
