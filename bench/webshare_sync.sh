#!/usr/bin/env bash
# SyncProvider time for a Webshare account of PROXIES (10,000) proxies, served
# by a fake Webshare API in the client process (bench/webshare_sync.py).
#
#   bench/webshare_sync.sh
#   PROXIES=50000 SKIP_BUILD=1 bench/webshare_sync.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_release
trap stop_server EXIT
start_server
log "machine: $(machine_info)"
"$PY" "$ROOT/bench/webshare_sync.py"
