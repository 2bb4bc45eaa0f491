"""Arena test fixtures: tiny ONNX models, SQLite and private-PostgreSQL arenas, live servers, workers."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from arena_models import export_linear, slow_model, variant  # noqa: E402

from occam.arena.challenges import ChallengeSpec  # noqa: E402
from occam.arena.config import ArenaSettings  # noqa: E402
from occam.arena.service import Arena  # noqa: E402


@dataclass
class Models:
    good: bytes
    sparse: bytes  # same graph, ~70% of the weights zeroed: fewer nnz, worse CE
    nan: bytes  # NaN biases: NaN logits at run time
    wrong_shape: bytes  # 7 logits instead of 10
    slow: bytes  # seconds of arithmetic on the digits test set
    good_path: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    d = tmp_path_factory.mktemp("models")
    good_path = export_linear(d / "digits_linear.onnx")
    wrong = export_linear(d / "digits_7.onnx", classes=7, task=None)
    good = good_path.read_bytes()
    return Models(good=good, sparse=variant(good, zero_fraction=0.7, seed=1), nan=variant(good, nan_bias=True),
                  wrong_shape=wrong.read_bytes(), slow=slow_model(layers=96), good_path=good_path)


@pytest.fixture(scope="session")
def pg_cluster():
    from occam.arena.pgcluster import PrivateCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    cluster = PrivateCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str | None:
    """None (SQLite in the arena home) or a fresh database in the private PostgreSQL cluster."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_cluster").create_database()


def digits_spec(cid: str = "digits-test", **kw) -> ChallengeSpec:
    now = time.time()
    base = dict(id=cid, title="Digits test challenge", task="digits", lam=30.0, start_at=now - 60,
                end_at=now + 3600, split_seed=3, public_fraction=0.5, daily_quota=5, final_selections=2,
                limits={"wall_seconds": 60.0})
    base.update(kw)
    return ChallengeSpec(**base)


@pytest.fixture
def make_arena(tmp_path):
    made: list[Arena] = []

    def make(db_url: str | None = None, **settings_kw) -> Arena:
        kw = dict(home=tmp_path / f"home{len(made)}", db_url=db_url, lease_seconds=5.0, heartbeat_seconds=0.5,
                  poll_seconds=0.05, sweep_seconds=0.5, workers=0)
        kw.update(settings_kw)
        arena = Arena(ArenaSettings(**kw))
        arena.admin_token = arena.init()  # type: ignore[attr-defined]
        made.append(arena)
        return arena

    yield make
    for a in made:
        a.db.dispose()


@pytest.fixture
def arena(make_arena, db_url) -> Arena:
    a = make_arena(db_url)
    a.add_challenge(digits_spec())
    return a


class WorkerThread:
    """An in-process worker (models still run in sandboxed children)."""

    def __init__(self, arena: Arena):
        from occam.arena.worker import Worker

        self.worker = Worker(arena)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=30)


def wait_status(arena: Arena, sid: int, statuses=("scored", "failed"), timeout: float = 60.0):
    from occam.arena.service import Viewer

    admin = Viewer("admin")
    deadline = time.monotonic() + timeout
    while True:
        sub = arena.submission(admin, sid)
        if sub.status in statuses:
            return sub
        if time.monotonic() > deadline:
            raise AssertionError(f"submission {sid} still {sub.status} after {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def live(make_arena) -> Iterator:
    """A factory: live(arena) starts uvicorn on a free loopback port plus an in-process worker."""
    from occam.web.server import ServerThread

    stack: list = []

    def start(arena: Arena, *, worker: bool = True) -> str:
        arena.settings.port = 0
        server = ServerThread(arena.settings, arena=arena, init=False, plugins=False)
        url = server.start()
        stack.append(server)
        if worker:
            w = WorkerThread(arena).__enter__()
            stack.append(w)
        return url

    yield start
    for item in reversed(stack):
        if isinstance(item, WorkerThread):
            item.__exit__(None, None, None)
        else:
            item.stop()
