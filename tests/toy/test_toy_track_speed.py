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


def test_a_grok_speed_contest_in_the_arena(tmp_path: Path):
    import threading
    import time

    from fastapi.testclient import TestClient

    from occam.arena.challenges import parse_challenge
    from occam.arena.config import ArenaSettings
    from occam.arena.service import Arena, Viewer
    from occam.arena.worker import Worker
    from occam.web.app import create_app

    torch.set_num_threads(1)
    arena = Arena(ArenaSettings(home=tmp_path / "home", lease_seconds=5.0, heartbeat_seconds=0.5, poll_seconds=0.05,
                                sweep_seconds=0.5, workers=0))
    arena.init()
    now = time.time()
    arena.add_challenge(parse_challenge(
        f'id = "fast"\ntitle = "Grok fast"\ntrack = "grok-speed"\nstart = {now - 60:.0f}\nend = {now + 3600:.0f}\n'
        '[grok-speed]\nseed = 11\np = 17\nfrac_train = 0.8\nmax_steps = 200\neval_every = 50\nmax_width = 64\n'
        'public_seeds = 1\nprivate_seeds = 1\n'))
    _, tok = arena.add_team("ann")
    h = {"Authorization": f"Bearer {tok}"}
    try:
        with TestClient(create_app(arena.settings, arena=arena, init=False)) as client:
            page = client.get("/challenges/fast", headers=h).text
            assert "a + b mod 17" in page and "lower is better" in page
            bad = client.post("/api/challenges/fast/submissions", headers=h,
                              files={"file": ("c.json", json.dumps(GOOD | {"width": 512}).encode())})
            assert bad.status_code == 422 and "width must lie between 4 and 64" in bad.text
            r = client.post("/api/challenges/fast/submissions", headers=h,
                            files={"file": ("c.json", json.dumps(GOOD).encode())})
            assert r.status_code == 202, r.text
            sid = r.json()["id"]
            worker = Worker(arena)
            th = threading.Thread(target=worker.run, daemon=True)
            th.start()
            try:
                deadline = time.monotonic() + 120
                while arena.submission(Viewer("admin"), sid).status not in ("scored", "failed"):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            finally:
                worker.stop.set()
                th.join(timeout=30)
            sub = client.get(f"/api/submissions/{sid}", headers=h).json()
            assert sub["status"] == "scored" and sub["grok_speed_public"]["n_seeds"] == 1
            assert sub["public_score"] in (0, 50, 100, 150, 200, 250)  # a checked step, or 200 + 50 if never reached
            assert "Median steps to 99 %" in client.get(f"/submissions/{sid}", headers=h).text
            assert "Seeds reached" in client.get("/challenges/fast/leaderboard", headers=h).text
    finally:
        arena.db.dispose()
