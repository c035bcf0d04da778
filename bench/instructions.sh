#!/usr/bin/env bash
# Load-independent cost per request: user-space instructions (valgrind
# callgrind, Ir) per ResolveProxy and per GetWorkspace, for one or more
# binaries. Callgrind runs the server's threads one at a time and ~50x slower,
# so this counts work, not time: it sees JSON, SQLite, locking code, crypto
# and allocation, but not the kernel (syscalls, context switches; see the
# syscalls/ctx switches per request that run_wrk prints for those).
#
#   bench/instructions.sh base=target/release/proxyplane other=/tmp/x/proxyplane
#   N=2000 SESSIONS=1000 ACCOUNTS=2000 bench/instructions.sh base=...
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
N="${N:-2000}" SESSIONS="${SESSIONS:-1000}" ACCOUNTS="${ACCOUNTS:-2000}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
(( $# >= 1 )) || set -- "base=$BIN"
trap 'kill -TERM "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "${DATA_DIR:-/nonexistent}"' EXIT
printf '%-14s %16s %16s %16s\n' binary "Ir/ResolveProxy" "Ir/GetWorkspace" "Ir/CreateSession"
for arg in "$@"; do
    name="${arg%%=*}" bin="${arg#*=}"
    DATA_DIR="$(mktemp -d /tmp/proxyplane-bench.XXXXXX)"
    out="$DATA_DIR/cg.out"
    PROXYPLANE_RATE_LIMIT_PER_SECOND=0 PROXYPLANE_LOG_LEVEL=warn \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" ${CALLGRIND_KEEP:+--dump-instr=no} \
        "$bin" --data-dir "$DATA_DIR" serve --listen 127.0.0.1:0 \
        >"$DATA_DIR/server.out" 2>"$DATA_DIR/server.err" &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        grep -q '^listening on ' "$DATA_DIR/server.out" 2>/dev/null && break
        sleep 0.1
    done
    line="$(head -n1 "$DATA_DIR/server.out")"
    URL="http://${line#listening on }"; KEY="$(tr -d '\n' <"$DATA_DIR/admin.key")"
    export URL KEY DATA_DIR SERVER_PID
    eval "$("$PY" "$HELPER" setup)"
    export WS PROVIDER POOL RESOLVER_KEY ACCOUNTS
    "$PY" "$HELPER" seed-sessions --count "$SESSIONS" 2>/dev/null
    "$PY" "$HELPER" seed-accounts --count "$ACCOUNTS" --parallel 4 --key "$RESOLVER_KEY" 2>/dev/null
    # Warm caches: every account once, as a running fleet has (the sticky-
    # binding cache holds an account from its first read after the last write).
    "$PY" "$HELPER" drive --method ResolveProxy --count "$ACCOUNTS" --in-order --key "$RESOLVER_KEY"
    cgc() { callgrind_control "$@" "$SERVER_PID" >/dev/null 2>&1; }
    ir() {  # total Ir collected since the last zero
        cgc -d
        cat "$out".* 2>/dev/null | awk '/^summary:/ {s += $2} END {printf "%.0f", s}'
    }
    # Every dump holds the costs since the previous one.
    cgc -i on
    "$PY" "$HELPER" drive --method ResolveProxy --count 50 --key "$RESOLVER_KEY"
    cgc -d; rm -f "$out".*
    "$PY" "$HELPER" drive --method ResolveProxy --count "$N" --key "$RESOLVER_KEY"
    r="$(ir)"; rm -f "$out".*
    "$PY" "$HELPER" drive --method GetWorkspace --count "$N"
    g="$(ir)"; rm -f "$out".*
    "$PY" "$HELPER" drive --method CreateSession --count "$N"
    w="$(ir)"
    kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DATA_DIR"
    printf '%-14s %16.0f %16.0f %16.0f\n' "$name" "$((r / N))" "$((g / N))" "$((w / N))"
done
