"""Training recipe: reproducibility, pruning to a budget, time budget, fine-tuning, calibration, augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.models import build_model, save_checkpoint
from occam.training import TrainConfig, train
from occam.training.augment import augment, translate
from occam.training.prune import Pruner, gradual_schedule
from occam.training.recipe import calibrate_temperature


def test_same_seed_same_model(tmp_path):
    cfg = dict(task="digits", arch="mlp", epochs=6, arch_kwargs={"hidden": (16,)}, threads=1)
    a = train(TrainConfig(**cfg, seed=3), tmp_path / "a.onnx")
    b = train(TrainConfig(**cfg, seed=3), tmp_path / "b.onnx")
    c = train(TrainConfig(**cfg, seed=4))
    assert a.onnx_bytes == b.onnx_bytes
    assert a.onnx_bytes != c.onnx_bytes
    card = json.loads((tmp_path / "a.json").read_text())
    for key in ("task", "arch", "seed", "epochs", "nnz", "val", "wall_seconds"):
        assert key in card
    assert card["val"]["accuracy"] > 0.5


@pytest.mark.parametrize("mode", ["gradual", "oneshot"])
def test_target_nnz_is_met(mode):
    result = train(TrainConfig(task="digits", arch="mlp", epochs=15, prune=mode, target_nnz=1500, threads=1))
    assert 1200 <= result.card["nnz"] <= 1500
    assert result.card["val"]["accuracy"] > 0.5


def test_sparsity_goal_and_l1():
    result = train(TrainConfig(task="mnist1d", arch="mlp", epochs=2, prune="gradual", sparsity=0.9, l1=1e-5, threads=1))
    dense = sum(p.numel() for p in result.model.parameters())
    assert result.card["nnz"] < 0.2 * dense


def test_minutes_budget_stops_early():
    result = train(TrainConfig(task="digits", arch="mlp", epochs=10_000, minutes=0.05, threads=1))
    assert result.card["stopped_by_budget"]
    assert result.card["wall_seconds"] < 30


def test_init_from_checkpoint(tmp_path):
    src = build_model("mlp", (1, 8, 8), 10, hidden=(16,))
    with torch.no_grad():
        src.body[0].weight.fill_(0.0123)
    ckpt = save_checkpoint(src, tmp_path / "p.pt", arch="mlp", arch_kwargs={"hidden": (16,)}, input_shape=(1, 8, 8),
                           num_classes=10)
    result = train(TrainConfig(task="digits", arch="mlp", arch_kwargs={"hidden": (16,)}, epochs=0.01, init=str(ckpt),
                               calibrate=False, threads=1))
    assert result.card["init_info"]["loaded_tensors"] == len(src.state_dict())
    with pytest.raises(OccamError, match="is a 'mlp' model"):
        train(TrainConfig(task="digits", arch="lenet5", epochs=0.01, init=str(ckpt)))


def test_bad_configs_are_clear():
    with pytest.raises(OccamError, match="needs a goal"):
        train(TrainConfig(task="digits", prune="gradual"))
    with pytest.raises(OccamError, match="must be positive"):
        train(TrainConfig(task="digits", epochs=-1))
    with pytest.raises(OccamError, match="below the"):
        train(TrainConfig(task="digits", arch="lenet5", prune="gradual", target_nnz=50, epochs=0.1))


def test_temperature_calibration_lowers_ce():
    model = build_model("mlp", (40,), 10)
    logits = torch.randn(200, 10) * 5
    y = torch.randint(0, 10, (200,))
    before = torch.nn.functional.cross_entropy(logits, y).item()
    t = calibrate_temperature(model, logits, y)
    after = torch.nn.functional.cross_entropy(logits / t, y).item()
    assert t > 1 and after < before


def test_gradual_schedule_and_pruner():
    assert gradual_schedule(0.0, 0.9) == 0.0 and gradual_schedule(1.0, 0.9) == 0.9
    assert 0 < gradual_schedule(0.3, 0.9) < gradual_schedule(0.5, 0.9) < 0.9
    model = build_model("mlp", (40,), 10, hidden=(32,))
    pruner = Pruner(model)
    pruner.prune_to_keep(100)
    assert pruner.kept() == 100
    weights = torch.cat([p.detach().flatten() for _, p in pruner.params])
    assert int((weights != 0).sum()) == 100
    # pruned weights are +0.0, never -0.0 (which would count as a stored number)
    assert int((weights.view(torch.int32) != 0).sum()) == 100


def test_lamp_keeps_every_layer_alive():
    from occam.training.prune import lamp_scores

    w = torch.tensor([3.0, -1.0, 2.0, 0.5])
    scores = lamp_scores(w)
    assert scores[0] == 1.0  # the largest weight of a tensor always scores 1
    assert torch.allclose(scores[3], torch.tensor(0.25 / (0.25 + 1 + 4 + 9), dtype=torch.float64))
    model = build_model("mlp", (40,), 10, hidden=(32,))
    with torch.no_grad():
        model.body[0].weight.mul_(1e-3)  # a layer with tiny weights (as after BatchNorm + weight decay)
    for criterion, alive in (("lamp", True), ("magnitude", False)):
        pruner = Pruner(model if criterion == "lamp" else build_model("mlp", (40,), 10, hidden=(32,)), criterion)
        if criterion == "magnitude":
            with torch.no_grad():
                pruner.params[0][1].mul_(1e-3)
        pruner.prune_to_keep(200)
        assert (int(pruner.masks[pruner.params[0][0]].sum()) > 0) == alive


def test_translate_and_flip():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    moved = translate(x, torch.tensor([1]), torch.tensor([-1]), 1)
    assert moved[0, 0, 3, 1] == 1 and moved.sum() == 1
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(64, 1, 28, 28)
    out = augment(batch, "flip-shift2", g)
    assert out.shape == batch.shape and not torch.equal(out, batch)
    signal = torch.rand(4, 40)
    assert augment(signal, "flip-shift2", g) is signal  # 1-D inputs are not augmented
    assert np.isclose(float(augment(batch, "none", g).sum()), float(batch.sum()))
