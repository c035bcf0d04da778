#!/usr/bin/env python3
"""The proxy gateway's benchmark (issue 12), run by bench/gateway.sh.

Three paths to one origin, side by side in one run on loopback, each going
through the same real upstream proxy (Debian's tinyproxy, C, BasicAuth):

  direct       client -> tinyproxy -> origin
  proxyplane   client -> proxyplane's gateway -> tinyproxy -> origin
  proxy-chain  client -> apify proxy-chain (Node) -> tinyproxy -> origin

Figures per path:
  bulk         one CONNECT tunnel, the origin streams BULK_MB as fast as it
               can, the client reads it; MB/s, median of ROUNDS, paths
               interleaved per round
  setup        SETUP_N sequential new connections, each CONNECT until the
               200, one small exchange with the origin through the tunnel,
               close; p50/p99 of the whole exchange, and the p99 added over
               direct
  idle         IDLE_N tunnels opened and held (an exchange done on each, so
               each is known to be up), then the path's process memory:
               VmRSS while they are held, VmHWM over its life

Subcommands: `origin PORT` (the asyncio origin, run as its own process) and
`run` (everything). Environment: SERVER_BIN, OUT (work dir for node
modules), BULK_MB (1024), ROUNDS (3), SETUP_N (2000), IDLE_N (10000),
ACCOUNTS (100).
"""
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

UP_USER, UP_PASS = "bench", "p4ssw0rd"  # tinyproxy's BasicAuth takes no punctuation
PROCS = []


# ------------------------------------------------------------------ origin

async def origin_conn(reader, writer):
    try:
        line = await reader.readline()
        if line.startswith(b"B "):
            left = int(line[2:])
            chunk = memoryview(bytes(1 << 20))
            while left > 0:
                n = min(left, len(chunk))
                writer.write(chunk[:n])
                left -= n
                await writer.drain()
        elif line == b"P\n":
            writer.write(b"PONG\n")
            await writer.drain()
        # Then (and for "I\n", an idle tunnel) hold until the client closes.
        await reader.read()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def origin(port):
    async def main():
        srv = await asyncio.start_server(origin_conn, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        async with srv:
            await srv.serve_forever()
    asyncio.run(main())


# ------------------------------------------------------------------ helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc=None):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{what} exited with {proc.returncode}")
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


def spawn(args, what, port, **kw):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    PROCS.append(p)
    wait_port(port, what, p)
    return p


def memory(pid):
    """(VmRSS, VmHWM) in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def cpu_seconds(pid):
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


class Path:
    def __init__(self, name, port, logins, pid):
        self.name, self.port, self.pid = name, port, pid
        self.logins = logins  # list of Proxy-Authorization values (one per account)

    def head(self, target, i):
        auth = self.logins[i % len(self.logins)]
        return (f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                f"Proxy-Authorization: Basic {auth}\r\n\r\n").encode()


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise OSError(f"closed before the CONNECT answer: {buf[:100]!r}")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    if b" 200" not in head.split(b"\r\n")[0]:
        raise OSError(f"CONNECT refused: {head[:200]!r}")
    return rest


def tunnel(path, target, i):
    s = socket.create_connection(("127.0.0.1", path.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(path.head(target, i))
    return s, read_head(s)


# ------------------------------------------------------------------ figures

def bulk(path, target, size):
    s, rest = tunnel(path, target, 0)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    s.sendall(f"B {size}\n".encode())
    got = len(rest)
    while got < size:
        n = s.recv_into(view)
        if not n:
            raise OSError(f"{path.name}: closed after {got} of {size} bytes")
        got += n
    dt = time.perf_counter() - t0
    s.close()
    return size / dt / 1e6


def setup_once(path, target, i):
    t0 = time.perf_counter()
    s, rest = tunnel(path, target, i)
    s.sendall(b"P\n")
    got = rest
    while not got.endswith(b"PONG\n"):
        d = s.recv(64)
        if not d:
            raise OSError(f"{path.name}: closed before PONG")
        got += d
    dt = time.perf_counter() - t0
    s.close()
    return dt * 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


async def idle(path, target, n):
    sem = asyncio.Semaphore(256)
    conns = []

    async def one(i):
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", path.port)
            w.write(path.head(target, i))
            head = await r.readuntil(b"\r\n\r\n")
            if b" 200" not in head.split(b"\r\n")[0]:
                raise OSError(f"{path.name}: tunnel {i} refused: {head[:120]!r}")
            w.write(b"I\n")
            await w.drain()
            conns.append(w)

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    opened = time.perf_counter() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(2)
    rss, hwm = memory(path.pid)
    for w in conns:
        w.close()
    await asyncio.sleep(1)
    return len(conns), len(failed), (str(failed[0]) if failed else ""), rss, hwm, opened


# ------------------------------------------------------------------ setup

def api(url, key, method, body):
    req = urllib.request.Request(
        f"{url}/proxies.v1.Proxies/{method}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def start_proxyplane(tmp, up_port, accounts, idle_n):
    data = os.path.join(tmp, "data")
    gw = free_port()
    env = dict(os.environ, PROXYPLANE_GATEWAY_LISTEN=f"127.0.0.1:{gw}",
               PROXYPLANE_GATEWAY_MAX_TUNNELS=str(idle_n + 1000),
               PROXYPLANE_LOG_LEVEL="warn", PROXYPLANE_RATE_LIMIT_PER_SECOND="0")
    p = subprocess.Popen([os.environ["SERVER_BIN"], "--data-dir", data, "serve", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "server.err"), "w"),
                         env=env, text=True)
    PROCS.append(p)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        raise SystemExit(f"proxyplane did not start: {line!r}")
    url = f"http://{line.removeprefix('listening on ')}"
    admin = open(os.path.join(data, "admin.key")).read().strip()
    wait_port(gw, "the gateway", p)
    ws = api(url, admin, "CreateWorkspace", {"name": "bench"})["workspace"]["id"]
    key = api(url, admin, "CreateApiKey", {"workspaceId": ws, "name": "bots",
                                           "role": "API_KEY_ROLE_RESOLVER"})["secret"]
    prov = api(url, admin, "ConnectProvider", {"workspaceId": ws, "type": "PROVIDER_TYPE_GENERIC",
                                               "name": "own"})["provider"]["id"]
    pool = api(url, admin, "CreatePool", {"workspaceId": ws, "name": "bench"})["pool"]["id"]
    api(url, admin, "CreateSession", {"workspaceId": ws, "poolId": pool, "providerId": prov,
                                      "token": "tiny", "scheme": "http", "host": "127.0.0.1",
                                      "port": up_port, "username": UP_USER, "password": UP_PASS})
    logins = [basic(f"bench.acct-{i}", key) for i in range(accounts)]
    return Path("proxyplane", gw, logins, p.pid)


CHAIN_JS = r"""
const ProxyChain = require('proxy-chain');
const [port, upstream, password] = process.argv.slice(2);
const server = new ProxyChain.Server({
  port: Number(port), host: '127.0.0.1', verbose: false,
  // The same duties as the gateway: a login per connection, then chain to
  // the upstream with its own credentials.
  prepareRequestFunction: ({ password: p }) => ({
    requestAuthentication: p !== password,
    upstreamProxyUrl: upstream,
  }),
});
server.listen(() => console.log('ready'));
"""


def main():
    tmp = tempfile.mkdtemp(prefix="proxyplane-gwbench.")
    bulk_mb = int(os.environ.get("BULK_MB", "1024"))
    rounds = int(os.environ.get("ROUNDS", "3"))
    setup_n = int(os.environ.get("SETUP_N", "2000"))
    idle_n = int(os.environ.get("IDLE_N", "10000"))
    accounts = int(os.environ.get("ACCOUNTS", "100"))

    o_port = free_port()
    spawn([sys.executable, __file__, "origin", str(o_port)], "origin", o_port)
    target = f"127.0.0.1:{o_port}"

    up_port = free_port()
    conf = os.path.join(tmp, "tinyproxy.conf")
    with open(conf, "w") as f:
        f.write(f"Port {up_port}\nListen 127.0.0.1\nMaxClients {idle_n * 3 + 1000}\n"
                f"Timeout 600\nLogLevel Critical\nDisableViaHeader Yes\n"
                f"BasicAuth {UP_USER} {UP_PASS}\n")
    tiny = spawn(["tinyproxy", "-d", "-c", conf], "tinyproxy", up_port)
    direct = Path("direct", up_port, [basic(UP_USER, UP_PASS)], tiny.pid)

    pp = start_proxyplane(tmp, up_port, accounts, idle_n)

    c_port = free_port()
    js = os.path.join(tmp, "chain.js")
    with open(js, "w") as f:
        f.write(CHAIN_JS)
    up_url = f"http://{UP_USER}:{urllib.parse.quote(UP_PASS, safe='')}@127.0.0.1:{up_port}"
    chain = spawn(["node", js, str(c_port), up_url, "bench-pass"], "proxy-chain", c_port,
                  env=dict(os.environ, NODE_PATH=os.path.join(os.environ["OUT"], "node_modules")))
    peer = Path("proxy-chain", c_port, [basic(f"acct-{i}", "bench-pass") for i in range(accounts)], chain.pid)

    paths = [direct, pp, peer]
    # Warm every path (and proxyplane's per-account bindings).
    for p in paths:
        for i in range(accounts):
            setup_once(p, target, i)

    size = bulk_mb << 20
    mbs = {p.name: [] for p in paths}
    cpu = {p.name: 0.0 for p in paths}
    for _ in range(rounds):
        for p in paths:
            c0 = cpu_seconds(p.pid)
            mbs[p.name].append(bulk(p, target, size))
            cpu[p.name] += cpu_seconds(p.pid) - c0
    setup = {p.name: [] for p in paths}
    block = 100
    for start in range(0, setup_n, block):
        for p in paths:
            setup[p.name] += [setup_once(p, target, start + i) for i in range(block)]

    idles = {}
    for p in paths:
        idles[p.name] = asyncio.run(idle(p, target, idle_n))

    d_bulk = statistics.median(mbs["direct"])
    d_p99 = pct(setup["direct"], 99)
    print(f"\nbulk: {bulk_mb} MiB per tunnel, {rounds} rounds (median); setup: {setup_n} connections "
          f"(CONNECT, one exchange, close; {accounts} accounts); idle: {idle_n} tunnels held")
    print(f"{'path':<12} {'bulk MB/s':>10} {'vs direct':>9} {'CPU s/GB':>8} {'setup p50':>10} {'p99 ms':>8} "
          f"{'added p99':>9} {'idle open':>9} {'failed':>6} {'RSS MB':>7} {'HWM MB':>7}")
    for p in paths:
        b = statistics.median(mbs[p.name])
        s50, s99 = pct(setup[p.name], 50), pct(setup[p.name], 99)
        held, failed, why, rss, hwm, _ = idles[p.name]
        added = "" if p is direct else f"{s99 - d_p99:+.3f}"
        per_gb = cpu[p.name] / (rounds * size / 1e9)
        print(f"{p.name:<12} {b:>10.0f} {b / d_bulk:>9.2f} {per_gb:>8.2f} {s50:>10.3f} {s99:>8.3f} {added:>9} "
              f"{held:>9} {failed:>6} {rss:>7.1f} {hwm:>7.1f}")
        if why:
            print(f"  {p.name}: first idle failure: {why}")
    print("(CPU s/GB, RSS, HWM: the path's own process: tinyproxy for direct, proxyplane, node)")
    b = statistics.median(mbs["proxyplane"]) / d_bulk
    added = pct(setup["proxyplane"], 99) - d_p99
    held, failed, _, rss, hwm, _ = idles["proxyplane"]
    verdict = lambda ok: "PASS" if ok else "MISS"
    print("\ntargets (proxyplane)")
    print(f"  bulk >= 0.90 x direct:            {b:.2f}  {verdict(b >= 0.90)}")
    print(f"  added setup p99 <= 1 ms:          {added:.3f} ms  {verdict(added <= 1.0)}")
    print(f"  {idle_n} idle tunnels, RSS <= 128 MB: {rss:.1f} MB held (HWM {hwm:.1f}), "
          f"{held} held, {failed} failed  {verdict(rss <= 128 and failed == 0)}")


if __name__ == "__main__":
    import urllib.parse  # noqa: F401  (used in main)
    try:
        if sys.argv[1:2] == ["origin"]:
            origin(int(sys.argv[2]))
        else:
            main()
    finally:
        for p in PROCS:
            p.kill()
