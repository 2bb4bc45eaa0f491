"""Feature-visualization objectives, diversity and transforms (occam.lens.featvis_objectives) on a LeNet-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens import open_model
from occam.lens.featvis_objectives import (
    _transform,
    channel,
    class_logit,
    negative,
    objective_values,
    unit,
    visualize_objective,
)


@pytest.fixture(scope="module")
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


@pytest.fixture(scope="module")
def noise():
    return torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("obj", [channel("relu_1", 3), unit("relu_1", 3), unit("relu_2", 5), class_logit(2)],
                         ids=["channel", "unit", "dense-unit", "class"])
def test_optimized_image_beats_random_noise(lm, noise, obj):
    r = visualize_objective(lm, obj, steps=48)
    assert r["images"].shape == (1, 1, 8, 8) and 0 <= r["images"].min() and r["images"].max() <= 1
    assert r["values"][0] > float(objective_values(lm, obj, noise).max())
    assert r["values"][0] == pytest.approx(float(objective_values(lm, obj, torch.from_numpy(r["images"]))[0]), abs=1e-5)


def test_negative_objective_turns_the_unit_down(lm, noise):
    obj = channel("relu_1", 3)
    r = visualize_objective(lm, negative(obj), steps=48)
    assert r["objective"] == "-1·channel relu_1[3]"
    assert float(objective_values(lm, obj, torch.from_numpy(r["images"]))[0]) < float(objective_values(lm, obj, noise).min())


def test_diversity_gives_different_images(lm):
    plain = visualize_objective(lm, channel("relu_1", 3), n=3, steps=48, seed=1)
    diverse = visualize_objective(lm, channel("relu_1", 3), n=3, steps=48, diversity=5.0, seed=1)
    assert diverse["similarity"] < plain["similarity"]
    imgs = diverse["images"].reshape(3, -1)
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(imgs[i] - imgs[j]).mean() > 0.02
    again = visualize_objective(lm, channel("relu_1", 3), n=3, steps=48, diversity=5.0, seed=1)
    assert np.array_equal(again["images"], diverse["images"])  # deterministic under the seed


def test_transforms_keep_the_shape_and_move_pixels():
    x = torch.rand(2, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    for ts in [("pad",), ("jitter",), ("scale",), ("rotate",), ("pad", "jitter", "scale", "rotate")]:
        y = _transform(x, ts, g, pad=2, jitter=1, scale=(0.8, 1.2), degrees=20.0)
        assert y.shape == x.shape
    y = _transform(x, ("rotate",), g, pad=0, jitter=0, scale=(1, 1), degrees=30.0)
    assert not torch.allclose(x, y)


def test_objective_errors(lm):
    with pytest.raises(OccamError, match="out of range"):
        visualize_objective(lm, channel("relu_1", 99))
    with pytest.raises(OccamError, match="no layer"):
        visualize_objective(lm, channel("nope", 0))
    with pytest.raises(OccamError, match="position"):
        visualize_objective(lm, unit("relu_1", 0, position=(9, 9)))
    with pytest.raises(OccamError, match="transform"):
        visualize_objective(lm, class_logit(0), transforms=("flip",))
    with pytest.raises(OccamError, match="class"):
        visualize_objective(lm, class_logit(10))
