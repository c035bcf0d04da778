"""Litestream replication of proxyplane's database, end to end.

Run by run.sh with SERVER_BIN (not a PROXYPLANE_* name: the server refuses unknown ones) and LITESTREAM set. Scenarios:

1. proxyplane runs under `litestream replicate -exec` with a file replica,
   starting on an empty data dir, while one writer creates sessions (each
   with a sealed password) one after another and records what was
   acknowledged.
2. SIGKILL of proxyplane under load: Litestream ships what is in the WAL and
   exits with its child; a restore into a fresh data dir (plus master.key)
   passes `proxyplane check`, holds every acknowledged session, serves them
   (passwords open), and carries Litestream's own tables without complaint.
3. A point-in-time restore (-timestamp) is a consistent prefix of the
   writer's sequence.
4. SIGTERM of proxyplane under Litestream stops well under a second (no
   blocking checkpoint behind Litestream's read lock).
5. Host loss (both processes SIGKILLed at once): the restore is a consistent
   prefix; how many acknowledged writes the replica lagged is printed.
"""

import datetime
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BIN = os.environ["SERVER_BIN"]
LITESTREAM = os.environ["LITESTREAM"]
TMP = tempfile.mkdtemp(prefix="proxyplane-litestream.")
PASSED = 0
FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}: {detail}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(port, key, method, body, timeout=10):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/proxies.v1.Proxies/{method}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_healthy(port, proc, limit=20):
    deadline = time.time() + limit
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"no /healthz on {port} within {limit}s")


def children_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def wait_exit(pid, limit):
    """Seconds until `pid` is gone (None past `limit`)."""
    start = time.time()
    while time.time() - start < limit:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return time.time() - start
        except OSError:
            return time.time() - start
        time.sleep(0.01)
    return None


class Replicated:
    """proxyplane under `litestream replicate -exec`."""

    def __init__(self, name):
        self.dir = os.path.join(TMP, name)
        self.data = os.path.join(self.dir, "data")
        self.replica = os.path.join(self.dir, "replica")
        os.makedirs(self.dir)
        self.config = os.path.join(self.dir, "litestream.yml")
        with open(self.config, "w") as f:
            f.write(
                "dbs:\n"
                f"  - path: {self.data}/proxyplane.db\n"
                "    replica:\n"
                f"      url: file://{self.replica}\n"
            )
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "litestream.log"), "wb")
        cmd = f"{BIN} --data-dir {self.data} serve --listen 127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [LITESTREAM, "replicate", "-config", self.config, "-exec", cmd],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # One writer as fast as it can go: no per-key rate limit.
            env=dict(os.environ, PROXYPLANE_RATE_LIMIT_PER_SECOND="0"),
        )
        wait_healthy(self.port, self.proc)
        kids = children_of(self.proc.pid)
        if len(kids) != 1:
            raise SystemExit(f"expected one proxyplane child of litestream, found {kids}")
        self.server_pid = kids[0]
        with open(os.path.join(self.data, "admin.key")) as f:
            self.admin = f.read().strip()

    def wait(self, limit=15):
        try:
            return self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None

    def log_text(self):
        self.log.flush()
        with open(os.path.join(self.dir, "litestream.log"), errors="replace") as f:
            return f.read()


def setup(port, key):
    status, ws = rpc(port, key, "CreateWorkspace", {"name": "replicated"})
    assert status == 200, ws
    wid = ws["workspace"]["id"]
    _, prov = rpc(port, key, "ConnectProvider", {
        "workspaceId": wid, "type": "PROVIDER_TYPE_GENERIC", "name": "list",
        "credentials": {"apiKey": "vendor-secret-key"},
    })
    _, pool = rpc(port, key, "CreatePool", {"workspaceId": wid, "name": "bots"})
    return wid, prov["provider"]["id"], pool["pool"]["id"]


class Writer(threading.Thread):
    """Creates sessions n = 1, 2, ... one at a time; `acked` is the list of
    acknowledged n, in order. Stops at the first failure (the server died)."""

    def __init__(self, port, key, wid, pool, prov):
        super().__init__(daemon=True)
        self.args = (port, key, wid, pool, prov)
        self.acked = []
        self.marks = []  # (wall-clock time, acked count) every ~0.25 s
        self.stop = False
        self.ended = None

    def run(self):
        port, key, wid, pool, prov = self.args
        n = 0
        last_mark = 0
        while not self.stop:
            n += 1
            try:
                status, _ = rpc(port, key, "CreateSession", {
                    "workspaceId": wid, "poolId": pool, "providerId": prov,
                    "token": f"t{n:07d}", "host": "203.0.113.10", "port": 1024 + n % 60000,
                    "username": f"user{n}", "password": f"pw-{n}",
                }, timeout=5)
            except OSError as e:
                self.ended = f"connection: {e}"
                return
            if status != 200:
                self.ended = f"HTTP {status}"
                return
            self.acked.append(n)
            if time.time() - last_mark > 0.25:
                last_mark = time.time()
                self.marks.append((datetime.datetime.now(datetime.timezone.utc), len(self.acked)))


def restore(replica, out_dir, master_key_from, timestamp=None):
    os.makedirs(out_dir)
    args = [LITESTREAM, "restore", "-o", os.path.join(out_dir, "proxyplane.db")]
    if timestamp is not None:
        args += ["-timestamp", timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
    args.append(f"file://{replica}")
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"litestream restore failed: {r.stdout}{r.stderr}")
    with open(master_key_from, "rb") as src, open(os.path.join(out_dir, "master.key"), "wb") as dst:
        dst.write(src.read())
    os.chmod(os.path.join(out_dir, "master.key"), 0o600)


def stored_tokens(data_dir):
    c = sqlite3.connect(os.path.join(data_dir, "proxyplane.db"))
    try:
        rows = c.execute("SELECT token FROM sessions WHERE deleted_at IS NULL").fetchall()
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        c.close()
    return sorted(int(t[1:]) for (t,) in rows if t.startswith("t")), tables


def proxyplane_check(data_dir):
    r = subprocess.run([BIN, "--data-dir", data_dir, "check"], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def is_prefix(ns):
    return ns == list(range(1, len(ns) + 1))


def start_with_writer(name, seconds):
    """A replicated node with a workspace, and a writer that ran `seconds`."""
    node = Replicated(name)
    wid, prov, pool = setup(node.port, node.admin)
    w = Writer(node.port, node.admin, wid, pool, prov)
    w.start()
    time.sleep(seconds)
    return node, w, (wid, prov, pool)


def scenario_sigkill_and_restore():
    node, w, (wid, prov, pool) = start_with_writer("kill", 6)
    os.kill(node.server_pid, signal.SIGKILL)
    w.join(10)
    rc = node.wait()
    check("litestream exits with its SIGKILLed child", rc is not None, "still running")
    check("the writer was acknowledged many times", len(w.acked) > 1000,
          f"{len(w.acked)} acks, ended by {w.ended}")
    log = node.log_text()
    check("no warnings or errors in Litestream's log",
          not any(l for l in log.splitlines() if "level=WARN" in l or "level=ERROR" in l),
          log[-2000:])

    fresh = os.path.join(node.dir, "restored")
    restore(node.replica, fresh, os.path.join(node.data, "master.key"))
    rc, out = proxyplane_check(fresh)
    check("proxyplane check passes on the restored copy", rc == 0, out)
    got, tables = stored_tokens(fresh)
    missing = sorted(set(w.acked) - set(got))
    check(f"every acknowledged write is in the restore ({len(w.acked)} acked)", not missing,
          f"{len(missing)} missing, first {missing[:5]}")
    check("the restore is a consistent prefix", is_prefix(got), f"{got[:3]}...{got[-3:]}")
    print(f"info: tables in the restored database: {', '.join(sorted(tables))}")

    # The restored copy serves: secrets open under the master key beside it.
    port = free_port()
    srv = subprocess.Popen([BIN, "--data-dir", fresh, "serve", "--listen", f"127.0.0.1:{port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, srv)
        with open(os.path.join(node.data, "admin.key")) as f:
            admin = f.read().strip()
        last = w.acked[-1]
        status, body = rpc(port, admin, "ListSessions", {"workspaceId": wid, "poolId": pool})
        check("the restored server lists the sessions", status == 200 and body.get("sessionIds"), body)
        status, body = rpc(port, admin, "CreateAssignment", {
            "workspaceId": wid, "poolId": pool, "accountName": "after-restore",
        })
        sid = body.get("assignment", {}).get("sessionId")
        status, body = rpc(port, admin, "ResolveProxy", {
            "workspaceId": wid, "poolId": pool, "accountName": "after-restore",
        })
        proxy = body.get("proxy", {})
        n = int(proxy.get("username", "user0")[4:])
        check("a restored session resolves with its own password", status == 200 and sid
              and proxy.get("password") == f"pw-{n}" and 1 <= n <= last, body)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(10)
    return node, w


def scenario_point_in_time(node, w):
    # A mark about two thirds into the load.
    marks = [m for m in w.marks if 0 < m[1] < len(w.acked)]
    if not marks:
        check("point-in-time restore", False, "no marks recorded")
        return
    when, _ = marks[len(marks) * 2 // 3]
    pit = os.path.join(node.dir, "pit")
    restore(node.replica, pit, os.path.join(node.data, "master.key"), timestamp=when)
    rc, out = proxyplane_check(pit)
    check("proxyplane check passes on a point-in-time restore", rc == 0, out)
    got, _ = stored_tokens(pit)
    check("a point-in-time restore is a consistent prefix", is_prefix(got),
          f"{len(got)} sessions, first {got[:3]}, last {got[-3:]}")
    check("a point-in-time restore is earlier than the latest",
          0 < len(got) < len(w.acked), f"{len(got)} of {len(w.acked)}")


def scenario_sigterm_under_litestream():
    node, w, _ = start_with_writer("term", 2)
    w.stop = True
    w.join(10)
    os.kill(node.server_pid, signal.SIGTERM)
    took = wait_exit(node.server_pid, 10)
    node.wait()
    print(f"info: SIGTERM under Litestream: proxyplane exited in {took if took is None else round(took, 3)} s")
    # The old TRUNCATE checkpoint waited out the 5 s busy timeout here.
    check("SIGTERM under Litestream stops well under a second", took is not None and took < 1.0,
          f"{took}")


def scenario_host_loss():
    node, w, _ = start_with_writer("loss", 4)
    # Both at once, as when the machine goes away.
    os.kill(node.proc.pid, signal.SIGKILL)
    os.kill(node.server_pid, signal.SIGKILL)
    acked_at_loss = len(w.acked)
    w.join(10)
    node.wait()
    fresh = os.path.join(node.dir, "restored")
    restore(node.replica, fresh, os.path.join(node.data, "master.key"))
    rc, out = proxyplane_check(fresh)
    check("host loss: proxyplane check passes on the restore", rc == 0, out)
    got, _ = stored_tokens(fresh)
    check("host loss: the restore is a consistent prefix", is_prefix(got), f"{got[-3:]}")
    lag = acked_at_loss - len(got)
    print(f"info: host loss: {len(got)} of {acked_at_loss} acknowledged writes replicated "
          f"(lag {lag} writes)")


def main():
    try:
        node, w = scenario_sigkill_and_restore()
        scenario_point_in_time(node, w)
        scenario_sigterm_under_litestream()
        scenario_host_loss()
    except SystemExit as e:
        check("harness", False, str(e))
    finally:
        if os.environ.get("LITESTREAM_KEEP") == "1":
            print(f"litestream: kept {TMP}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", TMP])
    print(f"litestream: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
