"""Grokking on a small modulus, the Fourier progress measures, and the run format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from occam.errors import OccamError
from occam.toy import fourier, load_run
from occam.toy.data import modular_data
from occam.toy.grok import GrokConfig, train_grok
from occam.toy.models import build_model


@pytest.fixture(scope="module")
def grokked(tmp_path_factory):
    """A narrow-embedding MLP on p = 31 that groks within 1,000 full-batch steps (seconds)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("grok")
    cfg = GrokConfig(p=31, kind="embed_mlp", model={"hidden": 128, "d_embed": 16}, frac_train=0.7, lr=1e-2,
                     steps=1000, n_log_checkpoints=10, checkpoint_every=250)
    return out, train_grok(cfg, out)


def test_small_modulus_groks(grokked):
    _, s = grokked
    assert s["step_train_acc_99"] is not None and s["step_train_acc_99"] < 300  # memorizes early
    assert s["step_test_acc_99"] is not None and s["step_test_acc_99"] > s["step_train_acc_99"]  # generalizes later
    assert s["final"]["test_acc"] >= 0.99


def test_restricted_below_excluded_for_trained_model(grokked):
    out, s = grokked
    run = load_run(out)
    keys = s["final_key_freqs"]
    assert 1 <= len(keys) <= 6
    model = run.model_at(run.steps[-1])
    restricted, excluded = fourier.restricted_loss(model, 31, keys), fourier.excluded_loss(model, 31, keys)
    assert restricted < 0.5 * math.log(31) < excluded  # the key frequencies carry the answer; without them it is lost
    assert run.metrics("restricted_loss")[-1] < run.metrics("excluded_loss")[-1]
    assert run.metrics("gini")[-1] > run.metrics("gini")[0]  # the embedding's spectrum got sparser


class FourierAlgorithm(nn.Module):
    """The algorithm Nanda et al. found, written by hand: logits = Σ_k cos(2πk(a + b − c)/p) over key frequencies."""

    def __init__(self, p: int, keys: list[int], scale: float = 4.0):
        super().__init__()
        self.p, self.keys, self.scale = p, keys, scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c = torch.arange(self.p)
        s = (a + b).unsqueeze(1) - c
        return self.scale * sum(torch.cos(2 * math.pi * k * s / self.p) for k in self.keys)


def test_true_key_frequencies_restricted_vs_excluded():
    p, keys = 23, [3, 7]
    model = FourierAlgorithm(p, keys)
    spectrum = fourier.logit_spectrum(model, p)
    assert sorted(fourier.key_frequencies(np.sqrt(spectrum))) == keys
    full = fourier.loss_on(fourier.all_logits(model, p))
    assert fourier.restricted_loss(model, p, keys) == pytest.approx(full, abs=1e-6)  # nothing outside the keys
    assert fourier.excluded_loss(model, p, keys) == pytest.approx(math.log(p), abs=1e-6)  # nothing left
    assert fourier.restricted_loss(model, p, [5]) > full


def test_fourier_basis_is_orthonormal_and_gini_extremes():
    F, freqs = fourier.fourier_basis(13)
    assert torch.allclose(F @ F.T, torch.eye(13, dtype=torch.float64), atol=1e-10)
    assert list(freqs[:5]) == [0, 1, 1, 2, 2]
    assert fourier.gini(np.ones(10)) == pytest.approx(0.0)
    assert fourier.gini(np.eye(10)[0]) == pytest.approx(0.9)


def test_fast_transformer_forward_matches_plain_forward():
    torch.manual_seed(0)
    m = build_model("transformer", p=13, d_model=32, n_heads=2, d_head=16, d_mlp=64)
    a, b = torch.randint(0, 13, (40,)), torch.randint(0, 13, (40,))
    plain, pattern = m.run_tokens(torch.stack([a, b, torch.full_like(a, 13)], dim=1))
    assert torch.allclose(m(a, b), plain, atol=1e-5)
    assert pattern.shape == (40, 2, 3, 3)
    assert torch.allclose(pattern.sum(-1), torch.ones(40, 2, 3))


def test_modular_data_ops_and_errors():
    d = modular_data(7, "/", 0.5, seed=1)
    assert len(d.y) == 7 * 6 and bool((d.b != 0).all())
    assert bool(((d.y * d.b) % 7 == d.a).all())  # y = a / b  ⇔  y·b = a
    assert int(d.train.sum()) == 21
    assert torch.equal(modular_data(7, "-", 0.5, 1).train, modular_data(7, "-", 0.5, 1).train)  # seeded
    with pytest.raises(OccamError, match="prime"):
        modular_data(12)
    with pytest.raises(OccamError, match="unknown operation"):
        modular_data(7, "^")
    with pytest.raises(OccamError, match="repeat"):
        fourier.ablate_frequencies(torch.zeros(7, 7, 7), [1, 1], keep=True)


def test_checkpoint_round_trips_through_load_run(grokked):
    out, _ = grokked
    run = load_run(out)
    assert run.kind == "embed_mlp" and run.steps[0] == 0 and run.steps[-1] == 1000
    assert (out / "checkpoints" / "step_001000.pt").exists()
    data = modular_data(31, "+", 0.7, 0)
    a, b, y = data.split("test")
    for step in (run.steps[3], run.steps[-1]):
        model = run.model_at(step)
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(model(a, b), y))
        entry = next(c for c in run.meta["checkpoints"] if c["step"] == step)
        assert loss == pytest.approx(entry["metrics"]["test_loss"], rel=1e-5)
    with pytest.raises(OccamError, match="no checkpoint at step"):
        run.state_dict(7777)
    with pytest.raises(OccamError, match="not a toy run"):
        load_run(out / "checkpoints")


class OneFrequencyNeurons(FourierAlgorithm):
    """Neuron j computes cos(2π k_j (a + b)/p): each is a single-frequency neuron by construction."""

    def neuron_acts(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.cos(2 * math.pi * k * (a + b) / self.p) for k in self.keys], dim=1)


def test_neuron_frequency_shares_and_2d_logit_spectrum_of_known_model():
    p, keys = 17, [2, 5, 5]
    model = OneFrequencyNeurons(p, keys)
    shares = fourier.neuron_frequency_shares(model, p)
    assert shares.shape == (3, 8)
    cluster, frac = fourier.neuron_clusters(shares)
    assert list(cluster) == keys and np.allclose(frac, 1.0)
    spec2d = fourier.logits_fourier_2d(model, p)  # rows/cols: [1, cos1, sin1, cos2, sin2, …]
    _, freqs = fourier.fourier_basis(p)
    outside = spec2d[~np.isin(freqs, [2, 5])][:, ~np.isin(freqs, [2, 5])]
    assert outside.max() < 1e-4 * spec2d[3, 3]  # only key-frequency terms, e.g. cos 2a · cos 2b, are non-zero
