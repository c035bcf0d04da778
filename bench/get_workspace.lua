-- wrk script for GetWorkspace: the same small JSON body on every request.
--   WS   base64 workspace id;  KEY  a key that may read it (ADMIN/OWNER/EDITOR/VIEWER)
local ws = assert(os.getenv("WS"), "WS not set")
local key = assert(os.getenv("KEY"), "KEY not set")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = '{"workspaceId":"' .. ws .. '"}'
