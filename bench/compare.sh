#!/usr/bin/env bash
# A/B comparison of proxyplane binaries on the same machine, interleaved so
# that background load hits every binary alike. For each repetition and each
# binary: fresh server, seed (SESSIONS sessions, ACCOUNTS accounts), warm up,
# then ResolveProxy and GetWorkspace with wrk for DURATION each, and (with
# BULK=1) BULK_ROUNDS BulkCreateSessions of 10,000 JSON items.
#
#   bench/compare.sh base=/tmp/a/proxyplane new=target/release/proxyplane
#   REPS=3 DURATION=10s SESSIONS=1000000 ACCOUNTS=100000 BULK=0 bench/compare.sh a=.. b=..
#   RESOLVE=0 BULK_ROUNDS=7 bench/compare.sh a=.. b=..     # BulkCreateSessions only
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPS="${REPS:-3}"
export DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}"
SESSIONS="${SESSIONS:-1000}" ACCOUNTS="${ACCOUNTS:-10000}"
BULK="${BULK:-1}" BULK_ROUNDS="${BULK_ROUNDS:-3}" RESOLVE="${RESOLVE:-1}"
HERE="$ROOT/bench"
(( $# >= 1 )) || { echo "usage: $0 LABEL=BINARY ..." >&2; exit 2; }
ensure_wrk
trap stop_server EXIT
out="$RESULTS_DIR/compare.jsonl"
: >"$out"
log "machine: $(machine_info)"
for rep in $(seq 1 "$REPS"); do
    for arg in "$@"; do
        name="${arg%%=*}" BIN="${arg#*=}"
        start_server
        eval "$("$PY" "$HELPER" setup)"
        export WS PROVIDER POOL RESOLVER_KEY ACCOUNTS
        r="{}" g="{}" b="null"
        if [[ "$RESOLVE" == 1 ]]; then
            "$PY" "$HELPER" seed-sessions --count "$SESSIONS" 2>/dev/null
            "$PY" "$HELPER" seed-accounts --count "$ACCOUNTS" --key "$RESOLVER_KEY" 2>/dev/null
            warm_wrk "$HERE/resolve.lua" ResolveProxy
            r="$(run_wrk "cmp-$name-resolve" "$HERE/resolve.lua" ResolveProxy)"
            g="$(run_wrk "cmp-$name-getws" "$HERE/get_workspace.lua" GetWorkspace)"
        fi
        if [[ "$BULK" == 1 ]]; then
            "$PY" "$HELPER" bulk --rounds "$BULK_ROUNDS" --codecs json --json-out "$RESULTS_DIR/cmp-$name-bulk.json" >/dev/null
            b="$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['summary']['json']['median_rate'])" "$RESULTS_DIR/cmp-$name-bulk.json")"
        fi
        echo "{\"name\": \"$name\", \"rep\": $rep, \"resolve\": $r, \"getws\": $g, \"bulk_rate\": $b}" >>"$out"
        log "rep $rep $name: resolve $(echo "$r" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("rps"), "req/s p99", d.get("p99_ms"), "ms,", d.get("server_us_per_req"), "us/req")'); bulk $b/s"
        stop_server
    done
done
echo
echo "machine: $(machine_info); $SESSIONS sessions, $ACCOUNTS accounts, wrk -t${WRK_THREADS:-2} -c${WRK_CONNS:-64} -d$DURATION, $REPS reps (medians)"
"$PY" - "$out" <<'PYEOF'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = list(dict.fromkeys(r["name"] for r in rows))
med = lambda xs: st.median(xs) if xs else float("nan")
fmt = "{:<14s} {:>10s} {:>8s} {:>8s} {:>10s} {:>9s} {:>9s} {:>10s} {:>10s} {:>12s}"
print(fmt.format("binary", "resolve/s", "p50 ms", "p99 ms", "srv us/req", "sysc/req", "ctxsw/req",
                 "getws/s", "getws us", "bulk sess/s"))
for n in names:
    rs = [r for r in rows if r["name"] == n]
    g = lambda k, sub: med([r[sub][k] for r in rs if r[sub].get(k) is not None])
    if not rs[0]["resolve"]:
        print(fmt.format(n, *["-"] * 8, f"{med([r['bulk_rate'] for r in rs]):.0f}"))
        continue
    bulk = [r["bulk_rate"] for r in rs if r["bulk_rate"] is not None]
    print(fmt.format(n, f"{g('rps','resolve'):.0f}", f"{g('p50_ms','resolve'):.2f}", f"{g('p99_ms','resolve'):.2f}",
                     f"{g('server_us_per_req','resolve'):.1f}", f"{g('syscalls_per_req','resolve'):.2f}",
                     f"{g('ctx_switches_per_req','resolve'):.2f}", f"{g('rps','getws'):.0f}",
                     f"{g('server_us_per_req','getws'):.1f}", f"{med(bulk):.0f}" if bulk else "-"))
PYEOF
