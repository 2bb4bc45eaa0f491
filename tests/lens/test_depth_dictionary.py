"""Sparse autoencoders (occam.lens.dictionary) on a real LeNet-5's layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.dictionary import (
    SparseAutoencoder,
    _resample,
    feature_dashboard,
    layer_vectors,
    loss_recovered,
    sae_summary,
    sweep_l1,
    train_sae,
)


@pytest.fixture(scope="module")
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


@pytest.mark.parametrize("layer", ["relu_1", "relu_3"])
def test_loss_recovered_is_one_for_an_exact_dictionary_and_zero_for_the_mean(lm, layer):
    d = lm.layer(layer).units
    exact = loss_recovered(lm, layer, SparseAutoencoder.identity(d))
    assert exact["fraction"] == pytest.approx(1.0, abs=1e-6)
    assert exact["ce_sae"] == pytest.approx(exact["ce_clean"], abs=1e-7)
    mean = SparseAutoencoder.constant(layer_vectors(lm, layer, "val").mean(0))
    ablated = loss_recovered(lm, layer, mean)
    assert ablated["fraction"] == pytest.approx(0.0, abs=1e-6)
    assert ablated["ce_mean_ablation"] > exact["ce_clean"]


def test_trained_sae_is_sparse_keeps_unit_decoder_rows_and_recovers_loss(lm):
    sae, st = train_sae(lm, "relu_1", size=48, l1=0.05, steps=200)
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(48), atol=1e-5)
    assert 0 < st["l0"] < 48 and st["fvu"] < 0.5
    rec = loss_recovered(lm, "relu_1", sae)
    assert 0.5 < rec["fraction"] <= 1.05
    again, st2 = train_sae(lm, "relu_1", size=48, l1=0.05, steps=200)
    assert torch.equal(again.W_dec, sae.W_dec) and st2["l0"] == st["l0"]  # deterministic under the seed


def test_dead_features_are_resampled(lm):
    data = layer_vectors(lm, "relu_2", n=500)
    sae = SparseAutoencoder(data.shape[1], 16)
    with torch.no_grad():
        sae.b_enc[:4] = -1e4  # four features that never fire
    assert int(((sae.encode(data) > 0).sum(0) == 0).sum()) >= 4
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    _resample(sae, opt, data, torch.arange(4), torch.Generator().manual_seed(0))
    fires = (sae.encode(data) > 0).sum(0)
    assert (fires[:4] > 0).all()
    _, st = train_sae(lm, "relu_2", size=64, l1=3.0, steps=250, resample_every=50)
    assert len(st["resampled"]) == 4 and sum(st["resampled"]) > 0


def test_sweep_reaches_the_target_l0(lm):
    sae, st = sweep_l1(lm, "relu_1", target_l0=4.0, size=32, steps=150, tolerance=0.25)
    assert st["reached"] and abs(st["l0"] - 4.0) <= 1.0
    assert len(st["history"]) >= 2
    with pytest.raises(OccamError, match="target L0"):
        sweep_l1(lm, "relu_1", target_l0=100, size=32)


def test_feature_dashboard_on_conv_and_head_layers(lm):
    sae, _ = train_sae(lm, "relu_1", size=32, l1=0.05, steps=100)
    s = sae_summary(lm, "relu_1", sae)
    f = s["features_by_frequency"][0]
    dash = feature_dashboard(lm, "relu_1", sae, f, top=5)
    assert len(dash["top"]) == 5 and dash["top"][0]["heatmap"].shape == (4, 4)
    assert dash["top"][0]["act"] == pytest.approx(float(dash["top"][0]["heatmap"].max()))
    acts = [r["act"] for r in dash["top"]]
    assert acts == sorted(acts, reverse=True)
    assert dash["histogram"]["counts"].sum() > 0 and dash["logit_effect"].shape == (10,)
    assert np.abs(dash["logit_effect"]).max() > 0
    assert dash["direct_logits"] is None
    head_sae = SparseAutoencoder.identity(84)
    hd = feature_dashboard(lm, "relu_3", head_sae, 0)
    assert "heatmap" not in hd["top"][0]
    spec = lm.head()
    w = lm.module.weight(spec[1])
    col = (w[:, 0] if spec[3] else w[0]).numpy()
    assert np.allclose(hd["direct_logits"], col, atol=1e-6)
    with pytest.raises(OccamError, match="out of range"):
        feature_dashboard(lm, "relu_1", sae, 99)
    with pytest.raises(OccamError, match="units"):
        loss_recovered(lm, "relu_2", sae)
