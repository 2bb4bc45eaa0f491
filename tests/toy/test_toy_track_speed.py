"""The "Grok fast" track (the optional second format): configurations are data checked against a schema and a
budget; the worker's score is the median step to 99 % test accuracy over hidden seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from occam.arena.tracks import get_track
from occam.arena.tracks.checks import check_track
from occam.errors import OccamError
from occam.toy.speed_track import parse_config, steps_to_grok

GOOD = {"optimizer": "adamw", "lr": 0.01, "weight_decay": 1.0, "betas": [0.9, 0.98], "batch": 0, "width": 64}
SETTINGS = {"p": 17, "kind": "embed_mlp", "frac_train": 0.8, "max_steps": 1200, "eval_every": 25}


@pytest.mark.parametrize("change,words", [
    ({"width": 65}, "width must lie between 4 and 64"), ({"optimizer": "lion"}, "optimizer must be one of"),
    ({"code": "import os"}, "unknown keys ['code']"), ({"lr": "fast"}, "lr must be a number"),
    ({"betas": [0.9]}, "betas must be a list of two"), ({"batch": 2.5}, "batch must be an integer"),
    ({"weight_decay": -1}, "weight_decay must lie between"),
])
def test_bad_configurations_are_named(change, words):
    with pytest.raises(OccamError) as exc:
        parse_config(json.dumps(GOOD | change).encode(), max_width=64, n_train=231)
    assert words in exc.value.problem and exc.value.fix
    with pytest.raises(OccamError, match="not a JSON object"):
        parse_config(b"[1, 2]", 64, 231)
    assert parse_config(json.dumps(GOOD).encode(), 64, 231)["width"] == 64


def test_steps_to_grok_is_seeded_and_capped():
    torch.set_num_threads(1)
    fast = steps_to_grok(GOOD, SETTINGS, seed=3)
    assert fast["reached"] and 0 < fast["steps"] <= 1200 and fast["steps"] % 25 == 0 and fast["test_acc"] >= 0.99
    assert steps_to_grok(GOOD, SETTINGS, seed=3) == fast  # the same seed, the same run
    frozen = steps_to_grok(GOOD | {"lr": 1e-6}, SETTINGS | {"max_steps": 50}, seed=3)
    assert not frozen["reached"] and frozen["steps"] == 75  # never reached: max_steps + eval_every


def test_the_track_passes_the_battery(tmp_path: Path):
    torch.set_num_threads(1)
    track = get_track("grok-speed")
    assert not track.higher_is_better
    seen = check_track(track, tmp_path)
    res = seen["result"]
    assert res["public_score"] == res["metrics"]["public"]["median_steps"] and res["nnz"] == 64
    assert '"seed"' not in json.dumps(track.public_challenge(seen["info"]))  # the secret stays private
