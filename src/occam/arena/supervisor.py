"""Worker processes started by ``occam arena serve``: restarted when they die, stopped on shutdown."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from occam.arena.config import ArenaSettings

log = logging.getLogger("occam.arena.supervisor")


def worker_command(settings: ArenaSettings, *, extra: list[str] | None = None) -> list[str]:
    return [sys.executable, "-m", "occam.arena", "--home", str(settings.home), "--db", settings.url,
            "--lease-seconds", str(settings.lease_seconds), "--heartbeat-seconds", str(settings.heartbeat_seconds),
            "--sweep-seconds", str(settings.sweep_seconds), "--poll-seconds", str(settings.poll_seconds),
            "--max-attempts", str(settings.max_attempts), "--no-migrate", "--exit-with-parent", *(extra or [])]


class WorkerSupervisor:
    """Keeps ``settings.workers`` worker processes alive (each scores models in its own sandboxed children)."""

    def __init__(self, settings: ArenaSettings, *, count: int | None = None, log_path: str | None = None):
        self.settings = settings
        self.count = settings.workers if count is None else count
        self.procs: list[subprocess.Popen | None] = [None] * self.count
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.restarts = 0
        self.log_path = log_path or str(settings.home / "workers.log")
        self._lock = threading.Lock()  # start and stop do not interleave

    def _spawn(self, i: int) -> subprocess.Popen:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        from occam.arena.lifeline import PARENT_ENV

        env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_ENV: str(os.getpid())})
        proc = subprocess.Popen(worker_command(self.settings), stdout=logf, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)
        logf.close()
        log.info("worker %d started (pid %d)", i, proc.pid)
        return proc

    def start(self) -> WorkerSupervisor:
        """Start the workers now (from this thread) and watch them."""
        with self._lock:
            if self._stop.is_set() or self._thread is not None:
                return self
            for i in range(self.count):
                self.procs[i] = self._spawn(i)
            self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
            self._thread.start()
        return self

    def start_when(self, ready: Callable[[], bool], *, give_up: Callable[[], bool] | None = None,
                   poll_seconds: float = 0.05) -> WorkerSupervisor:
        """Start the workers once ``ready()`` is true (e.g. the web server listens); never if ``give_up()``
        becomes true or :meth:`stop` is called first. The workers are started by the long-lived watching
        thread: a worker's parent-death signal fires when the *thread* that started it ends."""

        def wait_then_watch() -> None:
            while not self._stop.is_set():
                if ready():
                    break
                if give_up is not None and give_up():
                    return
                time.sleep(poll_seconds)
            with self._lock:
                if self._stop.is_set():
                    return
                for i in range(self.count):
                    self.procs[i] = self._spawn(i)
            self._watch()

        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=wait_then_watch, name="worker-supervisor", daemon=True)
                self._thread.start()
        return self

    def _watch(self) -> None:
        backoff = [0.0] * self.count
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc is None or proc.poll() is None:
                    continue
                if time.monotonic() < backoff[i]:
                    continue
                log.warning("worker %d (pid %d) exited with %s; restarting", i, proc.pid, proc.returncode)
                self.restarts += 1
                backoff[i] = time.monotonic() + 2.0
                self.procs[i] = self._spawn(i)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()  # its job's lease expires and the sweeper re-queues it
                p.wait()
