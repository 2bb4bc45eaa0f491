"""The parts of ``occam`` import each other without cycles, and the library never imports the web
layer or the CLI. Every import counts, including those inside functions (``occam.devtools.deps``
reads them with ``ast``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from occam.devtools import deps

SRC = Path(__file__).resolve().parents[1] / "src"


def _edges():
    return deps.part_edges(SRC)


def test_every_module_maps_to_a_known_part():
    parts = {e.src for e in _edges()} | {e.dst for e in _edges()}
    expected = {"core", "scoring", "tasks", "interp", "models", "training", "arena", "audit", "lens", "fractal", "toy", "web",
                "cli", "devtools"}
    assert parts <= expected, f"unexpected parts: {sorted(parts - expected)} (add them to this test and the docs)"
    assert {"core", "scoring", "tasks", "training", "cli", "web"} <= parts


def test_the_part_graph_is_acyclic():
    edges = _edges()
    cycles = deps.short_cycles(edges)
    report = []
    for cycle in cycles:
        report.append(" → ".join(cycle))
        report += ["    " + line for line in deps.explain_cycle(edges, cycle)]
    assert not cycles, "import cycles between parts:\n" + "\n".join(report)


def test_the_library_never_imports_the_web_layer_or_the_cli():
    bad = deps.layer_violations(_edges())
    lines = [f"{e.file}:{e.line}: {e.module} imports {e.target}" for e in bad]
    assert not bad, "library parts import a layer:\n" + "\n".join(lines)


def test_the_analysis_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself on a small fake package: a cycle hidden in a function is found."""
    pkg = tmp_path / "occam"
    for name in ("a", "b", "web"):
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "a" / "x.py").write_text("from occam.b import y\nfrom . import z\nfrom occam import errors\n")
    (pkg / "a" / "z.py").write_text("")
    (pkg / "b" / "y.py").write_text(textwrap.dedent("""
        def late():
            from ..a import x  # relative, inside a function
            import occam.web.app
        """))
    (pkg / "web" / "app.py").write_text("import occam.a.x\n")
    edges = deps.part_edges(tmp_path)
    assert {(e.src, e.dst) for e in edges} == {("a", "b"), ("a", "core"), ("b", "a"), ("b", "web"), ("web", "a")}
    assert deps.short_cycles(edges) == [["a", "b", "a"], ["a", "b", "web", "a"]]
    (viol,) = deps.layer_violations(edges)
    assert (viol.module, viol.target, viol.in_function) == ("occam.b.y", "occam.web.app", True)
    assert "graph TD" in deps.to_mermaid(edges) and "b --> web" in deps.to_mermaid(edges)
