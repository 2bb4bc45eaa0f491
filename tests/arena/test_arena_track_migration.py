"""Migration 0003 (per-track settings) on a database made by the release before it (schema 0001+0002, commit
9c48997) that holds an audit challenge, a sparse challenge and submissions: upgrade, score, list, downgrade."""

from __future__ import annotations

import json
import time

from arena_helpers import AUDIT_CID, WorkerThread, _audit_names, audit_spec, predictions, wait_status
from sqlalchemy import inspect, text

from occam.arena.config import ArenaSettings
from occam.arena.db import current_revision, migrate
from occam.arena.service import Arena
from occam.arena.storage import BlobStore
from occam.arena.tracks import ChallengeInfo, get_track

HEAD = "0004"  # the head of the migration chain; this test covers 0003 and that later ones keep its data

OLD = ("audit_zoo_dir", "audit_key_path", "audit_zoo_id", "audit_public_models", "audit_private_models")


def _columns(arena: Arena) -> set[str]:
    return {c["name"] for c in inspect(arena.db.engine).get_columns("challenges")}


def _downgrade(arena: Arena, revision: str) -> None:
    from alembic import command

    from occam.arena.db import alembic_config

    cfg = alembic_config(arena.db)
    with arena.db.engine.connect() as conn:
        conn.execution_options(arena_write=True)
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)


def _old_release_db(arena: Arena, zoo, models) -> dict:
    """Schema 0002 with rows written the way the release before 0003 wrote them (the audit_* columns)."""
    assert migrate(arena.db, "0002") == "0002"
    assert set(OLD) <= _columns(arena) and "track_settings" not in _columns(arena)
    st = get_track("audit").register(audit_spec(zoo))  # the values that release computed (same code path)
    now = time.time()
    common = dict(lam=30.0, split_seed=5, public_fraction=0.5, final_selections=2, limits_json="{}", start_at=now - 60,
                  end_at=now + 3600, revealed=False, changes=0, created_at=now, source_toml="", description="")
    old_store = BlobStore(arena.settings.blobs_dir)  # that release kept uploads in files only
    audit_sub = old_store.put(predictions(zoo))
    sparse_sub = old_store.put(models.good)
    with arena.db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO challenges (id, title, description, track, task, lam, split_seed, public_fraction, daily_quota,"
            " final_selections, limits_json, start_at, end_at, revealed, changes, created_at, source_toml,"
            " audit_zoo_dir, audit_key_path, audit_zoo_id, audit_public_models, audit_private_models) VALUES"
            " (:id, :title, :description, :track, :task, :lam, :split_seed, :public_fraction, :daily_quota,"
            " :final_selections, :limits_json, :start_at, :end_at, :revealed, :changes, :created_at, :source_toml,"
            " :zd, :kp, :zi, :pub, :priv)"),
            dict(common, id=AUDIT_CID, title="Find the trojans", track="audit", task="digits", daily_quota=2,
                 zd=st["zoo_dir"], kp=st["key_path"], zi=st["zoo_id"], pub=json.dumps(st["public_models"]),
                 priv=json.dumps(st["private_models"])))
        conn.execute(text(
            "INSERT INTO challenges (id, title, description, track, task, lam, split_seed, public_fraction, daily_quota,"
            " final_selections, limits_json, start_at, end_at, revealed, changes, created_at, source_toml) VALUES"
            " (:id, :title, :description, :track, :task, :lam, :split_seed, :public_fraction, :daily_quota,"
            " :final_selections, :limits_json, :start_at, :end_at, :revealed, :changes, :created_at, :source_toml)"),
            dict(common, id="digits-old", title="Digits", track="sparse", task="digits", daily_quota=5))
        conn.execute(text("INSERT INTO teams (name, token_sha256, created_at, disqualified) VALUES ('old', :t, :n, :f)"),
                     {"t": "0" * 64, "n": now, "f": False})
        tid = conn.execute(text("SELECT id FROM teams WHERE name = 'old'")).scalar_one()
        for cid, sha, name in ((AUDIT_CID, audit_sub, "p.csv"), ("digits-old", sparse_sub, "m.onnx")):
            conn.execute(text(
                "INSERT INTO submissions (challenge_id, team_id, created_at, filename, sha256, size, guard_json, status,"
                " counts_quota, attempts, metrics_json, times_scored, rejudges, selected, disqualified) VALUES"
                " (:c, :t, :n, :f, :s, 10, '{}', 'queued', :y, 0, '{}', 0, 0, :no, :no)"),
                {"c": cid, "t": tid, "n": now, "f": name, "s": sha, "y": True, "no": False})
    return st


def test_migration_0003_carries_audit_settings_over(make_arena, db_url, zoo, models, tmp_path):
    arena = Arena(ArenaSettings(home=tmp_path / "home", db_url=db_url, lease_seconds=5.0, heartbeat_seconds=0.5,
                                poll_seconds=0.05, sweep_seconds=0.5, workers=0))
    try:
        st = _old_release_db(arena, zoo, models)
        arena.init()  # what `occam arena serve` does on start: upgrade to head
        assert current_revision(arena.db) == HEAD
        cols = _columns(arena)
        assert "track_settings" in cols and not set(OLD) & cols
        with arena.db.engine.connect() as conn:  # nothing lost (a table copy would cascade-delete submissions)
            assert conn.execute(text("SELECT count(*) FROM submissions")).scalar_one() == 2
        c = arena.challenge(AUDIT_CID)
        assert c.settings == st  # every value carried over, the halves as lists
        assert arena.challenge("digits-old").settings == {}
        info = ChallengeInfo.of(c)
        files = get_track("audit").public_files(info)  # the zoo still lists
        assert files and any(f.name == "manifest.json" for f in files)
        assert set(get_track("audit").lens_models(info, files)) >= set(_audit_names(zoo))
        with WorkerThread(arena):  # and the old queued submissions score
            subs = [wait_status(arena, sid) for sid in (1, 2)]
        assert [s.status for s in subs] == ["scored", "scored"], [s.error for s in subs]
        assert subs[0].private_score == 1.0  # predictions() are right about every audit model
        from occam.arena import leaderboard as lb

        with arena.db.read() as s:
            board = lb.compute(s, arena.challenge(AUDIT_CID), is_admin=True)
        assert [e.team for e in board] == ["old"] and board[0].score == 1.0

        _downgrade(arena, "0002")  # and back: the columns return with their values
        assert set(OLD) <= _columns(arena) and "track_settings" not in _columns(arena)
        with arena.db.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {', '.join(OLD)} FROM challenges WHERE id = :c"), {"c": AUDIT_CID}).one()
            other = conn.execute(text("SELECT audit_zoo_dir FROM challenges WHERE id = 'digits-old'")).scalar_one()
        assert row[:3] == (st["zoo_dir"], st["key_path"], st["zoo_id"]) and other is None
        assert (json.loads(row[3]), json.loads(row[4])) == (st["public_models"], st["private_models"])
        assert migrate(arena.db) == HEAD and arena.challenge(AUDIT_CID).settings == st
    finally:
        arena.db.dispose()


