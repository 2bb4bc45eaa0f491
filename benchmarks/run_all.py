"""Run every benchmark script and rewrite docs/benchmarks.md with the figures.

Each ``benchmarks/*.py`` prints lines ``BENCH <metric> <value> <unit> [note]``. This runner
runs them one after another (they time things, so never in parallel), collects those lines and
writes one table per script with the machine, the date and the command that reproduces it.

    python benchmarks/run_all.py                 # everything, full size (what `make bench` runs)
    python benchmarks/run_all.py --quick         # every script with --quick
    python benchmarks/run_all.py score_speed     # only the named scripts
    python benchmarks/run_all.py audit_zoo --from-log LOG   # record a run made earlier (its stdout in LOG)

``--from-log`` is for long benchmarks that were run alone (``time python benchmarks/X.py > LOG``):
the figures come from the log's BENCH lines and the duration from its ``real`` line when present.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
LINE = re.compile(r"^BENCH\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def run(script: Path, quick: bool) -> tuple[list[tuple[str, str, str, str]], float, int, str]:
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    rows = [m.groups() for m in map(LINE.match, proc.stdout.splitlines()) if m]
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH"):
            print(f"  {line}")
    return rows, time.perf_counter() - t0, proc.returncode, proc.stderr[-2000:]


def from_log(path: Path) -> tuple[list[tuple[str, str, str, str]], float, int, str]:
    """BENCH rows and duration (the shell's ``real 29m32.9s`` line; 0 without one) of a saved run."""
    text = path.read_text().replace("\r", "\n")
    rows = [m.groups() for m in map(LINE.match, text.splitlines()) if m]
    t = re.search(r"^real\s+(\d+)m([\d.]+)s", text, re.M)
    if not rows:
        sys.exit(f"{path}: no BENCH lines; pass the saved stdout of the benchmark")
    return rows, (60 * int(t.group(1)) + float(t.group(2))) if t else 0.0, 0, ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="script names without .py (default: all)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--from-log", type=Path, help="take one named script's figures from this saved output")
    args = ap.parse_args()
    if args.from_log and len(args.names) != 1:
        ap.error("--from-log needs exactly one script name, e.g. run_all.py audit_zoo --from-log LOG")
    helpers = {"run_all.py", "audit_baselines.py"}  # audit_baselines is run by audit_zoo on its zoo
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name not in helpers)
    if args.names:
        scripts = [p for p in scripts if p.stem in args.names]
    sections = []
    for script in scripts:
        print(f"== {script.stem}")
        rows, seconds, rc, err = from_log(args.from_log) if args.from_log else run(script, args.quick)
        cmd = f"python benchmarks/{script.name}" + (" --quick" if args.quick else "")
        doc = (script.read_text().split('"""')[1].strip().splitlines() or [""])[0] if '"""' in script.read_text() else ""
        lines = [f"## {script.stem}", "", doc, "", f"Command: `{cmd}` ({seconds:.0f} s)", ""]
        if rc != 0:
            lines += [f"**Failed** with exit code {rc}:", "", "```", err.strip(), "```", ""]
        if rows:
            lines += ["| metric | value | unit | note |", "|---|---:|---|---|"]
            lines += [f"| {m} | {v} | {u} | {n} |" for m, v, u, n in rows]
        sections.append("\n".join(lines))
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/run_all.py`); do not edit by hand.",
        f"Run on {dt.date.today().isoformat()}: {machine()}.",
        "Figures are wall-clock measurements on a shared machine: rerun the command to reproduce.",
        "",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    if args.names and DOC.exists():
        # keep the other scripts' sections when only some were rerun
        old = DOC.read_text().split("\n## ")[1:]
        kept = {s.split("\n", 1)[0]: "## " + s for s in old}
        for s in sections:
            kept[s.split("\n", 1)[0][3:]] = s
        sections = [kept[k] for k in sorted(kept)]
    DOC.write_text("\n".join(header) + "\n" + "\n\n".join(s.rstrip() for s in sections) + "\n")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
