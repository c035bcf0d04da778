# Shared shell functions for the proxyplane benchmarks. Source it; do not run it.
#
#   ROOT        the repository root (set here)
#   BIN         the release binary
#   SERVER_PID, URL, KEY (ADMIN key), DATA_DIR   set by start_server

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/proxyplane}"
PY="${PYTHON:-python3}"
HELPER="$ROOT/bench/ppbench.py"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build_release() {
    if [[ -n "${BENCH_BIN:-}" ]]; then
        log "BENCH_BIN set: benchmarking $BIN, no build"
        return
    fi
    if [[ "${SKIP_BUILD:-0}" == 1 && -x "$BIN" ]]; then
        log "SKIP_BUILD=1: using $BIN as it is"
        return
    fi
    log "cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --quiet)
}

ensure_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        log "installing wrk with apt"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
}

# machine_info: one line describing the machine and its load right now.
machine_info() {
    local model
    model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "nproc=$(nproc) cpu='${model}' load=$(cut -d' ' -f1-3 /proc/loadavg)"
}

# start_server: a fresh data dir (or $1), rate limiting off. Extra server env
# can be passed through the environment (PROXYPLANE_WORKERS=..., etc.).
start_server() {
    DATA_DIR="${1:-$(mktemp -d /tmp/proxyplane-bench.XXXXXX)}"
    mkdir -p "$DATA_DIR"
    PROXYPLANE_RATE_LIMIT_PER_SECOND=0 PROXYPLANE_LOG_LEVEL="${PROXYPLANE_LOG_LEVEL:-warn}" \
        "$BIN" --data-dir "$DATA_DIR" serve --listen 127.0.0.1:0 \
        >"$DATA_DIR/server.out" 2>"$DATA_DIR/server.err" &
    SERVER_PID=$!
    local line="" i
    for i in $(seq 1 200); do
        line="$(head -n1 "$DATA_DIR/server.out" 2>/dev/null || true)"
        [[ "$line" == "listening on "* ]] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$DATA_DIR/server.err" >&2
            echo "server exited during start" >&2
            return 1
        fi
        sleep 0.05
    done
    [[ "$line" == "listening on "* ]] || { echo "server did not start" >&2; return 1; }
    URL="http://${line#listening on }"
    KEY="$(tr -d '\n' <"$DATA_DIR/admin.key")"
    export URL KEY DATA_DIR SERVER_PID
    log "server pid $SERVER_PID at $URL, data dir $DATA_DIR"
}

stop_server() {
    if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
    if [[ -n "${DATA_DIR:-}" && "${KEEP_DATA:-0}" != 1 && "$DATA_DIR" == /tmp/proxyplane-bench.* ]]; then
        rm -rf "$DATA_DIR"
    fi
}

# server_rss_mb: resident memory of the server right now.
server_rss_mb() {
    awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?"
}

# CPU accounting (clock ticks): a process's user+system, and the machine's busy total.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# run_wrk LABEL LUA_SCRIPT METHOD: runs wrk against $URL/proxies.v1.Proxies/METHOD
# with WRK_THREADS/WRK_CONNS/DURATION, keeps the raw output in
# $RESULTS_DIR/LABEL.txt and prints one JSON line (req/s, p50/p75/p90/p99 ms,
# and the cores used by the server, by wrk and by everything else meanwhile).
run_wrk() {
    local label="$1" script="$2" method="$3"
    local raw="$RESULTS_DIR/$label.txt" tck s0 s1 m0 m1 t0 t1
    tck="$(getconf CLK_TCK)"
    local stat_pid="" syscalls=0 switches=0
    # Syscalls and context switches of the server: load-independent costs
    # (PERF_STAT=0 turns this off; needs perf with tracepoints).
    if [[ "${PERF_STAT:-1}" == 1 ]] && command -v perf >/dev/null 2>&1; then
        perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$SERVER_PID" -o "$raw.perfstat" 2>/dev/null &
        stat_pid=$!
    fi
    s0="$(proc_ticks "$SERVER_PID")"; m0="$(machine_busy_ticks)"; t0="$(date +%s.%N)"
    /usr/bin/time -f '%U %S' -o "$raw.time" \
        wrk -t"${WRK_THREADS:-2}" -c"${WRK_CONNS:-64}" -d"${DURATION:-20s}" --latency \
        -s "$script" "$URL/proxies.v1.Proxies/$method" >"$raw" 2>&1
    s1="$(proc_ticks "$SERVER_PID")"; m1="$(machine_busy_ticks)"; t1="$(date +%s.%N)"
    if [[ -n "$stat_pid" ]]; then
        kill -INT "$stat_pid" 2>/dev/null || true
        wait "$stat_pid" 2>/dev/null || true
        syscalls="$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$raw.perfstat" 2>/dev/null || true)"
        switches="$(awk -F, '/context-switches/ {print $1}' "$raw.perfstat" 2>/dev/null || true)"
    fi
    "$PY" "$HELPER" wrk-parse --label "$label" \
        --elapsed "$(echo "$t1 - $t0" | bc -l)" \
        --server-cpu "$(echo "($s1 - $s0) / $tck" | bc -l)" \
        --machine-cpu "$(echo "($m1 - $m0) / $tck" | bc -l)" \
        --wrk-cpu "$(awk '{print $1 + $2}' "$raw.time")" \
        --syscalls "${syscalls:-0}" --switches "${switches:-0}" <"$raw"
}

# warm_wrk SCRIPT METHOD: a short unrecorded run (caches, connection pool).
warm_wrk() {
    wrk -t"${WRK_THREADS:-2}" -c"${WRK_CONNS:-64}" -d"${WARMUP:-5s}" \
        -s "$1" "$URL/proxies.v1.Proxies/$2" >/dev/null 2>&1
}
