"""The `occam toy` commands, end to end in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys


def _occam(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "occam", "toy", *args], capture_output=True, text=True, timeout=300)


def test_grok_cli_writes_run_and_figure(tmp_path):
    out = tmp_path / "g"
    r = _occam("grok", "--out", str(out), "--p", "23", "--steps", "60", "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["format"] == "occam-toy-run/1" and meta["task"]["p"] == 23 and meta["checkpoints"][-1]["step"] == 60
    assert (out / "grok.png").stat().st_size > 10_000
    assert "step test acc" in r.stdout
    r = _occam("llc", str(out), "--every", "100", "--chains", "1", "--steps", "20", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "llc.png").exists() and len(json.loads((out / "llc.json").read_text())["llc"]) == 1


def test_grok_cli_rejects_bad_modulus(tmp_path):
    r = _occam("grok", "--out", str(tmp_path / "x"), "--p", "60", "--steps", "5", "--quiet")
    assert r.returncode == 2
    assert "prime" in r.stderr and "fix:" in r.stderr  # the library's error, printed by the CLI
    assert not (tmp_path / "x" / "run.json").exists()


def test_llc_cli_on_a_missing_run(tmp_path):
    r = _occam("llc", str(tmp_path))
    assert r.returncode == 2 and "not a toy run" in " ".join(r.stderr.split())


def test_tms_and_induction_cli_write_runs_and_figures(tmp_path):
    r = _occam("tms", "--out", str(tmp_path / "t"), "--steps", "40", "--instances", "3", "--no-dims", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t" / "sparsity" / "tms.png").exists() and "D*" in r.stdout
    r = _occam("induction", "--out", str(tmp_path / "i"), "--steps", "20", "--vocab", "16", "--half", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "i" / "induction.png").exists() and "best induction head" in r.stdout
    meta = json.loads((tmp_path / "i" / "run.json").read_text())
    assert meta["experiment"] == "induction" and meta["checkpoints"][-1]["step"] == 20
