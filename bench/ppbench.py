#!/usr/bin/env python3
"""Benchmark helper for proxyplane (Python 3 stdlib only).

Subcommands (all talk Connect unary JSON or binary proto over HTTP/1.1 keep-alive):

  setup          create a workspace, a GENERIC provider with a gateway, a pool and a
                 RESOLVER key; print them as shell `export` lines
  pool           create one more pool in the workspace; print its id
  bulk           time BulkCreateSessions rounds of N items into fresh pools
  seed-sessions  fill a pool with N sessions (BulkCreateSessions batches)
  seed-accounts  ResolveProxy once for acct-0..acct-(N-1), in parallel
  wrk-parse      read wrk --latency output on stdin, print one JSON line

The proto encoder is hand-written (the messages used are tiny) so that no
protobuf package is needed.
"""

import argparse
import base64
import http.client
import json
import os
import statistics
import sys
import threading
import time
import urllib.parse

SERVICE = "/proxies.v1.Proxies/"


# --------------------------------------------------------------------------- HTTP

class Client:
    """One keep-alive connection."""

    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.key = key
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def post(self, method, body, content_type="application/json"):
        """POST raw bytes; returns (status, response bytes, seconds)."""
        if self.conn is None:
            self._connect()
        headers = {
            "Content-Type": content_type,
            "Authorization": "Bearer " + self.key,
            "Connect-Protocol-Version": "1",
        }
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", SERVICE + method, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
        except (http.client.HTTPException, OSError):
            # The server closes a connection after some errors; retry once.
            self.conn.close()
            self._connect()
            t0 = time.perf_counter()
            self.conn.request("POST", SERVICE + method, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
        return r.status, data, time.perf_counter() - t0

    def call(self, method, msg):
        status, data, _ = self.post(method, json.dumps(msg).encode())
        out = json.loads(data) if data else {}
        if status != 200:
            raise SystemExit(f"{method} failed: HTTP {status} {out}")
        return out


# --------------------------------------------------------------------------- proto

def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(tag, payload):
    return _varint((tag << 3) | 2) + _varint(len(payload)) + payload


def _str_field(tag, s):
    return _len_field(tag, s.encode()) if s else b""


def _int_field(tag, n):
    return _varint(tag << 3) + _varint(n) if n else b""


def proto_bulk_request(ws, pool, provider, items):
    """BulkCreateSessionsRequest{workspace_id=1, pool_id=2, provider_id=3, sessions=4}."""
    parts = [
        _len_field(1, base64.b64decode(ws)),
        _len_field(2, base64.b64decode(pool)),
        _len_field(3, base64.b64decode(provider)),
    ]
    for it in items:
        spec = b"".join([
            _str_field(1, it.get("token", "")),
            _str_field(2, it.get("scheme", "")),
            _str_field(3, it.get("host", "")),
            _int_field(4, it.get("port", 0)),
            _str_field(5, it.get("username", "")),
            _str_field(6, it.get("password", "")),
        ])
        parts.append(_len_field(4, spec))
    return b"".join(parts)


def proto_fields(data):
    """Top-level fields of a proto message: {tag: [values]} (varints and bytes only)."""
    out, i = {}, 0
    while i < len(data):
        key, i = _read_varint(data, i)
        tag, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            n, i = _read_varint(data, i)
            v, i = data[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt} not handled")
        out.setdefault(tag, []).append(v)
    return out


def _read_varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# --------------------------------------------------------------------------- items

def session_items(n, prefix, static_every=1):
    """n session specs with unique tokens. Every `static_every`-th one (i % k == 0)
    is static with host/port/username/password; the others are rotation sessions
    (token only). static_every=1 means all static."""
    items = []
    for i in range(n):
        tok = f"{prefix}-{i}"
        if static_every and i % static_every == 0:
            items.append({
                "token": tok,
                "scheme": "http",
                "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                "port": 1024 + i % 60000,
                "username": f"user{i}",
                "password": f"pw-{prefix}-{i}",
            })
        else:
            items.append({"token": tok})
    return items


def json_bulk_request(ws, pool, provider, items):
    return json.dumps({
        "workspaceId": ws, "poolId": pool, "providerId": provider, "sessions": items,
    }, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- commands

def cmd_setup(a):
    c = Client(a.url, a.key)
    ws = c.call("CreateWorkspace", {"name": "bench"})["workspace"]["id"]
    prov = c.call("ConnectProvider", {
        "workspaceId": ws, "type": "PROVIDER_TYPE_GENERIC", "name": "bench-generic",
        "credentials": {"username": "gwuser", "password": "gwpass"},
        "gateway": {"scheme": "http", "host": "gw.example.net", "port": 8000,
                    "usernameTemplate": "{username}-session-{token}",
                    "passwordTemplate": "{password}"},
    })["provider"]["id"]
    pool = c.call("CreatePool", {"workspaceId": ws, "name": "pool-0"})["pool"]["id"]
    secret = c.call("CreateApiKey", {"workspaceId": ws, "name": "bench-resolver",
                                     "role": "API_KEY_ROLE_RESOLVER"})["secret"]
    for k, v in [("WS", ws), ("PROVIDER", prov), ("POOL", pool), ("RESOLVER_KEY", secret)]:
        print(f"export {k}='{v}'")


def cmd_pool(a):
    c = Client(a.url, a.key)
    print(c.call("CreatePool", {"workspaceId": a.ws, "name": a.name})["pool"]["id"])


def cmd_bulk(a):
    c = Client(a.url, a.key)
    rows = []
    codecs = a.codecs.split(",")
    for r in range(a.rounds):
        for codec in codecs:
            pool = c.call("CreatePool", {"workspaceId": a.ws, "name": f"bulk-{codec}-{r}"})["pool"]["id"]
            items = session_items(a.items, f"r{r}{codec[0]}")
            if codec == "json":
                body, ctype = json_bulk_request(a.ws, pool, a.provider, items), "application/json"
            else:
                body, ctype = proto_bulk_request(a.ws, pool, a.provider, items), "application/proto"
            status, data, secs = c.post("BulkCreateSessions", body, ctype)
            if status != 200:
                raise SystemExit(f"BulkCreateSessions ({codec}) failed: HTTP {status} {data[:300]!r}")
            if codec == "json":
                created = json.loads(data).get("createdCount", 0)
            else:
                created = proto_fields(data).get(2, [0])[0]
            if created != a.items:
                raise SystemExit(f"expected {a.items} created, got {created}")
            rate = a.items / secs
            rows.append((codec, r, secs, rate, len(body), len(data)))
            print(f"  round {r + 1}/{a.rounds} {codec:5s} {secs * 1000:8.1f} ms  "
                  f"{rate:10.0f} sessions/s  (request {len(body) / 1e6:.2f} MB, response {len(data) / 1e6:.2f} MB)",
                  flush=True)
    summary = {}
    for codec in codecs:
        secs = [x[2] for x in rows if x[0] == codec]
        rates = [x[3] for x in rows if x[0] == codec]
        summary[codec] = {"median_ms": statistics.median(secs) * 1000,
                          "median_rate": statistics.median(rates),
                          "best_rate": max(rates), "worst_rate": min(rates)}
    print()
    print(f"{'codec':6s} {'median ms':>10s} {'median sessions/s':>18s} {'best':>10s} {'worst':>10s}")
    for codec, s in summary.items():
        print(f"{codec:6s} {s['median_ms']:10.1f} {s['median_rate']:18.0f} "
              f"{s['best_rate']:10.0f} {s['worst_rate']:10.0f}")
    if "json" in summary and "proto" in summary:
        j, p = summary["json"]["median_ms"], summary["proto"]["median_ms"]
        print(f"\nJSON codec overhead (json - proto median): {j - p:.1f} ms of {j:.1f} ms "
              f"= {100 * (j - p) / j:.0f}% of the JSON call")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"items": a.items, "rounds": a.rounds, "summary": summary,
                       "calls": [dict(zip(["codec", "round", "secs", "rate", "req_bytes", "resp_bytes"], x))
                                 for x in rows]}, f, indent=1)


def cmd_seed_sessions(a):
    c = Client(a.url, a.key)
    done, t0 = 0, time.perf_counter()
    batch = 0
    while done < a.count:
        n = min(a.batch, a.count - done)
        items = session_items(n, f"s{batch}", a.static_every)
        status, data, secs = c.post("BulkCreateSessions",
                                    json_bulk_request(a.ws, a.pool, a.provider, items))
        if status != 200:
            raise SystemExit(f"BulkCreateSessions failed: HTTP {status} {data[:300]!r}")
        done += n
        batch += 1
        if batch % 10 == 0 or done == a.count:
            print(f"  sessions: {done}/{a.count} ({done / (time.perf_counter() - t0):.0f}/s)",
                  file=sys.stderr, flush=True)


def cmd_seed_accounts(a):
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "err": None}
    t0 = time.perf_counter()

    def worker():
        c = Client(a.url, a.key)
        while True:
            with lock:
                if state["err"] or state["next"] >= a.count:
                    return
                i = state["next"]
                state["next"] += 1
            body = json.dumps({"workspaceId": a.ws, "poolId": a.pool,
                               "accountName": f"acct-{i}"}).encode()
            status, data, _ = c.post("ResolveProxy", body)
            if status != 200:
                with lock:
                    state["err"] = f"acct-{i}: HTTP {status} {data[:300]!r}"
                return
            with lock:
                state["done"] += 1
                d = state["done"]
            if d % 20000 == 0:
                print(f"  accounts: {d}/{a.count} ({d / (time.perf_counter() - t0):.0f}/s)",
                      file=sys.stderr, flush=True)

    threads = [threading.Thread(target=worker) for _ in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["err"]:
        raise SystemExit("ResolveProxy seeding failed: " + state["err"])
    secs = time.perf_counter() - t0
    print(f"  accounts: {a.count} in {secs:.1f} s ({a.count / secs:.0f}/s)", file=sys.stderr)


def cmd_drive(a):
    """N sequential calls on one connection (for instruction counting)."""
    import random
    rnd = random.Random(1)
    c = Client(a.url, a.key)
    for i in range(a.count):
        if a.method == "ResolveProxy":
            n = i % a.accounts if a.in_order else rnd.randrange(a.accounts)
            msg = {"workspaceId": a.ws, "poolId": a.pool, "accountName": f"acct-{n}"}
        elif a.method == "CreateSession":  # as bench/create_session.lua sends it
            drive_n = getattr(a, "_n", 0) + 1
            a._n = drive_n
            msg = {"workspaceId": a.ws, "poolId": a.pool, "providerId": a.provider,
                   "scheme": "http", "host": "10.20.30.40", "port": 8080, "username": "bench-user",
                   "password": "bench-password", "token": f"drive-{os.getpid()}-{drive_n}"}
        else:
            msg = {"workspaceId": a.ws}
        status, data, _ = c.post(a.method, json.dumps(msg).encode())
        if status != 200:
            raise SystemExit(f"{a.method}: HTTP {status} {data[:200]!r}")


def _ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cmd_wrk_parse(a):
    import re
    text = sys.stdin.read()
    out = {"label": a.label}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{p}_ms"] = _ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = m.group(1).strip() if m else ""
    if a.elapsed:
        # Cores busy on average during the run, and server CPU per request.
        out["server_cores"] = round(a.server_cpu / a.elapsed, 2)
        out["wrk_cores"] = round(a.wrk_cpu / a.elapsed, 2)
        out["other_cores"] = round(max(0.0, a.machine_cpu - a.server_cpu - a.wrk_cpu) / a.elapsed, 2)
        if out["requests"]:
            out["server_us_per_req"] = round(a.server_cpu / out["requests"] * 1e6, 1)
            if a.syscalls:
                out["syscalls_per_req"] = round(a.syscalls / out["requests"], 2)
                out["ctx_switches_per_req"] = round(a.switches / out["requests"], 2)
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, ws=True):
        sp.add_argument("--url", default=os.environ.get("URL"))
        sp.add_argument("--key", default=os.environ.get("KEY"))
        if ws:
            sp.add_argument("--ws", default=os.environ.get("WS"))

    s = sub.add_parser("setup"); common(s, ws=False); s.set_defaults(f=cmd_setup)
    s = sub.add_parser("pool"); common(s); s.add_argument("--name", required=True); s.set_defaults(f=cmd_pool)
    s = sub.add_parser("bulk"); common(s)
    s.add_argument("--provider", default=os.environ.get("PROVIDER"))
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--items", type=int, default=10000)
    s.add_argument("--codecs", default="json,proto")
    s.add_argument("--json-out")
    s.set_defaults(f=cmd_bulk)
    s = sub.add_parser("seed-sessions"); common(s)
    s.add_argument("--provider", default=os.environ.get("PROVIDER"))
    s.add_argument("--pool", default=os.environ.get("POOL"))
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--batch", type=int, default=10000)
    s.add_argument("--static-every", type=int, default=2,
                   help="every k-th session is static, the rest rotation (1 = all static)")
    s.set_defaults(f=cmd_seed_sessions)
    s = sub.add_parser("seed-accounts"); common(s)
    s.add_argument("--pool", default=os.environ.get("POOL"))
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--parallel", type=int, default=8)
    s.set_defaults(f=cmd_seed_accounts)
    s = sub.add_parser("drive"); common(s)
    s.add_argument("--pool", default=os.environ.get("POOL"))
    s.add_argument("--method", default="ResolveProxy")
    s.add_argument("--provider", default=os.environ.get("PROVIDER"))
    s.add_argument("--count", type=int, default=2000)
    s.add_argument("--accounts", type=int, default=int(os.environ.get("ACCOUNTS", "1000")))
    s.add_argument("--in-order", action="store_true", help="accounts 0, 1, 2, … instead of at random")
    s.set_defaults(f=cmd_drive)
    s = sub.add_parser("wrk-parse"); s.add_argument("--label", default="")
    for f in ("--elapsed", "--server-cpu", "--machine-cpu", "--wrk-cpu", "--syscalls", "--switches"):
        s.add_argument(f, type=float, default=0.0)
    s.set_defaults(f=cmd_wrk_parse)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
