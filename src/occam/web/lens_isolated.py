"""The web process's handle on one model open in the Lens: in-process, or isolated in a limited child.

:class:`LensClient` has the methods of :class:`occam.lens.remote.LensHost` (views, background jobs, the weight
editor, painting, checkpoints, saving, the page's ``info``) and forwards them by name. :func:`local_client` serves
a host in this process (``occam lens MODEL``: the user's own model); :func:`isolated_client` builds the host in an
:class:`~occam.isolate.IsolatedObject` (the arena's Lens on uploaded models, which may be hostile): a long-lived
child per open model that has dropped its network, runs with few threads, an address-space limit and a
CPU-time budget per call, while this process enforces a wall-clock budget per call. A memory bomb or a runaway
computation costs the child (restarted on the next call), never the server.

This module imports neither PyTorch nor the Lens's model code (the child does), so the web process that only
forwards calls stays small and starts fast.

Adding an operation: a method on ``LensHost`` (plain data in and out) and a forwarding method on
:class:`LensClient` (``return self._call("name", ...)``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from occam.errors import OccamError

__all__ = ["LensClient", "JobRef", "local_client", "isolated_client", "QUICK_SECONDS"]

# wall-clock budgets of the quick calls (views and jobs' starts get the limits' wall budget)
QUICK_SECONDS = {"edit": 10.0, "editor": 10.0, "predict": 10.0, "weight": 10.0, "info": 10.0, "job": 10.0,
                 "busy": 10.0, "has_layer": 10.0, "checkout": 30.0, "save": 30.0}


class JobRef:
    """A background job as the parent sees it: ``id``, ``state`` (re-polled while running), ``to_dict()``."""

    def __init__(self, client: LensClient, d: dict[str, Any]):
        self.client, self.id, self._d = client, d["id"], d

    @property
    def state(self) -> str:
        if self._d.get("state") == "running":
            try:
                d = self.client.job(self.id)
            except OccamError:
                d = None
            self._d = d if d is not None else {**self._d, "state": "error", "error": "the model was closed"}
        return self._d["state"]

    def to_dict(self) -> dict[str, Any]:
        return self._d


class LensClient:
    """The routes' handle on one open model: :class:`LensHost`'s methods, forwarded by ``call(method, *args)``.

    ``info`` (what the page renders) is fetched once and refreshed after a checkout; ``close()`` ends the model.
    """

    def __init__(self, call: Callable[..., Any], *, close: Callable[[], None] | None = None, isolated: bool = False,
                 pid: Callable[[], int | None] | None = None):
        self._raw_call, self._close, self.isolated = call, close, isolated
        self._pid = pid
        self._count = threading.Lock()
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.closed = False
        self.info: dict[str, Any] = self._call("info")

    def _call(self, method: str, *args: Any) -> Any:
        with self._count:
            self.in_flight += 1
            self.last_used = time.monotonic()
        try:
            return self._raw_call(method, *args)
        finally:
            with self._count:
                self.in_flight -= 1

    # ---- accessors -------------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def read_only(self) -> str | None:
        return self.info["read_only"]

    @property
    def pid(self) -> int | None:
        """The child's process id (isolated), else None."""
        return self._pid() if self._pid is not None else None

    def views(self) -> list[dict[str, Any]]:
        return self.info["views"]

    def refresh(self) -> dict[str, Any]:
        self.info = self._call("info")
        return self.info

    def has_layer(self, layer: str) -> bool:
        return self._call("has_layer", layer)

    # ---- forwarded operations --------------------------------------------------------------------------
    def view(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("view", name, dict(params))

    def start_job(self, name: str, params: dict[str, Any], admit: Callable[[], None] | None = None) -> JobRef:
        """Start or reuse a job; ``admit()`` (may raise) decides whether a *new* job may start."""
        refusal: BaseException | None = None
        if admit is not None:
            try:
                admit()
            except Exception as exc:  # raised below only if a new job was needed
                refusal = exc
        d = self._call("start_job", name, dict(params), refusal is None)
        if d is None:
            assert refusal is not None
            raise refusal
        return JobRef(self, d)

    def job(self, job_id: str) -> dict[str, Any] | None:
        return self._call("job", job_id)

    def busy(self) -> bool:
        """A call in flight or a background job running (the session cache keeps such models open)."""
        if self.closed:
            return False
        if self.in_flight:
            return True
        try:
            return bool(self._call("busy"))
        except OccamError:
            return False

    def predict(self, pixels: list[float]) -> dict[str, Any]:
        return self._call("predict", list(pixels))

    def weight(self, name: str, row: int = 0) -> dict[str, Any]:
        return self._call("weight", name, int(row))

    def edit(self, name: str, index: int, value: float) -> dict[str, Any]:
        return self._call("edit", name, int(index), float(value))

    def editor(self, op: str) -> dict[str, Any]:
        return self._call("editor", op)

    def checkout(self, index: int) -> dict[str, Any]:
        out = self._call("checkout", int(index))
        self.refresh()
        return out

    def compare(self, checkpoint: int | None = None, snapshot: bool = False, clear: bool = False) -> dict[str, Any]:
        out = self._call("compare", checkpoint, snapshot, clear)
        self.refresh()
        return out

    def save(self) -> bytes:
        return self._call("save")

    def close(self) -> None:
        self.closed = True
        if self._close is not None:
            self._close()


def local_client(session: Any) -> LensClient:
    """A client on a host in this process (``occam lens MODEL``: the user's own model)."""
    from occam.lens.remote import LensHost

    host = LensHost(session)
    lock = threading.RLock()

    def call(method: str, *args: Any) -> Any:
        with lock:
            return getattr(host, method)(*args)

    return LensClient(call)


# what the fork server imports once, so that each model's child starts in a fraction of a second instead of
# importing PyTorch again (the fork server is a process of its own: the web process still imports none of it)
PRELOAD = ["occam.lens.remote", "occam.lens.views", "occam.lens.kinds", "occam.tasks"]
_preload_lock = threading.Lock()
_preloaded = False


def _start_method() -> str:
    import multiprocessing as mp

    global _preloaded
    if "forkserver" not in mp.get_all_start_methods():
        return "spawn"
    with _preload_lock:
        if not _preloaded:
            mp.get_context("forkserver").set_forkserver_preload(PRELOAD)
            _preloaded = True
    return "forkserver"


def isolated_client(data: bytes, task: str, name: str, read_only: str | None = None, *, limits: Any = None,
                    view_seconds: float | None = None, kind: str | None = None,
                    start_method: str | None = None) -> LensClient:
    """A client on a host built in a limited child process (:class:`~occam.isolate.IsolatedObject`).

    ``limits``: an :class:`~occam.isolate.IsolationLimits` (memory, CPU-seconds and wall-seconds per call,
    threads); ``view_seconds``: the wall budget of a view computation (default: the limits' wall budget);
    quick calls (edits, accessors) get at most 10-30 s. ``start_method``: default ``forkserver`` (with the Lens
    preloaded in the fork server) where the platform has it, else ``spawn``. Opening failures (a model that cannot be opened, or
    one that blows the memory limit while opening) raise :class:`~occam.errors.OccamError`.
    """
    from occam.isolate import IsolatedObject, IsolationLimits

    limits = limits or IsolationLimits()
    obj = IsolatedObject("occam.lens.remote:open_host", data, task, name, read_only, kind, limits=limits,
                         start_method=start_method or _start_method())
    wall = float(view_seconds or limits.wall_seconds)

    def call(method: str, *args: Any) -> Any:
        budget = min(QUICK_SECONDS[method], wall) if method in QUICK_SECONDS else wall
        return obj.call(method, *args, wall_seconds=budget)

    try:
        return LensClient(call, close=obj.close, isolated=True, pid=lambda: obj.pid)
    except BaseException:
        obj.close()
        raise
