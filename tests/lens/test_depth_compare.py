"""Comparing two models (occam.lens.compare): a LeNet-5, its pruned copy and an MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.compare import checkpoint_model, compare_models, diff_results, weight_differences


@pytest.fixture(scope="module")
def pair(lenet_digits):
    a = open_model(lenet_digits, "digits", name="a")
    b = open_model(lenet_digits, "digits", name="b")
    with torch.no_grad():
        w = b.module.weight(b.module.weight_names[0])
        w[0].zero_()  # prune conv1's first filter
        w2 = b.module.weight(b.module.weight_names[2])
        w2.mul_(torch.rand(w2.shape, generator=torch.Generator().manual_seed(0)) > 0.5)  # prune half of conv2
    b.invalidate()
    return a, b


def test_identical_models_compare_equal(lenet_digits):
    a = open_model(lenet_digits, "digits")
    r = compare_models(a, open_model(lenet_digits, "digits"))
    assert r["predictions"]["agreement"] == 1.0 and r["predictions"]["kl"] == pytest.approx(0.0, abs=1e-12)
    assert all(w["changed"] == 0 and w["l2"] == 0 for w in r["weights"]["weights"])
    assert not r["predictions"]["disagreeing"] and np.all(r["predictions"]["per_class_delta"] == 0)


def test_pruned_copy_shows_weight_and_prediction_differences(pair):
    a, b = pair
    r = compare_models(a, b)
    rows = {w["a"]: w for w in r["weights"]["weights"]}
    first, third = a.module.weight_names[0], a.module.weight_names[2]
    w0 = a.module.weight(first)
    assert rows[first]["changed"] == int((w0[0] != 0).sum())
    assert rows[first]["nnz_b"] == rows[first]["nnz_a"] - int((w0[0] != 0).sum())
    assert rows[third]["relative"] > 0.3
    assert all(w["changed"] == 0 for n, w in rows.items() if n not in (first, third))
    p = r["predictions"]
    assert p["agreement"] < 1.0
    assert p["disagreements"].sum() == round((1 - p["agreement"]) * p["n"])
    assert len(p["disagreeing"]) == min(50, p["disagreements"].sum())
    i = p["disagreeing"][0]
    assert int(a.logits()[i].argmax()) != int(b.logits()[i].argmax())
    assert np.allclose(p["per_class_delta"], p["per_class_accuracy_b"] - p["per_class_accuracy_a"], equal_nan=True)
    assert r["weights"]["nnz_b"] < r["weights"]["nnz_a"]


def test_weights_pair_by_shape_when_names_differ(lenet_digits):
    from occam.models import build_model

    a = open_model(lenet_digits, "digits")
    torch.manual_seed(1)
    mlp = open_model(build_model("mlp", (1, 8, 8), 10), "digits")
    r = weight_differences(a, mlp)
    assert r["unpaired_a"] or r["unpaired_b"]
    for w in r["weights"]:
        assert a.module.weight(w["a"]).shape == mlp.module.weight(w["b"]).shape


def test_diff_results_and_errors(pair):
    a, b = pair
    from occam.lens.patching import patching_map

    ra = patching_map(a, 0, 1, layers=["relu_2"], clean_class=0, corrupted_class=1)
    rb = patching_map(b, 0, 1, layers=["relu_2"], clean_class=0, corrupted_class=1)
    d = diff_results(ra, rb)
    assert "ld_clean" in d["changed"] and d["tree"]["clean_class"]["delta"] == 0
    assert d["tree"]["layers"][0]["restored"]["delta"].shape == (120,)
    assert d["tree"]["layers"][0]["layer"]["equal"] is True
    same = diff_results({"x": [1, 2], "s": "t", "n": {"m": np.ones(3)}}, {"x": [1, 2], "s": "t", "n": {"m": np.ones(3)}})
    assert same["changed"] == []
    other = diff_results({"x": 1, "k": "a"}, {"x": 3, "k": "b", "extra": 0})
    assert set(other["changed"]) == {"x", "k", "extra"} and other["max_abs"]["x"] == 2
    with pytest.raises(OccamError, match="out of range"):
        checkpoint_model(a, 3)
    assert torch.equal(checkpoint_model(a, 0).logits(), a.logits())
    with pytest.raises(OccamError, match="different validation images"):
        compare_models(a, open_model(a.data, "digits", n_view=50))
