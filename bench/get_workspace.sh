#!/usr/bin/env bash
# GetWorkspace req/s with wrk (the foundation number: HTTP edge + auth + one
# point read + JSON, no resolve logic). Fresh server, one workspace.
#
#   bench/get_workspace.sh
#   SKIP_BUILD=1 DURATION=10s WRK_CONNS=64 bench/get_workspace.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
export DURATION="${DURATION:-20s}" WARMUP="${WARMUP:-5s}"
ensure_wrk
build_release
trap stop_server EXIT
start_server
eval "$("$PY" "$HELPER" setup)"
export WS
log "machine: $(machine_info)"
warm_wrk "$ROOT/bench/get_workspace.lua" GetWorkspace
line="$(run_wrk get_workspace "$ROOT/bench/get_workspace.lua" GetWorkspace)"
echo "machine: $(machine_info)   wrk -t${WRK_THREADS:-2} -c${WRK_CONNS:-64} -d$DURATION"
echo "$line"
