#!/usr/bin/env bash
# The proxy gateway against going straight to the same upstream proxy and
# against apify proxy-chain as the peer, in one run (bench/gateway.py says
# what is measured). Installs Debian's tinyproxy (the upstream) and npm
# proxy-chain (under bench/out/) when missing.
#
#   bench/gateway.sh
#   SKIP_BUILD=1 BULK_MB=512 SETUP_N=1000 IDLE_N=10000 bench/gateway.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

build_release
if ! command -v tinyproxy >/dev/null; then
    log "installing tinyproxy (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q tinyproxy-bin >/dev/null \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -q tinyproxy >/dev/null
fi
OUT="$ROOT/bench/out/proxy-chain"
if [[ ! -d "$OUT/node_modules/proxy-chain" ]]; then
    log "installing proxy-chain (npm)"
    mkdir -p "$OUT"
    (cd "$OUT" && { [[ -f package.json ]] || npm init -y >/dev/null; } && npm install --silent proxy-chain@2.7.1 >/dev/null)
fi
# 10,000 tunnels are 20,000 sockets in the gateway (and in the upstream):
# raise the soft limit as far as the hard one goes. Where the hard limit is
# lower (20,000 on the VM of BENCHMARKS.md), IDLE_N defaults to what fits.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fits=$(( ($(ulimit -n) - 200) / 2 ))
export IDLE_N="${IDLE_N:-$(( fits < 10000 ? fits : 10000 ))}"
log "open files limit $(ulimit -n): $IDLE_N idle tunnels"
log "machine: $(machine_info); load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "proxy-chain $(node -e "console.log(require('$OUT/node_modules/proxy-chain/package.json').version)"), $(tinyproxy -v)"
SERVER_BIN="$BIN" OUT="$OUT" "$PY" "$ROOT/bench/gateway.py" run | tee "$RESULTS_DIR/gateway.txt"
