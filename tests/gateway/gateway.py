"""The built-in proxy gateway against real software.

Upstreams: PyPI proxy.py HTTP proxies with --basic-auth (their access logs
tell which upstream carried each request, and whether a plain request came
in absolute form or through CONNECT), PyPI pproxy as a SOCKS5 upstream with
username/password and as the HTTP upstreams of the 1,000 concurrent bots.
Clients: curl as an HTTP proxy client (plain HTTP and CONNECT) and as a
SOCKS5 client, Python requests and httpx, Node undici's ProxyAgent, and raw
asyncio sockets for the crowd. Origins: a local HTTP server and a local
HTTPS server whose self-signed certificate the clients are given to trust.

Covered: plain HTTP forwarding and CONNECT through the account's upstream
with the upstream's credentials (hard characters included); SOCKS5 with
username/password; stickiness per account across connections; failover when
the upstream dies (the same connection's retry and the next connection);
pinned accounts never move; SIGTERM drains open tunnels and takes no new
connection; no or wrong login is 407 with
Proxy-Authenticate; a key without resolve rights is 403; the gateway never
goes to a target directly; HTTPS origins through the tunnel; SOCKS5 on
both sides; 1,000 bots at once.
"""

import asyncio
import ssl

import base64
import concurrent.futures
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

SERVER_BIN = os.environ["SERVER_BIN"]
PROXY_PY = os.environ["PROXY_PY"]
PPROXY = os.environ["PPROXY"]
NODE_DIR = os.environ["NODE_DIR"]  # has node_modules/undici
RESULTS = {"passed": 0, "failed": 0}
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, what):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start on {port}")


def check(name, cond, detail=""):
    if cond:
        RESULTS["passed"] += 1
        print(f"ok   {name}")
    else:
        RESULTS["failed"] += 1
        print(f"FAIL {name} {detail}")


class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"origin saw {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(http.server.ThreadingHTTPServer):
    # 1,000 bots connect at once: a listen backlog that holds them.
    request_queue_size = 2048


def start_origin(cert=None):
    srv = Server(("127.0.0.1", 0), Origin)
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def make_cert(tmp):
    """A self-signed certificate for 127.0.0.1: (cert, key) paths."""
    cert, key = os.path.join(tmp, "origin.crt"), os.path.join(tmp, "origin.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class Pproxy:
    """A pproxy upstream (`scheme` http or socks5) with a login; --auth 0 so
    that it checks the login on every connection (by default it trusts an
    address that logged in once). Its -v log names each connection."""

    def __init__(self, tmp, name, scheme, user, password):
        self.port = free_port()
        self.user, self.password = user, password
        self.log = os.path.join(tmp, f"{name}.log")
        self.proc = subprocess.Popen(
            [PPROXY, "-l", f"{scheme}://127.0.0.1:{self.port}#{user}:{password}", "--auth", "0", "-v"],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        wait_listening(self.port, "pproxy")

    def served(self):
        with open(self.log) as f:
            return sum(" -> " in line for line in f)


class Upstream:
    """A proxy.py HTTP proxy with basic auth; its access log names paths."""

    def __init__(self, tmp, name, user, password):
        self.port = free_port()
        self.user, self.password = user, password
        self.log = os.path.join(tmp, f"{name}.log")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [PROXY_PY, "--hostname", "127.0.0.1", "--port", str(self.port),
             "--basic-auth", f"{self.user}:{self.password}", "--log-file", self.log,
             "--log-level", "INFO", "--num-workers", "1", "--num-acceptors", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its acceptor and worker processes go with it (killpg).
            start_new_session=True)
        PROCS.append(self.proc)
        wait_listening(self.port, "proxy.py")

    def stop(self):
        os.killpg(self.proc.pid, 9)
        self.proc.wait()
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                time.sleep(0.05)
            except OSError:
                return
        raise SystemExit(f"proxy.py on {self.port} would not die")

    def served(self):
        """Requests in this upstream's access log so far (the gateway
        reaches every target through CONNECT, so lines name host:port)."""
        try:
            with open(self.log) as f:
                return sum("access_log" in line for line in f)
        except FileNotFoundError:
            return 0

    def last_line(self, wait=2.0):
        """The newest access-log line (logged just after the response)."""
        until = time.time() + wait
        while True:
            try:
                with open(self.log) as f:
                    lines = [l for l in f if "access_log" in l]
            except FileNotFoundError:
                lines = []
            if lines or time.time() >= until:
                return lines[-1].strip() if lines else ""
            time.sleep(0.05)

    def carried_after(self, before, wait=2.0):
        """Whether it served a request since it had served `before`
        (proxy.py logs just after the response: waited for briefly)."""
        until = time.time() + wait
        while self.served() <= before:
            if time.time() >= until:
                return False
            time.sleep(0.05)
        return True


class Api:
    def __init__(self, url, key):
        self.url, self.key = url, key

    def call(self, method, body, key=None):
        req = urllib.request.Request(
            f"{self.url}/proxies.v1.Proxies/{method}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {key or self.key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise SystemExit(f"{method}: {e.code} {e.read()[:300]!r}")


def start_server(tmp):
    data = os.path.join(tmp, "data")
    gw_port = free_port()
    env = dict(os.environ, PROXYPLANE_GATEWAY_LISTEN=f"127.0.0.1:{gw_port}",
               PROXYPLANE_GATEWAY_MAX_TUNNELS="4000",
               PROXYPLANE_LOG_LEVEL="info", PROXYPLANE_RATE_LIMIT_PER_SECOND="0")
    err = open(os.path.join(tmp, "server.err"), "w")
    p = subprocess.Popen([SERVER_BIN, "--data-dir", data, "serve", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    PROCS.append(p)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        raise SystemExit(f"server did not start: {line!r}")
    with open(os.path.join(data, "admin.key")) as f:
        admin = f.read().strip()
    return p, f"http://{line.removeprefix('listening on ')}", admin, gw_port


def curl(args, timeout=20):
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "15", "-o", "-", "-w", "\n%{http_code}", *args],
                       capture_output=True, text=True, timeout=timeout)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="proxyplane-gateway.")
    print(f"work dir {tmp}")
    origin = start_origin()
    # Upstream credentials with characters that need care in a URL and in
    # Proxy-Authorization.
    up_a = Upstream(tmp, "a", "alice", "p@ss:w/rd%")
    up_b = Upstream(tmp, "b", "bob", "s3cret")
    server, url, admin, gw = start_server(tmp)
    api = Api(url, admin)
    ws = api.call("CreateWorkspace", {"name": "gw"})["workspace"]["id"]
    key = api.call("CreateApiKey", {"workspaceId": ws, "name": "bots", "role": "API_KEY_ROLE_RESOLVER"})["secret"]
    viewer = api.call("CreateApiKey", {"workspaceId": ws, "name": "v", "role": "API_KEY_ROLE_VIEWER"})["secret"]
    prov = api.call("ConnectProvider", {"workspaceId": ws, "type": "PROVIDER_TYPE_GENERIC", "name": "own"})["provider"]["id"]
    # One failure makes a session unhealthy (the default is 3), so a dead
    # upstream moves its accounts at the first failed tunnel.
    pool = api.call("CreatePool", {"workspaceId": ws, "name": "bots", "failureThreshold": 1})["pool"]["id"]
    sessions = {}
    for up, token in ((up_a, "a"), (up_b, "b")):
        s = api.call("CreateSession", {"workspaceId": ws, "poolId": pool, "providerId": prov, "token": token,
                                       "scheme": "http", "host": "127.0.0.1", "port": up.port,
                                       "username": up.user, "password": up.password})["session"]
        sessions[s["id"]] = up

    def upstream_of(account):
        a = api.call("ListAssignments", {"workspaceId": ws, "poolId": pool, "accountName": account})["assignments"]
        return sessions.get(a[0]["sessionId"]) if a else None

    proxy = f"http://bots.bot1:{key}@127.0.0.1:{gw}"
    target = f"http://127.0.0.1:{origin}"

    def counts():
        return up_a.served(), up_b.served()

    def went_through(before, up):
        """The request since `before` went through `up` (and not the other)."""
        idx = 0 if up is up_a else 1
        if not (up_a, up_b)[idx].carried_after(before[idx]):
            return False
        return (up_a, up_b)[1 - idx].served() == before[1 - idx]

    # Plain HTTP (absolute form), through the account's upstream.
    before = counts()
    code, body, err = curl(["-x", proxy, f"{target}/plain-1"])
    up1 = upstream_of("bot1")
    check("plain HTTP reaches the origin through the account's upstream",
          code == 200 and body == "origin saw /plain-1" and up1 is not None and went_through(before, up1),
          f"{code} {body!r} {err}")
    # proxy.py logs a forwarded request as "GET host:port/path" (a tunnel as
    # "CONNECT host:port"): absolute form, and it took the upstream's own
    # credentials (hard characters and all) or it would have answered 407.
    last = up1.last_line() if up1 else ""
    check("plain HTTP is forwarded to the HTTP upstream in absolute form, with its credentials",
          f" GET 127.0.0.1:{origin}/plain-1 - 200" in last, last)
    # CONNECT (curl -p tunnels even for http://), same upstream: sticky.
    before = counts()
    code, body, err = curl(["-p", "-x", proxy, f"{target}/tunnel-1"])
    check("CONNECT tunnels through the same upstream (sticky across connections)",
          code == 200 and body == "origin saw /tunnel-1" and went_through(before, up1),
          f"{code} {body!r} {err}")
    # SOCKS5 with username/password.
    before = counts()
    code, body, err = curl(["--socks5-hostname", f"127.0.0.1:{gw}", "--proxy-user", f"bots.bot1:{key}",
                            f"{target}/socks-1"])
    check("SOCKS5 with username/password reaches the origin on the same upstream",
          code == 200 and body == "origin saw /socks-1" and went_through(before, up1),
          f"{code} {body!r} {err}")
    # Python requests, the pool named by its id (percent-encoded base64).
    import requests
    quoted = urllib.parse.quote(pool, safe="")
    r = requests.get(f"{target}/requests-1", timeout=15,
                     proxies={"http": f"http://{quoted}.bot1:{key}@127.0.0.1:{gw}"})
    check("requests with the pool named by its id", r.status_code == 200 and r.text == "origin saw /requests-1",
          f"{r.status_code} {r.text[:100]!r}")

    # Logins: none, wrong key, wrong pool: 407 with a challenge; no rights:
    # 403. None of them reaches any upstream.
    before = counts()
    code, _, _ = curl(["-x", f"http://127.0.0.1:{gw}", f"{target}/nologin"])
    check("no login is 407", code == 407, str(code))
    raw = socket.create_connection(("127.0.0.1", gw), 5)
    raw.sendall(f"GET {target}/raw HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = raw.recv(4096).decode(errors="replace")
    raw.close()
    check("407 carries Proxy-Authenticate", head.startswith("HTTP/1.1 407") and "Proxy-Authenticate: Basic" in head, head[:200])
    code, _, _ = curl(["-x", f"http://bots.bot1:pp_wrong@127.0.0.1:{gw}", f"{target}/wrongkey"])
    check("a wrong key is 407", code == 407, str(code))
    code, _, _ = curl(["-x", f"http://bots.bot1:{viewer}@127.0.0.1:{gw}", f"{target}/viewer"])
    check("a key without resolve rights is 403", code == 403, str(code))
    code, _, _ = curl(["-x", f"http://nosuchpool.bot1:{key}@127.0.0.1:{gw}", f"{target}/nopool"])
    check("an unknown pool is refused", code in (403, 404, 407), str(code))
    time.sleep(0.5)
    check("refused logins reached no upstream", counts() == before, f"{before} -> {counts()}")

    # Failover: kill the account's upstream; the tunnel fails before the
    # bot is answered, the account is moved by policy and the request is
    # retried once on the new session: the bot sees a success.
    other = up_b if up1 is up_a else up_a
    up1.stop()
    before = counts()
    code, body, err = curl(["-p", "-x", proxy, f"{target}/failover-1"])
    check("a dead upstream fails over within the same connection",
          code == 200 and body == "origin saw /failover-1" and upstream_of("bot1") is other
          and other.carried_after(before[0 if other is up_a else 1]),
          f"{code} {body!r} {err}")
    before = counts()
    code, body, _ = curl(["-x", proxy, f"{target}/failover-2"])
    check("the next connection stays on the new upstream",
          code == 200 and other.carried_after(before[0 if other is up_a else 1]), str(code))
    up1.start()

    # Pinned accounts never move: pinned to `other`, which dies: an error.
    api.call("CreateAssignment", {"workspaceId": ws, "poolId": pool, "accountName": "pinned",
                                  "sessionId": [k for k, v in sessions.items() if v is other][0], "pinned": True})
    other.stop()
    before = counts()
    code, _, _ = curl(["-x", f"http://bots.pinned:{key}@127.0.0.1:{gw}", f"{target}/pinned-1"])
    time.sleep(0.5)
    check("a pinned account on a dead upstream gets an error and does not move",
          code >= 500 and upstream_of("pinned") is other and counts() == before,
          f"{code} {upstream_of('pinned') is other} {before} -> {counts()}")
    other.start()

    # Many bots at once, in a fresh pool over both (restarted) upstreams:
    # the failures above left the first pool's sessions cooling down.
    many = api.call("CreatePool", {"workspaceId": ws, "name": "many"})["pool"]["id"]
    for up, token in ((up_a, "a"), (up_b, "b")):
        api.call("CreateSession", {"workspaceId": ws, "poolId": many, "providerId": prov, "token": token,
                                   "scheme": "http", "host": "127.0.0.1", "port": up.port,
                                   "username": up.user, "password": up.password})

    def bot(i):
        c, b, e = curl(["-x", f"http://many.bot{i}:{key}@127.0.0.1:{gw}", f"{target}/many-{i}"], timeout=60)
        return (c == 200 and b == f"origin saw /many-{i}") or f"{c} {e.strip()[:80]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        got = list(ex.map(bot, range(1000)))
    bad = [g for g in got if g is not True]
    check("1,000 bots, 50 at a time, all reach the origin", not bad, f"{len(bad)} failed, e.g. {bad[:3]}")

    more_clients(tmp, ws, prov, api, key, gw, origin)
    socks_upstream(tmp, ws, prov, api, key, gw, origin)
    crowd(tmp, ws, prov, api, key, gw, origin)

    # Metrics name the gateway's tunnels.
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {admin}"}), timeout=10) as r:
        metrics = r.read().decode()
    check("/metrics reports gateway tunnels", "proxyplane_gateway" in metrics)
    with open(os.path.join(tmp, "server.err")) as f:
        log = f.read()
    check("no secret in the server log", key not in log and "p@ss:w/rd%" not in log and "s3cret" not in log)

    # SIGTERM: the gateway stops accepting, a tunnel open at that moment
    # keeps carrying bytes (drain), and the server exits once it closes.
    auth = base64.b64encode(f"crowd.bot0:{key}".encode()).decode()
    t = socket.create_connection(("127.0.0.1", gw), 5)
    t.sendall(f"CONNECT 127.0.0.1:{origin} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
    answer = t.recv(4096)
    server.terminate()
    refused = False
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", gw), 1).close()
            time.sleep(0.1)
        except OSError:
            refused = True
            break
    check("after SIGTERM the gateway takes no new connection", refused)
    t.sendall(b"GET /drain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    t.settimeout(10)
    while True:
        d = t.recv(4096)
        if not d:
            break
        got += d
    t.close()
    check("a tunnel open at SIGTERM still carries its request (drain)",
          answer.startswith(b"HTTP/1.1 200") and got.endswith(b"origin saw /drain"),
          f"{answer[:40]!r} {got[-60:]!r}")
    server.wait(timeout=20)
    check("SIGTERM stops the server with the gateway", server.returncode == 0, str(server.returncode))


def more_clients(tmp, ws, prov, api, key, gw, origin):
    """httpx and undici, over HTTP and to an HTTPS origin (curl and requests
    too), each client trusting the origin's certificate explicitly."""
    cert = make_cert(tmp)
    tls = start_origin(cert)
    pool = api.call("CreatePool", {"workspaceId": ws, "name": "clients"})["pool"]["id"]
    up = Upstream(tmp, "clients", "erin", "tl$:p@ss")
    api.call("CreateSession", {"workspaceId": ws, "poolId": pool, "providerId": prov, "token": "c",
                               "scheme": "http", "host": "127.0.0.1", "port": up.port,
                               "username": up.user, "password": up.password})
    proxy = f"http://clients.bot1:{key}@127.0.0.1:{gw}"
    plain, secure = f"http://127.0.0.1:{origin}", f"https://127.0.0.1:{tls}"

    code, body, err = curl(["--cacert", cert[0], "-x", proxy, f"{secure}/tls-curl"])
    check("curl reaches an HTTPS origin through the gateway", code == 200 and body == "origin saw /tls-curl",
          f"{code} {body!r} {err}")
    import requests
    r = requests.get(f"{secure}/tls-requests", proxies={"https": proxy}, verify=cert[0], timeout=15)
    check("requests reaches an HTTPS origin through the gateway",
          r.status_code == 200 and r.text == "origin saw /tls-requests", f"{r.status_code} {r.text[:80]!r}")

    import httpx
    before = up.served()
    with httpx.Client(proxy=proxy, verify=cert[0], timeout=15) as c:
        a = c.get(f"{plain}/httpx-plain")
        b = c.get(f"{secure}/httpx-tls")
    check("httpx, plain HTTP and an HTTPS origin, through the account's upstream",
          (a.status_code, a.text, b.status_code, b.text) == (200, "origin saw /httpx-plain", 200, "origin saw /httpx-tls")
          and up.carried_after(before),
          f"{a.status_code} {a.text[:60]!r} {b.status_code} {b.text[:60]!r}")

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "undici.mjs")
    r = subprocess.run(["node", script, proxy, f"{plain}/undici-plain", f"{secure}/undici-tls", cert[0]],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules")), cwd=NODE_DIR)
    check("undici ProxyAgent, plain HTTP and an HTTPS origin",
          r.returncode == 0 and r.stdout.split("\n")[:2] == ["200 origin saw /undici-plain", "200 origin saw /undici-tls"],
          f"rc={r.returncode} out={r.stdout[:200]!r} err={r.stderr[-300:]!r}")


def socks_upstream(tmp, ws, prov, api, key, gw, origin):
    """A SOCKS5 upstream (pproxy, username/password): reached by an HTTP
    proxy client and by a SOCKS5 client of the gateway."""
    up = Pproxy(tmp, "socks", "socks5", "carol", "s0cks")
    pool = api.call("CreatePool", {"workspaceId": ws, "name": "socks"})["pool"]["id"]
    api.call("CreateSession", {"workspaceId": ws, "poolId": pool, "providerId": prov, "token": "s",
                               "scheme": "socks5", "host": "127.0.0.1", "port": up.port,
                               "username": up.user, "password": up.password})
    target = f"http://127.0.0.1:{origin}"
    n = up.served()
    code, body, err = curl(["-x", f"http://socks.bot1:{key}@127.0.0.1:{gw}", f"{target}/socks-up-http"])
    time.sleep(0.2)
    check("plain HTTP through a SOCKS5 upstream", code == 200 and body == "origin saw /socks-up-http"
          and up.served() == n + 1, f"{code} {body!r} {err} served {n} -> {up.served()}")
    code, body, err = curl(["--socks5-hostname", f"127.0.0.1:{gw}", "--proxy-user", f"socks.bot1:{key}",
                            f"{target}/socks-both"])
    time.sleep(0.2)
    check("SOCKS5 on both sides (client -> gateway -> SOCKS5 upstream)",
          code == 200 and body == "origin saw /socks-both" and up.served() == n + 2,
          f"{code} {body!r} {err} served {n} -> {up.served()}")


def crowd(tmp, ws, prov, api, key, gw, origin, n=1000):
    """1,000 bots at once, each its own account, over two pproxy HTTP
    upstreams: every bot reaches the origin, every account is bound, both
    upstreams carry their share, and a second round stays sticky."""
    ups = [Pproxy(tmp, f"crowd-{i}", "http", f"crowd{i}", f"pw{i}") for i in range(2)]
    pool = api.call("CreatePool", {"workspaceId": ws, "name": "crowd"})["pool"]["id"]
    by_session = {}
    for i, up in enumerate(ups):
        sid = api.call("CreateSession", {"workspaceId": ws, "poolId": pool, "providerId": prov,
                                         "token": f"crowd{i}", "scheme": "http", "host": "127.0.0.1",
                                         "port": up.port, "username": up.user,
                                         "password": up.password})["session"]["id"]
        by_session[sid] = up

    async def bot(i):
        auth = base64.b64encode(f"crowd.bot{i}:{key}".encode()).decode()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", gw), 30)
            w.write((f"GET http://127.0.0.1:{origin}/crowd-{i} HTTP/1.1\r\nHost: 127.0.0.1:{origin}\r\n"
                     f"Proxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n").encode())
            data = await asyncio.wait_for(r.read(), 60)
            w.close()
        except (OSError, asyncio.TimeoutError) as e:
            return f"bot{i}: {e!r}"
        ok = data.startswith(b"HTTP/1.") and b" 200 " in data[:20] and data.endswith(f"origin saw /crowd-{i}".encode())
        return True if ok else f"bot{i}: {data[:80]!r}"

    async def all_at_once():
        # Every connection is opened before any answer is read: 1,000 at once.
        return await asyncio.gather(*(bot(i) for i in range(n)))

    before = sum(u.served() for u in ups)
    got = asyncio.run(all_at_once())
    bad = [g for g in got if g is not True]
    check(f"{n:,} bots at once, each with its own account, all reach the origin", not bad,
          f"{len(bad)} failed, e.g. {bad[:3]}")
    bound = {}
    cursor = ""
    while True:
        page = api.call("ListAssignments", {"workspaceId": ws, "poolId": pool, "pageSize": 1000, "pageToken": cursor})
        for a in page.get("assignments", []):
            bound[a["accountName"]] = by_session[a["sessionId"]]
        cursor = page.get("nextPageToken", "")
        if not cursor:
            break
    time.sleep(0.5)
    served = [u.served() for u in ups]
    check(f"{n:,} accounts bound, both upstreams carried their share",
          len(bound) == n and all(s > 0 for s in served) and sum(served) - before >= n,
          f"bound {len(bound)}, served {served}")
    # Sticky: a second request of a sample goes through the same upstream.
    sample = [i for i in range(0, n, 50)]
    moved = []
    for i in sample:
        up = bound[f"bot{i}"]
        k = up.served()
        code, body, _ = curl(["-x", f"http://crowd.bot{i}:{key}@127.0.0.1:{gw}", f"http://127.0.0.1:{origin}/again-{i}"])
        time.sleep(0.05)
        if code != 200 or up.served() != k + 1:
            moved.append(i)
    check("a second request of each sampled bot goes through its own account's upstream", not moved,
          f"moved: {moved[:5]}")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            try:
                # proxy.py's acceptor and worker processes share its group.
                if os.getpgid(p.pid) == p.pid:
                    os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            if p.poll() is None:
                p.kill()
    print(f"gateway: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    sys.exit(1 if RESULTS["failed"] else 0)
