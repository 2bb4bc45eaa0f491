"""The arena's Lens computes in limited child processes: one long-lived child per open model, the web process
forwards calls, a memory bomb costs the child (a clear error) and never the server's memory."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from isolated_helpers import tile_bomb  # noqa: I001

from occam.errors import OccamError
from occam.isolate import IsolationLimits

SMALL = IsolationLimits(memory_mb=400, cpu_seconds=60, wall_seconds=120, threads=1)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_isolated_client_runs_views_edits_and_jobs_in_one_child(lenet_digits) -> None:
    from occam.web.lens_isolated import isolated_client

    c = isolated_client(lenet_digits, "digits", "lenet", limits=SMALL)
    try:
        pid = c.pid
        assert pid is not None and pid != os.getpid()
        assert c.info["name"] == "lenet" and c.info["task"] == "digits" and c.read_only is None
        assert "overview" in [v["name"] for v in c.views()]
        ov = c.view("overview", {})
        assert ov["view"] == "overview" and ov["data"]["metrics"]["nnz"] > 0 and "<" in ov["html"]
        with pytest.raises(OccamError, match="no parameter 'bogus'"):  # validated in the child, a clear error
            c.view("units", {"bogus": 1})
        w = c.view("editor", {})["data"]["weights"][0]["name"]
        before = c.view("editor", {})["data"]["metrics"]
        m = c.edit(w, 0, 5.0)
        assert m["history"] == 1 and m["compute_ms"] >= 0 and m["ce"] != pytest.approx(before["ce"], rel=1e-6)
        assert c.editor("undo")["history"] == 0
        assert c.view("editor", {})["data"]["metrics"]["ce"] == pytest.approx(before["ce"], rel=1e-5)
        job = c.start_job("triggers", {"steps": 5, "images": 4})
        assert _wait(lambda: job.state != "running", 120), "the trigger search never finished"
        assert job.state == "done", job.to_dict()
        assert c.start_job("triggers", {"steps": 5, "images": 4}).to_dict()["cached"]  # reused, in the child
        with pytest.raises(RuntimeError, match="refused"):  # a new job needs admission; a refusal is raised
            c.start_job("triggers", {"steps": 6, "images": 4}, admit=lambda: (_ for _ in ()).throw(RuntimeError("refused")))
        assert c.pid == pid  # every call above was served by the same child
        assert c.save()[:2] != b""  # the edited model's bytes come back
    finally:
        c.close()
    assert _wait(lambda: not _alive(pid), 10), "closing the client left its child running"
    with pytest.raises(OccamError, match="closed"):
        c.view("overview", {})


def test_session_cache_closes_the_children_it_drops(lenet_digits) -> None:
    from occam.web.lens_isolated import isolated_client
    from occam.web.lens_routes import SessionCache

    cache = SessionCache(1, idle_seconds=3600)
    a = cache.get("a", lambda: isolated_client(lenet_digits, "digits", "a", limits=SMALL))
    pa = a.pid
    b = cache.get("b", lambda: isolated_client(lenet_digits, "digits", "b", limits=SMALL))
    try:
        assert cache.keys() == ["b"] and a.closed
        assert _wait(lambda: not _alive(pa), 10), "the dropped session's child is still running"
        cache.idle_seconds = 0.0  # everything idle is now stale
        time.sleep(0.05)
        assert cache.sweep() == ["b"] and b.closed and len(cache) == 0
    finally:
        cache.close_all()


def test_web_app_does_not_import_torch(tmp_path) -> None:
    """The arena's web process (with the Lens router) never imports PyTorch: the Lens computes in children."""
    code = ("import sys; from occam.arena.config import ArenaSettings; from occam.web.app import create_app; "
            f"create_app(ArenaSettings(home={str(tmp_path / 'h')!r}, workers=0), init=False); "
            "bad = [m for m in ('torch', 'occam.lens.model', 'onnxruntime') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_bomb_in_the_arena_lens_keeps_the_server_flat(tmp_path, lenet_digits) -> None:
    """`occam arena serve` (a real process, real HTTP): a team opens a Tile bomb in the Lens and gets a clear
    error about memory, while the server's resident memory stays within a bound and the server never maps
    PyTorch; the team's sound model still works afterwards.

    The bomb is marked scored by hand: the scorer's sandbox has its own limits (a batch the scorer can afford
    may not be one the Lens can), and what is tested here is the Lens."""
    from occam.arena.challenges import ChallengeSpec
    from occam.arena.config import ArenaSettings
    from occam.arena.schema import Submission
    from occam.arena.service import Arena

    home = tmp_path / "home"
    arena = Arena(ArenaSettings(home=home, workers=0))
    arena.init()
    now = time.time()
    arena.add_challenge(ChallengeSpec(id="d", title="d", task="digits", lam=30.0, start_at=now - 60,
                                      end_at=now + 3600, split_seed=3, public_fraction=0.5, daily_quota=5,
                                      final_selections=2))
    _, tok = arena.add_team("alpha")
    sids = []
    for data in (lenet_digits, tile_bomb()):
        sub = arena.submit(arena.viewer(tok), "d", data, "m.onnx")
        assert sub.accepted, sub.reason  # the guard lets the bomb through
        sids.append(sub.submission_id)
    with arena.db.write() as s:
        for sid in sids:
            s.get(Submission, sid).status = "scored"
    arena.db.dispose()

    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OCCAM_ARENA_DB", None)
    proc = subprocess.Popen([sys.executable, "-m", "occam", "arena", "serve", "--home", str(home), "--port", str(port),
                             "--workers", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    url, h = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {tok}"}
    try:
        assert _wait(lambda: _up(url), 90), "serve never answered"
        ok, bomb = sids
        r = httpx.get(f"{url}/lens/api/s{ok}/overview", headers=h, timeout=120)  # warms the forwarding path
        assert r.status_code == 200 and r.json()["metrics"]["nnz"] > 0, r.text
        before = _rss_mb(proc.pid)
        r = httpx.get(f"{url}/lens/api/s{bomb}/overview", headers=h, timeout=120)
        assert r.status_code == 400, r.text
        assert "memory" in r.json()["error"] and r.json()["fix"], r.json()
        after = _rss_mb(proc.pid)
        assert after - before < 60, f"the server grew from {before:.0f} MB to {after:.0f} MB"
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps, "the web process loaded PyTorch"
        r = httpx.get(f"{url}/lens/api/s{ok}/views/units", params={"unit": 0}, headers=h, timeout=120)
        assert r.status_code == 200 and r.json()["view"] == "units", r.text  # the sound model is unaffected
        w = httpx.get(f"{url}/lens/api/s{ok}/weights", headers=h, timeout=60).json()["weights"][0]["name"]
        r = httpx.post(f"{url}/lens/api/s{ok}/edit", headers=h, json={"name": w, "index": 0, "value": 3.0}, timeout=60)
        assert r.status_code == 200 and r.json()["history"] == 1 and r.json()["server_ms"] >= r.json()["compute_ms"], r.text
        assert httpx.post(f"{url}/lens/api/s{ok}/undo", headers=h, timeout=60).json()["history"] == 0
        r = httpx.get(f"{url}/lens/api/s{bomb}/overview", headers=h, timeout=120)  # again: same clear error
        assert r.status_code == 400 and "memory" in r.json()["error"]
        assert _rss_mb(proc.pid) - before < 60
        family = _descendants(proc.pid)
        assert family, "no Lens child process found under serve"
        os.kill(proc.pid, 9)  # the Lens children end with the server, however it ends
        proc.wait(timeout=10)
        assert _wait(lambda: not any(_alive(p) for p in family), 20), \
            f"{[p for p in family if _alive(p)]} outlived serve"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/", timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def test_stopping_the_server_ends_its_lens_children(tmp_path, lenet_digits) -> None:
    """ServerThread.stop (and serve's shutdown) close the open Lens sessions: their children end."""
    from occam.arena.challenges import ChallengeSpec
    from occam.arena.config import ArenaSettings
    from occam.arena.schema import Submission
    from occam.arena.service import Arena
    from occam.web.server import ServerThread

    arena = Arena(ArenaSettings(home=tmp_path / "home", workers=0, port=0))
    arena.init()
    now = time.time()
    arena.add_challenge(ChallengeSpec(id="d", title="d", task="digits", lam=30.0, start_at=now - 60,
                                      end_at=now + 3600, split_seed=3, public_fraction=0.5, daily_quota=5,
                                      final_selections=2))
    _, tok = arena.add_team("alpha")
    sid = arena.submit(arena.viewer(tok), "d", lenet_digits, "m.onnx").submission_id
    with arena.db.write() as s:
        s.get(Submission, sid).status = "scored"
    before = set(_descendants(os.getpid()))
    server = ServerThread(arena.settings, arena=arena, init=False)
    url = server.start()
    try:
        r = httpx.get(f"{url}/lens/api/s{sid}/overview", headers={"Authorization": f"Bearer {tok}"}, timeout=120)
        assert r.status_code == 200, r.text
        # the model's child; multiprocessing's fork server and resource tracker (if this test started them) live
        # as long as the test process
        children = [p for p in _descendants(os.getpid()) if p not in before and b"resource_tracker" not in _cmdline(p)
                    and not (b"forkserver" in _cmdline(p) and _ppid(p) == os.getpid())]
        assert children, "the Lens opened no child process"
    finally:
        server.stop()
        arena.db.dispose()
    assert _wait(lambda: not any(_alive(p) for p in children), 20), f"{children} still run after the server stopped"
