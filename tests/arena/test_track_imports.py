"""No code outside a track names a track, and the parts import in one direction (function-level imports count):
the arena never imports the audit part; the audit part never imports the web layer or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "occam"
TRACK_NAMES = {"sparse", "audit", "recover", "grok-speed", "evasive"}
# (file, string) pairs allowed to spell a built-in track: the registry's entry-point copy, the default track
ALLOWED = {("arena/tracks/__init__.py", "audit = occam.audit.arena:AuditTrack"),
           ("arena/tracks/__init__.py", "sparse = occam.arena.tracks.sparse:SparseTrack"),
           ("arena/tracks/__init__.py", "recover = occam.toy.track:RecoverTrack"),
           ("arena/tracks/__init__.py", "grok-speed = occam.toy.speed_track:GrokSpeedTrack"),
           ("arena/tracks/__init__.py", "evasive = occam.audit.evasive_track:EvasiveTrack"),
           ("arena/challenges.py", "sparse"), ("arena/schema.py", "sparse")}


def _modules(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            out += [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            out.append(n.module)
    return out


def _files(*parts: str) -> list[Path]:
    return sorted(p for part in parts for p in (SRC / part).rglob("*.py"))


def test_arena_does_not_import_audit_and_audit_not_web():
    bad = []
    for p in _files("arena"):
        bad += [f"{p.relative_to(SRC)} imports {m}" for m in _modules(ast.parse(p.read_text()))
                if m == "occam.audit" or m.startswith("occam.audit.")]
    for p in _files("audit"):
        bad += [f"{p.relative_to(SRC)} imports {m}" for m in _modules(ast.parse(p.read_text()))
                if m.split(".")[:2] in (["occam", "web"], ["occam", "cli"])]
    assert not bad, bad


def test_no_code_outside_a_track_names_a_track():
    files = [p for p in _files("arena", "web") if p.name != "sparse.py" and "migrations" not in p.parts]
    files.append(SRC / "cli" / "arena.py")
    named = []
    for p in files:
        rel = p.relative_to(SRC).as_posix()
        tree = ast.parse(p.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
                hit = n.value in TRACK_NAMES or n.value.startswith(("audit =", "sparse =", "evasive ="))
                if hit and (rel, n.value) not in ALLOWED:
                    named.append(f"{rel}:{n.lineno} {n.value!r}")
    templates = SRC / "web" / "templates"
    for t in templates.glob("*.html"):  # page templates include track fragments instead
        text = t.read_text()
        if "c.audit" in text or '"audit"' in text or "'audit'" in text:
            named.append(f"web/templates/{t.name}")
    assert not named, named
