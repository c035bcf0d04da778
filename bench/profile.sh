#!/usr/bin/env bash
# Where the server's time goes, under load: perf record (DWARF call graphs, the
# release profile has debug=1) attached to the server while wrk (or the bulk
# client) drives it, then bench/perf_categories.py folds the stacks into
# phases (HTTP edge, spawn_blocking, auth hash, key lookup, SQL, decrypt, JSON).
# Seeding happens before perf attaches, so it is not in the profile.
#
#   bench/profile.sh resolve          # 1,000 sessions, 10,000 accounts, wrk -c64
#   bench/profile.sh get_workspace
#   bench/profile.sh bulk             # 5 JSON BulkCreateSessions of 10,000
#   PROFILER=callgrind bench/profile.sh resolve   # when perf does not work
#
# Output: bench/results/profile-<mode>.txt (+ perf.data / callgrind.out).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MODE="${1:-resolve}"
PROFILER="${PROFILER:-perf}"
export DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
FREQ="${FREQ:-499}"
SESSIONS="${SESSIONS:-1000}" ACCOUNTS="${ACCOUNTS:-10000}"
HERE="$ROOT/bench"
report="$RESULTS_DIR/profile-$MODE.txt"
[[ "$PROFILER" == callgrind ]] && report="$RESULTS_DIR/profile-$MODE-callgrind.txt"

ensure_wrk
build_release
trap stop_server EXIT

if [[ "$PROFILER" == callgrind ]]; then
    # Valgrind serialises all threads and runs ~50x slower: start with
    # collection off, seed, switch it on for a bounded run, switch it off.
    command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }
    DATA_DIR="$(mktemp -d /tmp/proxyplane-bench.XXXXXX)"
    out="$RESULTS_DIR/callgrind-$MODE.out"
    PROXYPLANE_RATE_LIMIT_PER_SECOND=0 PROXYPLANE_LOG_LEVEL=warn PROXYPLANE_WORKERS=2 \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        "$BIN" --data-dir "$DATA_DIR" serve --listen 127.0.0.1:0 \
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
    if [[ "$MODE" == resolve ]]; then
        "$PY" "$HELPER" seed-sessions --count "$SESSIONS"
        "$PY" "$HELPER" seed-accounts --count "$ACCOUNTS" --parallel 4 --key "$RESOLVER_KEY"
    fi
    callgrind_control -i on "$SERVER_PID" >/dev/null
    case "$MODE" in
        resolve) wrk -t1 -c4 -d"${CG_DURATION:-20s}" -s "$HERE/resolve.lua" "$URL/proxies.v1.Proxies/ResolveProxy" ;;
        get_workspace) wrk -t1 -c4 -d"${CG_DURATION:-20s}" -s "$HERE/get_workspace.lua" "$URL/proxies.v1.Proxies/GetWorkspace" ;;
        bulk) "$PY" "$HELPER" bulk --rounds 1 --codecs json ;;
    esac
    callgrind_control -i off "$SERVER_PID" >/dev/null
    stop_server
    { callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -80 || true; } >"$report"
    echo "callgrind profile: $out; inclusive top in $report"
    cat "$report"
    exit 0
fi

command -v perf >/dev/null || { echo "perf not installed (apt-get install linux-perf) — try PROFILER=callgrind" >&2; exit 1; }
start_server
eval "$("$PY" "$HELPER" setup)"
export WS PROVIDER POOL RESOLVER_KEY ACCOUNTS
data="$RESULTS_DIR/perf-$MODE.data"

case "$MODE" in
    resolve)
        "$PY" "$HELPER" seed-sessions --count "$SESSIONS"
        "$PY" "$HELPER" seed-accounts --count "$ACCOUNTS" --key "$RESOLVER_KEY"
        warm_wrk "$HERE/resolve.lua" ResolveProxy
        drive() { run_wrk "profile-resolve-wrk" "$HERE/resolve.lua" ResolveProxy; }
        ;;
    get_workspace)
        warm_wrk "$HERE/get_workspace.lua" GetWorkspace
        drive() { run_wrk "profile-get_workspace-wrk" "$HERE/get_workspace.lua" GetWorkspace; }
        ;;
    bulk)
        drive() { "$PY" "$HELPER" bulk --rounds "${ROUNDS:-5}" --codecs json; }
        ;;
    *) echo "mode: resolve, get_workspace or bulk" >&2; exit 2 ;;
esac

log "perf record -F $FREQ --call-graph dwarf on pid $SERVER_PID while driving $MODE (load $(cut -d' ' -f1-3 /proc/loadavg))"
perf record -F "$FREQ" --call-graph dwarf,16384 -p "$SERVER_PID" -o "$data" 2>"$data.log" &
perf_pid=$!
sleep 1
drive
kill -INT "$perf_pid"
wait "$perf_pid" || true
stop_server

log "folding stacks (perf script can take a minute)"
{
    echo "profile of $MODE; machine: $(machine_info)"
    perf script -i "$data" -F comm,tid,period,ip,sym,dso 2>/dev/null |
        "$PY" "$HERE/perf_categories.py" 30 || true
    echo
    echo "perf report --no-children (self time, top 40 symbols)"
    perf report -i "$data" --no-children --no-inline --sort symbol --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -40 || true
} >"$report"
cat "$report"
echo "report: $report; raw: $data"
