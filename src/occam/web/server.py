"""Running the app: ``serve`` (blocking, with worker processes) and ``ServerThread`` (tests, demo)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from occam.arena.config import ArenaSettings
from occam.arena.service import Arena

log = logging.getLogger("occam.web")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def close_plugins(app: object) -> None:
    """Run what router plugins registered to release when the server stops (``ctx.closers``: e.g. the Lens's
    child processes)."""
    ctx = getattr(getattr(app, "state", None), "ctx", None)
    for close in list(getattr(ctx, "closers", None) or []):
        try:
            close()
        except Exception:
            log.exception("closing a plugin failed")


class ServerThread:
    """Uvicorn in a background thread (the app migrates at start-up). ``with ServerThread(...) as url:``."""

    def __init__(self, settings: ArenaSettings, *, arena: Arena | None = None, log_level: str = "warning",
                 **app_kwargs):  # noqa: ANN003
        import uvicorn

        from occam.web.app import create_app

        if not settings.port:
            settings.port = free_port(settings.host)
        self.settings = settings
        self.app = create_app(settings, arena=arena, **app_kwargs)
        config = uvicorn.Config(self.app, host=settings.host, port=settings.port, log_level=log_level,
                                timeout_graceful_shutdown=1, lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the arena server did not start")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        close_plugins(self.app)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SETTINGS_ENV = "OCCAM_ARENA_SETTINGS_JSON"


def app_from_env():  # noqa: ANN201 - a uvicorn factory for multi-process serving
    """The app for one of several web processes (settings passed by ``serve`` in an environment variable)."""
    import json

    from occam.web.app import create_app

    raw = json.loads(os.environ[SETTINGS_ENV])
    return create_app(ArenaSettings(**raw), init=False)


def _exit_on_sigterm() -> None:
    """Make SIGTERM end the process through ``SystemExit`` (so ``finally`` blocks run). Uvicorn handles the
    signal while it serves, then restores this handler and raises the signal again after its own shutdown;
    with the default handler that second SIGTERM would kill the process before ``serve`` stops its workers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def serve(settings: ArenaSettings, *, log_level: str = "info", web_workers: int = 1) -> None:
    """Migrate, listen, start the worker processes once the server listens, and serve until Ctrl-C or SIGTERM
    (``web_workers`` > 1: that many uvicorn processes share the port). However it stops, the workers are
    stopped politely (SIGTERM, then a kill after a grace period); they also end by themselves if this process
    is killed (:mod:`occam.arena.lifeline`)."""
    import uvicorn

    from occam.arena.supervisor import WorkerSupervisor
    from occam.web.app import create_app

    _exit_on_sigterm()
    arena = Arena(settings)
    token = arena.init()
    if token:
        print(f"Admin token (shown once; `occam arena admin-token` makes a new one): {token}", flush=True)
    sup = WorkerSupervisor(settings) if settings.workers > 0 else None
    apps: list = []
    try:
        if web_workers > 1:
            import dataclasses
            import json

            if sup is not None:
                sup.start()
            raw = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(settings).items()}
            os.environ[SETTINGS_ENV] = json.dumps(raw)
            uvicorn.run("occam.web.server:app_from_env", factory=True, workers=web_workers, host=settings.host,
                        port=settings.port, log_level=log_level, timeout_graceful_shutdown=2, access_log=False)
        else:
            app = create_app(settings, arena=arena, init=False)
            apps.append(app)
            config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                    timeout_graceful_shutdown=2, access_log=False)
            server = uvicorn.Server(config)
            if sup is not None:  # the workers' start-up (imports) would compete with ours for the CPU
                sup.start_when(lambda: server.started, give_up=lambda: server.should_exit)
            server.run()
    finally:
        for app in apps:
            close_plugins(app)
        if sup is not None:
            sup.stop()
        arena.db.dispose()
