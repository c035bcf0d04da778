-- wrk script for CreateSession: every request creates a new static session
-- (unique token: RUN prefix, wrk thread number, per-thread counter; the same
-- host/port/username/password each time). Everything comes from the environment:
--   WS, POOL, PROVIDER   base64 ids (JSON form); the provider must be enabled
--   KEY                  a key that may create sessions (the ADMIN key)
--   RUN                  token prefix, distinct per wrk invocation on one pool
--                        (a repeated token would answer already_exists: non-2xx)
-- Usage: WS=.. POOL=.. PROVIDER=.. KEY=pp_.. RUN=m \
--        wrk -t2 -c64 -d10s --latency -s bench/create_session.lua http://HOST:PORT/proxies.v1.Proxies/CreateSession

local ws = assert(os.getenv("WS"), "WS not set")
local pool = assert(os.getenv("POOL"), "POOL not set")
local provider = assert(os.getenv("PROVIDER"), "PROVIDER not set")
local key = assert(os.getenv("KEY"), "KEY not set")
local run = assert(os.getenv("RUN"), "RUN not set")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local head = '{"workspaceId":"' .. ws .. '","poolId":"' .. pool .. '","providerId":"' .. provider
  .. '","scheme":"http","host":"10.20.30.40","port":8080,"username":"bench-user",'
  .. '"password":"bench-password","token":"'
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local prefix, n

function init(args)
  prefix = run .. "-t" .. tid .. "-"
  n = 0
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. prefix .. n .. '"}')
end
