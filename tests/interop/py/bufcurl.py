"""`buf curl` (connect-go inside buf, Connect protocol, binary application/proto,
HTTP/1.1, schema from proto/ instead of server reflection) on a read method and
write methods, plus plain HTTP JSON requests like the README's curl example.

Usage: python py/bufcurl.py --base-url URL --admin-key-file FILE --buf PATH --schema PROTO_DIR
Prints PASS/FAIL/SKIP lines and a final "steps: N passed, N failed, N skipped" line.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

TOTALS = {"pass": 0, "fail": 0, "skip": 0}
# buf curl exits with the Connect/gRPC code shifted left by 3 when the RPC fails.
CODES = {
    3: "invalid_argument",
    5: "not_found",
    7: "permission_denied",
    12: "unimplemented",
    16: "unauthenticated",
}
B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def check(cond: Any, msg: str) -> None:
    if not cond:
        raise Fail(msg)


def eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise Fail(f"{what}: got {actual!r}, want {expected!r}")


class Ctx:
    base_url = ""
    admin_key = ""
    buf = ""
    schema = ""
    state: dict[str, Any] = {}


def step(label: str, name: str, needs: list[str], fn: Callable[[], None]) -> None:
    missing = [n for n in needs if Ctx.state.get(n) is None]
    if missing:
        outcome, reason = "skip", f"needs {', '.join(missing)} from an earlier step that did not pass"
    else:
        outcome, reason = "pass", ""
        try:
            fn()
        except Skip as e:
            outcome, reason = "skip", str(e)
        except Fail as e:
            outcome, reason = "fail", str(e)
        except Exception as e:  # noqa: BLE001
            outcome, reason = "fail", f"{type(e).__name__}: {e}"
    TOTALS[outcome] += 1
    print(f"{outcome.upper()} {label} {name}{': ' + reason if reason else ''}", flush=True)


def served_at_all(method: str) -> bool:
    status, body, _ = http_json("POST", method, {}, Ctx.admin_key)
    return status != 404 and b'"unimplemented"' not in body


def buf_curl(method: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    """Runs buf curl; returns the response message as JSON, or raises."""
    cmd = [
        Ctx.buf, "curl",
        "--schema", Ctx.schema,
        "--protocol", "connect",
        "-H", f"Authorization: Bearer {key}",
        "-d", json.dumps(body),
        f"{Ctx.base_url}/proxies.v1.Proxies/{method}",
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        return json.loads(p.stdout)
    if p.returncode >= 8 and p.returncode % 8 == 0:
        code = p.returncode >> 3
        if code == 12 and not served_at_all(method):
            raise Skip(f"{method} answers Unimplemented (not landed in the server yet)")
        raise BufCurlError(method, CODES.get(code, str(code)), p.stderr.strip() or p.stdout.strip())
    raise Fail(f"buf curl {method} failed to run (exit {p.returncode}): {p.stderr.strip()[:400]}")


class BufCurlError(Exception):
    def __init__(self, method: str, code: str, output: str) -> None:
        super().__init__(f"{method}: {code}: {output[:300]}")
        self.code = code


def http_json(verb: str, method: str, body: dict[str, Any], key: str) -> tuple[int, bytes, str]:
    url = f"{Ctx.base_url}/proxies.v1.Proxies/{method}"
    data = None
    headers = {"Authorization": f"Bearer {key}"}
    if verb == "GET":
        url += "?" + urllib.parse.urlencode({"encoding": "json", "message": json.dumps(body)})
    else:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=verb, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def raw(verb: str, method: str, body: dict[str, Any], key: str) -> tuple[int, bytes, str]:
    """http_json, but a method the server does not serve yet is a skip."""
    status, data, ctype = http_json(verb, method, body, key)
    if status == 404 or (status == 501 and b'"unimplemented"' in data):
        if not served_at_all(method):
            raise Skip(f"{method} answers {status} (not landed in the server yet)")
    return status, data, ctype


def check_workspace_json(w: Any, name: str, version: str) -> None:
    """The raw protojson shape the contract fixes (API.md §1)."""
    check(isinstance(w, dict), f"workspace is not an object: {w!r}")
    check(isinstance(w.get("id"), str) and B64.match(w["id"]) and len(w["id"]) == 24, f"id {w.get('id')!r} is not padded standard base64 of 16 bytes")
    eq(len(base64.b64decode(w["id"])), 16, "decoded id length")
    eq(w.get("name"), name, "name")
    check(isinstance(w.get("version"), str), f"int64 version must be a JSON string, got {json.dumps(w.get('version'))}")
    eq(w["version"], version, "version")
    check(isinstance(w.get("keyVersion"), int), f"int32 keyVersion must be a JSON number, got {json.dumps(w.get('keyVersion'))}")
    for k in ("createdAt", "updatedAt"):
        check(isinstance(w.get(k), str) and w[k].endswith("Z"), f"{k} {w.get(k)!r} is not RFC 3339 UTC with Z")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--admin-key-file", required=True)
    ap.add_argument("--buf", required=True)
    ap.add_argument("--schema", required=True)
    a = ap.parse_args()
    Ctx.base_url, Ctx.buf, Ctx.schema = a.base_url, a.buf, a.schema
    with open(a.admin_key_file) as f:
        Ctx.admin_key = f.read().strip()
    s = Ctx.state
    K = Ctx.admin_key
    label = "buf-curl/connect-proto"
    name = f"interop-bufcurl-{int(time.time() * 1000)}"

    def create_ws() -> None:
        w = buf_curl("CreateWorkspace", {"name": name}, K)["workspace"]
        eq(w["name"], name, "workspace.name")
        eq(w["version"], "1", "workspace.version")
        s["ws"] = w["id"]

    step(label, "CreateWorkspace (write)", [], create_ws)

    def get_ws() -> None:
        w = buf_curl("GetWorkspace", {"workspaceId": s["ws"]}, K)["workspace"]
        eq(w["id"], s["ws"], "workspace.id")
        eq(w["name"], name, "workspace.name")

    step(label, "GetWorkspace (read)", ["ws"], get_ws)

    def update_ws() -> None:
        w = buf_curl("UpdateWorkspace", {"workspaceId": s["ws"], "name": name + "-renamed", "expectedVersion": "1"}, K)["workspace"]
        eq(w["name"], name + "-renamed", "workspace.name")
        eq(w["version"], "2", "workspace.version")
        s["renamed"] = True

    step(label, "UpdateWorkspace (write)", ["ws"], update_ws)

    def create_pool() -> None:
        p = buf_curl("CreatePool", {"workspaceId": s["ws"], "name": "curl-pool", "rotation": {"intervalSeconds": 3600}}, K)["pool"]
        eq(p["name"], "curl-pool", "pool.name")
        eq(p["version"], "1", "pool.version")
        eq(p.get("rotation", {}).get("intervalSeconds"), 3600, "pool.rotation.intervalSeconds")

    step(label, "CreatePool (write)", ["ws"], create_pool)

    def unauth() -> None:
        try:
            buf_curl("GetWorkspace", {"workspaceId": s["ws"]}, "pp_not-a-real-key-0000000000000000")
        except BufCurlError as e:
            eq(e.code, "unauthenticated", "error code")
            return
        raise Fail("call with a bad key succeeded")

    step(label, "Unauthenticated: bad bearer key", ["ws"], unauth)

    # Plain HTTP with JSON, as in the README's curl example.
    label = "http-json/raw"

    def raw_post() -> None:
        status, body, ctype = raw("POST", "GetWorkspace", {"workspaceId": s["ws"]}, K)
        eq(status, 200, f"HTTP status (body {body[:200]!r})")
        check(ctype.startswith("application/json"), f"Content-Type {ctype!r}")
        check_workspace_json(json.loads(body)["workspace"], name + "-renamed", "2")

    step(label, "POST application/json GetWorkspace", ["ws", "renamed"], raw_post)

    def raw_get() -> None:
        status, body, ctype = raw("GET", "GetWorkspace", {"workspaceId": s["ws"]}, K)
        eq(status, 200, f"HTTP status (body {body[:200]!r})")
        check(ctype.startswith("application/json"), f"Content-Type {ctype!r}")
        check_workspace_json(json.loads(body)["workspace"], name + "-renamed", "2")

    step(label, "GET ?encoding=json&message=... GetWorkspace", ["ws", "renamed"], raw_get)

    def raw_error() -> None:
        status, body, ctype = raw("POST", "GetWorkspace", {"workspaceId": s["ws"]}, "pp_not-a-real-key-0000000000000000")
        eq(status, 401, "HTTP status")
        check(ctype.startswith("application/json"), f"Content-Type {ctype!r}")
        err = json.loads(body)
        eq(err.get("code"), "unauthenticated", "code")
        check(isinstance(err.get("message"), str), "message is not a string")

    step(label, "401 error body {code, message}", ["ws"], raw_error)

    print(f"steps: {TOTALS['pass']} passed, {TOTALS['fail']} failed, {TOTALS['skip']} skipped", flush=True)
    return 1 if TOTALS["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
