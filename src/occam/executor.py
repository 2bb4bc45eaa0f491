"""Run independent jobs in parallel: local processes or a Ray cluster, one interface.

>>> from occam.executor import run_jobs
>>> run_jobs(pow, [(2, 3), (3, 2)], workers=2, star=True)      # doctest: +SKIP
[8, 9]

- ``fn`` must be importable by the workers (a module-level function, not a lambda), and
  jobs and results must pickle.
- Results stream back in completion order through ``on_result(index, result)``, called in
  the calling process, so a caller can checkpoint as it goes (that is how ``occam fractal
  make`` resumes). The return value is the list of results in job order.
- ``workers=1`` (or a single job) runs in the calling process: no start-up cost, the same
  results.
- Local mode uses :class:`concurrent.futures.ProcessPoolExecutor` with the ``forkserver``
  start method (``spawn`` where that is missing): workers never inherit threads, locks
  or an initialized PyTorch/OpenMP from the parent.
- Ray mode: ``ray_address="local"`` starts a private Ray instance on this machine
  (``num_cpus=workers``, no dashboard, temporary files under ``$TMPDIR/occam-ray-UID`` (normally ``/tmp``) because
  Ray's socket paths must stay short, workers given the driver's ``sys.path``) and stops
  it at the end; any other value is passed to ``ray.init(address=...)`` (e.g.
  ``"ray://head:10001"`` or ``"auto"``). A Ray session that is already initialized is
  reused and left running. ``workers`` then bounds the number of jobs in flight.
- The first job that raises cancels what has not started and re-raises in the caller.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from occam.errors import OccamError

OnResult = Callable[[int, Any], None]


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _call(fn: Callable, job: Any, star: bool) -> Any:
    return fn(*job) if star else fn(job)


def run_jobs(
    fn: Callable[..., Any],
    jobs: Sequence[Any],
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    progress_description: str = "jobs",
    on_result: OnResult | None = None,
    progress: bool = True,
    star: bool = False,
) -> list[Any]:
    """Run ``fn(job)`` (``fn(*job)`` with ``star=True``) for every job; results in job order."""
    jobs = list(jobs)
    if workers is not None and workers < 1:
        raise OccamError(f"workers must be at least 1, got {workers}", "set `workers` to 1 or more")
    n_workers = workers or default_workers()
    results: list[Any] = [None] * len(jobs)
    if not jobs:
        return results
    with _Progress(progress, progress_description, len(jobs)) as bar:
        def done(i: int, res: Any) -> None:
            results[i] = res
            if on_result is not None:
                on_result(i, res)
            bar.advance()

        if ray_address is not None:
            _run_ray(fn, jobs, n_workers, ray_address, star, done)
        elif n_workers == 1 or len(jobs) == 1:
            for i, job in enumerate(jobs):
                done(i, _call(fn, job, star))
        else:
            _run_local(fn, jobs, n_workers, star, done)
    return results


def _mp_context() -> mp.context.BaseContext:
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_local(fn: Callable, jobs: list, n_workers: int, star: bool, done: OnResult) -> None:
    with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)), mp_context=_mp_context()) as pool:
        futures: dict[Future, int] = {pool.submit(_call, fn, job, star): i for i, job in enumerate(jobs)}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(futures[fut], fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _run_ray(fn: Callable, jobs: list, n_workers: int, address: str, star: bool, done: OnResult) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                tmp = Path(tempfile.mkdtemp(prefix="ray-", dir=_ray_tmp_root()))
                # local workers see the driver's sys.path, so functions from scripts and tests resolve
                path = os.pathsep.join(p for p in sys.path if p)
                ray.init(num_cpus=n_workers, include_dashboard=False, _temp_dir=str(tmp),
                         log_to_driver=False, configure_logging=False,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except Exception as exc:
            raise OccamError(f"could not start or reach Ray at {address!r}: {exc}",
                             "check the address (ray://host:10001 or auto), or use 'local'") from exc
        started = True
    waiting: dict[Any, int] = {}
    try:
        remote = ray.remote(num_cpus=1)(_call)
        fn_ref = ray.put(fn)
        # keep at most 2 jobs per worker in flight so that results stream back early
        limit = max(1, 2 * n_workers)
        nxt = 0
        while nxt < len(jobs) or waiting:
            while nxt < len(jobs) and len(waiting) < limit:
                waiting[remote.remote(fn_ref, jobs[nxt], star)] = nxt
                nxt += 1
            ready, _ = ray.wait(list(waiting), num_returns=1)
            for ref in ready:
                done(waiting.pop(ref), ray.get(ref))
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _ray_tmp_root() -> str:
    # Ray's socket paths must stay short (107 bytes on Linux): keep its temp dir near /tmp.
    root = Path(tempfile.gettempdir()) / f"occam-ray-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


class _Progress:
    """A Rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled = enabled
        self.description = description
        self.total = total
        self._p = None
        self._task = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), TimeRemainingColumn(),
                               console=Console(stderr=True), transient=False)
            self._p.__enter__()
            self._task = self._p.add_task(self.description, total=self.total)
        return self

    def advance(self) -> None:
        if self._p is not None:
            self._p.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._p is not None:
            self._p.__exit__(*exc)
