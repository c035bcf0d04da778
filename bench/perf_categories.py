#!/usr/bin/env python3
"""Fold `perf script` output (call graphs) of the proxyplane server into
where-the-time-goes tables.

  perf script -i perf.data --no-inline -F comm,tid,period,ip,sym,dso | bench/perf_categories.py

Each sample is charged to one *phase*: the first rule below (most specific
first) that matches any frame of its stack, e.g. a SQLite frame under
`api_keys::by_hash` is "auth: key lookup (SQL)", the same frame under
`assignments::by_account` is "SQL: point reads"; a socket write under hyper is
"edge: hyper". Inlined frames count (run perf script without --no-inline). Independently each sample gets a *kind* from its leaf
frame (SQLite, kernel, allocator, crypto, ...). Percentages are of all samples
of the profiled process.
"""

import collections
import re
import sys

# (phase name, regex on a demangled frame), most specific first.
PHASES = [
    ("auth: API key hash (BLAKE2b)", r"hash_api_key"),
    ("auth: key lookup/touch (SQL)", r"store::api_keys::"),
    ("auth: other", r"auth::authenticate"),
    ("decrypt secret (XChaCha20-Poly1305)", r"crypto::open_secret|crypto::open_raw|api::open\b"),
    ("encrypt secret (XChaCha20-Poly1305)", r"crypto::seal_secret|crypto::seal_raw|api::seal\b"),
    ("SQL: workspace key_version lookup", r"store::workspaces::"),
    ("SQL: session insert", r"store::sessions::insert"),
    ("SQL: token lookup (live_by_token)", r"store::sessions::live_by_token"),
    ("SQL: session choice (candidates)", r"store::sessions::candidates"),
    ("SQL: assignment insert/update", r"store::assignments::(insert|update)"),
    ("SQL: point reads (pool, assignment, session, provider)",
     r"store::(pools|assignments|sessions|providers)::(?!.*(to_pb|move_to))"),
    ("SQL: BEGIN/COMMIT (store::read/write)", r"store::(read|write)\b"),
    ("request check (check_spec etc.)", r"api::sessions::check_spec|api::check_"),
    ("JSON/proto decode (connect::decode)", r"connect::decode"),
    ("JSON/proto encode (connect::encode)", r"connect::encode"),
    ("resolve: other (proxy_for, URL building, to_pb)", r"api::assignments::"),
    ("bulk: other", r"api::sessions::"),
    ("r2d2 connection checkout/return", r"r2d2::"),
    ("rpc::handle: other (ratelimit, dispatch)", r"rpc::handle|rpc::typed"),
    ("metrics", r"metrics::"),
    ("tokio: blocking pool (spawn_blocking hand-off: spawn, wake, park/unpark)", r"tokio::runtime::blocking"),
    ("edge: server::call (body read, await the handler, response)", r"server::call|server::route"),
    ("edge: hyper HTTP/1 parse/write incl. socket syscalls", r"hyper::|httparse"),
    ("tokio: runtime / IO driver (epoll, task scheduling)", r"tokio::|mio::"),
]
PHASES = [(n, re.compile(p)) for n, p in PHASES]

def kind_of(frames):
    """The kind of code a sample's leaf is: checked on the leaf, except that C
    code whose stack reaches a public sqlite3_* entry point before any Rust
    frame counts as SQLite (the bundled SQLite's static functions have all
    sorts of names)."""
    s0, d0 = frames[0]
    if "kernel" in d0 or d0.startswith("[k"):
        return "kernel"
    if re.search(r"malloc|(^|_)free|realloc|calloc|_int_|tcache|arena|cfree", s0):
        return "allocator (malloc/free)"
    if re.search(r"mem(cpy|move|set|cmp)|__memcpy|__memmove|__memset", s0):
        return "memcpy/memmove/memset"
    for sym, _ in frames:
        if "::" in sym or sym.startswith("_ZN") or sym.startswith("_R"):
            break
        if sym.startswith("sqlite3"):
            return "SQLite"
    if re.search(r"orion|chacha|poly1305|blake2", s0, re.I):
        return "crypto (orion: chacha/poly1305/blake2)"
    if re.search(r"serde_json|pbjson|serde::|_serde", s0):
        return "JSON (serde_json/pbjson)"
    if re.search(r"hyper|httparse|http::", s0):
        return "hyper/http"
    if "tokio" in s0:
        return "tokio"
    if "libc" in d0:
        return "libc other (futex, locks, syscall wrappers)"
    if "rusqlite" in s0:
        return "rusqlite glue"
    return "other"


HEADER = re.compile(r"^(\S.*?)\s+(\d+)\s+(\d+)\s*$")  # comm tid period
FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def parse(stream):
    sample = None
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if sample:
                yield sample
            sample = None
            continue
        m = FRAME.match(line)
        if m and sample is not None:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
            sample["frames"].append((sym, m.group(3)))
            continue
        m = HEADER.match(line)
        if m:
            if sample:
                yield sample
            sample = {"comm": m.group(1).strip(), "period": int(m.group(3)), "frames": []}
    if sample:
        yield sample


def main():
    top_n = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    phase = collections.Counter()
    kind = collections.Counter()
    comm = collections.Counter()
    leaf = collections.Counter()
    cross = collections.Counter()
    syscall = collections.Counter()
    total = 0
    for s in parse(sys.stdin):
        w = s["period"] or 1
        total += w
        comm[s["comm"]] += w
        frames = s["frames"] or [("[unknown]", "[unknown]")]
        ph = None
        for name, rx in PHASES:
            if any(rx.search(sym) for sym, _ in frames):
                ph = name
                break
        ph = ph or ("(no recognised frame: " + ("kernel/idle" if "kernel" in frames[0][1] else "other") + ")")
        phase[ph] += w
        s0, d0 = frames[0]
        k = kind_of(frames)
        kind[k] += w
        leaf[s0 if s0 != "[unknown]" else f"[unknown] ({d0})"] += w
        cross[(ph, k)] += w
        if k == "kernel":
            # The user-space function that entered the kernel (the syscall
            # wrapper), and the first Rust/C caller above it that says why.
            user = [f for f in frames if "kernel" not in f[1] and not f[1].startswith("[k")]
            if user:
                wrapper = user[0][0]
                why = next((f[0] for f in user[1:] if not f[1].endswith(".so.6")
                            and not re.match(r"<?(std|core|alloc)::|__|lll_|futex_", f[0])), "?")
                syscall[f"{wrapper}  <-  {why[:90]}"] += w
            else:
                syscall["(kernel only: interrupt / softirq / scheduler)"] += w
    if not total:
        print("no samples")
        return

    def table(title, counter, n=None):
        print(f"\n{title}")
        print(f"{'%':>6s}  name")
        for name, w in counter.most_common(n):
            print(f"{100 * w / total:6.1f}  {name}")

    print(f"samples (weighted by period): {total}")
    table("by thread name", comm)
    table("by phase (first matching rule over the whole stack; inclusive)", phase)
    table("by kind of leaf code", kind)
    table(f"top {top_n} leaf functions (self time)", leaf, top_n)
    table("kernel time by syscall wrapper <- caller (top 20)", syscall, 20)
    print("\nphase x kind (top 20)")
    for (p, k), w in cross.most_common(20):
        print(f"{100 * w / total:6.1f}  {p}  /  {k}")


if __name__ == "__main__":
    main()
