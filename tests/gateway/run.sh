#!/usr/bin/env bash
# The built-in proxy gateway with real software on both sides: upstreams are
# PyPI proxy.py (HTTP proxy with --basic-auth) and pproxy (SOCKS5 and HTTP
# with a login) run by the suite; clients are curl (HTTP proxy and SOCKS5),
# Python requests and httpx, and Node undici's ProxyAgent; origins a local
# HTTP and a local HTTPS server (openssl makes its certificate). See
# gateway.py for what is covered.
#
#   tests/gateway/run.sh
#
# Environment:
#   PROXYPLANE_BIN   server binary (default: `cargo build`, then target/debug/proxyplane)
# The last line is `gateway: N passed, N failed`; exit status non-zero on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/target/gateway-venv"

if [ -z "${PROXYPLANE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet)
  PROXYPLANE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/proxyplane"
fi

if [ ! -x "$VENV/bin/pproxy" ] || ! "$VENV/bin/python" -c 'import requests, socks, httpx' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi
# curl and openssl from apt on a machine without them; node comes with the
# machine (the browser suite needs it too).
missing=""
for tool in curl openssl; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
command -v node >/dev/null || { echo "gateway: node is needed" >&2; exit 1; }
NODE_DIR="$ROOT/target/gateway-node"
if [ ! -d "$NODE_DIR/node_modules/undici" ]; then
  mkdir -p "$NODE_DIR"
  (cd "$NODE_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --silent --no-audit --no-fund undici@6.21.3 >/dev/null)
fi

exec env -u PROXYPLANE_CONFIG -u PROXYPLANE_MASTER_KEY -u PROXYPLANE_BIN \
  SERVER_BIN="$PROXYPLANE_BIN" PROXY_PY="$VENV/bin/proxy" PPROXY="$VENV/bin/pproxy" NODE_DIR="$NODE_DIR" \
  "$VENV/bin/python" "$HERE/gateway.py"
