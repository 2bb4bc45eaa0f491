"""Engines, sessions and migrations.

SQLite (the default) runs in WAL mode so that readers never wait for the writer; every
transaction that writes starts with ``BEGIN IMMEDIATE`` so that two writers queue on the
busy timeout instead of failing half-way. PostgreSQL is used through ``postgresql+psycopg://``
URLs; there the queue claims rows with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session

from occam.errors import OccamError

_HOME_ENV = "OCCAM_ARENA_HOME"
_DB_ENV = "OCCAM_ARENA_DB"


def default_home() -> Path:
    """``$OCCAM_ARENA_HOME`` or ``./arena-data``."""
    return Path(os.environ.get(_HOME_ENV) or "arena-data").expanduser()


def resolve_url(home: Path, url: str | None = None) -> str:
    """The database URL: ``url``, else ``$OCCAM_ARENA_DB``, else SQLite at ``HOME/arena.sqlite3``."""
    url = url or os.environ.get(_DB_ENV)
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(home / 'arena.sqlite3').resolve()}"


class Database:
    """One engine plus the two kinds of transaction the arena uses: ``read()`` and ``write()``."""

    def __init__(self, url: str, *, pool_size: int = 10):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        if not (self.is_sqlite or self.is_postgres):
            raise OccamError(f"unsupported database URL {url!r}",
                             "use sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST:PORT/DB")
        self.pool_size = pool_size
        self.engine: Engine = _make_engine(url, pool_size)
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    def prefill(self, n: int | None = None) -> None:
        """Open the pool's connections now (a PostgreSQL connection costs a server process fork)."""
        conns = []
        try:
            for _ in range(n or self.pool_size):
                conns.append(self.engine.connect())
        finally:
            for c in conns:
                c.close()

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session (a snapshot in WAL mode; never blocks writers)."""
        with self.engine.connect() as conn, Session(bind=conn, expire_on_commit=False) as session:
            try:
                yield session
            finally:
                session.expunge_all()  # keep loaded objects usable after the snapshot ends

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction may write; commits on success, rolls back on error.

        On SQLite it starts with ``BEGIN IMMEDIATE`` (it takes the write lock first, so it never
        fails half-way with "database is locked" when upgrading a read to a write).
        """
        # SQLite: threads of this process queue on a lock (FIFO, no sleeping) rather than in SQLite's
        # busy handler, whose back-off sleeps add tens of milliseconds under contention.
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(arena_write=True)
            with Session(bind=conn, expire_on_commit=False) as session:
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise

    def now(self, session: Session) -> float:
        """The current time as the database server sees it (one clock for workers on many machines)."""
        if self.is_postgres:
            return float(session.execute(text("SELECT extract(epoch from clock_timestamp())")).scalar_one())
        return time.time()


def _make_engine(url: str, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=40, pool_timeout=60)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:  # noqa: ANN001
            immediate = conn.get_execution_options().get("arena_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=40, pool_pre_ping=True, pool_timeout=60)


def migrations_dir() -> Path:
    return Path(__file__).with_name("migrations")


def alembic_config(db: Database):  # noqa: ANN201 - alembic imported lazily
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def migrate(db: Database, revision: str = "head") -> str:
    """Bring the schema to ``revision`` (``alembic upgrade``). Safe to run from many processes at once."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        conn.execution_options(arena_write=True)
        with conn.begin():
            if db.is_postgres:  # serialize concurrent migrators (serve + remote workers)
                conn.execute(text("SELECT pg_advisory_xact_lock(4242424242)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            current = MigrationContext.configure(conn).get_current_revision()
    return current or "base"


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
