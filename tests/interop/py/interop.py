"""The interop scenario for the official Connect Python runtime (connectrpc 0.13,
sync client), written once and run per mode:

  gzip  the client's defaults: binary protobuf, every request body gzipped
  json  codec=proto_json_codec() (application/json), still gzipped
  get   the defaults plus use_get=True on NO_SIDE_EFFECTS methods: Connect GET
        with base64=1, compression=gzip, encoding=proto

Usage: python py/interop.py --base-url http://127.0.0.1:PORT --admin-key-file FILE [--mode M]...
Prints one line per step (PASS/FAIL/SKIP <client>/<mode> <step>[: reason]) and a
final "steps: N passed, N failed, N skipped" line; exits 1 if any step failed.

Like the connect-node modes, every response goes through a tap (a thin wrapper
around the pyqwest client connectrpc uses) that compares successful JSON bodies
with the canonical protojson of the same message: the client's JSON parser is
lenient (it takes "version": 2 as well as "2"), the contract is not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gen", "py"))

from connectrpc.code import Code  # noqa: E402
from connectrpc.codec import proto_json_codec  # noqa: E402
from connectrpc.errors import ConnectError  # noqa: E402
from protobuf import message_to_json_value  # noqa: E402
from pyqwest import SyncClient  # noqa: E402

from proxies.v1 import proxies_pb as pb  # noqa: E402
from proxies.v1.proxies_connect import ProxiesClientSync  # noqa: E402

MODES = ("gzip", "json", "get")

# NO_SIDE_EFFECTS methods, from the generated service descriptor.
_SERVICE = next(s for s in pb.desc().services if s.type_name == "proxies.v1.Proxies")
READ_ONLY = {m.name for m in _SERVICE.methods if getattr(m.idempotency, "name", "") == "NO_SIDE_EFFECTS"}
assert "GetSession" in READ_ONLY and "CreateSession" not in READ_ONLY


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# ------------------------------------------------------------------ wire tap

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def _instant(ts: str) -> tuple[datetime, str]:
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", ts)
    assert m
    return datetime.fromisoformat(m.group(1)), (m.group(2) or "").ljust(9, "0")


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def compare_json(raw: Any, canonical: Any, path: str) -> list[str]:
    """Same keys (absent = default), same JSON types and values; timestamps
    only need to be RFC 3339 UTC "Z" strings naming the same instant."""
    out: list[str] = []
    rt, ct = _jtype(raw), _jtype(canonical)
    if rt == "null":
        return out
    if rt != ct:
        out.append(f"{path}: server wrote a JSON {rt} ({json.dumps(raw)}), protojson wants a {ct} ({json.dumps(canonical)})")
        return out
    if rt == "object":
        for k, v in raw.items():
            if k not in canonical:
                out.append(f"{path}.{k}: field not in the schema's protojson (wrong name or leaked field): {json.dumps(v)}")
                continue
            out.extend(compare_json(v, canonical[k], f"{path}.{k}"))
        return out
    if rt == "array":
        if len(raw) != len(canonical):
            out.append(f"{path}: array length {len(raw)} vs {len(canonical)}")
            return out
        for i, (a, b) in enumerate(zip(raw, canonical)):
            out.extend(compare_json(a, b, f"{path}[{i}]"))
        return out
    if rt == "string" and TIMESTAMP.match(canonical):
        if not TIMESTAMP.match(raw):
            out.append(f'{path}: timestamp {json.dumps(raw)} is not RFC 3339 UTC with "Z"')
        elif _instant(raw) != _instant(canonical):
            out.append(f"{path}: timestamp {json.dumps(raw)} vs {json.dumps(canonical)}")
        return out
    if raw != canonical:
        out.append(f"{path}: server wrote {json.dumps(raw)}, canonical protojson is {json.dumps(canonical)}")
    return out


def _header_items(headers: Any) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if hasattr(headers, "items"):
        return list(headers.items())
    return list(headers)


class Tap:
    """Wraps the pyqwest SyncClient connectrpc sends its unary calls through
    (it only calls .get and .post for unary RPCs) and checks every response."""

    def __init__(self) -> None:
        self._inner = SyncClient()
        self.problems: list[str] = []
        self.exchanges: list[tuple[str, str, int, bool]] = []

    def drain(self) -> tuple[list[str], list[tuple[str, str, int, bool]]]:
        out = (self.problems, self.exchanges)
        self.problems, self.exchanges = [], []
        return out

    def get(self, url: str, headers: Any = None, **kw: Any) -> Any:
        resp = self._inner.get(url, headers=headers, **kw)
        self._check("GET", url, resp, "compression=gzip" in url)
        return resp

    def post(self, url: str, headers: Any = None, content: Any = None, **kw: Any) -> Any:
        resp = self._inner.post(url, headers=headers, content=content, **kw)
        gz = any(k.lower() == "content-encoding" and v == "gzip" for k, v in _header_items(headers))
        self._check("POST", url, resp, gz)
        return resp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, verb: str, url: str, resp: Any, gzipped: bool) -> None:
        m = re.search(r"/proxies\.v1\.Proxies/(\w+)(?:\?|$)", url)
        if not m:
            return
        rpc = m.group(1)
        self.exchanges.append((verb, rpc, resp.status, gzipped))
        ctype = resp.headers.get("content-type", "") or ""
        if ctype.startswith("application/proto") and resp.status == 200:
            # Binary shows no JSON shape problems, but a field the schema lacks
            # (a leaked secret, a misnumbered field) shows up as unknown fields.
            cls = getattr(pb, f"{rpc}Response", None)
            if cls is not None:
                try:
                    msg = cls.from_binary(bytes(resp.content))
                    if len(msg.to_binary(write_unknown_fields=True)) != len(msg.to_binary(write_unknown_fields=False)):
                        self.problems.append(f"{rpc}: binary response has fields unknown to proxies.v1.{rpc}Response")
                except Exception as e:  # noqa: BLE001
                    self.problems.append(f"{rpc}: binary response does not parse: {e}")
            return
        if not ctype.startswith("application/json"):
            return
        body = bytes(resp.content)
        try:
            raw = json.loads(body)
        except ValueError:
            self.problems.append(f"{rpc}: HTTP {resp.status} body is not JSON: {body[:200]!r}")
            return
        if resp.status != 200:
            if not isinstance(raw, dict) or not isinstance(raw.get("code"), str) or not isinstance(raw.get("message", ""), str):
                self.problems.append(f'{rpc}: HTTP {resp.status} error body is not {{"code","message"}}: {body[:200]!r}')
            return
        cls = getattr(pb, f"{rpc}Response", None)
        if cls is None:
            return
        try:
            msg = proto_json_codec().decode(body, cls)
            canonical = message_to_json_value(msg, always_emit_implicit=True)
        except Exception as e:  # noqa: BLE001
            self.problems.append(f"{rpc}: response JSON does not parse as {cls.__name__}: {e}")
            return
        for p in compare_json(raw, canonical, f"proxies.v1.{rpc}Response"):
            self.problems.append(f"{rpc}: {p}")


# ------------------------------------------------------------------ runner


class Skip(Exception):
    pass


class Fail(Exception):
    pass


TOTALS = {"pass": 0, "fail": 0, "skip": 0}


def fail(msg: str) -> None:
    raise Fail(msg)


def check(cond: Any, msg: str) -> None:
    if not cond:
        raise Fail(msg)


def eq(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise Fail(f"{what}: got {actual!r}, want {expected!r}")


class Args:
    base_url = ""
    admin_key = ""


def served_at_all(method: str) -> bool:
    """Asked with a plain uncompressed JSON POST, so an Unimplemented that the
    server only gives to some encodings (gzip, binary, GET) is a failure."""
    req = urllib.request.Request(
        f"{Args.base_url}/proxies.v1.Proxies/{method}",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {Args.admin_key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        return b'"unimplemented"' not in e.read()
    except Exception:  # noqa: BLE001
        return True


class Runner:
    def __init__(self, mode: str, tap: Tap) -> None:
        self.mode = mode
        self.tap = tap
        self.label = f"connect-python/{mode}"
        self.state: dict[str, Any] = {}

    def step(self, name: str, needs: list[str], fn: Callable[[], None]) -> None:
        missing = [n for n in needs if self.state.get(n) is None]
        if missing:
            self.report("skip", name, f"needs {', '.join(missing)} from an earlier step that did not pass")
            return
        self.tap.drain()
        outcome, reason = "pass", ""
        try:
            fn()
        except Skip as e:
            outcome, reason = "skip", str(e)
        except Fail as e:
            outcome, reason = "fail", str(e)
        except ConnectError as e:
            method = getattr(e, "rpc", "?")
            if e.code == Code.UNIMPLEMENTED and not served_at_all(method):
                outcome, reason = "skip", f"{method} answers Unimplemented (not landed in the server yet)"
            else:
                outcome, reason = "fail", f"{method}: unexpected error {e.code.name}: {e.message}"
        except Exception as e:  # noqa: BLE001
            outcome, reason = "fail", f"{type(e).__name__}: {e} @ {traceback.format_exc(limit=-2).strip().splitlines()[-3:]}"
        problems, exchanges = self.tap.drain()
        if outcome != "skip":
            if not exchanges:
                outcome = "fail"
                reason = "; ".join(filter(None, [reason, "wire tap saw no response (suite bug)"]))
            if problems:
                outcome = "fail"
                reason = "; ".join(filter(None, [reason, *(f"wire: {p}" for p in problems)]))
            if self.mode == "get":
                for verb, rpc, _, _ in exchanges:
                    if rpc in READ_ONLY and verb != "GET":
                        outcome = "fail"
                        reason += f"; {rpc} was sent as {verb}, not GET"
            # The point of these modes: every request body went gzipped.
            for verb, rpc, _, gzipped in exchanges:
                if not gzipped:
                    outcome = "fail"
                    reason += f"; suite bug: {verb} {rpc} was not gzip-compressed"
        self.report(outcome, name, reason)

    def report(self, outcome: str, name: str, reason: str) -> None:
        TOTALS[outcome] += 1
        print(f"{outcome.upper()} {self.label} {name}{': ' + reason if reason else ''}", flush=True)


class Api:
    """Calls the generated ProxiesClientSync with a bearer key, tags errors with
    the RPC name, and sends read methods as GET in the get mode."""

    def __init__(self, client: ProxiesClientSync, mode: str) -> None:
        self.client = client
        self.mode = mode

    def __call__(self, rpc: str, request: Any, key: str) -> Any:
        kwargs: dict[str, Any] = {"headers": {"authorization": f"Bearer {key}"}}
        if self.mode == "get" and rpc in READ_ONLY:
            kwargs["use_get"] = True
        try:
            return getattr(self.client, snake(rpc))(request, **kwargs)
        except ConnectError as e:
            e.rpc = rpc  # type: ignore[attr-defined]
            raise


def expect_code(code: Code, what: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except ConnectError as e:
        if e.code == code:
            return
        method = getattr(e, "rpc", "?")
        if e.code == Code.UNIMPLEMENTED and not served_at_all(method):
            raise Skip(f"{method} answers Unimplemented (not landed in the server yet)") from e
        fail(f"{what}: want {code.name}, got {e.code.name}: {e.message}")
    fail(f"{what}: want {code.name}, but the call succeeded")


# ------------------------------------------------------------------ data

GATEWAY = dict(scheme="http", host="gw.example.net", port=8000, username_template="{username}-session-{token}")
CREDS = dict(username="acct-user", password="gw:p@ss/1")
SEED_TOKEN = "sess-abc123"
SEED_PASSWORD = "s3cr3t-pass"
BULK: list[dict[str, Any]] = [
    dict(token="bulk-a", scheme="http", host="198.51.100.1", port=3128, username="bulk-a", password="pa:ss@a"),
    dict(token="bulk-b", scheme="socks5", host="198.51.100.2", port=1080, username="bulk-b", password="pass-b"),
    dict(token="bulk-c"),
    dict(token="bulk-d"),
    dict(token="bulk-e", scheme="https", host="198.51.100.5", port=8443),
]


def password_for(token: str) -> str:
    if token == SEED_TOKEN:
        return SEED_PASSWORD
    for b in BULK:
        if b["token"] == token:
            return b.get("password", "")
    fail(f"unknown token {token}")
    return ""


def enc(s: str) -> str:
    # proxy.url's login encoding: the WHATWG userinfo percent-encode set plus
    # "%" (see Proxy.url in the proto); !$&'()*+, stay literal.
    return urllib.parse.quote(s, safe="-._~!$&'()*+,")


def check_proxy(p: Any, s: Any) -> None:
    check(p is not None, "ResolveProxy returned no proxy")
    if s.host:
        scheme, host, port, user, pw = s.scheme, s.host, s.port, s.username, password_for(s.token)
    else:
        scheme, host, port = GATEWAY["scheme"], GATEWAY["host"], GATEWAY["port"]
        user, pw = f"{CREDS['username']}-session-{s.token}", CREDS["password"]
    endpoint = f"{scheme}://{host}:{port}"
    url = f"{scheme}://{enc(user)}:{enc(pw)}@{host}:{port}" if (user or pw) else endpoint
    want = dict(scheme=scheme, host=host, port=port, username=user, password=pw, url=url, endpoint=endpoint)
    for k, v in want.items():
        eq(getattr(p, k), v, f"proxy.{k} (session {s.token})")


# ------------------------------------------------------------------ scenario


def scenario(mode: str) -> None:
    tap = Tap()
    codec = proto_json_codec() if mode == "json" else None
    client = ProxiesClientSync(Args.base_url, codec=codec, http_client=tap)  # type: ignore[arg-type]
    call = Api(client, mode)
    r = Runner(mode, tap)
    s = r.state
    A = Args.admin_key

    def O() -> str:  # noqa: N802, E743
        return s["owner"]

    name = f"interop-py-{mode}-{int(time.time() * 1000)}"

    def create_workspace() -> None:
        w = call("CreateWorkspace", pb.CreateWorkspaceRequest(name=name), A).workspace
        check(w is not None, "no workspace in response")
        eq(len(w.id), 16, "workspace.id length")
        eq(w.name, name, "workspace.name")
        eq(w.version, 1, "workspace.version")
        check(w.key_version >= 1, f"workspace.keyVersion {w.key_version} < 1")
        check(w.created_at is not None, "workspace.createdAt missing")
        s["ws"], s["key_version"] = w.id, w.key_version

    r.step("CreateWorkspace (admin key)", [], create_workspace)

    def create_owner() -> None:
        res = call("CreateApiKey", pb.CreateApiKeyRequest(workspace_id=s["ws"], name="owner", role=pb.ApiKeyRole.OWNER), A)
        check(res.secret.startswith("pp_"), "secret does not start with pp_")
        eq(res.api_key.role, pb.ApiKeyRole.OWNER, "apiKey.role")
        eq(res.api_key.workspace_id, s["ws"], "apiKey.workspaceId")
        s["owner"] = res.secret

    r.step("CreateApiKey OWNER", ["ws"], create_owner)

    def get_workspace() -> None:
        w = call("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=s["ws"]), O()).workspace
        eq(w.id, s["ws"], "workspace.id")
        eq(w.name, name, "workspace.name")
        eq(w.version, 1, "workspace.version")

    r.step("GetWorkspace (owner key)", ["ws", "owner"], get_workspace)

    def connect_provider() -> None:
        p = call(
            "ConnectProvider",
            pb.ConnectProviderRequest(
                workspace_id=s["ws"],
                type=pb.ProviderType.GENERIC,
                name="generic",
                credentials=pb.Credentials(**CREDS),
                gateway=pb.Gateway(**GATEWAY),
            ),
            O(),
        ).provider
        check(p is not None, "no provider in response")
        eq(p.type, pb.ProviderType.GENERIC, "provider.type")
        eq(p.gateway.host, GATEWAY["host"], "provider.gateway.host")
        eq(p.gateway.port, GATEWAY["port"], "provider.gateway.port")
        eq(p.gateway.username_template, GATEWAY["username_template"], "provider.gateway.usernameTemplate")
        eq(p.enabled, True, "provider.enabled")
        eq(p.version, 1, "provider.version")
        s["provider"] = p.id

    r.step("ConnectProvider GENERIC with gateway", ["ws", "owner"], connect_provider)

    def create_pool() -> None:
        p = call("CreatePool", pb.CreatePoolRequest(workspace_id=s["ws"], name="pool-1"), O()).pool
        check(p is not None, "no pool in response")
        eq(p.name, "pool-1", "pool.name")
        eq(p.version, 1, "pool.version")
        eq(p.failure_threshold, 3, "pool.failureThreshold (default)")
        eq(p.cooldown_seconds, 300, "pool.cooldownSeconds (default)")
        s["pool"] = p.id

    r.step("CreatePool", ["ws", "owner"], create_pool)

    def create_session() -> None:
        x = call(
            "CreateSession",
            pb.CreateSessionRequest(
                workspace_id=s["ws"],
                pool_id=s["pool"],
                provider_id=s["provider"],
                token=SEED_TOKEN,
                scheme="http",
                host="203.0.113.10",
                port=8080,
                username="user-018f",
                password=SEED_PASSWORD,
            ),
            O(),
        ).session
        check(x is not None, "no session in response")
        eq(len(x.id), 16, "session.id length")
        eq(x.workspace_id, s["ws"], "session.workspaceId")
        eq(x.pool_id, s["pool"], "session.poolId")
        eq(x.provider_id, s["provider"], "session.providerId")
        eq(x.token, SEED_TOKEN, "session.token")
        eq(x.scheme, "http", "session.scheme")
        eq(x.host, "203.0.113.10", "session.host")
        eq(x.port, 8080, "session.port")
        eq(x.username, "user-018f", "session.username")
        eq(x.enabled, True, "session.enabled")
        eq(x.version, 1, "session.version")
        s["seed"] = x

    r.step("CreateSession (seed 002)", ["ws", "owner", "pool", "provider"], create_session)

    def update_session() -> None:
        x = call(
            "UpdateSession",
            pb.UpdateSessionRequest(
                workspace_id=s["ws"], session_id=s["seed"].id, host="203.0.113.99", port=8080, username="user-rotated"
            ),
            O(),
        ).session
        check(x is not None, "no session in response")
        eq(x.id, s["seed"].id, "session.id")
        eq(x.host, "203.0.113.99", "session.host")
        eq(x.port, 8080, "session.port")
        eq(x.username, "user-rotated", "session.username")
        eq(x.token, SEED_TOKEN, "session.token (unchanged)")
        eq(x.scheme, "http", "session.scheme (unchanged)")
        eq(x.enabled, True, "session.enabled (unchanged)")
        eq(x.version, 2, "session.version after one update")
        s["seed"] = x

    r.step("UpdateSession (seed 001)", ["seed"], update_session)

    def get_session() -> None:
        x = call("GetSession", pb.GetSessionRequest(workspace_id=s["ws"], session_id=s["seed"].id), O()).session
        check(x is not None, "no session in response")
        eq(x.host, "203.0.113.99", "session.host")
        eq(x.username, "user-rotated", "session.username")
        eq(x.version, 2, "session.version")

    r.step("GetSession matches the update", ["seed"], get_session)

    r.step(
        "UpdateSession with a stale expectedVersion is Aborted",
        ["seed"],
        lambda: expect_code(
            Code.ABORTED,
            "UpdateSession expectedVersion=1",
            lambda: call(
                "UpdateSession",
                pb.UpdateSessionRequest(workspace_id=s["ws"], session_id=s["seed"].id, enabled=True, expected_version=1),
                O(),
            ),
        ),
    )

    def bulk_req() -> Any:
        return pb.BulkCreateSessionsRequest(
            workspace_id=s["ws"],
            pool_id=s["pool"],
            provider_id=s["provider"],
            sessions=[pb.SessionSpec(**b) for b in BULK],
        )

    def bulk1() -> None:
        res = call("BulkCreateSessions", bulk_req(), O())
        eq(len(res.session_ids), len(BULK), "sessionIds length")
        eq(res.created_count, len(BULK), "createdCount")
        eq(res.existing_count, 0, "existingCount")
        eq(len(set(res.session_ids)), len(BULK), "distinct session ids")
        s["bulk_ids"] = list(res.session_ids)

    r.step("BulkCreateSessions", ["pool", "provider"], bulk1)

    def bulk2() -> None:
        res = call("BulkCreateSessions", bulk_req(), O())
        eq(res.created_count, 0, "createdCount")
        eq(res.existing_count, len(BULK), "existingCount")
        eq(list(res.session_ids), s["bulk_ids"], "sessionIds (same ids, same order)")

    r.step("BulkCreateSessions again is idempotent", ["bulk_ids"], bulk2)

    def list_sessions() -> None:
        want = {s["seed"].id, *s["bulk_ids"]}
        seen: list[bytes] = []
        cursor, pages = "", 0
        while True:
            res = call(
                "ListSessions",
                pb.ListSessionsRequest(workspace_id=s["ws"], pool_id=s["pool"], page_size=2, cursor=cursor),
                O(),
            )
            pages += 1
            check(len(res.session_ids) <= 2, f"page {pages} has {len(res.session_ids)} ids, pageSize was 2")
            check(res.session_ids or not res.next_cursor, f"page {pages} is empty but has a nextCursor")
            seen.extend(res.session_ids)
            cursor = res.next_cursor
            check(pages <= 20, "more than 20 pages for 6 sessions: the cursor does not advance")
            if not cursor:
                break
        eq(len(set(seen)), len(seen), "no duplicate ids across pages")
        eq(set(seen), want, "ids listed")
        check(pages >= 3, f"6 sessions at pageSize 2 came in {pages} page(s)")

    r.step("ListSessions page by page", ["seed", "bulk_ids"], list_sessions)

    def session_by_id(sid: bytes) -> Any:
        x = call("GetSession", pb.GetSessionRequest(workspace_id=s["ws"], session_id=sid), O()).session
        check(x is not None, "GetSession returned no session")
        return x

    def resolve_req() -> Any:
        return pb.ResolveProxyRequest(workspace_id=s["ws"], pool_id=s["pool"], account_name="steam_bot_01")

    def resolve1() -> None:
        res = call("ResolveProxy", resolve_req(), O())
        a = res.assignment
        check(a is not None, "no assignment in response")
        eq(a.account_name, "steam_bot_01", "assignment.accountName")
        eq(a.pool_id, s["pool"], "assignment.poolId")
        eq(a.pinned, False, "assignment.pinned")
        eq(a.version, 1, "assignment.version")
        check(a.session_id in {s["seed"].id, *s["bulk_ids"]}, "assignment.sessionId is not a session of the pool")
        check_proxy(res.proxy, session_by_id(a.session_id))
        again = call("ResolveProxy", resolve_req(), O()).assignment
        eq(again.id, a.id, "second resolve: assignment.id")
        eq(again.session_id, a.session_id, "second resolve: assignment.sessionId (sticky)")
        s["assignment"] = again

    r.step("ResolveProxy creates a sticky assignment", ["seed", "bulk_ids"], resolve1)

    def pin() -> None:
        before = s["assignment"]
        a = call(
            "UpdateAssignment",
            pb.UpdateAssignmentRequest(workspace_id=s["ws"], assignment_id=before.id, session_id=s["seed"].id, pinned=True),
            O(),
        ).assignment
        check(a is not None, "no assignment in response")
        eq(a.id, before.id, "assignment.id")
        eq(a.session_id, s["seed"].id, "assignment.sessionId")
        eq(a.pinned, True, "assignment.pinned")
        eq(a.version, before.version + 1, "assignment.version")
        got = call("GetAssignment", pb.GetAssignmentRequest(workspace_id=s["ws"], assignment_id=a.id), O()).assignment
        eq(got.session_id, s["seed"].id, "GetAssignment sessionId")
        eq(got.pinned, True, "GetAssignment pinned")
        s["pinned"] = a

    r.step("UpdateAssignment pins to an explicit session (seed 000)", ["assignment"], pin)

    r.step(
        "RebindAssignment on a pinned assignment is FailedPrecondition",
        ["pinned"],
        lambda: expect_code(
            Code.FAILED_PRECONDITION,
            "RebindAssignment while pinned",
            lambda: call("RebindAssignment", pb.RebindAssignmentRequest(workspace_id=s["ws"], assignment_id=s["pinned"].id), O()),
        ),
    )

    def unpin() -> None:
        a = call(
            "UpdateAssignment",
            pb.UpdateAssignmentRequest(workspace_id=s["ws"], assignment_id=s["pinned"].id, pinned=False),
            O(),
        ).assignment
        check(a is not None, "no assignment in response")
        eq(a.pinned, False, "assignment.pinned")
        eq(a.session_id, s["seed"].id, "assignment.sessionId (unchanged)")
        eq(a.version, s["pinned"].version + 1, "assignment.version")
        s["unpinned"] = a

    r.step("UpdateAssignment unpins", ["pinned"], unpin)

    def rebind() -> None:
        before = s["unpinned"]
        a = call("RebindAssignment", pb.RebindAssignmentRequest(workspace_id=s["ws"], assignment_id=before.id), O()).assignment
        check(a is not None, "no assignment in response")
        check(a.session_id != s["seed"].id, "assignment still on its old session")
        check(a.session_id in s["bulk_ids"], "assignment moved outside the pool's sessions")
        eq(a.pinned, False, "assignment.pinned")
        eq(a.version, before.version + 1, "assignment.version")
        eq(a.rotations, before.rotations + 1, "assignment.rotations")
        s["rebound"] = a

    r.step("RebindAssignment moves to another session", ["unpinned"], rebind)

    def delete_session() -> None:
        call("DeleteSession", pb.DeleteSessionRequest(workspace_id=s["ws"], session_id=s["seed"].id), O())
        expect_code(
            Code.NOT_FOUND,
            "GetSession of the deleted session",
            lambda: call("GetSession", pb.GetSessionRequest(workspace_id=s["ws"], session_id=s["seed"].id), O()),
        )
        ids = call("ListSessions", pb.ListSessionsRequest(workspace_id=s["ws"], pool_id=s["pool"]), O()).session_ids
        check(s["seed"].id not in ids, "ListSessions still lists the deleted session")

    r.step("DeleteSession", ["seed"], delete_session)

    def rotate() -> None:
        res = call("RotateWorkspaceKey", pb.RotateWorkspaceKeyRequest(workspace_id=s["ws"]), O())
        eq(res.previous_key_version, s["key_version"], "previousKeyVersion")
        eq(res.new_key_version, s["key_version"] + 1, "newKeyVersion")
        w = call("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=s["ws"]), O()).workspace
        eq(w.key_version, res.new_key_version, "workspace.keyVersion after rotation")
        if s.get("provider"):
            p = call("GetProvider", pb.GetProviderRequest(workspace_id=s["ws"], provider_id=s["provider"]), O()).provider
            eq(p.key_version, res.new_key_version, "provider.keyVersion (credentials re-sealed)")
        s["key_version"] = res.new_key_version
        s["rotated"] = True

    r.step("RotateWorkspaceKey", ["ws", "owner", "key_version"], rotate)

    def resolve2() -> None:
        res = call("ResolveProxy", resolve_req(), O())
        a = res.assignment
        check(a is not None, "no assignment in response")
        eq(a.id, s["assignment"].id, "assignment.id")
        if s.get("rebound"):
            eq(a.session_id, s["rebound"].session_id, "assignment.sessionId (sticky since the rebind)")
        check_proxy(res.proxy, session_by_id(a.session_id))

    r.step("ResolveProxy after key rotation decrypts", ["assignment", "rotated"], resolve2)

    # ------------------------------------------------------------- error codes

    r.step(
        "NotFound: GetSession with a random id",
        ["ws", "owner"],
        lambda: expect_code(
            Code.NOT_FOUND,
            "GetSession random id",
            lambda: call("GetSession", pb.GetSessionRequest(workspace_id=s["ws"], session_id=os.urandom(16)), O()),
        ),
    )
    r.step(
        "InvalidArgument: GetSession with a 3-byte id",
        ["ws", "owner"],
        lambda: expect_code(
            Code.INVALID_ARGUMENT,
            "GetSession 3-byte id",
            lambda: call("GetSession", pb.GetSessionRequest(workspace_id=s["ws"], session_id=b"\x01\x02\x03"), O()),
        ),
    )
    r.step(
        "Unauthenticated: unknown bearer key",
        ["ws"],
        lambda: expect_code(
            Code.UNAUTHENTICATED,
            "GetWorkspace with a bad key",
            lambda: call("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=s["ws"]), "pp_not-a-real-key-0000000000000000"),
        ),
    )
    r.step(
        "AlreadyExists: CreateSession with a taken token",
        ["bulk_ids"],
        lambda: expect_code(
            Code.ALREADY_EXISTS,
            "CreateSession token bulk-a",
            lambda: call(
                "CreateSession",
                pb.CreateSessionRequest(workspace_id=s["ws"], pool_id=s["pool"], provider_id=s["provider"], token="bulk-a"),
                O(),
            ),
        ),
    )

    def create_viewer() -> None:
        res = call("CreateApiKey", pb.CreateApiKeyRequest(workspace_id=s["ws"], name="viewer", role=pb.ApiKeyRole.VIEWER), O())
        eq(res.api_key.role, pb.ApiKeyRole.VIEWER, "apiKey.role")
        s["viewer"] = res.secret

    r.step("CreateApiKey VIEWER", ["ws", "owner"], create_viewer)

    def viewer_denied() -> None:
        w = call("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=s["ws"]), s["viewer"]).workspace
        eq(w.id, s["ws"], "viewer GetWorkspace")
        expect_code(
            Code.PERMISSION_DENIED,
            "viewer CreateSession",
            lambda: call(
                "CreateSession",
                pb.CreateSessionRequest(
                    workspace_id=s["ws"], pool_id=s["pool"], provider_id=s["provider"], token="viewer-made", host="203.0.113.7", port=1
                ),
                s["viewer"],
            ),
        )

    r.step("PermissionDenied: VIEWER calls CreateSession", ["viewer", "pool", "provider"], viewer_denied)

    def other_workspace() -> None:
        other = call("CreateWorkspace", pb.CreateWorkspaceRequest(name=f"{name}-other"), A).workspace
        check(other is not None, "no workspace in response")
        expect_code(
            Code.PERMISSION_DENIED,
            "owner key of workspace 1 on workspace 2",
            lambda: call("GetWorkspace", pb.GetWorkspaceRequest(workspace_id=other.id), O()),
        )

    r.step("PermissionDenied: a key used on another workspace", ["ws", "owner"], other_workspace)

    client.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--admin-key-file", required=True)
    ap.add_argument("--mode", action="append", choices=MODES)
    a = ap.parse_args()
    Args.base_url = a.base_url
    with open(a.admin_key_file) as f:
        Args.admin_key = f.read().strip()
    for mode in a.mode or MODES:
        scenario(mode)
    print(f"steps: {TOTALS['pass']} passed, {TOTALS['fail']} failed, {TOTALS['skip']} skipped", flush=True)
    return 1 if TOTALS["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
