-- wrk script for ResolveProxy: POSTs {"workspaceId","poolId","accountName":"acct-N"}
-- for a random N in [0, ACCOUNTS). Everything comes from the environment:
--   WS, POOL        base64 ids (JSON form)
--   ACCOUNTS        how many accounts were seeded (acct-0 .. acct-(ACCOUNTS-1))
--   RESOLVER_KEY    the bearer key (falls back to KEY)
-- Usage: WS=.. POOL=.. ACCOUNTS=10000 RESOLVER_KEY=pp_.. \
--        wrk -t2 -c64 -d20s --latency -s bench/resolve.lua http://HOST:PORT/proxies.v1.Proxies/ResolveProxy

local ws = assert(os.getenv("WS"), "WS not set")
local pool = assert(os.getenv("POOL"), "POOL not set")
local accounts = tonumber(os.getenv("ACCOUNTS") or "10000")
local key = assert(os.getenv("RESOLVER_KEY") or os.getenv("KEY"), "RESOLVER_KEY not set")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local prefix = '{"workspaceId":"' .. ws .. '","poolId":"' .. pool .. '","accountName":"acct-'
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  return wrk.format(nil, nil, nil, prefix .. math.random(0, accounts - 1) .. '"}')
end
