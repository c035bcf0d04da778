#!/usr/bin/env python3
"""Helper for bench/peer.sh (Python 3 stdlib only).

Subcommands:

  session-ids   list the sessions of $WS/$POOL on a proxyplane server (ListSessions
                pages); write their ids (base64, JSON form) one per line
  pb-setup      on a PocketBase server: log in as the superuser, create the `sessions`
                collection (public viewRule and createRule), seed N records; write
                the record ids one per line
  table         read the JSONL summary peer.sh wrote; print the table and the ratios;
                exit 1 when any figure is invalid (non-2xx responses or socket errors)
"""

import argparse
import http.client
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppbench import Client  # noqa: E402  (the proxyplane Connect client)


# --------------------------------------------------------------------------- proxyplane

def cmd_session_ids(a):
    c = Client(a.url, a.key)
    ids, cursor = [], ""
    while True:
        msg = {"workspaceId": a.ws, "poolId": a.pool, "pageSize": 1000}
        if cursor:
            msg["cursor"] = cursor
        out = c.call("ListSessions", msg)
        ids.extend(out.get("sessionIds", []))
        cursor = out.get("nextCursor", "")
        if not cursor:
            break
    if len(ids) < a.expect:
        raise SystemExit(f"ListSessions gave {len(ids)} ids, expected at least {a.expect}")
    with open(a.out, "w") as f:
        f.write("\n".join(ids) + "\n")
    print(f"  {len(ids)} session ids -> {a.out}", file=sys.stderr)


# --------------------------------------------------------------------------- PocketBase

class PB:
    """One keep-alive connection to a PocketBase server."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.token = None

    def req(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = self.token
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        out = json.loads(raw) if raw else {}
        if r.status // 100 != 2:
            # PocketBase's error bodies name the field; never echo the request
            # (it may hold the superuser password).
            raise SystemExit(f"PocketBase {method} {path}: HTTP {r.status} {json.dumps(out)[:400]}")
        return out


# Shaped like proxyplane's sessions table: the ids a session hangs off
# (workspace, pool, provider; plain text here: PocketBase checks no foreign
# key for them, proxyplane does), the endpoint, and the state. The token is
# unique per pool, as in proxyplane. The password field is hidden (PocketBase
# never returns it, as proxyplane never does) but stored in clear, where
# proxyplane seals it: that cost is proxyplane's alone.
SESSIONS_COLLECTION = {
    "name": "sessions",
    "type": "base",
    "listRule": None,
    "viewRule": "",
    "createRule": "",
    "updateRule": None,
    "deleteRule": None,
    "fields": [
        {"name": "workspace", "type": "text", "required": True, "max": 64},
        {"name": "pool", "type": "text", "required": True, "max": 64},
        {"name": "provider", "type": "text", "required": True, "max": 64},
        {"name": "token", "type": "text", "required": True, "max": 128,
         "pattern": "^[A-Za-z0-9._-]+$"},
        {"name": "scheme", "type": "select", "maxSelect": 1,
         "values": ["http", "https", "socks4", "socks5", "socks5h"]},
        {"name": "host", "type": "text", "max": 253},
        {"name": "port", "type": "number", "onlyInt": True, "min": 0, "max": 65535},
        {"name": "username", "type": "text", "max": 256},
        {"name": "password", "type": "text", "max": 256, "hidden": True},
        {"name": "enabled", "type": "bool"},
        {"name": "version", "type": "number", "onlyInt": True},
        {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
        {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
    ],
    "indexes": ["CREATE UNIQUE INDEX idx_sessions_pool_token ON sessions (pool, token)"],
}


def pb_record(prefix, i):
    """One session record, the same shape the pb_create.lua script posts."""
    return {
        "workspace": "ws-bench", "pool": "pool-0", "provider": "prov-0",
        "token": f"{prefix}-{i}", "scheme": "http",
        "host": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
        "port": 1024 + i % 60000, "username": f"user{i}", "password": f"pw-{prefix}-{i}",
        "enabled": True, "version": 1,
    }


def cmd_pb_setup(a):
    password = os.environ.get("PB_PASSWORD")
    if not password:
        raise SystemExit("PB_PASSWORD not set")
    pb = PB(a.url)
    auth = pb.req("POST", "/api/collections/_superusers/auth-with-password",
                  {"identity": a.email, "password": password})
    pb.token = auth["token"]
    if a.request_logs == "0":
        # logs.maxDays = 0 turns off PocketBase's per-request log rows.
        pb.req("PATCH", "/api/settings", {"logs": {"maxDays": 0}})
    pb.req("POST", "/api/collections", SESSIONS_COLLECTION)
    # Seed as a guest, through the same public createRule the benchmark uses.
    pb.token = None
    ids = []
    for i in range(a.records):
        ids.append(pb.req("POST", "/api/collections/sessions/records", pb_record("seed", i))["id"])
    with open(a.out, "w") as f:
        f.write("\n".join(ids) + "\n")
    # A view as a guest must work, and must not return the hidden password.
    got = pb.req("GET", f"/api/collections/sessions/records/{ids[0]}")
    if "password" in got or got.get("token") != "seed-0":
        raise SystemExit(f"unexpected PocketBase record view: {json.dumps(got)[:300]}")
    print(f"  PocketBase: collection sessions, {len(ids)} records -> {a.out}", file=sys.stderr)


# --------------------------------------------------------------------------- table

# (label, server, what) in table order; the ratios pair labels.
ROWS = [
    ("noop", "no-op", "POST, body read, fixed JSON answer"),
    ("pp_resolve", "proxyplane", "ResolveProxy sticky"),
    ("pp_get", "proxyplane", "GetSession"),
    ("pp_create", "proxyplane", "CreateSession"),
    ("pb_view", "PocketBase", "record view (GET)"),
    ("pb_create", "PocketBase", "record create (POST)"),
]
# (name, numerator, denominator, target req/s ratio, p99 ceiling in ms of the
# numerator or None): the targets of the performance issue.
RATIOS = [
    ("ResolveProxy / no-op", "pp_resolve", "noop", 0.5, 5.0),
    ("GetSession / PocketBase view", "pp_get", "pb_view", 5.0, None),
    ("CreateSession / PocketBase create", "pp_create", "pb_create", 5.0, 20.0),
]
# Peak RSS of proxyplane under these loads, MB.
RSS_TARGET_MB = 64


def valid(r):
    return r is not None and r.get("rps") and r.get("non2xx", 0) == 0 and not r.get("errors")


def cmd_table(a):
    rows = {}
    for line in open(a.summary):
        if line.strip():
            r = json.loads(line)
            rows[r["label"]] = r
    f2 = lambda v: "-" if v is None else f"{v:.2f}"
    fmt = "{:<10s} {:<36s} {:>8s} {:>7s} {:>7s} {:>7s} {:>7s} {:>8s} {:>6s} {:>8s}"
    print(fmt.format("server", "figure", "req/s", "p50 ms", "p99 ms", "non-2xx", "errors",
                     "CPU us/r", "B/resp", "peak MB"))
    for label, server, what in ROWS:
        r = rows.get(label)
        if r is None:
            print(fmt.format(server, what, "(not run)", "", "", "", "", "", "", ""))
            continue
        print(fmt.format(
            server, what, f"{r['rps']:.0f}" if r.get("rps") else "-",
            f2(r.get("p50_ms")), f2(r.get("p99_ms")), str(r.get("non2xx", 0)),
            str(r.get("errors", 0)), f2(r.get("server_us_per_req")) if r.get("server_us_per_req") else "-",
            str(r.get("bytes_per_resp", "-")), str(r.get("peak_rss_mb", "?"))))
    print()
    print(f"{'ratios (proxyplane / peer)':<36s} {'req/s':>6s} {'CPU us/r':>9s}  target")
    bad = False
    for name, num, den, target, p99_max in RATIOS:
        x, y = rows.get(num), rows.get(den)
        if x is None or y is None:
            print(f"  {name:<34s} (not run)")
            continue
        if not (valid(x) and valid(y)):
            bad = True
            print(f"  {name:<34s} INVALID: a side had non-2xx responses or socket errors")
            continue
        cpu = "-"
        if x.get("server_us_per_req") and y.get("server_us_per_req"):
            cpu = f"{x['server_us_per_req'] / y['server_us_per_req']:.2f}"
        ratio = x["rps"] / y["rps"]
        want = f">= {target}" + (f", p99 <= {p99_max} ms" if p99_max else "")
        met = ratio >= target and (p99_max is None or (x.get("p99_ms") or 1e9) <= p99_max)
        print(f"  {name:<34s} {ratio:6.2f} {cpu:>9s}  {want}: {'PASS' if met else 'MISS'}")
    pp_rss = [rows[lab].get("peak_rss_mb") for lab, server, _ in ROWS
              if lab in rows and server == "proxyplane"]
    pp_rss = [v for v in pp_rss if isinstance(v, (int, float))]
    if pp_rss:
        print(f"  {'proxyplane peak RSS':<34s} {max(pp_rss):6.0f} MB  target <= {RSS_TARGET_MB} MB: "
              f"{'PASS' if max(pp_rss) <= RSS_TARGET_MB else 'MISS'}")
    invalid = [lab for lab, _, _ in ROWS if lab in rows and not valid(rows[lab])]
    print()
    print("CPU us/r = server CPU (user+system) per request; B/resp = bytes on the wire per response,"
          " headers included;")
    print("peak MB = the server's VmHWM during that figure's warm-up and run"
          + (" (reset before each figure)" if not a.hwm_lifetime else " (lifetime: reset not possible)"))
    for line in a.note or []:
        print(line)
    if invalid:
        print(f"\nINVALID figures (non-2xx responses or socket errors): {', '.join(invalid)}")
        for lab in invalid:
            print(f"  {lab}: non-2xx {rows[lab].get('non2xx', 0)}, socket errors: "
                  f"{rows[lab].get('socket_errors') or 'none'}; see {rows[lab].get('raw', '')}")
    if invalid or bad:
        sys.exit(1)


def cmd_annotate(a):
    """Add peak RSS, socket error count and bytes per response to a wrk-parse JSON line."""
    r = json.loads(sys.stdin.read())
    text = open(a.raw).read()
    errs = 0
    m = re.search(r"Socket errors:(.*)", text)
    if m:
        errs = sum(int(n) for n in re.findall(r"\d+", m.group(1)))
    r["errors"] = errs
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", text)
    if m and r.get("rps"):
        mult = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[m.group(2)]
        r["bytes_per_resp"] = round(float(m.group(1)) * mult / r["rps"])
    r["peak_rss_mb"] = a.peak_rss_mb
    r["raw"] = a.raw
    print(json.dumps(r))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("session-ids")
    s.add_argument("--url", default=os.environ.get("URL"))
    s.add_argument("--key", default=os.environ.get("KEY"))
    s.add_argument("--ws", default=os.environ.get("WS"))
    s.add_argument("--pool", default=os.environ.get("POOL"))
    s.add_argument("--expect", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(f=cmd_session_ids)
    s = sub.add_parser("pb-setup")
    s.add_argument("--url", required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--records", type=int, default=1000)
    s.add_argument("--request-logs", default="1", choices=["0", "1"])
    s.add_argument("--out", required=True)
    s.set_defaults(f=cmd_pb_setup)
    s = sub.add_parser("annotate")
    s.add_argument("--raw", required=True)
    s.add_argument("--peak-rss-mb", default="?")
    s.set_defaults(f=cmd_annotate)
    s = sub.add_parser("table")
    s.add_argument("summary")
    s.add_argument("--hwm-lifetime", action="store_true")
    s.add_argument("--note", action="append")
    s.set_defaults(f=cmd_table)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
