"""Organizer essentials on real databases: the admin log, edit/hide/archive, invites, notes, history, identical
files, the rejected-upload limit, a guarded reveal, private datasets in the database, blobs in the database."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from arena_helpers import WorkerThread, digits_spec, wait_status

from occam.arena.config import ArenaSettings
from occam.arena.service import Arena, Refused, Viewer
from occam.errors import OccamError

ADMIN = Viewer("admin")


def _team(arena: Arena, name: str) -> Viewer:
    team, _ = arena.add_team(name)
    return Viewer("team", team.id, team.name)


def test_team_names_are_unique_after_folding_and_refuse_invisible_characters(arena: Arena) -> None:
    arena.add_team("Blue Herons")
    before = len(arena.teams())
    for clash in ("blue herons", "BLUE  HERONS", "Ｂｌｕｅ Herons"):
        with pytest.raises(Refused, match="too like the existing team"):
            arena.add_team(clash)
    for bad in ("Blue\u202eHerons", "Blue\u200bHerons", "a\x00b"):
        with pytest.raises(Refused, match="invisible or control"):
            arena.add_team(bad)
    assert len(arena.teams()) == before  # nothing stored


def test_edit_hide_archive_and_the_admin_log(arena: Arena) -> None:
    arena.edit_challenge("digits-test", {"title": "New title", "daily_quota": 9}, actor="admin@test")
    c = arena.challenge("digits-test")
    assert (c.title, c.daily_quota) == ("New title", 9)
    for bad, match in [({"lam": 3}, "cannot edit lam"), ({"daily_quota": "ten"}, "daily_quota must be a whole number"),
                       ({"daily_quota": True}, "whole number"), ({"end_at": 0.0}, "end_at must be after start_at"),
                       ({"title": ""}, "1 to 200")]:
        with pytest.raises(Refused, match=match):
            arena.edit_challenge("digits-test", bad)
    assert arena.challenge("digits-test").title == "New title"  # refused edits change nothing
    arena.set_visibility("digits-test", hidden=True, archived=True, actor="admin@test")
    c = arena.challenge("digits-test")
    assert c.hidden and c.archived
    log = arena.admin_log()
    assert [e["action"] for e in log][:2] == ["visibility", "edit challenge"]
    assert log[1]["actor"] == "admin@test" and '"daily_quota": 9' in log[1]["detail"]


def test_reveal_needs_confirmation_and_the_end_unless_forced(arena: Arena) -> None:
    with pytest.raises(Refused, match="type the challenge id"):
        arena.reveal("digits-test", confirm=None)
    with pytest.raises(Refused, match="has not ended yet"):
        arena.reveal("digits-test", confirm="digits-test")
    assert not arena.challenge("digits-test").revealed
    arena.reveal("digits-test", confirm="digits-test", force=True)
    assert arena.challenge("digits-test").revealed
    assert arena.admin_log()[0]["action"] == "reveal" and '"forced": true' in arena.admin_log()[0]["detail"]


def test_invite_code_self_registration(arena: Arena) -> None:
    with pytest.raises(Refused, match="invite code is not valid"):
        arena.register_team("digits-test", "inv_guess", "Intruders")
    code = arena.set_invite("digits-test", True)
    team, token = arena.register_team("digits-test", code, "Newcomers")
    assert arena.viewer(token).team_id == team.id
    arena.set_invite("digits-test", False)
    with pytest.raises(Refused, match="not valid"):
        arena.register_team("digits-test", code, "Latecomers")
    assert [t.name for t in arena.teams()] == ["Newcomers"]


def test_notes_history_identical_files_and_rejected_limit(make_arena, models) -> None:
    arena = make_arena(max_rejected_per_hour=2)
    arena.add_challenge(digits_spec(daily_quota=10))
    a, b = _team(arena, "A"), _team(arena, "B")
    data = models.good
    ra = arena.submit(a, "digits-test", data)
    rb = arena.submit(b, "digits-test", data)
    with WorkerThread(arena):
        wait_status(arena, ra.submission_id)
        wait_status(arena, rb.submission_id)
    arena.set_note(a, ra.submission_id, "pruned to 40 %\x07 with LAMP")
    assert arena.submission(a, ra.submission_id).note == "pruned to 40 % with LAMP"
    with pytest.raises(Refused):
        arena.set_note(b, ra.submission_id, "not ours")
    with pytest.raises(Refused, match="under 500"):
        arena.set_note(a, ra.submission_id, "x" * 501)
    flags = arena.identical_uploads("digits-test")
    assert len(flags) == 1 and sorted(t["team"] for t in flags[0]["teams"]) == ["A", "B"]
    hist = arena.history("digits-test")
    assert sorted(t["team"] for t in hist["teams"]) == ["A", "B"] and all(t["points"] for t in hist["teams"])
    for _ in range(2):
        assert not arena.submit(a, "digits-test", b"not onnx").accepted
    with pytest.raises(Refused, match="refused in the last hour") as e:
        arena.submit(a, "digits-test", b"not onnx")
    assert e.value.status == 429
    assert arena.submit(b, "digits-test", b"not onnx").accepted is False  # other teams are not limited


def test_private_dataset_lives_in_the_database_only(arena: Arena, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8), rng.integers(0, 10, 40)
    np.savez(tmp_path / "secret.npz", x=x, y=y)
    man = arena.add_dataset("secret", tmp_path / "secret.npz", num_classes=10)
    assert man.count == 40 and [m.name for m in arena.datasets()] == ["secret"]
    with pytest.raises(Refused, match="exists already"):
        arena.add_dataset("secret", tmp_path / "secret.npz")
    with pytest.raises(OccamError, match="outside 0..2"):
        arena.add_dataset("other", tmp_path / "secret.npz", num_classes=3)
    assert [m.name for m in arena.datasets()] == ["secret"]  # the refused one left nothing behind
    gx, gy = arena.dataset_arrays("secret")
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)


@pytest.mark.postgres
def test_a_worker_sharing_only_the_database_scores(pg_cluster, models, tmp_path: Path) -> None:
    """Uploads live in the database: a worker whose home folder is empty and separate from the server's scores."""
    url = pg_cluster.create_database()
    server = Arena(ArenaSettings(home=tmp_path / "server", db_url=url))
    server.init()
    server.add_challenge(digits_spec())
    team = _team(server, "Remote")
    r = server.submit(team, "digits-test", models.good)
    remote = Arena(ArenaSettings(home=tmp_path / "elsewhere", db_url=url))
    assert not any((tmp_path / "elsewhere").rglob("*.onnx"))
    with WorkerThread(remote):
        sub = wait_status(remote, r.submission_id)
    assert sub.status == "scored", sub.error
    assert any((tmp_path / "elsewhere" / "blobs").rglob("*.onnx"))  # fetched, checked and cached there
    time.sleep(0)
