"""The built-in proxy gateway against real software.

Upstreams: PyPI proxy.py HTTP proxies with --basic-auth (their access logs
tell which upstream carried each request). Clients: curl as an HTTP proxy
client (plain HTTP and CONNECT) and as a SOCKS5 client, Python requests.
Origin: a local HTTP server (and the same through CONNECT).

Covered: plain HTTP forwarding and CONNECT through the account's upstream
with the upstream's credentials (hard characters included); SOCKS5 with
username/password; stickiness per account across connections; failover when
the upstream dies (the same connection's retry and the next connection);
pinned accounts never move; no or wrong login is 407 with
Proxy-Authenticate; a key without resolve rights is 403; the gateway never
goes to a target directly; 1,000 bots, 50 at a time.
"""

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
RESULTS = {"passed": 0, "failed": 0}
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def start_origin():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


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
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"proxy.py did not start on {self.port}")

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

    # Metrics name the gateway's tunnels.
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {admin}"}), timeout=10) as r:
        metrics = r.read().decode()
    check("/metrics reports gateway tunnels", "proxyplane_gateway" in metrics)
    with open(os.path.join(tmp, "server.err")) as f:
        log = f.read()
    check("no secret in the server log", key not in log and "p@ss:w/rd%" not in log and "s3cret" not in log)

    server.terminate()
    server.wait(timeout=20)
    check("SIGTERM stops the server with the gateway", server.returncode == 0, str(server.returncode))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
    print(f"gateway: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    sys.exit(1 if RESULTS["failed"] else 0)
