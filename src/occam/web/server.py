"""Running the app: ``serve`` (blocking, with worker processes) and ``ServerThread`` (tests, demo)."""

from __future__ import annotations

import logging
import socket
import threading
import time

from occam.arena.config import ArenaSettings
from occam.arena.service import Arena

log = logging.getLogger("occam.web")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(settings: ArenaSettings, *, log_level: str = "info") -> None:
    """Migrate, start the worker processes, and serve until Ctrl-C."""
    import uvicorn

    from occam.arena.supervisor import WorkerSupervisor
    from occam.web.app import create_app

    arena = Arena(settings)
    token = arena.init()
    if token:
        print(f"Admin token (shown once; `occam arena admin-token` makes a new one): {token}", flush=True)
    sup = WorkerSupervisor(settings).start() if settings.workers > 0 else None
    try:
        app = create_app(settings, arena=arena, init=False)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=2,
                    access_log=False)
    finally:
        if sup is not None:
            sup.stop()
        arena.db.dispose()
