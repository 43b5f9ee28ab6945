#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a loop.

A module depends on another when its code (comments and `#[cfg(test)]` modules left out)
names `crate::that::module`. Each strongly connected set of two or more modules is a loop:
the shape `startup -> routes -> startup` that the state modules (`state.rs`) removed. Run by
`scripts/check-ops.sh`; exits 1 and names every loop it finds.
"""

import os
import re
import sys

CRATES = ["crates/common/src", "crates/ac-service/src", "crates/gc-service/src",
          "crates/mc-service/src"]


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found["::".join(parts)] = path
    return found


def code_of(path):
    text = open(path, encoding="utf-8").read()
    # Unit tests may reach anywhere; they are not part of the module's shape.
    text = re.split(r"#\[cfg\(test\)\]\s*mod ", text)[0]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def dependencies(mods, code):
    out = set()
    for match in re.finditer(r"crate::([a-z_0-9]+(?:::[a-z_0-9]+)*)", code):
        parts = match.group(1).split("::")
        while parts and "::".join(parts) not in mods:
            parts = parts[:-1]
        if parts:
            out.add("::".join(parts))
    return out


def loops(graph):
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failed = False
    for crate in CRATES:
        src = os.path.join(root, crate)
        mods = modules(src)
        graph = {m: dependencies(mods, code_of(p)) - {m} for m, p in mods.items()}
        for component in loops(graph):
            failed = True
            print(f"{crate}: modules import each other in a loop: {', '.join(component)}")
    if failed:
        sys.exit(1)
    print(f"no import loops between the modules of {len(CRATES)} crates")


if __name__ == "__main__":
    main()
