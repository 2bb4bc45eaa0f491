"""The parts of ``occam`` and which imports which, from the source itself.

Every module under ``src/occam`` is parsed with :mod:`ast`; every import counts, including those
inside functions (a function-level import is still a dependency, only a later one). Modules map to
parts: ``occam.<part>`` for the packages (scoring, tasks, models, training, arena, audit, lens,
fractal, toy, web, cli, ...) and ``core`` for the top-level modules (errors, paths, progress, plots,
executor, ...). ``occam/__main__.py`` belongs to the CLI (it only calls ``occam.cli.main``).

    python -m occam.devtools.deps                  # the part graph as text, and any cycle
    python -m occam.devtools.deps --mermaid        # a mermaid graph (docs/architecture.md)
    python -m occam.devtools.deps --svg docs/img/parts.svg   # the same as an SVG (needs graphviz's `dot`)

``tests/test_architecture.py`` asserts that the part graph has no cycle and that no library part
imports the web layer or the CLI.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LAYERS", "Edge", "explain_cycle", "find_cycles", "imports_of", "layer_violations", "module_name",
           "part_edges", "part_of", "RANKS", "short_cycles", "to_dot", "to_mermaid", "upward"]

ROOT = "occam"
CORE = "core"
#: The layers of the interface: nothing below them may import them.
LAYERS = ("web", "cli")


@dataclass(frozen=True)
class Edge:
    """``module`` (in part ``src``) imports ``target`` (in part ``dst``) at ``file``:``line``."""

    src: str
    dst: str
    module: str
    target: str
    file: str
    line: int
    in_function: bool


def module_name(path: Path, src_root: Path) -> str:
    rel = path.relative_to(src_root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str | None:
    """The part of an ``occam`` module; None for modules outside the package."""
    names = module.split(".")
    if names[0] != ROOT:
        return None
    if len(names) == 1:
        return CORE
    if names[1] == "__main__":
        return "cli"
    return names[1] if _is_package(names[1]) else CORE


_PACKAGES: set[str] = set()


def _is_package(name: str) -> bool:
    return name in _PACKAGES


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, module: str) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in one file. ``from a import b``
    yields ``a.b`` when that is a module (``from occam import errors``), else ``a``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, module, is_package)
                for alias in child.names:
                    found.append((f"{base}.{alias.name}" if alias.name != "*" else base, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def part_edges(src_root: Path) -> list[Edge]:
    """Every import from one part of ``occam`` into another."""
    pkg = src_root / ROOT
    _PACKAGES.clear()
    _PACKAGES.update(p.name for p in pkg.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    edges = []
    for path in sorted(pkg.rglob("*.py")):
        module = module_name(path, src_root)
        src = part_of(module)
        for target, line, in_function in imports_of(path, module):
            dst = part_of(target)
            if dst is None or dst == src or src is None:
                continue
            edges.append(Edge(src, dst, module, target, str(path.relative_to(src_root.parent)), line, in_function))
    return edges


def graph(edges: list[Edge]) -> dict[str, set[str]]:
    g: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        g[e.src].add(e.dst)
    return g


def find_cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components with more than one part (each a set of parts in a cycle),
    as sorted lists; empty when the part graph is acyclic (Tarjan's algorithm)."""
    g = graph(edges)
    nodes = sorted(set(g) | {d for ds in g.values() for d in ds})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strong(v)
    return sorted(out)


def short_cycles(edges: list[Edge]) -> list[list[str]]:
    """The shortest cycle through each edge that lies on one, as ``[a, b, ..., a]``, without repeats
    (rotations count once). Fixing every listed cycle makes the graph acyclic."""
    g = graph(edges)
    found: set[tuple[str, ...]] = set()
    for comp in find_cycles(edges):
        inside = set(comp)
        for u in comp:
            for v in sorted(g[u] & inside):
                prev: dict[str, str | None] = {v: None}
                queue = [v]
                while queue and u not in prev:
                    nxt = []
                    for x in queue:
                        for y in sorted(g.get(x, set()) & inside):
                            if y not in prev:
                                prev[y] = x
                                nxt.append(y)
                    queue = nxt
                if u not in prev:
                    continue
                path = [u]
                node: str | None = u
                while node != v:
                    node = prev[node]  # type: ignore[index]
                    path.append(node)  # type: ignore[arg-type]
                cycle = [u, *reversed(path[1:])]  # u → v → ... → (before u)
                k = cycle.index(min(cycle))
                found.add(tuple(cycle[k:] + cycle[:k]))
    return [[*c, c[0]] for c in sorted(found, key=lambda c: (len(c), c))]


def explain_cycle(edges: list[Edge], cycle: list[str], per_edge: int = 3) -> list[str]:
    """For each step of ``cycle`` (``[a, b, ..., a]``), the imports that make it (at most ``per_edge``)."""
    lines = []
    for a, b in zip(cycle, cycle[1:], strict=False):
        these = sorted((e for e in edges if e.src == a and e.dst == b), key=lambda e: (e.file, e.line))
        for e in these[:per_edge]:
            where = "in a function" if e.in_function else "at module level"
            lines.append(f"{a} → {b}: {e.file}:{e.line} ({e.module} imports {e.target}, {where})")
        if len(these) > per_edge:
            lines.append(f"{a} → {b}: ... and {len(these) - per_edge} more")
    return lines


def layer_violations(edges: list[Edge]) -> list[Edge]:
    """Imports of the web layer or the CLI from a library part (the layers may import each other)."""
    return [e for e in edges if e.dst in LAYERS and e.src not in LAYERS]


#: The intended layering, lowest first: a part may import only parts on a lower line. An import
#: that goes up a line (or sideways between different parts on one line) is drawn as a violation.
RANKS: tuple[tuple[str, ...], ...] = (
    ("core",), ("tasks",), ("scoring", "interp"), ("models",), ("training",), ("fractal", "toy"), ("lens",), ("arena",),
    ("audit",), ("web",), ("cli",), ("devtools",),
)


def rank(part: str) -> int:
    for i, line in enumerate(RANKS):
        if part in line:
            return i
    return len(RANKS)


def upward(edges: list[Edge]) -> set[tuple[str, str]]:
    """Part-to-part imports that go against :data:`RANKS`."""
    return {(e.src, e.dst) for e in edges if rank(e.dst) >= rank(e.src)}


def to_mermaid(edges: list[Edge]) -> str:
    """A mermaid graph: parts top (CLI) to bottom (core); imports against the layering dashed red."""
    g = graph(edges)
    bad = upward(edges)
    lines = ["graph TD"]
    pairs = [(src, dst) for src in sorted(g, key=lambda p: (-rank(p), p)) for dst in sorted(g[src], key=lambda p: (-rank(p), p))]
    red = []
    for i, (src, dst) in enumerate(pairs):
        if (src, dst) in bad:
            lines.append(f"    {src} -.-> {dst}")
            red.append(str(i))
        else:
            lines.append(f"    {src} --> {dst}")
    lines.append("    classDef layer fill:#fdf1e0,stroke:#b9770e")
    lines.append("    class " + ",".join(p for p in LAYERS if p in g or any(p in d for d in g.values())) + " layer")
    if red:
        lines.append(f"    linkStyle {','.join(red)} stroke:#c0392b,stroke-width:2px")
    return "\n".join(lines)


def to_dot(edges: list[Edge]) -> str:
    g = graph(edges)
    bad = upward(edges)
    lines = ["digraph parts {", '  rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica"]; edge [color="#556677"];']
    for layer in LAYERS:
        lines.append(f'  {layer} [fillcolor="#fdf1e0"];')
    for src in sorted(g):
        for dst in sorted(g[src]):
            red = ' [color="#c0392b", penwidth=2, style=dashed]' if (src, dst) in bad else ""
            lines.append(f"  {src} -> {dst}{red};")
    lines.append("}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="The parts of occam and their imports.")
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[2], help="the src/ folder")
    ap.add_argument("--mermaid", action="store_true", help="print a mermaid graph")
    ap.add_argument("--dot", action="store_true", help="print a graphviz graph")
    ap.add_argument("--svg", type=Path, help="write the graph as SVG (runs graphviz's dot)")
    args = ap.parse_args(argv)
    edges = part_edges(args.src)
    if args.mermaid:
        print(to_mermaid(edges))
    elif args.dot:
        print(to_dot(edges))
    elif args.svg:
        dot = shutil.which("dot")
        if dot is None:
            print("graphviz's dot is not installed (apt-get install graphviz); use --mermaid instead", file=sys.stderr)
            return 2
        args.svg.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([dot, "-Tsvg", "-o", str(args.svg)], input=to_dot(edges), text=True, check=True)
        print(f"wrote {args.svg}")
    else:
        for src, dsts in sorted(graph(edges).items()):
            print(f"{src} → {', '.join(sorted(dsts))}")
    cycles = short_cycles(edges)
    for cycle in cycles:
        print(f"cycle: {' → '.join(cycle)}", file=sys.stderr)
        for line in explain_cycle(edges, cycle):
            print(f"  {line}", file=sys.stderr)
    for e in layer_violations(edges):
        print(f"library imports a layer: {e.file}:{e.line} ({e.module} imports {e.target})", file=sys.stderr)
    return 1 if cycles or layer_violations(edges) else 0


if __name__ == "__main__":
    raise SystemExit(main())
