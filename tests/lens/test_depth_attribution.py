"""Captum attributions (occam.lens.attribution) on a real LeNet-5 and an MLP opened in the Lens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.attribution import METHODS, GraphModule, attribute, attribute_all, colour_scale


@pytest.fixture(scope="module")
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


@pytest.fixture(scope="module")
def mlp():
    from occam.models import build_model

    torch.manual_seed(0)
    return open_model(build_model("mlp", (1, 8, 8), 10), "digits")


def test_graph_module_computes_the_same_logits(lm):
    gm = GraphModule(lm, ("relu_1",))
    assert torch.allclose(gm(lm.x[:5]), lm.logits(lm.x[:5]), atol=1e-6)
    assert any(isinstance(m, torch.nn.ReLU) for m in gm.modules())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_with_a_target_and_colour_scale(lm, method):
    r = attribute(lm, [0, 1], method, target=3, steps=16, samples=4)
    assert r["targets"] == [3, 3] and r["target_names"] == ["3", "3"]
    assert r["maps"].shape[0] == 2 and r["maps"].shape[-2:] == (8, 8)
    assert np.isfinite(r["maps"]).all() and np.abs(r["maps"]).max() > 0
    assert r["vmax"] == pytest.approx(np.percentile(np.abs(r["maps"]), 99))


def test_integrated_gradients_completeness(lm):
    r = attribute(lm, [0, 1, 2], "integrated_gradients", steps=128)
    z, z0 = lm.logits(lm.x[:3]), lm.logits(torch.zeros_like(lm.x[:3]))
    for i, t in enumerate(r["targets"]):
        change = float(z[i, t] - z0[i, t])
        assert r["maps"][i].sum() == pytest.approx(change, abs=0.02 + 0.02 * abs(change))
        assert abs(r["delta"][i]) < 0.02 + 0.02 * abs(change)


def test_deeplift_is_complete_on_a_relu_mlp(mlp):
    r = attribute(mlp, [0, 1, 2], "deeplift")
    assert np.abs(r["delta"]).max() < 1e-4


def test_target_changes_the_map_and_default_is_the_prediction(lm):
    pred = int(lm.logits(lm.x[:1]).argmax())
    other = (pred + 1) % 10
    a = attribute(lm, 0, "saliency")
    b = attribute(lm, 0, "saliency", target=other)
    assert a["targets"] == [pred]
    assert not np.allclose(a["maps"], b["maps"])


def test_grad_cam_on_a_chosen_layer_and_bad_input(lm, mlp):
    r = attribute(lm, 0, "grad_cam", layer="relu")
    assert r["layer"] == "relu" and r["maps"].shape == (1, 1, 8, 8)
    with pytest.raises(OccamError, match="channel-first"):
        attribute(lm, 0, "grad_cam", layer="relu_2")
    with pytest.raises(OccamError, match="no channel-first"):
        attribute(mlp, 0, "grad_cam")
    with pytest.raises(OccamError, match="unknown attribution method"):
        attribute(lm, 0, "lime")
    with pytest.raises(OccamError, match="out of range"):
        attribute(lm, 0, "saliency", target=10)
    with pytest.raises(OccamError, match="window"):
        attribute(lm, 0, "occlusion", window=20)


def test_attribute_all_shares_a_colour_scale(lm):
    res = attribute_all(lm, 0, methods=("input_x_gradient", "integrated_gradients", "saliency"))
    assert set(res["methods"]) == {"input_x_gradient", "integrated_gradients", "saliency"}
    assert res["vmax_shared"] > 0
    assert colour_scale(np.zeros(4)) == 1.0


def test_one_dimensional_signals():
    from occam.models import build_model

    torch.manual_seed(0)
    lm1 = open_model(build_model("lenet5", (40,), 10), "mnist1d")
    cam = attribute(lm1, [0, 1], "grad_cam")
    assert cam["maps"].shape == (2, 1, 40) and np.isfinite(cam["maps"]).all()
    occ = attribute(lm1, 0, "occlusion", window=4)
    assert occ["maps"].shape == (1, 40)
