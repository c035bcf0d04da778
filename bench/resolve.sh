#!/usr/bin/env bash
# ResolveProxy throughput and latency with wrk, on a small and a large pool.
#
#   small: 1,000 sessions,     10,000 assigned accounts
#   large: 1,000,000 sessions, 100,000 assigned accounts (100 BulkCreateSessions of 10,000)
#
# Sessions are half static (host/port/username/sealed password) and half
# rotation sessions of a GENERIC provider with a gateway and sealed
# credentials (STATIC_EVERY=2; 1 = all static). Accounts acct-0..acct-(N-1)
# are created by one ResolveProxy each, SEED_PARALLEL at a time. The measured
# run then resolves random known accounts: the sticky read path.
# Each size runs on a fresh server and data dir. With GETWS=1 (default) the
# small server also gets a GetWorkspace run (the foundation number).
#
#   bench/resolve.sh                          # small then large, 20 s each
#   SIZES=small DURATION=10s bench/resolve.sh
#   SIZES="5000:50000" bench/resolve.sh       # custom SESSIONS:ACCOUNTS
#   SKIP_BUILD=1 WRK_THREADS=2 WRK_CONNS=64 bench/resolve.sh
#
# Targets (2 cores, wrk on the same machine): >= 25,000 req/s, p99 <= 5 ms,
# large within 90% of small.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SIZES="${SIZES:-small large}"
export DURATION="${DURATION:-20s}" WARMUP="${WARMUP:-5s}"
STATIC_EVERY="${STATIC_EVERY:-2}"
SEED_PARALLEL="${SEED_PARALLEL:-8}"
GETWS="${GETWS:-1}"
HERE="$ROOT/bench"

ensure_wrk
build_release
trap stop_server EXIT

summary="$RESULTS_DIR/resolve_summary.jsonl"
: >"$summary"
log "machine: $(machine_info)"

for size in $SIZES; do
    case "$size" in
        small) sessions=1000 accounts=10000 ;;
        large) sessions=1000000 accounts=100000 ;;
        *:*) sessions="${size%%:*}" accounts="${size##*:}" ;;
        *) echo "unknown size $size (small, large or SESSIONS:ACCOUNTS)" >&2; exit 2 ;;
    esac
    label="resolve_${sessions}s_${accounts}a"
    start_server
    eval "$("$PY" "$HELPER" setup)"
    export WS PROVIDER POOL RESOLVER_KEY ACCOUNTS="$accounts"
    log "[$size] seeding $sessions sessions (1 in ${STATIC_EVERY} static)"
    t0=$SECONDS
    "$PY" "$HELPER" seed-sessions --count "$sessions" --static-every "$STATIC_EVERY"
    log "[$size] seeding $accounts accounts via ResolveProxy x$SEED_PARALLEL"
    "$PY" "$HELPER" seed-accounts --count "$accounts" --parallel "$SEED_PARALLEL" --key "$RESOLVER_KEY"
    log "[$size] seeded in $((SECONDS - t0)) s; db $(du -sh "$DATA_DIR" | cut -f1); warm-up $WARMUP"
    warm_wrk "$HERE/resolve.lua" ResolveProxy
    log "[$size] measuring ResolveProxy for $DURATION (load $(cut -d' ' -f1-3 /proc/loadavg))"
    line="$(run_wrk "$label" "$HERE/resolve.lua" ResolveProxy)"
    echo "$line" | sed "s/}\$/, \"sessions\": $sessions, \"accounts\": $accounts, \"rss_mb\": \"$(server_rss_mb)\"}/" >>"$summary"
    log "[$size] $line"
    if [[ "$GETWS" == 1 ]]; then
        GETWS=0
        warm_wrk "$HERE/get_workspace.lua" GetWorkspace
        log "[$size] measuring GetWorkspace for $DURATION"
        line="$(run_wrk get_workspace "$HERE/get_workspace.lua" GetWorkspace)"
        echo "$line" | sed "s/}\$/, \"sessions\": $sessions, \"accounts\": $accounts, \"rss_mb\": \"$(server_rss_mb)\"}/" >>"$summary"
        log "[$size] $line"
    fi
    stop_server
done

echo
echo "machine: $(machine_info)   wrk -t${WRK_THREADS:-2} -c${WRK_CONNS:-64} -d$DURATION"
"$PY" - "$summary" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
fmt = "{:<26s} {:>9s} {:>9s} {:>8s} {:>7s} {:>7s} {:>7s} {:>6s} {:>6s} {:>6s} {:>6s} {:>7s} {:>6s}"
print(fmt.format("run", "sessions", "accounts", "req/s", "p50 ms", "p90 ms", "p99 ms", "non2xx",
                 "srv c", "wrk c", "oth c", "srv us/r", "RSS MB"))
for r in rows:
    f = lambda v: "-" if v is None else f"{v:.2f}"
    print(fmt.format(r["label"], str(r["sessions"]), str(r["accounts"]), f"{r['rps']:.0f}",
                     f(r["p50_ms"]), f(r["p90_ms"]), f(r["p99_ms"]), str(r["non2xx"]),
                     f(r.get("server_cores")), f(r.get("wrk_cores")), f(r.get("other_cores")),
                     f(r.get("server_us_per_req")), str(r["rss_mb"])))
print("(srv/wrk/oth c = cores busy on average: server, wrk, everything else on the machine;"
      " srv us/r = server CPU per request)")
res = [r for r in rows if r["label"].startswith("resolve_")]
print()
for r in res:
    ok_rps = r["rps"] >= 25000
    ok_p99 = r["p99_ms"] is not None and r["p99_ms"] <= 5
    print(f"{r['label']}: req/s {r['rps']:.0f} vs >= 25000: {'PASS' if ok_rps else 'MISS'}; "
          f"p99 {r['p99_ms']:.2f} ms vs <= 5 ms: {'PASS' if ok_p99 else 'MISS'}"
          + ("" if r["non2xx"] == 0 else f"; {r['non2xx']} non-2xx responses: INVALID RUN"))
if len(res) >= 2:
    ratio = res[-1]["rps"] / res[0]["rps"]
    print(f"large/small req/s = {ratio:.2f} vs >= 0.90: {'PASS' if ratio >= 0.9 else 'MISS'}")
PYEOF
