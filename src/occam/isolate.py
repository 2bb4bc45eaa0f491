"""Untrusted work in a limited, long-lived child process: an object that lives in the child, called by name.

The Lens opens uploaded models, which may be hostile (a ``Tile`` with a huge factor passes the guard and eats
the server's memory). :class:`IsolatedObject` builds the object in a child process that has dropped its network,
runs with few threads and an address-space limit (``RLIMIT_AS``), and answers method calls over a pipe. Each call
has a CPU-time budget (the child's soft ``RLIMIT_CPU`` is raised to "used so far + budget" before the call) and a
wall-clock budget (the parent kills the child when it is exceeded). A call that fails for lack of memory or time
raises :class:`~occam.errors.OccamError` with the reason; the child is then restarted on the next call, so one bad
request costs one restart, and the parent's memory stays flat whatever the child does.

Arguments and results cross the pipe by pickle, so they must be plain data (numbers, strings, arrays, dicts) and
the factory must be importable by name: a module-level function, or its name as ``"package.module:function"``
(then the parent never imports that module: the web server forwards Lens calls without importing PyTorch).
The child ends when its parent does (it watches its parent's process id), even if the parent is killed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from occam.errors import OccamError

__all__ = ["IsolationLimits", "IsolatedObject"]


@dataclass(frozen=True)
class IsolationLimits:
    """``memory_mb``: growth of the child's address space allowed beyond what it has after start-up (interpreter,
    PyTorch); ``cpu_seconds`` / ``wall_seconds``: per call; ``threads``: PyTorch/BLAS threads in the child."""

    memory_mb: int = 1024
    cpu_seconds: float = 60.0
    wall_seconds: float = 60.0
    threads: int = 1
    start_seconds: float = 120.0  # building the object (imports, opening the model)


def _resolve(factory: Callable[..., Any] | str) -> Callable[..., Any]:
    if not isinstance(factory, str):
        return factory
    import importlib

    mod, _, attr = factory.partition(":")
    return getattr(importlib.import_module(mod), attr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(parent: int) -> None:
    """End this child when the process that created it is gone, even after a ``kill -9``: the child is
    re-parented (its parent id changes), or, when a fork server started it, the creator no longer exists."""
    first = os.getppid()

    def watch() -> None:
        while os.getppid() == first and (first == parent or _alive(parent)):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="isolate-parent-watch", daemon=True).start()


def _child_main(conn: Any, factory: Callable[..., Any] | str, args: tuple, kwargs: dict, limits: IsolationLimits,
                parent: int | None = None) -> None:
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _watch_parent(parent)
    os.environ["OMP_NUM_THREADS"] = str(limits.threads)
    from occam.limits import apply_limits, drop_network

    drop_network()
    try:
        obj = _resolve(factory)(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", *_describe(exc)))
        return
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(limits.threads)
    apply_limits(limits.memory_mb, None)  # after the imports: the budget is for the work
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        method, a, kw = msg
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        soft = int(spent + limits.cpu_seconds) + 1
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        except (ValueError, OSError):
            pass
        try:
            result = getattr(obj, method)(*a, **kw)
            conn.send(("ok", result))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            try:
                conn.send(("error", *_describe(exc)))
            except Exception:
                return
            if isinstance(exc, MemoryError):
                return  # the heap may be in a bad state: start afresh next time


def _describe(exc: BaseException) -> tuple[str, str, str]:
    if isinstance(exc, OccamError):
        return "occam", exc.problem, exc.fix
    if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "DefaultCPUAllocator" in str(exc):
        return "memory", "the computation needed more memory than this process may use", ""
    return "error", f"{type(exc).__name__}: {exc}", ""


class IsolatedObject:
    """``factory(*args, **kwargs)`` built and kept in a limited child process; ``call(name, ...)`` runs its methods.

    ``factory``: a module-level function or its name, ``"package.module:function"``.

    Thread-safe: calls are serialized. ``close()`` ends the child (also at garbage collection).
    """

    def __init__(self, factory: Callable[..., Any] | str, *args: Any, limits: IsolationLimits | None = None,
                 start_method: str = "spawn", **kwargs: Any):
        self.factory, self.args, self.kwargs = factory, args, kwargs
        self.limits = limits or IsolationLimits()
        self._ctx = mp.get_context(start_method)
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = -1
        self.closed = False

    # ---- the child's life -----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child_main, name="occam-isolated", daemon=True,
                                 args=(child, self.factory, self.args, self.kwargs, self.limits, os.getpid()))
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.restarts += 1
        msg = self._receive(self.limits.start_seconds, what="opening")
        if msg[0] != "ready":
            self._stop()
            raise _error(msg, self.limits)

    def _receive(self, timeout: float, *, what: str) -> tuple:
        if not self._conn.poll(timeout):
            self._stop()
            raise OccamError(f"{what} took longer than {timeout:g} s and was stopped",
                             "ask for less (fewer images, steps or units)")
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            reason = self._death()
            self._stop()
            raise OccamError(reason, f"ask for less; this process may use {self.limits.memory_mb} MiB "
                             f"and {self.limits.cpu_seconds:g} CPU-seconds per request") from None

    def _death(self) -> str:
        self._proc.join(2)
        code = self._proc.exitcode
        if code is not None and code < 0:
            sig = -code
            if sig == getattr(signal, "SIGXCPU", -1):
                return f"the computation used more than its {self.limits.cpu_seconds:g} CPU-seconds"
            if sig == signal.SIGKILL:
                return "the computation was killed (most likely out of memory)"
            return f"the computation crashed (signal {sig})"
        return "the computation ended without an answer (most likely out of memory)"

    def _stop(self) -> None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except OSError:
                pass
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)

    # ---- calls ----------------------------------------------------------------------------------------------
    def call(self, method: str, *args: Any, wall_seconds: float | None = None, **kwargs: Any) -> Any:
        """Run ``obj.method(*args, **kwargs)`` in the child; its result, or an OccamError."""
        with self._lock:
            if self.closed:
                raise OccamError("this isolated object was closed", "open it again")
            if self._proc is None or not self._proc.is_alive():
                self._stop()
                self._start()
            try:
                self._conn.send((method, args, kwargs))
            except (OSError, EOFError, ValueError):
                self._stop()
                raise OccamError("the isolated process is gone", "try again") from None
            msg = self._receive(wall_seconds or self.limits.wall_seconds, what=f"{method!r}")
            if msg[0] == "ok":
                return msg[1]
            if msg[1] == "memory":
                self._stop()
            raise _error(msg, self.limits)

    def close(self) -> None:
        """End the child (politely, then by force); later calls raise OccamError."""
        with self._lock:
            self.closed = True
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:
                    pass
            end = time.monotonic() + 2
            while self._proc is not None and self._proc.is_alive() and time.monotonic() < end:
                time.sleep(0.02)
            self._stop()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._stop()
        except Exception:
            pass


def _error(msg: tuple, limits: IsolationLimits) -> OccamError:
    _, kind, problem, fix = msg
    if kind == "memory":
        return OccamError(problem, f"ask for less; this process may use {limits.memory_mb} MiB beyond its start")
    return OccamError(problem, fix)
