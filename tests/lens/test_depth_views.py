"""The depth views on real models: comparison (Python API and route), foreign models (names with "/" and "::",
residual Adds, softmax outputs), the attention view on the zoo's ViT, and what each view shows."""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from occam.errors import OccamError
from occam.lens.checks import check_view, tiny_model
from occam.lens.model import open_model
from occam.lens.views import VIEWS, LensSession, run_view
from occam.web.lens_routes import create_app

DEPTH = ["patching", "logit-lens", "attribution-methods", "featvis-objectives", "dictionary", "trigger-evidence"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


def _twin(lm):
    return type(lm)(lm.to_onnx_bytes(), lm.task, name=lm.name + "-copy", n_view=len(lm.x))


def test_compare_with_itself_shows_no_differences(tiny):
    twin = _twin(tiny)
    for name, params in [("patching", {"clean": 0, "corrupted": 5}), ("units", {"layer": tiny.layers[1].name}),
                         ("overview", {}), ("attribution-methods", {"method": "saliency", "index": 2})]:
        res = run_view(tiny, name, params, compare=twin)
        assert res.same, (name, res.diff["changed"][:5])
        assert "no differences" in res.html and res.html.count('class="side ') == 2
    with pytest.raises(OccamError, match="compared with itself"):
        run_view(tiny, "overview", compare=tiny)


def test_compare_names_the_differences_of_an_edited_copy(tiny):
    pruned = _twin(tiny)
    w = pruned.head()[2]  # the final bias: every logit of class 0 moves
    pruned.editor.set_weight(w, 0, 5.0)
    pruned.editor.sync()
    res = run_view(tiny, "overview", compare=pruned)
    assert not res.same and "metrics.ce" in res.diff["changed"]
    assert res.diff["max_abs"]["metrics.ce"] == pytest.approx(abs(pruned.metrics()["ce"] - tiny.metrics()["ce"]))
    assert "differences" in res._repr_html_()
    j = res.to_json()
    assert j["compare"]["data"]["metrics"]["ce"] == pytest.approx(pruned.metrics()["ce"])
    assert "metrics.ce" in j["diff_results"]["changed"]


def test_route_compare_with_a_snapshot(tiny):
    s = LensSession(_twin(tiny))
    c = TestClient(create_app(s))
    r = c.get(f"/lens/api/{s.id}/views/overview?compare=1")
    assert r.status_code == 400 and "no second model" in r.json()["error"]
    assert c.post(f"/lens/api/{s.id}/compare", json={"snapshot": True}).json()["compare"].endswith("(snapshot)")
    r = c.get(f"/lens/api/{s.id}/views/patching?clean=0&corrupted=3&compare=1").json()
    assert r["diff_results"]["changed"] == [] and r["compare"]["data"]["layers"]
    w = next(n for n in s.lm.module.weight_names if s.lm.module.weight(n).dim() == 4)
    assert c.post(f"/lens/api/{s.id}/edit", json={"name": w, "index": 0, "value": 3.0}).status_code == 200
    r = c.get(f"/lens/api/{s.id}/views/overview?compare=1").json()
    assert "metrics.ce" in r["diff_results"]["changed"] and "side-by-side" in r["html"]
    assert c.post(f"/lens/api/{s.id}/compare", json={"clear": True}).json()["compare"] is None
    assert "compare" not in c.get(f"/lens/api/{s.id}/views/overview").json()


def test_softmax_output_is_scored_on_log_probabilities(foreign_models):
    lm = open_model(foreign_models["softmax"], "digits", name="softmax")
    assert lm.output_is_probs
    p = lm.logits().double()
    assert torch.allclose(p.sum(1), torch.ones(len(p), dtype=torch.float64), atol=1e-5)
    expected = float(-torch.log(p[torch.arange(len(p)), lm.y]).mean())
    m = lm.metrics()
    assert m["probs"] and m["ce"] == pytest.approx(expected, rel=1e-6)
    wrong = float(torch.nn.functional.cross_entropy(p, lm.y))  # a second softmax: what scoring as logits gives
    assert abs(m["ce"] - wrong) > 1e-3
    ov = run_view(lm, "overview").data
    assert ov["output_probs"] and "already a softmax" in ov["output_note"]
    plain = open_model(foreign_models["legacy"], "digits")
    assert not plain.output_is_probs and not plain.metrics()["probs"]


def test_residual_add_is_a_layer(foreign_models):
    lm = open_model(foreign_models["residual"], "digits", name="residual")
    adds = [x for x in lm.layers if x.op == "Add"]
    assert len(adds) == 1 and adds[0].shape == (4, 8, 8)


@pytest.mark.parametrize("which", ["legacy", "helper", "residual"])
def test_names_with_slashes_round_trip_through_the_routes(foreign_models, which):
    lm = open_model(foreign_models[which], "digits", name=which)
    s = LensSession(lm)
    c = TestClient(create_app(s))
    odd = [x.name for x in lm.layers if "/" in x.name or ":" in x.name]
    assert odd, [x.name for x in lm.layers]
    for name in odd:
        r = c.get(f"/lens/api/{s.id}/views/units?layer={quote(name, safe='')}&unit=0")
        assert r.status_code == 200, r.text
        assert r.json()["data"]["layer"] == name and r.json()["params"]["layer"] == name
        page = c.get(f"/lens/m/{s.id}/units/{quote(name, safe='')}/0")
        assert page.status_code == 200 and '"layer": ' in page.text
    weights = [w for w in lm.module.weight_names if lm.module.weight(w).numel() > 1]
    r = c.get(f"/lens/api/{s.id}/views/editor?weight={quote(weights[0], safe='')}")
    assert r.status_code == 200 and r.json()["data"]["weight"]["name"] == weights[0]
    bad = c.get(f"/lens/m/{s.id}/units/{quote('no/such::layer', safe='')}/0")
    assert bad.status_code == 400 and "no layer 'no/such::layer'" in bad.json()["error"]


@pytest.mark.parametrize("which", ["legacy", "helper", "residual"])
def test_every_view_passes_the_contract_on_foreign_models(foreign_models, which):
    lm = open_model(foreign_models[which], "digits", name=which)
    for v in VIEWS.values():
        if v.applies_to(lm) and v.name not in ("trigger-evidence", "triggers"):  # the slow searches: test_triggers
            check_view(v, lm, export=False)


def test_patching_restores_the_clean_answer(tiny):
    d = run_view(tiny, "patching", clean=0, corrupted=1).data
    assert d["layers"] and all(r["whole_layer"] == pytest.approx(1.0, abs=1e-6) for r in d["layers"]
                                if np.isfinite(r["whole_layer"]))
    with pytest.raises(OccamError, match="same image"):
        run_view(tiny, "patching", clean=2, corrupted=2)
    adv = run_view(tiny, "patching", clean=0, attack="fgsm", eps=0.3)
    assert "fgsm" in adv.data["corrupted_source"] and "<img" in adv.html


def test_attribution_methods_share_one_symmetric_scale(tiny):
    res = run_view(tiny, "attribution-methods", index=1, target=3)
    assert res.data["target"] == 3 and len(res.data["maps"]) == 8 and res.data["vmax"] > 0
    assert [m["vmax"] for m in res.payload["maps"] if m["method"] != "grad_cam"] == [res.data["vmax"]] * 7
    assert res.html.count("<img") == 9


def test_featvis_objectives_diversity_and_negative(tiny):
    res = run_view(tiny, "featvis-objectives", objective="class", index=2, negative=True, n=3, steps=4)
    assert res.data["images"].shape[0] == 3 and "-" in res.data["objective"] or "neg" in res.data["objective"]
    assert res.html.count("<img") == 3


def test_dictionary_dashboard_on_a_conv_layer(tiny):
    conv = next(x.name for x in tiny.layers if x.op == "Relu" and len(x.shape) == 3)
    res = run_view(tiny, "dictionary", layer=conv, size=8, steps=20, target_l0=2.0)
    dash = res.data["dashboard"]
    assert dash["top"] and dash["top"][0]["heatmap"].ndim == 2  # spatial heatmaps on conv layers
    assert "fraction" in res.data["summary"]["loss_recovered"] and len(dash["logit_effect"]) == 10
    assert "loss recovered" in res.html and "histogram" in res.html


def test_attention_view_on_the_vit():
    vit = tiny_model("vit")
    assert VIEWS["attention"].applies_to(vit) and not VIEWS["attention"].applies_to(tiny_model())
    res = check_view(VIEWS["attention"], vit, export=False)
    pats = res.data["patterns"]
    assert len(pats) == 2 and np.allclose(pats[0].sum(-1), 1.0, atol=1e-5)  # rows of an attention pattern sum to 1
    assert np.allclose(res.data["rollout"].sum(-1), 1.0, atol=1e-6)
    assert res.html.count("<img") == 2 * pats[0].shape[0] + 3


def test_views_display_in_notebooks(tiny):
    res = run_view(tiny, "patching", clean=0, corrupted=1)
    assert res._repr_html_().startswith('<div class="lens-view">') and "<script" not in res._repr_html_()


def test_a_session_opened_with_a_second_model_compares_from_the_start(tiny, tmp_path):
    import subprocess
    import sys

    s = LensSession(_twin(tiny))
    s.set_compare(_twin(tiny))
    c = TestClient(create_app(s))
    page = c.get(f"/lens/m/{s.id}").text
    assert '<option value="held" selected>tiny-lenet5-copy</option>' in page
    assert c.get(f"/lens/api/{s.id}/views/overview?compare=1").json()["diff_results"]["changed"] == []
    path = tmp_path / "m.onnx"
    path.write_bytes(tiny.to_onnx_bytes())
    r = subprocess.run([sys.executable, "-m", "occam", "lens", str(path), "--task", "digits", "--compare",
                        str(tmp_path / "missing.onnx"), "--export", str(tmp_path / "x.html")],
                       capture_output=True, text=True, timeout=120)
    said = " ".join((r.stderr + r.stdout).split())
    assert r.returncode != 0 and "--compare" in said and "no such file" in said
    assert not (tmp_path / "x.html").exists()


def test_trigger_evidence_is_worded_as_evidence_with_its_basis(tiny):
    res = run_view(tiny, "trigger-evidence", steps=3, images=4, n_models=2, epochs=0.02)
    d = res.data
    assert d["evidence"] in ("consistent with clean models", "unusual for a clean model")
    assert 0 < d["p_value"] <= 1 and d["basis"]["n_models"] == 2
    assert "basis: 2 clean lenet5 models trained on digits" in res.html and "evidence, not proof" in res.html
    assert "flagged" not in res.html.lower() and "uncalibrated" in res.html
