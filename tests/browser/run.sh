#!/usr/bin/env bash
# Browser tests of the web dashboard: Debian's headless Chromium driven by
# playwright-core (pinned in package-lock.json) against the real binary.
#
#   tests/browser/run.sh
#
# Installs what it needs on a fresh machine: the `chromium` apt package (as
# root, when /usr/bin/chromium is missing) and `npm ci`. The suite starts
# the server itself on 127.0.0.1:0 with a fresh data dir (dashboard.test.mjs).
# Screenshots and the measured page weight go to target/screenshots/.
#
# Environment:
#   PROXYPLANE_BIN   server binary to test (default: `cargo build`, then
#                    <repo>/target/debug/proxyplane)
#   CHROMIUM         browser binary (default /usr/bin/chromium)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ -z "${PROXYPLANE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet)
  PROXYPLANE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/proxyplane"
fi
export PROXYPLANE_BIN CHROMIUM
export SCREENSHOTS="${SCREENSHOTS:-$ROOT/target/screenshots}"
mkdir -p "$SCREENSHOTS"

cd "$HERE"
npm ci --no-audit --no-fund --loglevel=error
node --test --test-concurrency=1 dashboard.test.mjs
