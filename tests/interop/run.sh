#!/usr/bin/env bash
# Interop suite: real Connect clients against the real proxyplane binary.
#
#   tests/interop/run.sh
#
# Installs the pinned clients (npm ci, a venv from requirements.txt), generates
# them from proto/ with `buf generate` (local plugins only), checks `buf lint`
# and `buf format`, starts the server on 127.0.0.1:0 with a fresh data dir, and
# runs the scenario with every client and mode:
#   connect-node   json, binary, get         (ts/interop.ts)
#   connect-python gzip, json, get           (py/interop.py)
#   buf curl       connect + binary; raw HTTP JSON (py/bufcurl.py)
# Each mode works in its own fresh workspace. The last line is
#   interop: N passed, N failed[, N skipped]
# and the exit status is non-zero if any step failed.
#
# Environment:
#   PROXYPLANE_BIN   server binary to test (default: `cargo build`, then
#                    <repo>/target/debug/proxyplane, or $CARGO_TARGET_DIR/debug/proxyplane)
#   INTEROP_KEEP=1   keep the temporary data dir and logs
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

PASSED=0
FAILED=0
SKIPPED=0
SERVER_PID=""
TMP="$(mktemp -d "${TMPDIR:-/tmp}/proxyplane-interop.XXXXXX")"

summary() {
  local line="interop: $PASSED passed, $FAILED failed"
  if [ "$SKIPPED" -gt 0 ]; then line="$line, $SKIPPED skipped"; fi
  echo "$line"
}

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${INTEROP_KEEP:-}" = "1" ]; then
    echo "interop: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

# Ends the run early (setup could not go on): summary, non-zero exit.
abort() {
  fail "$*"
  summary
  exit 1
}

# setup_step NAME CMD...: a setup command that counts as one step; its output
# is shown only when it fails.
setup_step() {
  local name="$1"
  shift
  if "$@" >"$TMP/step.log" 2>&1; then
    pass "setup $name"
  else
    cat "$TMP/step.log" >&2
    return 1
  fi
}

# ------------------------------------------------------------------ installs

setup_step "npm ci" npm ci --no-audit --no-fund --loglevel=error || abort "setup npm ci"
export PATH="$HERE/node_modules/.bin:$PATH"

pip_install() {
  .venv/bin/python -m pip install --disable-pip-version-check --quiet -r requirements.txt
}
make_venv() {
  if [ -x .venv/bin/python ] && pip_install; then return 0; fi
  # No venv yet, or a stale one (another Python, a broken install): start over.
  rm -rf .venv
  python3 -m venv .venv
  pip_install
}
setup_step "python venv + pip install -r requirements.txt" make_venv || abort "setup pip install"

# ------------------------------------------------------------------ proto

setup_step "buf generate (local plugins)" buf generate "$ROOT" --template "$HERE/buf.gen.yaml" \
  || abort "setup buf generate"
if setup_step "buf lint" buf lint "$ROOT"; then :; else fail "setup buf lint"; fi
if setup_step "buf format --diff --exit-code" buf format "$ROOT/proto" --diff --exit-code; then :; else
  fail "setup buf format --diff --exit-code"
fi

# ------------------------------------------------------------------ server

if [ -n "${PROXYPLANE_BIN:-}" ]; then
  BIN="$PROXYPLANE_BIN"
else
  setup_step "cargo build" cargo build --quiet --bin proxyplane --manifest-path "$ROOT/Cargo.toml" \
    || abort "setup cargo build"
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/proxyplane"
fi
[ -x "$BIN" ] || abort "setup server binary: $BIN is not an executable file"

# The server rejects PROXYPLANE_* variables it does not know, so this script's
# own PROXYPLANE_BIN is kept out of its environment.
env -u PROXYPLANE_BIN PROXYPLANE_RATE_LIMIT_PER_SECOND=0 \
  "$BIN" --data-dir "$TMP/data" serve --listen 127.0.0.1:0 \
  >"$TMP/server.out" 2>"$TMP/server.err" </dev/null &
SERVER_PID=$!

server_log() {
  echo "--- server stdout" >&2
  tail -n 20 "$TMP/server.out" >&2 || true
  echo "--- server stderr (last 40 lines)" >&2
  tail -n 40 "$TMP/server.err" >&2 || true
}

# The first stdout line is "listening on ADDR:PORT".
FIRST=""
for _ in $(seq 300); do
  if [ "$(wc -l <"$TMP/server.out")" -ge 1 ]; then
    FIRST="$(head -n 1 "$TMP/server.out")"
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ "$FIRST" =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
  PORT="${BASH_REMATCH[1]}"
  pass "setup server prints 'listening on 127.0.0.1:PORT' (port $PORT)"
else
  server_log
  abort "setup server start: first stdout line was '${FIRST}', want 'listening on 127.0.0.1:PORT'"
fi
BASE_URL="http://127.0.0.1:$PORT"

# admin.key is written on first start, possibly just after the listening line.
KEY_FILE="$TMP/data/admin.key"
for _ in $(seq 300); do
  [ -s "$KEY_FILE" ] && grep -q . "$KEY_FILE" && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -s "$KEY_FILE" ]; then
  pass "setup admin key written to <data-dir>/admin.key"
else
  server_log
  abort "setup admin key: $KEY_FILE was not written within 30 s"
fi

# ------------------------------------------------------------------ clients

# run_client NAME CMD...: runs one client, echoes its PASS/FAIL/SKIP lines and
# adds them up. A client that exits non-zero without reporting a failure
# (a crash) counts as one failure.
run_client() {
  local name="$1"
  shift
  local log="$TMP/$name.log"
  local rc=0
  echo "--- $name"
  timeout 300 "$@" >"$log" 2>&1 || rc=$?
  grep -E '^(PASS|FAIL|SKIP) ' "$log" || true
  local p f s
  p=$(grep -c '^PASS ' "$log" || true)
  f=$(grep -c '^FAIL ' "$log" || true)
  s=$(grep -c '^SKIP ' "$log" || true)
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  SKIPPED=$((SKIPPED + s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    grep -vE '^(PASS|FAIL|SKIP) ' "$log" | tail -n 30 >&2 || true
    fail "$name exited with status $rc without reporting a failing step"
  elif ! grep -q '^steps: ' "$log"; then
    grep -vE '^(PASS|FAIL|SKIP) ' "$log" | tail -n 30 >&2 || true
    fail "$name stopped before the end of its scenario (exit $rc)"
  fi
}

run_client connect-node tsx "$HERE/ts/interop.ts" \
  --base-url "$BASE_URL" --admin-key-file "$KEY_FILE" --mode json --mode binary --mode get
run_client connect-python "$HERE/.venv/bin/python" "$HERE/py/interop.py" \
  --base-url "$BASE_URL" --admin-key-file "$KEY_FILE" --mode gzip --mode json --mode get
run_client buf-curl "$HERE/.venv/bin/python" "$HERE/py/bufcurl.py" \
  --base-url "$BASE_URL" --admin-key-file "$KEY_FILE" --buf "$HERE/node_modules/.bin/buf" --schema "$ROOT/proto"

if kill -0 "$SERVER_PID" 2>/dev/null; then :; else
  fail "server process died during the run"
fi
if [ "$FAILED" -gt 0 ]; then server_log; fi

summary
[ "$FAILED" -eq 0 ]
