-- wrk script for GetSession: POSTs {"workspaceId","sessionId"} for a random
-- known session id. Everything comes from the environment:
--   WS         base64 workspace id (JSON form)
--   IDS_FILE   session ids (base64, JSON form), one per line (peer.py session-ids)
--   KEY        a key that may read sessions (the ADMIN key)
-- Usage: WS=.. IDS_FILE=ids.txt KEY=pp_.. \
--        wrk -t2 -c64 -d10s --latency -s bench/get_session.lua http://HOST:PORT/proxies.v1.Proxies/GetSession

local ws = assert(os.getenv("WS"), "WS not set")
local key = assert(os.getenv("KEY"), "KEY not set")
local ids_file = assert(os.getenv("IDS_FILE"), "IDS_FILE not set")

local ids = {}
for line in io.lines(ids_file) do
  if line ~= "" then ids[#ids + 1] = line end
end
assert(#ids > 0, "no ids in " .. ids_file)

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

local prefix = '{"workspaceId":"' .. ws .. '","sessionId":"'
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  return wrk.format(nil, nil, nil, prefix .. ids[math.random(1, #ids)] .. '"}')
end
