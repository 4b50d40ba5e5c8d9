"""The import graph of src/chatstack has no cycles, and chatstack.errors imports nothing heavy.

The graph is read statically with `ast`: every `import chatstack...` and `from chatstack...
import ...` (relative imports resolved against the package), at module level or inside a
function, is an edge, so a cycle hidden by a lazy import is still a cycle. `from pkg import
name` points at the submodule pkg.name when there is one, else at pkg. Importing a
submodule also runs its parents' `__init__`; those implicit edges are not counted (a
package's `__init__` re-exporting its own submodules is not a cycle). Names resolved at
run time from strings (`import_module`, the "module:function" registries of builders and
tools) are not edges either: a registry names plugins, it does not import them.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import chatstack

SRC = Path(chatstack.__file__).resolve().parent
HEAVY = ("torch", "datasets", "transformers", "trl", "numpy", "yaml")


def module_name(path: Path) -> str:
    parts = ("chatstack",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping `if TYPE_CHECKING:` bodies (no run-time effect)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, known: set[str]) -> dict[str, int]:
    """The chatstack modules `name` imports -> the line of the first such import."""
    is_package = path.name == "__init__.py"
    out: dict[str, int] = {}
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:  # relative: from . import x / from ..data import y
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                targets.append(sub if sub in known else mod)
        for t in targets:
            # `import chatstack.x.y` of a module that does not exist: point at the nearest one that does
            while t and t not in known and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in known and t != name and t != "chatstack":
                out.setdefault(t, node.lineno)
    return out


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    mods = modules()
    return {m: imports_of(m, p, set(mods)) for m, p in mods.items()}, mods


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component (Tarjan), as [a, b, ..., a]."""
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    return [c for scc in sorted(sccs) for c in covering_cycles(graph, set(scc))]


def _shortest_path(graph: dict[str, dict[str, int]], members: set[str], a: str, b: str) -> list[str]:
    """BFS from a to b inside the component (b is reachable: same component)."""
    prev, frontier = {a: None}, [a]
    while b not in prev:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    path = [b]
    while prev[path[-1]] is not None:
        path.append(prev[path[-1]])
    return path[::-1]


def covering_cycles(graph: dict[str, dict[str, int]], members: set[str]) -> list[list[str]]:
    """Cycles inside one strongly connected component, shortest first, until every import
    edge inside it lies on one of them: each is a place to cut."""
    edges = sorted((a, b) for a in members for b in graph[a] if b in members)
    candidates = sorted(([a] + _shortest_path(graph, members, b, a) for a, b in edges),
                        key=lambda c: (len(c), c))
    covered, out = set(), []
    for c in candidates:
        steps = set(zip(c, c[1:]))
        if not steps <= covered:
            # rotate so that the cycle starts at its smallest module name (stable output)
            i = c.index(min(c[:-1]))
            out.append(c[i:-1] + c[:i] + [c[i]])
            covered |= steps
    return out


def describe(cycle: list[str], graph: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    root = SRC.parent.parent
    steps = [f"  {a} -> {b}  ({mods[a].relative_to(root)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_graph_is_read():
    graph, mods = import_graph()
    assert "chatstack.errors" in mods and "chatstack.data.loading" in mods
    assert "chatstack.errors" in graph["chatstack.data.loading"]       # top-level import
    assert "chatstack.data.loading" in graph["chatstack.builders.chat_formats"]


def test_cycle_finder():
    g = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"d": 1}}
    assert cycles(g) == [["a", "b", "c", "a"]]
    g = {"a": {"b": 1}, "b": {"a": 1, "c": 1}, "c": {"b": 1}}         # one component, two cuts
    assert cycles(g) == [["a", "b", "a"], ["b", "c", "b"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles():
    graph, mods = import_graph()
    found = cycles(graph)
    assert not found, f"{len(found)} import cycle(s) in src/chatstack (each with the import that closes each step):\n" + \
        "\n".join(describe(c, graph, mods) for c in found)


def package_graph(graph: dict[str, dict[str, int]]) -> tuple[dict[str, dict[str, int]], dict]:
    """The same graph with each subpackage collapsed to one node (chatstack.data.loading ->
    chatstack.data; top-level modules stay themselves), and the module import behind each edge."""
    def node(m: str) -> str:
        return ".".join(m.split(".")[:2])
    pg: dict[str, dict[str, int]] = {node(m): {} for m in graph}
    behind: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for a, targets in sorted(graph.items()):
        for b, line in sorted(targets.items()):
            if node(a) != node(b):
                pg[node(a)].setdefault(node(b), line)
                behind.setdefault((node(a), node(b)), []).append((a, b))
    return pg, behind


def test_no_package_cycles():
    """Subpackages are layers too: chatstack.builders may use chatstack.data, not the other way
    round as well, even when no single module imports back."""
    graph, mods = import_graph()
    pg, behind = package_graph(graph)
    found = cycles(pg)
    lines = []
    for c in found:
        lines.append(" -> ".join(c))
        for a, b in zip(c, c[1:]):
            lines.append(f"  {a} -> {b}:")
            lines += [f"    {ma} imports {mb} ({mods[ma].relative_to(SRC.parent.parent)}:{graph[ma][mb]})"
                      for ma, mb in behind[a, b]]
    assert not found, f"{len(found)} import cycle(s) between the subpackages of src/chatstack:\n" + "\n".join(lines)


def test_errors_module_is_light():
    """Raising or catching a chatstack error must not import torch, datasets or transformers."""
    code = ("import sys, chatstack.errors, chatstack.cli; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing chatstack.errors / chatstack.cli imported: {out}"
    tree = ast.parse((SRC / "errors.py").read_text())
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and (n.module or "") != "__future__"
                   for n in ast.walk(tree)), "chatstack.errors imports only __future__"
