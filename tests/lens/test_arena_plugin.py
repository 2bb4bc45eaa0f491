"""The arena includes the Lens router: /lens/submissions/{id} for a team's own submission only."""

from __future__ import annotations

import time

import pytest


def test_inspect_link_serves_the_lens(tmp_path, lenet_digits):
    pytest.importorskip("sqlalchemy")
    from fastapi.testclient import TestClient

    from occam.arena.challenges import ChallengeSpec
    from occam.arena.config import ArenaSettings
    from occam.arena.service import Arena
    from occam.web.app import create_app

    arena = Arena(ArenaSettings(home=tmp_path / "home", workers=0))
    admin = arena.init()
    now = time.time()
    arena.add_challenge(ChallengeSpec(id="d", title="d", task="digits", lam=30.0, start_at=now - 60, end_at=now + 3600,
                                      split_seed=3, public_fraction=0.5, daily_quota=5, final_selections=2))
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    sub = arena.submit(arena.viewer(tok_a), "d", lenet_digits, "m.onnx")
    assert sub.accepted, sub.reason
    sid = sub.submission_id
    app = create_app(arena.settings, arena=arena, init=False)
    c = TestClient(app)
    h = {"Authorization": f"Bearer {tok_a}"}
    r = c.get(f"/lens/api/s{sid}/overview", headers=h)  # queued: the Lens opens only scored submissions
    assert r.status_code == 409 and r.json()["code"] == "not_scored" and "queued" in r.json()["error"], r.text
    from occam.arena.worker import Worker

    Worker(arena).run(max_jobs=1, exit_when_idle=True)
    r = c.get(f"/lens/submissions/{sid}", headers=h, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/lens/m/s{sid}"
    assert c.get(f"/lens/m/s{sid}", headers=h).status_code == 200
    ov = c.get(f"/lens/api/s{sid}/overview", headers=h).json()
    assert ov["metrics"]["nnz"] > 0
    assert c.get(f"/lens/api/s{sid}/overview", headers={"Authorization": f"Bearer {tok_b}"}).status_code == 404
    assert c.get(f"/lens/api/s{sid}/overview").status_code == 401
    assert c.get(f"/lens/api/s{sid}/overview", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
