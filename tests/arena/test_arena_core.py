"""The arena's non-web logic on real SQLite and real PostgreSQL: queue, leases, quotas, leaderboards."""

from __future__ import annotations

import threading
import time

import pytest
from arena_helpers import WorkerThread, digits_spec, wait_status

from occam.arena import leaderboard as lb
from occam.arena import queue
from occam.arena.challenges import parse_challenge, public_mask
from occam.arena.db import current_revision
from occam.arena.service import Refused, Viewer
from occam.errors import OccamError

ADMIN = Viewer("admin")


def test_migrations_at_head(arena):
    from alembic.script import ScriptDirectory

    from occam.arena.db import alembic_config, migrate

    head = ScriptDirectory.from_config(alembic_config(arena.db)).get_current_head()
    assert head is not None and current_revision(arena.db) == head
    assert migrate(arena.db) == head  # idempotent


def test_challenge_toml_and_split():
    text = """
id = "fm"
title = "Fashion"
task = "fashion-mnist"
lam = 10
start = 2026-01-01T00:00:00Z
end = 2026-01-03T00:00:00Z
freeze = 2026-01-02T20:00:00
[split]
seed = 9
public_fraction = 0.3
[submissions]
daily_quota = 3
final_selections = 1
[limits]
wall_seconds = 30
"""
    spec = parse_challenge(text)
    assert (spec.id, spec.track, spec.lam, spec.daily_quota, spec.final_selections) == ("fm", "sparse", 10.0, 3, 1)
    assert spec.end_at - spec.start_at == 2 * 86400 and spec.freeze_at is not None
    for bad, needle in [(text.replace('task = "fashion-mnist"', 'task = "nope"'), "unknown task"),
                        (text.replace("lam = 10", "lam = -1"), "lam"),
                        (text.replace('id = "fm"', 'id = "a b"'), "slug"),
                        (text.replace("2026-01-03", "2025-01-03"), "ends before"),
                        ("id = 1\n[[", "TOML")]:
        with pytest.raises(OccamError, match=needle):
            parse_challenge(bad)
    m1, m2 = public_mask(1000, 9, 0.3), public_mask(1000, 9, 0.3)
    assert (m1 == m2).all() and m1.sum() == 300
    assert not (public_mask(1000, 10, 0.3) == m1).all()


def test_submit_score_and_leaderboard(arena, models):
    team, tok = arena.add_team("alpha")
    v = arena.viewer(tok)
    assert v.is_team and v.team_name == "alpha"
    assert arena.viewer("occ_team_nope").kind == "anon"
    res = arena.submit(v, "digits-test", models.good, "good.onnx")
    assert res.accepted and res.status == "queued" and res.quota_left == 4
    with WorkerThread(arena):
        sub = wait_status(arena, res.submission_id)
    assert sub.status == "scored", sub.error
    assert sub.times_scored == 1 and sub.scorer_version and 0.8 < sub.public_accuracy <= 1.0
    assert sub.private_score is not None and sub.nnz and sub.nnz > 600
    c = arena.challenge("digits-test")
    with arena.db.read() as s:
        board = lb.compute(s, c)
        assert [(e.rank, e.team) for e in board] == [(1, "alpha")]
        assert lb.compute(s, c, board="private") == []  # not revealed
        assert len(lb.compute(s, c, board="private", is_admin=True)) == 1
        par = lb.pareto(s, c)
        assert len(par["points"]) == 1 and len(par["frontier"]) == 1 and len(par["iso"]) == 1


def test_rejected_upload_uses_no_quota_and_quota_limit(arena, models):
    _, tok = arena.add_team("beta")
    v = arena.viewer(tok)
    arena.add_challenge(digits_spec("tiny-quota", daily_quota=2))
    bad = arena.submit(v, "tiny-quota", b"not an onnx file")
    assert not bad.accepted and bad.status == "rejected" and "ONNX" in bad.reason and bad.fix
    c = arena.challenge("tiny-quota")
    assert arena.quota(v.team_id, c)["used"] == 0
    assert arena.submit(v, "tiny-quota", models.good).accepted
    assert arena.submit(v, "tiny-quota", models.sparse).accepted
    with pytest.raises(Refused) as exc:
        arena.submit(v, "tiny-quota", models.good)
    assert exc.value.status == 429 and "00:00 UTC" in (exc.value.fix or "")
    q = arena.quota(v.team_id, c)
    assert (q["used"], q["left"]) == (2, 0) and q["resets_at"] > time.time()


def test_closed_and_forbidden(arena, models):
    _, tok = arena.add_team("gamma")
    v = arena.viewer(tok)
    now = time.time()
    arena.add_challenge(digits_spec("later", start_at=now + 3600, end_at=now + 7200))
    arena.add_challenge(digits_spec("over", start_at=now - 7200, end_at=now - 3600))
    for cid in ("later", "over"):
        with pytest.raises(Refused) as exc:
            arena.submit(v, cid, models.good)
        assert exc.value.status == 403
    with pytest.raises(Refused):
        arena.submit(ADMIN, "digits-test", models.good)
    with pytest.raises(Refused) as exc:
        arena.submit(v, "no-such", models.good)
    assert exc.value.status == 404


def test_lease_guards_results_and_sweeper(arena, models):
    """A stale worker's result is dropped; expired leases are re-queued; max attempts fail as platform fault."""
    _, tok = arena.add_team("delta")
    v = arena.viewer(tok)
    sid = arena.submit(v, "digits-test", models.good).submission_id
    job1 = queue.claim(arena.db, "w1", lease_seconds=0.05)
    assert job1 is not None and job1.submission_id == sid and job1.attempt == 1
    assert queue.claim(arena.db, "w2", lease_seconds=5) is None  # nothing else queued
    time.sleep(0.1)
    assert queue.sweep(arena.db, max_attempts=3) == (1, 0)
    assert not queue.heartbeat(arena.db, job1, 5)  # w1 lost its lease
    job2 = queue.claim(arena.db, "w2", lease_seconds=5)
    assert job2 is not None and job2.submission_id == sid and job2.lease_token != job1.lease_token
    result = {"public_score": 1.0, "public_ce": 0.5, "public_accuracy": 0.9, "private_score": 1.1,
              "private_ce": 0.6, "private_accuracy": 0.88, "scorer_version": "test", "nnz": 10}
    assert not queue.complete(arena.db, job1, result)  # the stale worker cannot write
    assert queue.complete(arena.db, job2, result)
    assert not queue.complete(arena.db, job2, result)  # nor can anyone twice
    sub = arena.submission(ADMIN, sid)
    assert (sub.status, sub.times_scored, sub.attempts) == ("scored", 1, 2)
    # a job whose worker keeps dying fails as the platform's fault and returns the quota
    sid2 = arena.submit(v, "digits-test", models.sparse).submission_id
    c = arena.challenge("digits-test")
    used = arena.quota(v.team_id, c)["used"]
    for _ in range(2):
        assert queue.claim(arena.db, "dying", lease_seconds=0.01).submission_id == sid2
        time.sleep(0.03)
        queue.sweep(arena.db, max_attempts=2)
    sub2 = arena.submission(ADMIN, sid2)
    assert sub2.status == "failed" and sub2.error_kind == "platform" and not sub2.counts_quota
    assert arena.quota(v.team_id, c)["used"] == used - 1


def test_concurrent_claims_never_share_a_job(arena, models):
    _, tok = arena.add_team("eps")
    v = arena.viewer(tok)
    arena.add_challenge(digits_spec("many", daily_quota=100))
    ids = {arena.submit(v, "many", models.good).submission_id for _ in range(30)}
    got: list[int] = []
    lock = threading.Lock()

    def grab(name: str) -> None:
        while True:
            job = queue.claim(arena.db, name, 30)
            if job is None:
                return
            with lock:
                got.append(job.submission_id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)


def test_failures_finals_freeze_reveal_dq(arena, models):
    _, tok_a = arena.add_team("team-a")
    _, tok_b = arena.add_team("team-b")
    a, b = arena.viewer(tok_a), arena.viewer(tok_b)
    good = arena.submit(a, "digits-test", models.good).submission_id
    sparse = arena.submit(a, "digits-test", models.sparse).submission_id
    nan = arena.submit(b, "digits-test", models.nan).submission_id
    wrong = arena.submit(b, "digits-test", models.wrong_shape)
    assert not wrong.accepted and "output" in wrong.reason
    with WorkerThread(arena):
        for sid in (good, sparse, nan):
            wait_status(arena, sid)
    s_nan = arena.submission(b, nan)
    assert s_nan.status == "failed" and s_nan.error_kind == "model" and "NaN" in s_nan.error and s_nan.counts_quota
    with pytest.raises(Refused):
        arena.submission(b, good)  # another team's: not visible
    # finals: team A picks its sparse model; the private board uses it
    arena.select_final(a, sparse, True)
    with pytest.raises(Refused):
        arena.select_final(b, sparse, True)
    c = arena.challenge("digits-test")
    sub_sparse = arena.submission(ADMIN, sparse)
    with arena.db.read() as s:
        priv = lb.compute(s, c, board="private", is_admin=True)
    assert priv[0].submission_id == sparse and priv[0].score == pytest.approx(sub_sparse.private_score)
    # freeze: later uploads stay off the public board for everyone but the admin
    arena.set_freeze("digits-test", True)
    time.sleep(0.01)
    late = arena.submit(b, "digits-test", models.good).submission_id
    with WorkerThread(arena):
        wait_status(arena, late)
    c = arena.challenge("digits-test")
    with arena.db.read() as s:
        assert [e.team for e in lb.compute(s, c)] == ["team-a"]
        assert {e.team for e in lb.compute(s, c, is_admin=True)} == {"team-a", "team-b"}
    arena.set_revealed("digits-test", True)
    arena.disqualify_team(a.team_id, "cheating")
    c = arena.challenge("digits-test")
    with arena.db.read() as s:
        assert [e.team for e in lb.compute(s, c, board="private")] == ["team-b"]
    # rejudge keeps results visible and records the scorer again
    assert arena.rejudge(None, challenge_id="digits-test") == 4
    with WorkerThread(arena):
        for sid in (good, sparse, late):
            sub = wait_status(arena, sid, ("scored",))
            assert sub.times_scored == 2 and sub.rejudges == 1
    with arena.db.read() as s:
        csv_text = lb.submissions_csv(s, arena.challenge("digits-test"))
    assert csv_text.count("\n") == 6 and "rejected" in csv_text


def test_scorer_crash_is_retried_then_platform_fault(arena, models):
    from occam.arena.tracks import TRACKS, register_track
    from occam.arena.tracks.sparse import SparseTrack

    class Crashy(SparseTrack):
        name = "crashy"

        def score(self, data, info, options):
            raise RuntimeError("scorer bug")

    register_track(Crashy)
    try:
        arena.add_challenge(digits_spec("crashy-c", track="crashy"))
        _, tok = arena.add_team("zeta")
        v = arena.viewer(tok)
        sid = arena.submit(v, "crashy-c", models.good).submission_id
        with WorkerThread(arena):
            sub = wait_status(arena, sid, ("failed",))
        assert sub.error_kind == "platform" and not sub.counts_quota and sub.attempts == arena.settings.max_attempts
        assert "scorer crashed" in sub.error
        assert arena.quota(v.team_id, arena.challenge("crashy-c"))["used"] == 0
    finally:
        TRACKS.pop("crashy", None)
