#!/usr/bin/env bash
# The built-in proxy gateway with real software on both sides: upstreams are
# PyPI proxy.py (HTTP proxy with --basic-auth) run by the suite, clients are
# curl (HTTP proxy and SOCKS5) and Python requests, the origin a local HTTP
# server. See gateway.py for what is covered.
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

if [ ! -x "$VENV/bin/proxy" ] || ! "$VENV/bin/python" -c 'import requests, socks' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi
command -v curl >/dev/null || { echo "gateway: curl is needed" >&2; exit 1; }

exec env -u PROXYPLANE_CONFIG -u PROXYPLANE_MASTER_KEY -u PROXYPLANE_BIN \
  SERVER_BIN="$PROXYPLANE_BIN" PROXY_PY="$VENV/bin/proxy" \
  "$VENV/bin/python" "$HERE/gateway.py"
