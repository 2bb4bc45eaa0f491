"""`occam arena serve` and its workers: killing serve, politely or not, leaves no worker behind; it listens fast."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


def _workers_of(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"occam.arena" in cmd and b"--exit-with-parent" in cmd:
            found.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_killing_serve_leaves_no_worker(tmp_path: Path, sig: int) -> None:
    port = _free_port()
    env = dict(os.environ, OCCAM_ARENA_DB="", PYTHONUNBUFFERED="1")
    env.pop("OCCAM_ARENA_DB")
    proc = subprocess.Popen([sys.executable, "-m", "occam", "arena", "serve", "--home", str(tmp_path / "home"),
                             "--port", str(port), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        assert _wait(lambda: _listening(port), 60), "serve never listened"
        assert _wait(lambda: len(_workers_of(proc.pid)) == 2, 30), "serve did not start its two workers"
        workers = _workers_of(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert _wait(lambda: not any(_alive(w) for w in workers), 30), \
            f"workers {[w for w in workers if _alive(w)]} outlived serve after signal {sig}"
    finally:
        if proc.poll() is None:
            proc.kill()
        os.killpg(proc.pid, signal.SIGKILL) if _alive(proc.pid) else None


def test_dead_workers_leave_the_admin_list(arena) -> None:
    """A worker that stops cleanly leaves at once; one that died leaves when its heartbeat expires."""
    from occam.arena import queue
    from occam.arena.schema import Worker
    from occam.arena.worker import Worker as ScoringWorker

    w = ScoringWorker(arena, owner="host-a:101")
    assert w.run(exit_when_idle=True) == 0
    assert [x["id"] for x in arena.status()["workers"]] == []  # stopped cleanly: removed

    queue.worker_beat(arena.db, "host-b:202", None)
    assert [x["id"] for x in arena.status()["workers"]] == ["host-b:202"]
    with arena.db.write() as s:  # its last beat was long ago: it crashed
        s.get(Worker, "host-b:202").heartbeat_at -= 10 * max(arena.settings.lease_seconds, arena.settings.heartbeat_seconds)
    assert arena.status()["workers"] == []
    with arena.db.read() as s:  # the row stays for the record; only the list hides it
        assert s.get(Worker, "host-b:202") is not None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_runs_serves_cleanup(tmp_path: Path) -> None:
    """SIGTERM ends `serve` through its own cleanup: it stops its workers itself (they are gone, and reaped, when
    serve exits) and exits with 128 + SIGTERM instead of being killed by the signal."""
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OCCAM_ARENA_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "occam", "arena", "serve", "--home", str(tmp_path / "home"),
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        assert _wait(lambda: _listening(port), 60), "serve never listened"
        assert _wait(lambda: len(_workers_of(proc.pid)) == 1, 30), "serve did not start its worker"
        (worker,) = _workers_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM, proc.returncode
        assert not _alive(worker), "serve exited before stopping its worker"
    finally:
        if proc.poll() is None:
            proc.kill()
        os.killpg(proc.pid, signal.SIGKILL) if _alive(proc.pid) else None


def test_submit_waits_for_a_server_that_is_starting(arena, models, tmp_path: Path) -> None:
    """`occam submit` started before the server: it retries while the connection is refused and succeeds once
    the server listens (started 3 s later)."""
    import threading

    from occam.arena import client
    from occam.web.server import ServerThread

    _, token = arena.add_team("early")
    arena.settings.port = _free_port()
    server = ServerThread(arena.settings, arena=arena, init=False, plugins=False)
    out: dict = {}

    def run() -> None:
        try:
            out["sub"] = client.submit(server.url, token, models.good_path, challenge="digits-test", wait=False)
        except Exception as exc:  # reported below
            out["error"] = exc

    t = threading.Thread(target=run)
    t0 = time.monotonic()
    t.start()
    time.sleep(3)
    assert t.is_alive() and not out, out  # still waiting: nothing listens yet
    server.start()
    try:
        t.join(timeout=60)
        assert "error" not in out, out.get("error")
        assert out["sub"]["status"] in ("queued", "running", "scored") and time.monotonic() - t0 >= 3
    finally:
        server.stop()


def test_a_server_that_never_starts_gets_a_clear_error(monkeypatch) -> None:
    from occam.arena import client
    from occam.errors import OccamError

    monkeypatch.setattr(client, "START_WAIT_SECONDS", 1.0)
    url = f"http://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(OccamError, match="refused the connection for 1 s") as info:
        client.get_challenge(url, None, "x")
    assert url in info.value.problem and "occam arena serve" in info.value.fix
    assert time.monotonic() - t0 >= 1.0  # it did wait
    with pytest.raises(OccamError, match="cannot reach"):  # not a refusal (no such host): no waiting
        client.get_challenge("http://no-such-host.invalid:1", None, "x")
