"""Tuned-lens translators (occam.lens.tuned) on a real LeNet-5."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.tuned import fit_translators, layer_distributions, translator_quality


@pytest.fixture(scope="module")
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


@pytest.fixture(scope="module")
def tr(lm):
    return fit_translators(lm, steps=150, n_train=800)


def test_last_layer_translators_reproduce_the_model(lm, tr):
    out = lm.module.output_name
    assert tr.init[out] == "identity" and tr.init["relu_3"] == "head"
    env = lm.env()
    z = lm.logits()
    assert torch.equal(tr.logits(lm, out, env[out]), z)
    assert torch.allclose(tr.logits(lm, "relu_3", env["relu_3"]), z, atol=1e-5)


def test_translators_learn_the_models_distribution(lm, tr):
    q = translator_quality(lm, tr)
    rows = {r["layer"]: r for r in q["layers"]}
    assert rows[lm.module.output_name]["agreement"] == 1.0 and rows[lm.module.output_name]["kl"] == 0.0
    # the uniform start has KL(p_model || uniform); every trained translator does better
    logp = F.log_softmax(lm.logits(), dim=1)
    kl_uniform = float((logp.exp() * logp).sum(1).mean()) + math.log(10)
    for name in ("conv2d", "max_pool2d", "linear"):
        assert tr.init[name] == "zero"
        assert rows[name]["kl"] < 0.5 * kl_uniform, name
        assert rows[name]["agreement"] > 0.3, name  # chance is about 0.1
    assert 0 <= q["model_accuracy"] <= 1 and q["n"] == len(lm.y)


def test_layer_distributions_for_one_image(lm, tr):
    d = layer_distributions(lm, tr, 4)
    assert d["label"] == int(lm.y[4])
    assert [r["layer"] for r in d["layers"]] == tr.layers
    for r in d["layers"]:
        assert r["probs"].shape == (10,) and r["probs"].sum() == pytest.approx(1.0)
    assert np.allclose(d["layers"][-1]["probs"], d["probs"], atol=1e-6)


def test_pooling_fallback_and_errors(lm):
    t = fit_translators(lm, layers=["conv2d", "relu_2"], steps=5, n_train=100, max_features=200)
    assert t.pooled == {"conv2d": True, "relu_2": False}
    assert t.maps["conv2d"].in_features == 6
    with pytest.raises(OccamError, match="no layer"):
        fit_translators(lm, layers=["nope"])
    with pytest.raises(OccamError, match="steps"):
        fit_translators(lm, steps=0)
    with pytest.raises(OccamError, match="no translator"):
        t.logits(lm, "relu", lm.env()["relu"])
    with pytest.raises(OccamError, match="out of range"):
        layer_distributions(lm, t, 9999)
