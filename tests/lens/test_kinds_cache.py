"""Model kinds (the registry, checkpoint axis), the one activation cache, the one route, and the import rule."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from occam.errors import OccamError
from occam.lens.checks import tiny_model
from occam.lens.kinds import KINDS, detect_kind, open_model, register_kind
from occam.lens.view import run_view
from occam.lens.views import LensSession, views_for
from occam.models import build_model, export_bytes

ROOT = Path(__file__).resolve().parents[2]


def _onnx(seed: int) -> bytes:
    torch.manual_seed(seed)
    return export_bytes(build_model("mlp", (1, 8, 8), 10).eval(), (1, 8, 8))


def test_overview_follows_edits_and_every_view_uses_one_validation_set():
    lm = tiny_model()
    ed = lm.editor
    assert ed.x is lm.x and lm.n_val == len(lm.task.labels("val"))
    shown = ed.set_weight("conv1.weight", 0, 0.9)
    ov = run_view(lm, "overview").data
    assert ov["metrics"]["ce"] == shown["ce"] and ov["metrics"]["nnz"] == shown["nnz"]
    assert ov["n_val"] == lm.n_val == ov["metrics"]["n"]
    assert abs(shown["ce"] - ed.full_forward_metrics()["ce"]) < 1e-6
    for name in ("pruning", "steering"):
        assert run_view(lm, name).data["metrics"]["n"] == lm.n_val
    # the cache's hooks: zeroing a layer through run_with_hooks leaves the cache unchanged
    before = lm.cache.logits().clone()
    z = lm.cache.run_with_hooks({"relu_2": torch.zeros_like})[lm.module.output_name]
    assert not torch.equal(z, before) and torch.equal(lm.cache.logits(), before)
    logits, cache = lm.cache.run_with_cache(names=["relu"])
    assert set(cache) == {"relu"} and torch.equal(logits, before)
    ed.reset()
    assert run_view(lm, "overview").data["metrics"] == ed.metrics()


def test_n_val_caps_the_one_validation_set():
    lm = open_model(_onnx(0), "digits", n_val=50)
    assert lm.n_val == 50 and lm.editor.metrics()["n"] == 50 and run_view(lm, "overview").data["n_val"] == 50
    with pytest.raises(OccamError, match="at least one validation example"):
        open_model(_onnx(0), "digits", n_val=0)


def test_checkpoint_directory_and_checkout(tmp_path):
    for i in (1, 2, 10):
        (tmp_path / f"epoch{i}.onnx").write_bytes(_onnx(i))
    lm = open_model(tmp_path, "digits")
    assert detect_kind(tmp_path).name == "image-classifier"
    assert lm.info.checkpoints == ["epoch1", "epoch2", "epoch10"] and lm.checkpoint == 2  # natural order, last shown
    last = run_view(lm, "overview").data["metrics"]
    lm.checkout(0)
    first = run_view(lm, "overview").data
    assert first["checkpoint"] == 0 and first["metrics"]["ce"] != last["ce"]
    assert first["metrics"] == open_model(tmp_path / "epoch1.onnx", "digits").metrics()
    with pytest.raises(OccamError, match="no checkpoint 3: this model has 3"):
        lm.checkout(3)


def test_kind_dispatch_errors(tmp_path):
    with pytest.raises(OccamError, match="no such model file"):
        open_model(tmp_path / "nope.onnx", "digits")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(OccamError, match="no model kind of the Lens recognizes"):
        open_model(tmp_path / "notes.txt", "digits")
    with pytest.raises(OccamError, match="no model kind 'no-such-kind'"):
        open_model(_onnx(0), "digits", kind="no-such-kind")
    with pytest.raises(OccamError, match="a toy run opens from its directory"):  # the toy kind, given bytes
        open_model(_onnx(0), kind="toy")
    with pytest.raises(OccamError, match="opens with the task it solves"):
        open_model(_onnx(0))


def test_example_kind_registers_and_opens(tmp_path):
    spec = importlib.util.spec_from_file_location("run_dir_kind", ROOT / "docs" / "examples" / "run_dir_kind.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["run_dir_kind"] = mod
    spec.loader.exec_module(mod)
    for i in (1, 2):
        (tmp_path / f"e{i}.onnx").write_bytes(_onnx(i))
    (tmp_path / "run.json").write_text(json.dumps({"task": "digits", "checkpoints": ["e1.onnx", "e2.onnx"]}))
    register_kind(mod.TrainingRunKind(), first=True)
    try:
        assert detect_kind(tmp_path).name == "training-run"
        lm = open_model(tmp_path)  # the task comes from run.json
        assert lm.info.checkpoints == ["e1", "e2"] and lm.checkpoint == 1
        assert "overview" in [v.name for v in views_for(lm)]
        (tmp_path / "run.json").write_text(json.dumps({"task": "digits", "checkpoints": ["e3.onnx"]}))
        with pytest.raises(OccamError, match="checkpoint e3.onnx"):
            open_model(tmp_path)
    finally:
        KINDS.pop("training-run", None)
    assert detect_kind(tmp_path).name == "image-classifier"


def test_one_route_serves_every_view():
    from fastapi.testclient import TestClient

    from occam.web.lens_routes import create_app

    s = LensSession(tiny_model())
    c = TestClient(create_app(s))
    api = f"/lens/api/{s.id}/views"
    names = [v["name"] for v in c.get(api).json()["views"]]
    assert names == [v.name for v in views_for(s.lm)]
    r = c.get(f"{api}/units", params={"layer": "relu", "unit": 2}).json()
    assert r["view"] == "units" and r["params"]["unit"] == 2 and r["n_val"] == s.lm.n_val
    assert r["html"].count("<img") == 12 and r["data"]["top"][0]["src"].startswith("data:image/png")
    bad = c.get(f"{api}/units", params={"layer": "relu", "k": 0})
    assert bad.status_code == 400 and "parameter k must be between 1 and 50" in bad.json()["error"]
    assert c.get(f"{api}/nope").status_code == 400
    j = c.post(f"{api}/sae", json={"layer": "relu", "size": 8, "steps": 5}).json()
    while j["state"] == "running":
        j = c.get(f"{api}/sae/jobs/{j['id']}").json()
    assert j["state"] == "done" and j["result"]["size"] == 8 and j["step"] == 5
    assert c.post(f"{api}/units", json={}).status_code == 400  # not a job view
    # edits reach the overview through the one cache
    m = c.post(f"/lens/api/{s.id}/edit", json={"name": "conv1.weight", "index": 0, "value": 0.5}).json()
    assert c.get(f"{api}/overview").json()["data"]["metrics"]["ce"] == pytest.approx(m["ce"], abs=0)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_the_lens_imports_neither_audit_nor_web_nor_cli():
    for path in (ROOT / "src" / "occam" / "lens").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("occam.audit", "occam.web", "occam.cli", "occam.arena"))}
        assert not bad, f"{path.name} imports {bad}"


def test_checkpoint_route_and_selector(tmp_path):
    from fastapi.testclient import TestClient

    from occam.web.lens_routes import create_app

    for i in (1, 2):
        (tmp_path / f"epoch{i}.onnx").write_bytes(_onnx(i))
    s = LensSession(open_model(tmp_path, "digits"))
    c = TestClient(create_app(s))
    page = c.get(f"/lens/m/{s.id}").text
    assert '<input id="checkpoint" type="range" min="0" max="1"' in page and '<b id="checkpoint-label">epoch2</b>' in page
    first_id = s.id
    r = c.post(f"/lens/api/{s.id}/checkpoint", json={"index": 0}).json()
    assert r["checkpoint"] == 0 and r["checkpoints"] == ["epoch1", "epoch2"]
    ov = c.get(f"/lens/api/{s.id}/views/overview").json()["data"]
    assert ov["checkpoint"] == 0 and ov["metrics"] == open_model(tmp_path / "epoch1.onnx", "digits").metrics()
    assert s.id == first_id and s.lm.hash != first_id  # the page's address survives the scrubber
    bad = c.post(f"/lens/api/{s.id}/checkpoint", json={"index": 5})
    assert bad.status_code == 400 and "no checkpoint 5" in bad.json()["error"]
    ro = LensSession(open_model(tmp_path, "digits"), read_only="shared")
    c2 = TestClient(create_app(ro))
    assert c2.post(f"/lens/api/{ro.id}/checkpoint", json={"index": 0}).status_code == 409
    assert 'value="1" disabled>' in c2.get(f"/lens/m/{ro.id}").text.split('id="checkpoint"')[1][:80]


def test_cli_asks_the_kind_registry(tmp_path):
    import subprocess

    path = tmp_path / "m.onnx"
    path.write_bytes(_onnx(0))
    r = subprocess.run([sys.executable, "-m", "occam", "lens", str(path), "--task", "digits", "--kind", "nope",
                        "--export", str(tmp_path / "x.html")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--kind 'nope' is not a model kind" in r.stderr + r.stdout
    assert "image-classifier" in r.stderr + r.stdout and not (tmp_path / "x.html").exists()
