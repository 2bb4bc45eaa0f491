"""`occam inspect`, `occam score`, `occam data list` as real commands (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from occam.tasks import get_task
from test_scoring_helpers import linear, to_bytes

OCCAM = Path(sys.executable).with_name("occam")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(OCCAM), *args] if OCCAM.exists() else [sys.executable, "-m", "occam", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory):
    get_task("digits").images("test")  # materialize once, in this process
    d = tmp_path_factory.mktemp("cli-models")
    rng = np.random.default_rng(0)
    good = d / "good.onnx"
    good.write_bytes(to_bytes(linear(rng.normal(size=(10, 64)).astype(np.float32), np.zeros(10, np.float32),
                                     in_shape=(1, 8, 8), classes=10)))
    bad = d / "bad.onnx"
    bad.write_bytes(to_bytes(linear(in_shape=(1, 8, 8), classes=3)))
    return good, bad


def test_inspect_accepts_and_prints_table(digits_models):
    good, _ = digits_models
    r = run("inspect", str(good), "--task", "digits")
    assert r.returncode == 0, r.stderr
    assert "accepted" in r.stdout and "nnz" in r.stdout and "initializer" in r.stdout


def test_inspect_json(digits_models):
    good, bad = digits_models
    r = run("inspect", str(good), "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["ok"] is True and d["reason"] is None
    assert d["nnz"] == 640 and d["stored_values"] == 650 and len(d["tensors"]) == 2
    r = run("inspect", str(bad), "--task", "digits", "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["ok"] is False and "[batch, 10]" in d["reason"]


def test_inspect_rejected_exit_1(digits_models):
    _, bad = digits_models
    r = run("inspect", str(bad), "--task", "digits")
    assert r.returncode == 1
    assert "rejected" in r.stderr and "output shape" in r.stderr and "fix" in r.stderr


def test_inspect_missing_file(tmp_path):
    r = run("inspect", str(tmp_path / "missing.onnx"))
    assert r.returncode == 1 and "not found" in r.stderr


def test_score_missing_file(tmp_path):
    r = run("score", str(tmp_path / "missing.onnx"), "--task", "digits")
    assert r.returncode == 2 and "model file not found" in r.stderr


def test_score_unknown_task(digits_models):
    good, _ = digits_models
    r = run("score", str(good), "--task", "imagenet")
    assert r.returncode == 2 and "unknown task 'imagenet'" in r.stderr and "digits" in r.stderr


def test_score_rejected_model(digits_models):
    _, bad = digits_models
    r = run("score", str(bad), "--task", "digits")
    assert r.returncode == 2
    assert "error:" in r.stderr and "output shape" in r.stderr and "fix:" in r.stderr


def test_score_prints_result(digits_models):
    good, _ = digits_models
    r = run("score", str(good), "--task", "digits", "--split", "val", "--lam", "20", "--threads", "1")
    assert r.returncode == 0, r.stderr
    for word in ("score", "CE", "accuracy", "nnz", "640", "Per-class accuracy"):
        assert word in r.stdout


def test_score_json_and_no_torch(digits_models):
    """The whole `occam score` command never imports PyTorch."""
    good, _ = digits_models
    code = (
        "import sys\n"
        "from occam.cli import main\n"
        "try:\n"
        f"    main(['score', {str(good)!r}, '--task', 'digits', '--json'])\n"
        "finally:\n"
        "    bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "    print('TORCH-MODULES', len(bad), bad[:5], file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TORCH-MODULES 0 []" in r.stderr, r.stderr
    d = json.loads(r.stdout)
    for key in ("task", "split", "lam", "score", "ce", "accuracy", "nnz", "stored_values", "per_class_accuracy",
                "n", "seconds", "scorer_version"):
        assert key in d
    assert d["task"] == "digits" and d["split"] == "test" and d["lam"] == 30.0 and d["nnz"] == 640


def test_data_list():
    r = run("data", "list")
    assert r.returncode == 0, r.stderr
    for name in ("fashion-mnist", "mnist", "cifar10", "digits", "mnist1d"):
        assert name in r.stdout
    r = run("data", "list", "--json")
    rows = json.loads(r.stdout)
    assert {row["name"] for row in rows} >= {"digits", "mnist1d"} and all("available" in row for row in rows)
