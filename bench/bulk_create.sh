#!/usr/bin/env bash
# BulkCreateSessions throughput: ROUNDS calls of ITEMS static sessions each,
# every call into a fresh pool, timed by the client around the HTTP request
# with the body serialized beforehand. Each round sends the same shape of
# request once as application/json and once as application/proto, so the
# difference between the two medians is what the JSON codec costs.
#
#   bench/bulk_create.sh                    # 5 rounds x 10,000 items, json and proto
#   ROUNDS=9 ITEMS=10000 CODECS=json bench/bulk_create.sh
#   SKIP_BUILD=1 bench/bulk_create.sh       # reuse target/release/proxyplane
#
# Target: >= 150,000 sessions/s (median, JSON) on 2 cores.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS="${ROUNDS:-5}"
ITEMS="${ITEMS:-10000}"
CODECS="${CODECS:-json,proto}"
TARGET=150000

build_release
trap stop_server EXIT
start_server
eval "$("$PY" "$HELPER" setup)"
export WS PROVIDER

log "machine: $(machine_info)"
log "BulkCreateSessions: $ROUNDS rounds x $ITEMS static items, codecs $CODECS"
out="$RESULTS_DIR/bulk_create.json"
"$PY" "$HELPER" bulk --rounds "$ROUNDS" --items "$ITEMS" --codecs "$CODECS" --json-out "$out"

median="$("$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(int(s[list(s)[0]]['median_rate']))" "$out")"
echo
echo "machine: $(machine_info)"
echo "server RSS after the run: $(server_rss_mb) MB; database: $(du -sh "$DATA_DIR" | cut -f1)"
if (( median >= TARGET )); then
    echo "RESULT: median ${median} sessions/s (first codec) >= target ${TARGET}: PASS"
else
    echo "RESULT: median ${median} sessions/s (first codec) < target ${TARGET}: MISS"
fi
