"""CLI: ``occam arena ...`` (serve, worker, migrate, challenges, teams, admin, demo, download-zoo) and ``occam submit``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()

HomeOpt = typer.Option(None, "--home", help="Arena data folder (SQLite file, uploads). Default $OCCAM_ARENA_HOME "
                                          "or ./arena-data.")
DbOpt = typer.Option(None, "--db", help="Database URL, e.g. postgresql+psycopg://user:pw@host/db (default: SQLite "
                                       "in the home folder, or $OCCAM_ARENA_DB).")


def _settings(home: Path | None, db: str | None, **kw):  # noqa: ANN003, ANN202
    from occam.arena.config import ArenaSettings

    s = ArenaSettings(db_url=db, **kw)
    if home is not None:
        s.home = Path(home)
    return s


def _arena(home: Path | None, db: str | None, *, init: bool = True):  # noqa: ANN202
    from occam.arena.service import Arena

    arena = Arena(_settings(home, db))
    if init:
        token = arena.init()
        if token:
            console.print(f"[bold]Admin token[/] (shown once): {token}")
    return arena


def serve_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt,
              host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
              port: int = typer.Option(8000, help="Port."),
              workers: int = typer.Option(2, help="Scoring worker processes to start here (0: run them elsewhere)."),
              lease_seconds: float = typer.Option(30.0, help="A job's lease; a worker heartbeats every ~1/6 of it."),
              secure_cookies: bool = typer.Option(False, help="Mark login cookies Secure (behind HTTPS)."),
              web_workers: int = typer.Option(1, help="Web server processes sharing the port (more CPU for uploads)."),
              ) -> None:
    """Start the arena web server (and its scoring workers)."""
    from occam.web.server import serve

    s = _settings(home, db, host=host, port=port, workers=workers, lease_seconds=lease_seconds,
                  heartbeat_seconds=max(0.5, lease_seconds / 6), secure_cookies=secure_cookies)
    console.print(f"Arena at http://{host}:{port} — data in {s.home.resolve()}, database {_redact(s.url)}")
    serve(s, web_workers=web_workers)


def worker_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt,
               lease_seconds: float = typer.Option(30.0, help="A job's lease; heartbeats every 1/6 of it."),
               max_attempts: int = typer.Option(3, help="Give up (platform's fault, quota back) after this many."),
               max_jobs: int | None = typer.Option(None),
               exit_when_idle: bool = typer.Option(False, help="Stop when the queue is empty.")) -> None:
    """Run one scoring worker here (needs the database and the blobs/ folder of the server)."""
    import os
    import sys

    s = _settings(home, db)
    argv = [sys.executable, "-m", "occam.arena", "--home", str(s.home), "--db", s.url,
            "--lease-seconds", str(lease_seconds), "--heartbeat-seconds", str(max(0.5, lease_seconds / 6)),
            "--max-attempts", str(max_attempts)]
    if max_jobs is not None:
        argv += ["--max-jobs", str(max_jobs)]
    if exit_when_idle:
        argv.append("--exit-when-idle")
    sys.stdout.flush()
    # a small __main__ keeps every sandboxed child cheap (multiprocessing re-imports the main script)
    os.execv(sys.executable, argv)


def migrate_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Bring the database schema up to date (serve and workers also do this at start)."""
    from occam.arena.db import Database, migrate

    s = _settings(home, db)
    rev = migrate(Database(s.url))
    console.print(f"schema at revision {rev} ({_redact(s.url)})")


def admin_token_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Make a new admin token (the old one stops working) and print it."""
    arena = _arena(home, db, init=False)
    from occam.arena.db import migrate

    migrate(arena.db)
    print(arena.rotate_admin_token())


def challenge_add_cmd(file: Path = typer.Argument(..., help="Challenge TOML file (see docs/arena.md)."),
                      home: Path | None = HomeOpt, db: str | None = DbOpt,
                      replace: bool = typer.Option(False, help="Update an existing challenge with the same id.")) -> None:
    """Add a challenge from a TOML file."""
    from occam.arena.challenges import load_challenge_file
    from occam.arena.tracks import ChallengeInfo, get_track

    spec = load_challenge_file(file)
    arena = _arena(home, db)
    c = arena.add_challenge(spec, replace=replace)
    track = get_track(c.track)
    line = track.describe(ChallengeInfo.of(c))
    if track.reminds_quota:
        line += f"; {c.daily_quota} uploads per team per day"
    console.print(line, highlight=False)



def challenge_list_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """List challenges."""
    from occam.arena.service import phase

    arena = _arena(home, db)
    for c in arena.challenges():
        console.print(f"{c.id}\t{phase(c)}\t{c.task}\t{c.track}\tλ={c.lam:g}\t{c.title}")


def team_add_cmd(name: str = typer.Argument(...), home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Add a team and print its token (shown only this once)."""
    arena = _arena(home, db)
    team, token = arena.add_team(name)
    console.print(f"team [bold]{team.name}[/] (id {team.id}); token, shown once:", highlight=False)
    print(token)


def team_list_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """List teams."""
    for t in _arena(home, db).teams():
        console.print(f"{t.id}\t{t.name}\t{'DISQUALIFIED' if t.disqualified else 'ok'}")


def team_token_cmd(name: str = typer.Argument(...), home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Give a team a new token (the old one stops working) and print it."""
    from occam.errors import OccamError

    arena = _arena(home, db)
    team = next((t for t in arena.teams() if t.name == name), None)
    if team is None:
        raise OccamError(f"no team {name!r}", "see `occam arena team list`")
    print(arena.rotate_team_token(team.id))


def rejudge_cmd(challenge: str | None = typer.Option(None, help="Rejudge every submission of this challenge."),
                submission: list[int] = typer.Option([], help="Rejudge these submission ids."),
                home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Queue submissions to be scored again (each result records the scorer version)."""
    from occam.errors import OccamError

    if not challenge and not submission:
        raise OccamError("nothing to rejudge", "pass --challenge ID or --submission N")
    arena = _arena(home, db)
    n = arena.rejudge(list(submission) or None, challenge_id=challenge)
    console.print(f"{n} submissions re-queued")


def freeze_cmd(challenge: str, undo: bool = typer.Option(False, help="Unfreeze."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Freeze the public leaderboard now (or unfreeze)."""
    _arena(home, db).set_freeze(challenge, not undo)
    console.print(f"{challenge}: {'unfrozen' if undo else 'frozen'}")


def reveal_cmd(challenge: str, undo: bool = typer.Option(False, help="Hide the private leaderboard again."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Reveal the private leaderboard."""
    _arena(home, db).set_revealed(challenge, not undo)
    console.print(f"{challenge}: private leaderboard {'hidden' if undo else 'revealed'}")


def disqualify_cmd(submission: int | None = typer.Option(None), team: str | None = typer.Option(None),
                   reason: str = typer.Option("", help="Shown to the team."), undo: bool = typer.Option(False),
                   home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Disqualify a submission or a team (or undo)."""
    from occam.errors import OccamError

    arena = _arena(home, db)
    if submission is not None:
        arena.disqualify_submission(submission, reason, undo=undo)
    elif team is not None:
        t = next((t for t in arena.teams() if t.name == team), None)
        if t is None:
            raise OccamError(f"no team {team!r}", "see `occam arena team list`")
        arena.disqualify_team(t.id, reason, undo=undo)
    else:
        raise OccamError("nothing to disqualify", "pass --submission N or --team NAME")
    console.print("done")


def export_cmd(challenge: str, what: str = typer.Option("leaderboard", help="leaderboard or submissions"),
               board: str = typer.Option("public", help="public or private (leaderboard only)"),
               out: Path | None = typer.Option(None, "-o", "--out", help="File (default: stdout)."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Export a leaderboard or all submissions as CSV."""
    from occam.arena import leaderboard as lb

    arena = _arena(home, db)
    c = arena.challenge(challenge)
    with arena.db.read() as s:
        text = (lb.submissions_csv(s, c) if what == "submissions"
                else lb.leaderboard_csv(lb.compute(s, c, board=board, is_admin=True), track=c.track))
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"wrote {out}")


def backup_cmd(dest: Path = typer.Argument(..., help="Backup folder (created; blobs are copied incrementally)."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Back up a running arena: an online SQLite snapshot plus the uploaded files (PostgreSQL: files only)."""
    from occam.arena.backup import backup

    s = _settings(home, db)
    info = backup(s, dest)
    console.print(f"backed up to {dest}: database {info['database']}, {info['copied']} new files "
                  f"({info['blobs']} in all)")
    if info.get("hint"):
        console.print(info["hint"])


def status_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Queue counts and workers."""
    import json

    print(json.dumps(_arena(home, db).status(), indent=2))


def demo_cmd(model: Path = typer.Option(..., "--model", help="The baseline ONNX model to submit."),
             task: str = typer.Option("fashion-mnist", help="Task of the demo challenge."),
             home: Path | None = typer.Option(None, "--home", help="Data folder (default: a fresh temporary one)."),
             host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000, help="0: any free port."),
             workers: int = typer.Option(1, help="Scoring worker processes."),
             once: bool = typer.Option(False, "--once", "--exit-after-scored",
                                       help="Exit once the baseline is scored (for CI)."),
             timeout: float = typer.Option(600.0, help="Give up waiting for the score after this many seconds.")) -> None:
    """Start a demo arena (fresh SQLite home, a demo challenge and team), submit MODEL, serve until Ctrl-C."""
    from occam.web.demo import run_demo

    code = run_demo(model=model, task=task, home=home, host=host, port=port, workers=workers, once=once,
                    timeout=timeout, console=console)
    raise typer.Exit(code)


ServerOpt = typer.Option(..., "--server", envvar="OCCAM_SERVER", help="Arena URL.")
TokenOpt = typer.Option(..., "--token", envvar="OCCAM_TOKEN", help="Your team token.")


def submit_cmd(model: Path = typer.Argument(..., help="ONNX model to upload (audit challenges: a CSV or JSON "
                                                      "prediction file)."),
               server: str = ServerOpt, token: str = TokenOpt,
               challenge: str | None = typer.Option(None, "--challenge", help="Challenge id (default: the open one)."),
               wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the score."),
               timeout: float = typer.Option(600.0, help="Seconds to wait for the score.")) -> None:
    """Upload a model (or an audit challenge's prediction file); the checks answer at once, the score follows."""
    from occam.arena.client import submit
    from occam.arena.tracks import get_track

    sub = submit(server, token, model, challenge=challenge, wait=wait, timeout=timeout)
    track = get_track(sub["track"])
    if sub.get("note"):
        console.print(sub["note"], highlight=False)
    if sub.get("status") == "scored":
        for line in track.result_lines(sub):
            console.print(line, highlight=False, soft_wrap=True)
        if track.reminds_quota and sub.get("quota_left") is not None:
            console.print(_quota_line(sub["quota_left"]), highlight=False)
    elif sub.get("status") == "failed":
        console.print(f"[red]submission {sub['id']} failed:[/] {sub.get('error')}")
        if sub.get("fix"):
            console.print(f"fix: {sub['fix']}")
        raise typer.Exit(1)
    else:
        console.print(f"submission {sub['id']}: {sub.get('status')} (see {server.rstrip('/')}/submissions/{sub['id']})")
        if track.reminds_quota and sub.get("quota_left") is not None:
            console.print(_quota_line(sub["quota_left"]), highlight=False)


def _quota_line(left: int) -> str:
    return f"{left} upload{'' if left == 1 else 's'} left today (the quota resets at 00:00 UTC)"


def download_zoo_cmd(out: Path = typer.Option(..., "--out", "-o", help="Folder for the zoo: it lands in OUT/public, "
                                                                        "so `occam audit baseline meta --zoo OUT` "
                                                                        "works on it."),
                     server: str = ServerOpt, token: str = TokenOpt,
                     challenge: str | None = typer.Option(None, "--challenge",
                                                          help="Audit challenge id (default: the open one)."),
                     force: bool = typer.Option(False, "--force", help="Download again, replacing OUT/public."),
                     progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")
                     ) -> None:
    """Teams: download an audit challenge's zoo, check every file's SHA-256 against the server's index, unpack it."""
    from rich.filesize import decimal

    from occam.arena.client import download_zoo
    from occam.progress import RichDownloadReporter

    res = download_zoo(server, token, out, challenge=challenge, force=force,
                       reporter=RichDownloadReporter() if progress else None)
    what = f"zoo {res['zoo_id']} of challenge {res['challenge']}: {res['files']} files, {decimal(res['bytes'])}"
    if res["via"] == "already there":
        console.print(f"{res['public']} already holds the {what} (SHA-256 checked); nothing downloaded "
                      "(--force downloads again)", highlight=False, soft_wrap=True)
    else:
        how = "zoo.zip" if res["via"] == "zip" else "single files (the server could not zip the zoo)"
        console.print(f"downloaded the {what}, as {how}; every file matches the server's SHA-256 index",
                      highlight=False, soft_wrap=True)
        console.print(f"unpacked into {res['public']}", highlight=False, soft_wrap=True)
    from occam.arena.tracks import get_track

    hint = get_track(res["track"]).download_hint(out, res["challenge"]) if res.get("track") else ""
    if hint:
        console.print(hint, highlight=False, soft_wrap=True)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Arena: a self-hosted contest server (serve, workers, challenges, teams, admin; "
                           "for teams: download-zoo).",
                      no_args_is_help=True)
    app.add_typer(sub, name="arena")
    sub.command("serve")(serve_cmd)
    sub.command("worker")(worker_cmd)
    sub.command("migrate")(migrate_cmd)
    sub.command("admin-token")(admin_token_cmd)
    sub.command("rejudge")(rejudge_cmd)
    sub.command("freeze")(freeze_cmd)
    sub.command("reveal")(reveal_cmd)
    sub.command("disqualify")(disqualify_cmd)
    sub.command("export")(export_cmd)
    sub.command("status")(status_cmd)
    sub.command("backup")(backup_cmd)
    sub.command("demo")(demo_cmd)
    sub.command("download-zoo")(download_zoo_cmd)
    ch = typer.Typer(help="Challenges.", no_args_is_help=True)
    sub.add_typer(ch, name="challenge")
    ch.command("add")(challenge_add_cmd)
    ch.command("list")(challenge_list_cmd)
    tm = typer.Typer(help="Teams.", no_args_is_help=True)
    sub.add_typer(tm, name="team")
    tm.command("add")(team_add_cmd)
    tm.command("list")(team_list_cmd)
    tm.command("token")(team_token_cmd)
    app.command("submit")(submit_cmd)
