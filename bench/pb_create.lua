-- wrk script for PocketBase's record create: POST /api/collections/sessions/records
-- with a new session record each time (guest: the collection's createRule is "").
-- Unique token as in create_session.lua: RUN prefix, wrk thread number, counter;
-- the same endpoint fields each time.
--   RUN   token prefix, distinct per wrk invocation (a repeated token fails
--         the unique (pool, token) index: non-2xx)
-- Usage: RUN=m wrk -t2 -c64 -d10s --latency -s bench/pb_create.lua http://HOST:PORT/api/collections/sessions/records

local run = assert(os.getenv("RUN"), "RUN not set")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local head = '{"workspace":"ws-bench","pool":"pool-create","provider":"prov-0",'
  .. '"scheme":"http","host":"10.20.30.40","port":8080,"username":"bench-user",'
  .. '"password":"bench-password","enabled":true,"version":1,"token":"'
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
