"""Activation patching and user data (occam.lens.patching, occam.lens.custom_data) on a real LeNet-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.custom_data import array_task, as_inputs, dataset_arrays, open_model_on_arrays, task_from
from occam.lens.patching import logit_diff_setup, patch_layer, patch_logits, patching_map


@pytest.fixture(scope="module")
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


@pytest.fixture(scope="module")
def pair(lm):
    """Two val images the model classifies correctly, of different classes."""
    pred = lm.logits().argmax(1)
    ok = torch.nonzero(pred == lm.y).flatten().tolist()
    a = ok[0]
    b = next(i for i in ok if int(lm.y[i]) != int(lm.y[a]))
    return a, b


def test_patching_whole_layer_with_clean_restores_clean_logits_exactly(lm):
    zc = lm.logits(lm.x[:1])[0]
    for layer in ("conv2d", "max_pool2d_1", "relu_2"):
        z = patch_logits(lm, 0, 1, layer)
        assert torch.equal(z, zc), layer


def test_patching_map_shapes_and_endpoints(lm, pair):
    m = patching_map(lm, *pair)
    assert m["clean_class"] != m["corrupted_class"]
    assert m["ld_clean"] > m["ld_corrupted"]
    rows = {r["layer"]: r for r in m["layers"]}
    assert rows["conv2d"]["restored"].shape == (8, 8)  # spatial positions of a conv map
    assert rows["max_pool2d"]["restored"].shape == (4, 4)
    assert rows["linear"]["restored"].shape == (120,)  # units of a dense layer
    for r in m["layers"]:
        assert r["whole_layer"] == pytest.approx(1.0, abs=1e-5)
        assert np.isfinite(r["restored"]).all()
    # patching one position of the first conv restores less than the whole layer
    assert rows["conv2d"]["restored"].max() < 0.9


def test_patching_positions_sum_to_whole_for_the_logit_layer_input(lm):
    # the last hidden layer feeds a linear head: per-unit patches add up to the whole-layer patch
    setup = logit_diff_setup(lm, 3, 7)
    r = patch_layer(lm, setup, "relu_3")
    assert r["restored"].sum() == pytest.approx(r["whole_layer"], abs=1e-4)


def test_patching_units_of_a_conv_layer_and_masks(lm):
    setup = logit_diff_setup(lm, 0, 1)
    r = patch_layer(lm, setup, "conv2d_1", granularity="unit")
    assert r["restored"].shape == (16,) and r["granularity"] == "unit"
    where = np.zeros((16, 4, 4), dtype=bool)
    where[2] = True
    z = patch_logits(lm, 0, 1, "conv2d_1", where=where)
    a, b = setup["clean_class"], setup["corrupted_class"]
    frac = (float(z[a] - z[b]) - setup["ld_corrupted"]) / (setup["ld_clean"] - setup["ld_corrupted"])
    assert frac == pytest.approx(r["restored"][2], abs=1e-4)


def test_patching_accepts_arrays_and_rejects_bad_input(lm):
    noisy = np.clip(lm.x[0].numpy() + 0.5 * np.random.default_rng(0).standard_normal(lm.x[0].shape), 0, 1)
    m = patching_map(lm, 0, noisy.astype(np.float32), layers=["relu_2"], clean_class=int(lm.y[0]),
                     corrupted_class=(int(lm.y[0]) + 1) % 10)
    assert m["layers"][0]["whole_layer"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(OccamError, match="out of range"):
        patching_map(lm, 0, 10_000)
    with pytest.raises(OccamError, match="no layer"):
        patching_map(lm, 0, 1, layers=["nope"])
    with pytest.raises(OccamError, match="both"):
        patching_map(lm, 0, 1, clean_class=2, corrupted_class=2)
    with pytest.raises(OccamError, match="granularity"):
        patch_layer(lm, logit_diff_setup(lm, 0, 1), "relu_2", granularity="pixel")
    with pytest.raises(OccamError, match="shape"):
        as_inputs(lm, np.zeros((3, 3), dtype=np.float32))


def test_array_task_opens_a_model_on_unregistered_data(lenet_digits):
    from occam.tasks import get_task

    t = get_task("digits")
    x, y = t.load("train")
    xv, yv = t.floats("val")[:50], t.labels("val")[:50]
    task = array_task(x, y, xv, yv, name="my-digits", class_names=[f"d{i}" for i in range(10)])
    assert task.input_shape == (1, 8, 8) and task.num_classes == 10 and task.val_size == 50
    lm2 = open_model(lenet_digits, task)
    assert len(lm2.x) == 50 and lm2.task.class_names[3] == "d3"
    ref = open_model(lenet_digits, "digits")
    assert torch.allclose(lm2.logits(), ref.logits(ref.x[:50]), atol=1e-6)
    ds = list(zip(torch.from_numpy(xv), torch.from_numpy(yv), strict=True))
    lm3 = open_model_on_arrays(lenet_digits, x, y, ds, None, name="ds")
    assert torch.equal(lm3.y, lm2.y)
    xs, ys = dataset_arrays(ds, limit=5)
    assert xs.shape == (5, 1, 8, 8) and list(ys) == list(yv[:5])
    t4 = task_from((x, y, xv, yv), name="four")
    assert t4.val_size == 50 and task_from(t4) is t4
    t2 = task_from((list(zip(torch.from_numpy(x[:100]), torch.from_numpy(y[:100]), strict=True)), ds))
    assert t2.input_shape == (1, 8, 8) and np.array_equal(t2.labels("val"), yv)
    assert task_from({"x_train": x, "y_train": y, "x_val": xv, "y_val": yv}).num_classes == 10
    with pytest.raises(OccamError, match="cannot build a task"):
        task_from(42)
    with pytest.raises(OccamError, match="labels must have shape"):
        array_task(x, y[:-1], xv, yv)
    with pytest.raises(OccamError, match="outside"):
        array_task(x, y, xv, yv, num_classes=5)


def test_open_model_accepts_arrays_directly(lenet_digits):
    """The open_model hook: arrays (or datasets, or a dict) instead of a task name."""
    from occam.tasks import get_task

    t = get_task("digits")
    x, y = t.load("train")
    xv, yv = t.floats("val")[:40], t.labels("val")[:40]
    lm = open_model(lenet_digits, (x, y, xv, yv))
    assert len(lm.x) == 40 and torch.equal(lm.y, torch.from_numpy(yv.astype(np.int64)))
    with pytest.raises(OccamError, match="cannot build a task"):
        open_model(lenet_digits, 42)
