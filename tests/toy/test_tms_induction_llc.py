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
