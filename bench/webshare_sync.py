#!/usr/bin/env python3
"""SyncProvider time for a Webshare account of N proxies (bench/webshare_sync.sh).

Runs a fake Webshare API v2 proxy list (stdlib HTTP server, 100 per page, the
documented shapes) in-process, connects a WEBSHARE provider to it on the
running proxyplane ($URL, ADMIN $KEY), and times, by the client around the
call: the first sync (N created), a re-sync without change (N unchanged, no
writes), and a re-sync after the vendor replaced 10% of the list.
"""

import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppbench import Client  # noqa: E402

N = int(os.environ.get("PROXIES", "10000"))
VENDOR_KEY = "bench-vendor-key"
proxies = [f"d-{i}" for i in range(N)]


class Fake(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        page, size = int(q["page"][0]), int(q["page_size"][0])
        start = (page - 1) * size
        res = [{"id": pid, "username": "u" + pid, "password": "p" + pid,
                "proxy_address": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
                "port": 8000 + i % 1000, "valid": True, "country_code": "US"}
               for i, pid in enumerate(proxies[start:start + size], start)]
        nxt = f"https://proxy.webshare.io/api/v2/proxy/list/?page={page + 1}" if start + size < len(proxies) else None
        body = json.dumps({"count": len(proxies), "next": nxt, "previous": None, "results": res}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    c = Client(os.environ["URL"], os.environ["KEY"])
    ws = c.call("CreateWorkspace", {"name": "sync-bench"})["workspace"]["id"]
    pool = c.call("CreatePool", {"workspaceId": ws, "name": "webshare"})["pool"]["id"]
    prov = c.call("ConnectProvider", {
        "workspaceId": ws, "type": "PROVIDER_TYPE_WEBSHARE", "name": "webshare",
        "credentials": {"apiKey": VENDOR_KEY}, "apiBaseUrl": base, "sync": {"poolId": pool},
    })["provider"]["id"]
    rows = []
    for label in ["first sync", "re-sync, no change", "re-sync, 10% replaced"]:
        if label.startswith("re-sync, 10%"):
            for i in range(0, N, 10):
                proxies[i] = f"r-{i}"
        t0 = time.perf_counter()
        r = c.call("SyncProvider", {"workspaceId": ws, "providerId": prov})["result"]
        dt = time.perf_counter() - t0
        counts = {k: int(r.get(k, 0)) for k in ["created", "updated", "disabled", "removed", "unchanged"]}
        rows.append((label, dt, counts))
        print(f"{label:24} {dt:7.2f} s  {counts}", flush=True)


if __name__ == "__main__":
    main()
