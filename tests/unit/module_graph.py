#!/usr/bin/env python3
"""module_graph.py SCHEMAGATE SOURCE_DIR - the modules form no circle.

STYLE.md: the dispatch lives at the top and a module never calls back up
into the one that called it. Two graphs are built and checked for cycles:

- calls: file A -> file B when A's object file uses a symbol that B's
  defines (nm over the objects of schemagate_core, found next to the
  binary under CMakeFiles/schemagate_core.dir);
- includes: header A -> header B when A includes "schemagate/B".

Any cycle fails the test, naming its files. It also prints the depth of
each graph and the largest source file, the figures the issue asked the
closing note to state.
"""
import os
import re
import subprocess
import sys


def objects(build):
    core = os.path.join(build, "CMakeFiles", "schemagate_core.dir")
    found = []
    for root, _, files in os.walk(core):
        for f in files:
            if f.endswith(".c.o"):
                path = os.path.join(root, f)
                name = os.path.relpath(path, core)[: -len(".o")]
                found.append((name, path))
    return found


def call_graph(build):
    defines, uses = {}, {}
    for name, path in objects(build):
        out = subprocess.run(["nm", path], capture_output=True, text=True, check=True).stdout
        d, u = set(), set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                u.add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBRC":
                d.add(parts[2])
        defines[name], uses[name] = d, u
    owner = {}
    for name, syms in defines.items():
        for s in syms:
            owner[s] = name
    return {a: {owner[s] for s in uses[a] if s in owner and owner[s] != a} for a in defines}


def include_graph(source):
    inc = os.path.join(source, "include", "schemagate")
    graph = {}
    for f in sorted(os.listdir(inc)):
        if f.endswith(".h"):
            text = open(os.path.join(inc, f), encoding="utf-8").read()
            graph[f] = set(re.findall(r'#include\s+"schemagate/([^"]+)"', text)) - {f}
    return graph


def cycles(graph):
    """Tarjan's strongly connected components of more than one node."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def depth(graph):
    memo = {}

    def d(v):
        if v not in memo:
            memo[v] = 0
            memo[v] = 1 + max((d(w) for w in graph.get(v, ())), default=0)
        return memo[v]

    return max((d(v) for v in graph), default=0)


def main():
    binary, source = sys.argv[1], sys.argv[2]
    build = os.path.dirname(os.path.abspath(binary))
    calls = call_graph(build)
    if len(calls) < 10:
        print(f"module_graph: only {len(calls)} objects under {build}", file=sys.stderr)
        return 1
    includes = include_graph(source)
    bad = 0
    for kind, graph in (("call", calls), ("include", includes)):
        for comp in cycles(graph):
            print(f"module_graph: a {kind} cycle between {', '.join(comp)}", file=sys.stderr)
            bad += 1
    sizes = []
    for root, _, files in os.walk(os.path.join(source, "src")):
        for f in files:
            if f.endswith(".c"):
                p = os.path.join(root, f)
                sizes.append((sum(1 for _ in open(p, encoding="utf-8")), os.path.relpath(p, source)))
    lines, largest = max(sizes)
    print(f"module_graph: {len(calls)} files, call depth {depth(calls)}, include depth {depth(includes)}, "
          f"largest {largest} ({lines} lines), {bad} cycles")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
