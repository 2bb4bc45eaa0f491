"""The Track protocol: every registered track passes the shared battery (check_track); a package adds a track by
registering it or through the ``occam.tracks`` entry-point group, without touching the arena."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from arena_helpers import WorkerThread, wait_status

from occam.arena.challenges import parse_challenge
from occam.arena.service import Viewer
from occam.arena.tracks import ENTRY_POINT_GROUP, get_track, register_track, track_names, unregister_track
from occam.arena.tracks.checks import TrackCheckFailed, check_track
from occam.errors import OccamError

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _echo_module():
    spec = importlib.util.spec_from_file_location("echo_track", EXAMPLES / "echo_track.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", ["sparse", "audit", "recover", "grok-speed", "evasive"])
def test_builtin_tracks_pass_the_battery(name, tmp_path, request):
    assert name in track_names()
    if name == "audit":  # reuse the session's tiny zoo instead of building one
        shutil.copytree(request.getfixturevalue("zoo"), tmp_path / "zoo", ignore=shutil.ignore_patterns("*.pt"))
    seen = check_track(get_track(name), tmp_path)
    assert seen["result"]["public_score"] is not None


def test_every_registered_track_is_checked():
    """The parametrization above covers every track this distribution declares (a new built-in one must join)."""
    from occam.arena.tracks import BUILTIN

    assert {s.split("=")[0].strip() for s in BUILTIN} == {"sparse", "audit", "recover", "grok-speed", "evasive"}


def test_echo_example_registers_and_passes(tmp_path):
    echo = register_track(_echo_module().EchoTrack)
    try:
        seen = check_track(echo, tmp_path)
        assert seen["result"]["public_score"] == 1.0 and seen["result"]["private_score"] == 0.6
    finally:
        unregister_track("echo")


def test_the_battery_catches_a_leaky_track(tmp_path):
    mod = _echo_module()

    class Leaky(mod.EchoTrack):
        name = "leaky"

        def public_challenge(self, info):
            return {"echo": dict(info.settings)}  # shows the secret

    with pytest.raises(TrackCheckFailed, match="private setting 'secret'"):
        check_track(Leaky(), tmp_path, score=False)

    class Throws(mod.EchoTrack):
        name = "throws"

        def check(self, data, info):
            return super().check(data.decode("ascii").encode(), info)  # raises on non-ASCII bytes

    with pytest.raises(TrackCheckFailed, match="check raised UnicodeDecodeError"):
        check_track(Throws(), tmp_path, score=False)

    class Lax(mod.EchoTrack):
        name = "lax"

        def parse_settings(self, table, **kw):
            return dict(table or {})

    with pytest.raises(TrackCheckFailed, match="were accepted"):
        check_track(Lax(), tmp_path, score=False)


def test_a_package_adds_a_track_through_the_entry_point_group(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "echo_pkg.py").write_text("from echo_track import EchoTrack\n\n\nclass EchoPkg(EchoTrack):\n"
                                      "    name = 'echo-pkg'\n")
    dist = site / "echo_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\necho-pkg = echo_pkg:EchoPkg\n")
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    try:
        assert "echo-pkg" in track_names()
        track = get_track("echo-pkg")
        assert type(track).__name__ == "EchoPkg" and track.higher_is_better
        spec = parse_challenge('id = "w"\ntitle = "Word"\ntrack = "echo-pkg"\ntask = "digits"\n'
                               'start = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z\n[echo]\nsecret = "abc"\n')
        assert spec.settings == {"secret": "abc", "hint": ""} and spec.daily_quota == 3
    finally:
        unregister_track("echo-pkg")
        sys.modules.pop("echo_pkg", None)


def test_unknown_track_and_foreign_table_are_refused():
    base = 'id = "w"\ntitle = "W"\ntask = "digits"\nstart = 2026-01-01T00:00:00Z\nend = 2026-01-02T00:00:00Z\n'
    with pytest.raises(OccamError, match="unknown track 'nope'") as info:
        parse_challenge(base + 'track = "nope"\n')
    assert "sparse" in info.value.fix
    with pytest.raises(OccamError, match=r"unknown key \[sparse\] 'x'") as info:
        parse_challenge(base + "[sparse]\nx = 1\n")
    assert "dataset" in info.value.fix  # the known keys of the track's table


def test_a_registered_track_runs_in_the_arena(make_arena, tmp_path):
    """Register the example track (no arena code changes): add a challenge, submit, score, rank, export, and
    the secret never shows."""
    from occam.arena import leaderboard as lb
    from occam.web.serialize import challenge_json, submission_json

    register_track(_echo_module().EchoTrack)
    try:
        arena = make_arena(None)
        now = time.time()
        spec = parse_challenge(f'id = "word"\ntitle = "Word"\ntrack = "echo"\ntask = "digits"\nstart = {now - 60:.0f}\n'
                               f'end = {now + 3600:.0f}\n[echo]\nsecret = "occamrazor"\nhint = "a principle"\n')
        c = arena.add_challenge(spec)
        assert c.daily_quota == 3 and c.settings["secret"] == "occamrazor"
        public = json.dumps(challenge_json(arena.challenge("word")))
        assert "occamrazor" not in public and "a principle" in public
        teams = [arena.add_team(n)[1] for n in ("ann", "bob")]
        bad = arena.submit(arena.viewer(teams[0]), "word", b"two words", "w.txt")
        assert not bad.accepted and "one word" in bad.reason
        sids = [arena.submit(arena.viewer(t), "word", w, "w.txt").submission_id
                for t, w in zip(teams, (b"occamxxxxx", b"occamrazor"), strict=True)]
        with WorkerThread(arena):
            subs = [wait_status(arena, sid) for sid in sids]
        assert [s.status for s in subs] == ["scored", "scored"]
        c = arena.challenge("word")
        with arena.db.read() as s:
            board = lb.compute(s, c, is_admin=True)
            private = lb.compute(s, c, board="private", is_admin=True)
        assert [e.team for e in board] == ["ann", "bob"]  # tie on the public half: the earlier upload first
        assert [e.team for e in private] == ["bob", "ann"] and private[0].score == 1.0  # higher is better
        text = lb.leaderboard_csv(private, track=c.track)
        assert text.splitlines()[0].startswith("rank,team") and "bob" in text.splitlines()[1]
        team_view = submission_json(subs[0], arena.viewer(teams[0]), c)
        assert team_view["echo_public"] == {"letters_right": 1.0} and "echo_private" not in team_view
        assert submission_json(subs[1], Viewer("admin"), c)["echo_private"] == {"letters_right": 1.0}
        from fastapi.testclient import TestClient

        from occam.web.app import create_app

        with TestClient(create_app(arena.settings, arena=arena, plugins=False, init=False)) as client:
            page = client.get("/challenges/word")  # the track's own fragment (track:echo/facts.html)
            assert page.status_code == 200 and "10 letters; hint: a principle" in page.text
            assert "occamrazor" not in page.text and 'accept=".txt"' not in page.text  # anonymous: no upload form
            assert client.get("/api/admin/status").status_code == 401  # the admin router's dependency
    finally:
        unregister_track("echo")


def test_a_track_whose_check_raises_costs_no_quota(make_arena):
    from occam.arena.service import Refused

    class Buggy(_echo_module().EchoTrack):
        name = "buggy"

        def check(self, data, info):
            raise RuntimeError("bug")

    register_track(Buggy)
    try:
        arena = make_arena(None)
        now = time.time()
        arena.add_challenge(parse_challenge(f'id = "b"\ntitle = "B"\ntrack = "buggy"\ntask = "digits"\n'
                                            f'start = {now - 60:.0f}\nend = {now + 3600:.0f}\n[echo]\nsecret = "abc"\n'))
        v = arena.viewer(arena.add_team("ann")[1])
        with pytest.raises(Refused, match="could not check") as info:
            arena.submit(v, "b", b"abc", "w.txt")
        assert info.value.status == 500
        assert arena.submissions(v, "b") == [] and arena.quota(v.team_id, arena.challenge("b"))["used"] == 0
    finally:
        unregister_track("buggy")
