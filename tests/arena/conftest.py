"""Arena test fixtures: tiny ONNX models, SQLite and private-PostgreSQL arenas, live servers, workers, and a tiny
audit zoo (built once per session; tests must not change it, or must undo their changes)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from arena_helpers import ZOO_CFG, WorkerThread, _key, digits_spec, wait_status  # noqa: E402,F401
from arena_models import export_linear, slow_model, variant  # noqa: E402

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


@contextlib.contextmanager
def _servers(plugins: bool) -> Iterator:
    """A factory start(arena, worker=True) -> ServerThread; everything it started is stopped on exit."""
    from occam.web.server import ServerThread

    stack: list = []

    def start(arena: Arena, *, worker: bool = True) -> ServerThread:
        arena.settings.port = 0
        server = ServerThread(arena.settings, arena=arena, init=False, plugins=plugins)
        server.start()
        stack.append(server)
        if worker:
            stack.append(WorkerThread(arena).__enter__())
        return server

    try:
        yield start
    finally:
        for item in reversed(stack):
            if isinstance(item, WorkerThread):
                item.__exit__(None, None, None)
            else:
                item.stop()


@pytest.fixture
def live(make_arena) -> Iterator:
    """A factory: live(arena) starts uvicorn on a free loopback port plus an in-process worker; returns the URL."""
    with _servers(plugins=False) as start:
        yield lambda arena, *, worker=True: start(arena, worker=worker).url


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> Path:
    """A tiny audit zoo (arena_helpers.ZOO_CFG), shared by the audit tests."""
    from occam.audit.zoo import ZooConfig, make_zoo

    out = tmp_path_factory.mktemp("audit-zoo") / "zoo"
    make_zoo(ZooConfig(**ZOO_CFG), out, workers=1, allow_leaks=True, progress=False, leak_check_enabled=False)
    key = _key(out)["models"]
    flags = [v["trojaned"] for v in key.values() if v["split"] == "audit"]
    assert sum(flags) >= 2 and flags.count(False) >= 2, f"the tiny zoo's audit part is too small: {flags}"
    return out


@pytest.fixture
def serve():
    """serve(arena, worker=True) starts uvicorn with every router plugin (audit downloads, the Lens)."""
    with _servers(plugins=True) as start:
        yield start
