"""Superposition, induction heads and the local learning coefficient, on tiny settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from occam.errors import OccamError
from occam.toy import load_run
from occam.toy.induction import InductionConfig, train_induction
from occam.toy.llc import SGLDConfig, estimate_llc, llc_over_checkpoints
from occam.toy.tms import TMSConfig, dimensionality, train_tms


def test_tms_dense_and_sparse_ends_differ_in_d_star(tmp_path):
    torch.set_num_threads(1)
    cfg = TMSConfig(n_instances=2, feature_probs=[1.0, 0.03], steps=3000, batch=256, lr=3e-3, n_checkpoints=5)
    s = train_tms(cfg, tmp_path / "tms")
    dense, sparse = s["d_star"]
    assert dense > 0.8  # two features, one dimension each
    assert sparse < 0.6  # four or five features share two dimensions
    assert s["n_represented"][0] == 2 and s["n_represented"][1] >= 4
    run = load_run(tmp_path / "tms")
    assert run.metrics("loss").shape == (len(run.steps), 2)  # one loss per instance per checkpoint


def test_dimensionality_of_known_geometries():
    antipodal = torch.tensor([[[1.0, -1.0]]])  # two features on one dimension: D_i = 1/2 each
    d = dimensionality(antipodal)
    assert d["d_i"][0] == pytest.approx([0.5, 0.5]) and d["d_star"][0] == pytest.approx(0.5)
    angles = 2 * np.pi * np.arange(5) / 5  # a regular pentagon in 2 dimensions: D_i = 2/5
    pent = torch.tensor(np.stack([np.cos(angles), np.sin(angles)])[None], dtype=torch.float32)
    assert dimensionality(pent)["d_i"][0] == pytest.approx([0.4] * 5, abs=1e-6)


def test_induction_score_rises(tmp_path):
    torch.set_num_threads(1)
    cfg = InductionConfig(vocab=32, half=8, d_model=32, n_heads=2, steps=600, batch=32, lr=3e-3, n_checkpoints=8,
                          eval_batch=64)
    s = train_induction(cfg, tmp_path / "ind")
    run = load_run(tmp_path / "ind")
    score = run.metrics("max_induction")
    assert score[0] < 0.3 and score[-1] > 0.5
    rep = run.metrics("loss_repeat")
    assert rep[-1] < 0.5 * rep[0]
    assert s["final"]["loss_repeat"] < s["final"]["loss_first_half"]


def _regression(n: int = 2000, d: int = 6):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.randn(d, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(X, y).solution.T)
    return model, (lambda m, gen: ((m(X) - y) ** 2).mean() / 2), n, d


def test_llc_of_a_regular_model_is_half_its_dimension():
    model, loss, n, d = _regression()
    with torch.no_grad():
        init = float(loss(model, None))
    r = estimate_llc(model, loss, n, SGLDConfig(epsilon=1e-3, gamma=1.0, chains=4, steps=600, burn_in=200), init_loss=init)
    assert r["llc"] == pytest.approx(d / 2, rel=0.2)
    assert r["traces"].shape == (4, 600)


def test_llc_errors_and_run_objective(tmp_path):
    model, loss, n, _ = _regression()
    with pytest.raises(OccamError, match="epsilon"):
        SGLDConfig(epsilon=0).validate()
    with pytest.raises(OccamError, match="diverged"):
        estimate_llc(model, loss, n, SGLDConfig(epsilon=10.0, gamma=0.0, chains=1, steps=50, burn_in=10))
    train_tms(TMSConfig(n_instances=2, steps=20, batch=64, n_checkpoints=2), tmp_path / "t")
    res = llc_over_checkpoints(tmp_path / "t", SGLDConfig(epsilon=1e-5, chains=1, steps=20, burn_in=5))
    assert res["step"] == load_run(tmp_path / "t").steps and all(np.isfinite(res["llc"]))


def test_head_ablation_in_both_transformers():
    from occam.toy.data import induction_batch, modular_data
    from occam.toy.grok import attention_patterns, head_ablation_loss
    from occam.toy.induction import head_ablation_losses
    from occam.toy.models import build_model

    torch.manual_seed(0)
    m = build_model("attn_only", vocab=16, n_ctx=10, d_model=16, n_heads=2)
    tok = induction_batch(16, 5, 8, torch.Generator().manual_seed(0))
    losses = head_ablation_losses(m, tok, 5)
    assert losses.shape == (2, 2) and np.isfinite(losses).all()
    assert len(np.unique(np.round(losses, 6))) > 1  # ablating different heads changes the loss differently
    t = build_model("transformer", p=7, d_model=16, n_heads=2, d_head=8, d_mlp=32)
    pat = attention_patterns(t, 3, 4)
    assert pat.shape == (2, 3, 3) and np.allclose(pat.sum(-1), 1.0)
    data = modular_data(7, "+", 0.5, 0)
    assert head_ablation_loss(t, data, 0) != pytest.approx(head_ablation_loss(t, data, 1))
    with pytest.raises(OccamError, match="inputs must lie"):
        attention_patterns(t, 9, 0)
