"""The `evasive` track in the arena: an organizer adds the challenge from a TOML file (clean references and a starter
next to it), teams upload hand-made trojans, the worker scores them, the leaderboard ranks them (higher evasion
first), a trojan below the attack-success threshold fails with the figure, and no reference is ever shown."""

from __future__ import annotations

import json
import time

from arena_helpers import WorkerThread, wait_status

from occam.arena.challenges import parse_challenge
from occam.audit.evasive_track import EXAMPLE_TRIGGER, plant_patch, write_example_references

DIGITS = (1, 8, 8)


def test_evasive_challenge_end_to_end(make_arena, tmp_path):
    from fastapi.testclient import TestClient

    from occam.arena import leaderboard as lb
    from occam.arena.service import Viewer
    from occam.web.app import create_app
    from occam.web.serialize import challenge_json, submission_json

    root = tmp_path / "challenge"
    write_example_references(root / "references")
    now = time.time()
    toml = (f'id = "evade"\ntitle = "Evade the detectors"\ntrack = "evasive"\ntask = "digits"\nstart = {now - 60:.0f}\n'
            f'end = {now + 3600:.0f}\n[split]\nseed = 5\n[evasive]\nreferences = "references"\nstarter = "starter.onnx"\n'
            'target = 3\ntrigger = {attack = "badnets", size = 2, row = 0, col = 0, seed = 3}\nimages = 360\n'
            'nc_steps = 60\nnc_images = 20\n')
    (root / "evade.toml").write_text(toml)
    spec = parse_challenge(toml, source="evade.toml", base_dir=root)
    arena = make_arena(None)
    c = arena.add_challenge(spec)
    assert c.daily_quota == 3 and c.settings["trigger"] == EXAMPLE_TRIGGER
    public = json.dumps(challenge_json(arena.challenge("evade")))
    assert "ref_0" not in public and "reference_features" not in public and str(root) not in public
    assert json.loads(public)["evasive"]["min_attack_success"] == 0.9

    starter = (root / "starter.onnx").read_bytes()
    strong = plant_patch(starter, EXAMPLE_TRIGGER, 3, DIGITS)
    loud = plant_patch(starter, EXAMPLE_TRIGGER, 3, DIGITS, gain=400.0)
    weak = plant_patch(starter, EXAMPLE_TRIGGER, 3, DIGITS, gain=6.0)
    teams = [arena.add_team(n)[1] for n in ("ann", "bob", "cy")]
    refused = arena.submit(arena.viewer(teams[0]), "evade", b"not a model", "m.onnx")
    assert not refused.accepted and refused.reason
    sids = [arena.submit(arena.viewer(t), "evade", d, "trojan.onnx").submission_id
            for t, d in zip(teams, (strong, loud, weak), strict=True)]
    with WorkerThread(arena):
        subs = [wait_status(arena, sid, timeout=600) for sid in sids]
    assert [s.status for s in subs] == ["scored", "scored", "failed"], [s.error for s in subs]
    assert "attack success is" in subs[2].error and "below the threshold 0.900" in subs[2].error
    c = arena.challenge("evade")
    with arena.db.read() as s:
        board = lb.compute(s, c, is_admin=True)
    assert {e.team for e in board} == {"ann", "bob"}
    scores = [e.score for e in board]
    assert scores == sorted(scores, reverse=True)  # higher evasion ranks first
    by_team = {e.team: e for e in board}
    assert by_team["ann"].score == subs[0].public_score and by_team["bob"].score == subs[1].public_score
    assert by_team["ann"].extra["best_detector"]
    text = lb.leaderboard_csv(board, track=c.track)
    assert text.splitlines()[0].startswith("rank,team,submission_id,evasion,attack_success,clean_accuracy")
    team_view = submission_json(subs[0], arena.viewer(teams[0]), c)
    assert team_view["evasive_public"]["attack_success"] >= 0.9 and "evasive_private" not in team_view
    assert submission_json(subs[0], Viewer("admin"), c)["evasive_private"]["evasion"] == subs[0].private_score

    with TestClient(create_app(arena.settings, arena=arena, init=False)) as client:
        page = client.get("/challenges/evade")
        assert page.status_code == 200 and "Evasion" in page.text and "ref_0" not in page.text
        auth = {"Authorization": f"Bearer {teams[0]}"}
        files = client.get("/api/challenges/evade/files", headers=auth)
        assert files.status_code == 200 and [f["name"] for f in files.json()["files"]] == ["starter.onnx"]
        got = client.get("/api/challenges/evade/files/starter.onnx", headers=auth)
        assert got.status_code == 200 and got.content == starter
        assert client.get("/api/challenges/evade/files/references/ref_00.onnx", headers=auth).status_code == 404
