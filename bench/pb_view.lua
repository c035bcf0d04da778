-- wrk script for PocketBase's record view: GET /api/collections/sessions/records/ID
-- for a random seeded record id (guest: the collection's viewRule is "").
--   IDS_FILE   record ids, one per line (peer.py pb-setup)
-- Usage: IDS_FILE=ids.txt wrk -t2 -c64 -d10s --latency -s bench/pb_view.lua http://HOST:PORT/

local ids_file = assert(os.getenv("IDS_FILE"), "IDS_FILE not set")
local ids = {}
for line in io.lines(ids_file) do
  if line ~= "" then ids[#ids + 1] = line end
end
assert(#ids > 0, "no ids in " .. ids_file)

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() * 1000 + (seed or 0))
end

function request()
  return wrk.format("GET", "/api/collections/sessions/records/" .. ids[math.random(1, #ids)])
end
