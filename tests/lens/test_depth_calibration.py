"""Calibrated trigger evidence (occam.lens.calibration): clean digits MLPs as the reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.calibration import calibrate, calibrated_verdict, infer_arch, reference_statistics, trigger_statistics

SETTINGS = {"n_models": 5, "epochs": 8, "steps": 100, "images": 20}


@pytest.fixture(scope="module")
def reference():
    return reference_statistics("digits", "mlp", **SETTINGS)


def test_reference_is_computed_once_and_cached(reference):
    assert len(reference["models"]) == 5 and not reference["cached"]
    assert [m["seed"] for m in reference["models"]] == [1000, 1001, 1002, 1003, 1004]
    assert all(m["val_accuracy"] > 0.8 for m in reference["models"])  # real, trained references
    again = reference_statistics("digits", "mlp", **{**SETTINGS, "n_models": 3})
    assert again["cached"] and again["models"] == reference["models"][:3]
    assert json.loads(Path(reference["path"]).read_text())["models"] == reference["models"]


def test_a_clean_model_is_not_flagged(reference):
    from occam.training import TrainConfig, train

    clean = train(TrainConfig(task="digits", arch="mlp", epochs=8, seed=7, threads=1)).onnx_bytes
    lm = open_model(clean, "digits", name="clean")
    assert infer_arch(lm) == "mlp"
    torch.set_num_threads(1)
    v = calibrated_verdict(lm, **{k: SETTINGS[k] for k in ("n_models", "epochs", "steps", "images")})
    assert not v["flagged"] and v["evidence"] == "consistent with clean models"
    assert v["p_value"] > 0.05 and v["p_normal"] > 0.01
    assert v["basis"]["n_models"] == 5 and v["basis"]["arch"] == "mlp" and v["basis"]["task"] == "digits"
    assert "evidence, not proof" in v["wording"] and "of 5 clean mlp models trained on digits" in v["wording"]
    assert v["basis"]["values"] == [m["anomaly_index"] for m in reference["models"]]


def test_a_backdoored_model_lies_beyond_every_reference(reference, trojan_digits):
    lm = open_model(trojan_digits, "digits", name="trojan")
    v = calibrated_verdict(lm, arch="mlp", statistic="min_l1_ratio",
                           **{k: SETTINGS[k] for k in ("n_models", "epochs", "steps", "images")})
    assert v["smallest_class"] == 3  # the planted target
    assert v["value"] < min(m["min_l1_ratio"] for m in reference["models"])
    assert v["p_value"] == pytest.approx(1 / 6) and v["p_normal"] < 0.01
    assert "smallest reportable probability is 0.17" in v["wording"]


def test_calibrate_flags_only_what_the_references_make_unusual():
    ref = {"arch": "mlp", "task": "digits", "models": [{"anomaly_index": 1.0 + 0.05 * i, "min_l1_ratio": 0.9}
                                                       for i in range(30)]}
    far = calibrate({"anomaly_index": 4.0, "min_l1_ratio": 0.5}, ref)
    assert far["flagged"] and far["p_value"] == pytest.approx(1 / 31) and far["evidence"] == "unusual for a clean model"
    inside = calibrate({"anomaly_index": 1.7, "min_l1_ratio": 0.9}, ref)
    assert not inside["flagged"] and inside["p_value"] == pytest.approx(17 / 31)  # 16 references at or above 1.7
    low = calibrate({"anomaly_index": 0.0, "min_l1_ratio": 0.5}, ref, statistic="min_l1_ratio")
    assert low["p_value"] == pytest.approx(1 / 31)
    with pytest.raises(OccamError, match="unknown statistic"):
        calibrate(far, ref, statistic="median")
    with pytest.raises(OccamError, match="not a trigger result"):
        trigger_statistics({"x": 1})


def test_bad_requests_are_refused(lenet_digits):
    with pytest.raises(OccamError, match="image inputs"):
        reference_statistics("mnist1d", "mlp", n_models=1)
    with pytest.raises(OccamError, match="unknown architecture"):
        reference_statistics("digits", "resnet", n_models=1)
    with pytest.raises(OccamError, match="n_models"):
        reference_statistics("digits", "mlp", n_models=0)
    lm = open_model(lenet_digits, "digits")
    assert infer_arch(lm) == "lenet5"
    with pytest.raises(OccamError, match="same search settings"):
        calibrated_verdict(lm, {"steps": 10, "images": 5, "classes": []}, steps=20)
