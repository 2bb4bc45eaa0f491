"""``occam arena demo``: a fresh arena with a demo challenge and team, the baseline submitted and scored."""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from occam.arena.challenges import demo_spec
from occam.arena.config import ArenaSettings
from occam.arena.service import Arena
from occam.errors import OccamError


def run_demo(*, model: Path, task: str = "fashion-mnist", home: Path | None = None, host: str = "127.0.0.1",
             port: int = 8000, workers: int = 1, once: bool = False, timeout: float = 600.0,
             console: Console | None = None) -> int:
    from occam.arena.client import submit
    from occam.arena.supervisor import WorkerSupervisor
    from occam.web.server import ServerThread, free_port

    console = console or Console()
    model = Path(model)
    if not model.is_file():
        raise OccamError(f"model {model} not found", "train one first (make demo does) or pass --model PATH")
    home = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="occam-arena-demo-"))
    if port == 0 or not _port_free(host, port):
        port = free_port(host)
    settings = ArenaSettings(home=home, host=host, port=port, workers=workers, lease_seconds=30.0,
                             heartbeat_seconds=5.0, poll_seconds=0.2)
    settings.db_url = None
    arena = Arena(settings)
    admin_token = arena.init() or arena.rotate_admin_token()
    spec = demo_spec(task)
    try:
        arena.add_challenge(spec)
    except OccamError:
        arena.add_challenge(spec, replace=True)
    team_name = "demo-team"
    existing = next((t for t in arena.teams() if t.name == team_name), None)
    token = arena.rotate_team_token(existing.id) if existing else arena.add_team(team_name)[1]
    sup = WorkerSupervisor(settings).start()
    server = ServerThread(settings, arena=arena, init=False)
    url = server.start()
    code = 0
    try:
        console.print(f"arena up at {url} (data in {home}); submitting {model.name} as team {team_name}…")
        t0 = time.monotonic()
        sub = submit(url, token, model, challenge=spec.id, wait=True, timeout=timeout, poll=0.25)
        took = time.monotonic() - t0
        t = Table(title="Occam Arena demo", show_header=False)
        t.add_row("URL", url)
        t.add_row("Challenge", f"{url}/challenges/{spec.id}")
        t.add_row("Team", team_name)
        t.add_row("Team token", token)
        t.add_row("Admin token", admin_token)
        t.add_row("Data", str(home))
        if sub.get("status") == "scored":
            t.add_row("Baseline", f"submission {sub['id']}: score {sub['public_score']:.4f} (public), "
                                  f"accuracy {100 * sub['public_accuracy']:.2f}%, nnz {sub['nnz']:,} "
                                  f"(scored in {took:.1f} s)")
        else:
            code = 1
            t.add_row("Baseline", f"submission {sub.get('id')}: {sub.get('status')} {sub.get('error') or ''}")
        console.print(t)
        print(f"ARENA_URL={url}\nARENA_TEAM_TOKEN={token}\nARENA_ADMIN_TOKEN={admin_token}", flush=True)
        if once:
            return code
        console.print("Serving; press Ctrl-C to stop.")
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        return code
    finally:
        server.stop()
        sup.stop()
        arena.db.dispose()


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
