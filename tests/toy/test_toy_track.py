"""The "Recover the algorithm" track: its score against a hand-computed case, bad submissions, the shared track
battery, and a whole contest in a real arena (SQLite, the web API, a worker)."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from occam.arena.tracks import BUILTIN, get_track
from occam.arena.tracks.checks import check_track
from occam.errors import OccamError
from occam.toy import fourier
from occam.toy.grok import GrokConfig, train_grok
from occam.toy.track import pair_halves, parse_frequencies, recovery_score


class FourierAlgorithm(nn.Module):
    """logits(a, b)[c] = scale · Σ_k cos(2πk(a + b − c)/p) over the key frequencies: the grokked algorithm by hand."""

    def __init__(self, p: int, keys: list[int], scale: float = 4.0):
        super().__init__()
        self.p, self.keys, self.scale = p, keys, scale

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        s = (a + b).unsqueeze(1) - torch.arange(self.p)
        return self.scale * sum(torch.cos(2 * math.pi * k * s / self.p) for k in self.keys)


def _hand_loss(p: int, keys: list[int], scale: float) -> float:
    """Cross-entropy of logits scale·Σ cos(2πk d/p), d = (a + b − c) mod p: the same for every pair (d = 0 is right)."""
    d = np.arange(p)
    z = scale * sum(np.cos(2 * np.pi * k * d / p) for k in keys) if keys else np.zeros(p)
    return float(-z[0] + np.log(np.exp(z).sum()))


def test_score_matches_a_hand_computed_case():
    p, keys, scale = 11, [2, 5], 4.0
    model = FourierAlgorithm(p, keys, scale)
    everything = torch.ones(p * p, dtype=torch.bool)
    full, only2, none = _hand_loss(p, keys, scale), _hand_loss(p, [2], scale), math.log(p)
    r = recovery_score(model, p, [2], everything, penalty=0.01)
    assert r["full_loss"] == pytest.approx(full, rel=1e-5, abs=1e-6) and r["loss_no_frequency"] == pytest.approx(none)
    assert r["restricted_loss"] == pytest.approx(only2, rel=1e-5, abs=1e-6)
    expected = (none - only2) / (none - full)
    assert 0.2 < expected < 0.9  # one of two frequencies recovers part of the loss
    assert r["fraction_recovered"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert r["score"] == pytest.approx(expected - 0.01, rel=1e-5, abs=1e-6)
    both = recovery_score(model, p, [5, 2], everything, penalty=0.01)
    assert both["fraction_recovered"] == pytest.approx(1.0, rel=1e-5, abs=1e-6) and both["score"] == pytest.approx(0.98)
    wrong = recovery_score(model, p, [1, 3], everything, penalty=0.0)
    assert wrong["fraction_recovered"] == pytest.approx(0.0, rel=1e-5, abs=1e-6)  # frequencies the model does not use
    extra = recovery_score(model, p, [2, 5, 1], everything, penalty=0.01)
    assert extra["score"] == pytest.approx(both["score"] - 0.01)  # a useless frequency only costs its penalty


def test_pair_halves_are_a_seeded_partition():
    h = pair_halves(17, split_seed=5, public_fraction=0.5)
    assert int(h["public"].sum()) == round(0.5 * 289) and not (h["public"] & h["private"]).any()
    assert torch.equal(pair_halves(17, 5, 0.5)["public"], h["public"])
    assert not torch.equal(pair_halves(17, 6, 0.5)["public"], h["public"])


@pytest.mark.parametrize("data", [b'{"frequencies": [3, 1]}', b"[3, 1]", b"3,1\n", b"frequency\n3\n1\n", b" 3 1 "])
def test_submission_formats(data):
    assert parse_frequencies(data, 17) == [3, 1]


@pytest.mark.parametrize("data,words", [
    (b"", "empty"), (b"[]", "no frequency"), (b"[0]", "outside 1 … 8"), (b"1,9", "frequency 9 is outside"),
    (b"[2, 2]", "listed twice: 2"), (b'{"freqs": [1]}', "'frequencies'"), (b"one,two", "'one' is not a frequency"),
    (b"[1.5]", "1.5"), (b"[true]", "True"), (b"\xff\xfe", "UTF-8"), (b"{" * 5000, "JSON"),
    (b"[" + b"1," * 40000 + b"1]", "bytes"),
])
def test_bad_submissions_are_named(data, words):
    with pytest.raises(OccamError) as exc:
        parse_frequencies(data, 17)
    assert words in exc.value.problem and exc.value.fix


def test_the_track_passes_the_battery(tmp_path):
    assert "recover = occam.toy.track:RecoverTrack" in BUILTIN
    torch.set_num_threads(1)
    seen = check_track(get_track("recover"), tmp_path)
    st = seen["stored"]
    assert st["p"] == 17 and st["test_acc"] >= 0.99 and 1 <= len(st["key_freqs"]) <= 8
    res = seen["result"]
    assert res["public_score"] > 0.9 and res["metrics"]["public"]["frequencies"] == sorted(st["key_freqs"])
    for bad in ({"seed": 1, "steps": 5}, {"seed": 1, "p": 3}, {"run": 3}):
        with pytest.raises(OccamError) as exc:
            get_track("recover").parse_settings(bad)
        assert list(bad)[-1] in exc.value.problem


# ---- a contest in a real arena ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grok_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("recover") / "grok17"
    train_grok(GrokConfig(p=17, kind="embed_mlp", model={"hidden": 64, "d_embed": 8}, frac_train=0.8, lr=1e-2,
                          steps=1000, seed=0, n_log_checkpoints=8, checkpoint_every=250), out)
    return out


def _wait(arena, sid, timeout=120.0):
    from occam.arena.service import Viewer

    deadline = time.monotonic() + timeout
    while True:
        sub = arena.submission(Viewer("admin"), sid)
        if sub.status in ("scored", "failed"):
            return sub
        assert time.monotonic() < deadline, f"submission {sid} still {sub.status}"
        time.sleep(0.05)


def test_a_recover_contest_end_to_end(grok_run, tmp_path):
    from fastapi.testclient import TestClient

    from occam.arena import leaderboard as lb
    from occam.arena.challenges import parse_challenge
    from occam.arena.config import ArenaSettings
    from occam.arena.service import Arena
    from occam.arena.worker import Worker
    from occam.toy.models import build_model
    from occam.web.app import create_app

    arena = Arena(ArenaSettings(home=tmp_path / "home", lease_seconds=5.0, heartbeat_seconds=0.5, poll_seconds=0.05,
                                sweep_seconds=0.5, workers=0))
    arena.init()
    now = time.time()
    c = arena.add_challenge(parse_challenge(
        f'id = "rec"\ntitle = "Recover"\ntrack = "recover"\nstart = {now - 60:.0f}\nend = {now + 3600:.0f}\n'
        f'[recover]\nrun = "{grok_run}"\npenalty = 0.02\n'))
    assert c.daily_quota == 5 and c.settings["p"] == 17
    secret = c.settings["key_freqs"]
    _, tok = arena.add_team("ann")
    h = {"Authorization": f"Bearer {tok}"}
    try:
        with TestClient(create_app(arena.settings, arena=arena, init=False)) as client:
            pub = client.get("/api/challenges/rec").json()
            assert pub["recover"]["p"] == 17 and str(grok_run) not in json.dumps(pub)
            page = client.get("/challenges/rec", headers=h).text
            assert "a + b mod 17" in page and "checkpoint.pt" in page
            assert client.get("/api/challenges/rec/files/checkpoint.pt").status_code == 401  # teams only
            index = client.get("/api/challenges/rec/files", headers=h).json()
            assert sorted(f["name"] for f in index["files"]) == ["checkpoint.pt", "model.json"]
            card = client.get("/api/challenges/rec/files/model.json", headers=h).json()
            ckpt = tmp_path / "checkpoint.pt"
            ckpt.write_bytes(client.get("/api/challenges/rec/files/checkpoint.pt", headers=h).content)
            # the team's analysis: the downloaded model's logit spectrum gives its key frequencies
            model = build_model(card["kind"], **card["model"])
            model.load_state_dict(torch.load(ckpt, weights_only=True))
            found = fourier.key_frequencies(fourier.logit_spectrum(model, card["p"]) ** 0.5)
            assert sorted(found) == sorted(secret)
            bad = client.post("/api/challenges/rec/submissions", headers=h,
                              files={"file": ("f.json", b'{"frequencies": [1, 1]}')})
            assert bad.status_code == 422 and "listed twice" in bad.text
            bad = client.post("/api/challenges/rec/submissions", headers=h, files={"file": ("f.json", b"[40]")})
            assert bad.status_code == 422 and "outside 1 … 8" in bad.text
            assert arena.quota(arena.viewer(tok).team_id, arena.challenge("rec"))["used"] == 0  # refusals are free
            sids = []
            for freqs in (found[:1], found):
                r = client.post("/api/challenges/rec/submissions", headers=h,
                                files={"file": ("f.json", json.dumps({"frequencies": freqs}).encode())})
                assert r.status_code == 202, r.text
                sids.append(r.json()["id"])
            worker = Worker(arena)
            th = threading.Thread(target=worker.run, daemon=True)
            th.start()
            try:
                subs = [_wait(arena, sid) for sid in sids]
            finally:
                worker.stop.set()
                th.join(timeout=30)
            assert [s.status for s in subs] == ["scored", "scored"], [s.error for s in subs]
            mine = client.get(f"/api/submissions/{sids[1]}", headers=h).json()
            assert mine["recover_public"]["fraction_recovered"] > 0.95 and "recover_private" not in mine
            assert mine["public_score"] == pytest.approx(mine["recover_public"]["fraction_recovered"] - 0.02 * len(found))
            sub_page = client.get(f"/submissions/{sids[1]}", headers=h)
            assert sub_page.status_code == 200 and "Restricted loss (public)" in sub_page.text
            board_page = client.get("/challenges/rec/leaderboard", headers=h)
            assert board_page.status_code == 200 and "Loss recovered" in board_page.text and "ann" in board_page.text
            with arena.db.read() as s:
                board = lb.compute(s, arena.challenge("rec"), is_admin=True)
            assert board[0].submission_id == sids[1]  # every key frequency beats one of them
            if len(found) > 1:
                assert subs[0].public_score < subs[1].public_score
    finally:
        arena.db.dispose()
