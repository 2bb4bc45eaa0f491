"""The shared executor: local processes and a local Ray instance."""

from __future__ import annotations

import os
import time

import pytest

from occam.errors import OccamError
from occam.executor import run_jobs


def slow_square(x: int, marker: str = "") -> tuple[int, int]:
    """Job 0 waits until the driver has received every other result (it then writes ``marker``), so it finishes last."""
    if x == 0 and marker:
        deadline = time.monotonic() + 60
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
    return x * x, os.getpid()


def _note(seen: list[int], i: int, marker, last: int) -> None:
    """The driver's callback: record the order; once every job but 0 has reported, release job 0."""
    seen.append(i)
    if len(seen) == last:
        marker.touch()


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_local_processes_stream_results_in_completion_order(tmp_path):
    order: list[int] = []
    marker = tmp_path / "done"
    jobs = [(x, str(marker)) for x in range(5)]
    res = run_jobs(slow_square, jobs, workers=2, star=True, progress=False,
                   on_result=lambda i, r: _note(order, i, marker, last=4))
    assert [r[0] for r in res] == [0, 1, 4, 9, 16]
    assert {r[1] for r in res} != {os.getpid()}  # ran in worker processes
    assert sorted(order) == [0, 1, 2, 3, 4] and order[-1] == 0


def test_inline_mode_and_errors():
    assert run_jobs(pow, [(2, 3), (3, 2)], workers=1, star=True, progress=False) == [8, 9]
    with pytest.raises(ValueError, match="three"):
        run_jobs(fails_on_three, list(range(5)), workers=2, progress=False)
    with pytest.raises(OccamError):
        run_jobs(pow, [(1, 1)], workers=0, star=True)


def test_local_ray_instance(monkeypatch, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    seen: list[int] = []
    marker = tmp_path / "done"
    try:
        res = run_jobs(slow_square, [(x, str(marker)) for x in range(3)], workers=2, star=True,
                       ray_address="local", progress=False, on_result=lambda i, r: _note(seen, i, marker, last=2))
    except OccamError as exc:
        if "could not start" in exc.problem:
            pytest.skip(f"ray cannot start here: {exc.problem}")
        raise
    assert [r[0] for r in res] == [0, 1, 4]
    assert sorted(seen) == [0, 1, 2] and seen[-1] == 0
    import ray

    assert not ray.is_initialized()  # the private instance was stopped
