"""Prints the module import graph of src/ (top-level modules; api/* and
store/* count as one each; test modules left out) and exits 1 if it has a
cycle. The layers read: server -> connect -> rpc -> api -> store."""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def graph():
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            top = os.path.relpath(path, ROOT).split(os.sep)[0].removesuffix(".rs")
            if top == "main":
                continue
            text = open(path).read()
            cut = text.find("#[cfg(test)]")
            if cut >= 0:
                text = text[:cut]
            uses = set(re.findall(r"crate::([a-z_]+)", text)) - {top}
            mods.setdefault(top, set()).update(uses)
    return mods


def reachable(mods, start):
    seen, stack = {start}, [start]
    while stack:
        for nxt in mods.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def main():
    mods = graph()
    for m in sorted(mods):
        print(f"{m} -> {' '.join(sorted(mods[m]))}")
    cycles = sorted({tuple(sorted((a, b))) for a in mods for b in mods[a]
                     if b in mods and a in reachable(mods, b)})
    if cycles:
        print(f"import cycles between: {cycles}", file=sys.stderr)
        sys.exit(1)
    print("import graph: no cycles")


if __name__ == "__main__":
    main()
