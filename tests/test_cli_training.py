"""The training-side CLI as a user runs it: real subprocesses, real files, clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from occam.tasks import get_task


def occam(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "occam", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_train_writes_model_card_and_checkpoint(tmp_path):
    out = tmp_path / "m.onnx"
    r = occam("train", "digits", "--arch", "mlp", "--epochs", "4", "--opt", "hidden=32", "--out", str(out), "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "val (digits)" in r.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["arch"] == "mlp" and card["config"]["arch_kwargs"] == {"hidden": 32}
    assert out.with_suffix(".pt").exists()
    inspect = occam("inspect", str(out), "--task", "digits", "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["nnz"] == card["nnz"]


@pytest.mark.parametrize("args, message", [
    (["train", "digits", "--prune", "gradual"], "needs a goal"),
    (["train", "imagenet"], "unknown task"),
    (["train", "digits", "--arch", "resnet"], "unknown architecture"),
    (["train", "digits", "--opt", "width"], "is not KEY=VALUE"),
    (["train", "digits", "--epochs", "0"], "must be positive"),
    (["pareto", "digits", "--nnz", "ten"], "comma-separated list"),
])
def test_train_errors_are_clear(args, message):
    r = occam(*args)
    assert r.returncode == 2
    assert message in r.stderr and "fix:" in r.stderr
    assert "Traceback" not in r.stderr


def test_pareto_sweep_writes_csv_png_html(tmp_path):
    r = occam("pareto", "digits", "--arch", "mlp", "--nnz", "400,1500", "--epochs", "8", "--out", str(tmp_path), "--split", "val")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    assert [int(r["target_nnz"]) for r in rows] == [400, 1500]
    assert all(int(r["nnz"]) <= int(r["target_nnz"]) for r in rows)
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    html = (tmp_path / "pareto.html").read_text()
    assert "plotly" in html.lower() and "frontier" in html


def test_baselines_rewrite_readme_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- baselines:start -->\nold\n<!-- baselines:end -->\ntail\n")
    r = occam("baselines", "--tasks", "digits", "--archs", "mlp", "--epochs", "3", "--out", str(tmp_path / "b"),
              "--readme", str(readme))
    assert r.returncode == 0, r.stderr
    text = readme.read_text()
    assert "old" not in text and "| digits | mlp |" in text and text.endswith("tail\n")


@pytest.mark.skipif(not get_task("fashion-mnist").available, reason="Fashion-MNIST files are not installed")
def test_demo_without_server(tmp_path):
    r = occam("demo", "--no-serve", "--minutes", "0.1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "2/3 scoring" in r.stdout and "accuracy" in r.stdout and "nnz" in r.stdout
