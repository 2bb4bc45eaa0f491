"""CLI: ``occam arena ...`` (serve, worker, migrate, challenges, teams, admin, demo, download-zoo) and ``occam submit``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from occam.arena.config import ArenaSettings
from occam.cli.options import config_options

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


def _with_home(cfg, home: Path | None, db: str | None):  # noqa: ANN001, ANN202
    cfg.db_url = db
    if home is not None:
        cfg.home = Path(home)
    cfg.heartbeat_seconds = max(0.5, cfg.lease_seconds / 6)
    return cfg


@config_options(ArenaSettings, include=("host", "port", "workers", "lease_seconds", "secure_cookies", "max_upload_bytes",
                                        "max_rejected_per_hour"))
def serve_cmd(home_dir: Path | None = HomeOpt, db: str | None = DbOpt,
              web_workers: int = typer.Option(1, help="Web server processes sharing the port (more CPU for uploads)."),
              *, cfg: ArenaSettings) -> None:
    """Start the arena web server (and its scoring workers)."""
    from occam.web.server import serve

    s = _with_home(cfg, home_dir, db)
    console.print(f"Arena at http://{s.host}:{s.port} — data in {s.home.resolve()}, database {_redact(s.url)}")
    serve(s, web_workers=web_workers)


@config_options(ArenaSettings, include=("lease_seconds", "max_attempts"))
def worker_cmd(home_dir: Path | None = HomeOpt, db: str | None = DbOpt,
               max_jobs: int | None = typer.Option(None, help="Stop after this many jobs."),
               exit_when_idle: bool = typer.Option(False, help="Stop when the queue is empty."),
               *, cfg: ArenaSettings) -> None:
    """Run one scoring worker here (it needs only the database: uploads are fetched from it and checked)."""
    import os
    import sys

    s = _with_home(cfg, home_dir, db)
    argv = [sys.executable, "-m", "occam.arena", "--home", str(s.home), "--db", s.url,
            "--lease-seconds", str(s.lease_seconds), "--heartbeat-seconds", str(s.heartbeat_seconds),
            "--max-attempts", str(s.max_attempts)]
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
    token = arena.rotate_admin_token()
    arena.log_admin(CLI_ACTOR, "rotate admin token")
    print(token)


def challenge_add_cmd(file: Path = typer.Argument(..., help="Challenge TOML file (see docs/arena.md)."),
                      home: Path | None = HomeOpt, db: str | None = DbOpt,
                      replace: bool = typer.Option(False, help="Update an existing challenge with the same id.")) -> None:
    """Add a challenge from a TOML file."""
    from occam.arena.challenges import load_challenge_file
    from occam.arena.tracks import ChallengeInfo, get_track

    spec = load_challenge_file(file)
    arena = _arena(home, db)
    c = arena.add_challenge(spec, replace=replace)
    arena.log_admin(CLI_ACTOR, "replace challenge" if replace else "add challenge", c.id, {"title": c.title})
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
    arena.log_admin(CLI_ACTOR, "add team", team.name)
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
    token = arena.rotate_team_token(team.id)
    arena.log_admin(CLI_ACTOR, "rotate team token", team.name)
    print(token)


def rejudge_cmd(challenge: str | None = typer.Option(None, help="Rejudge every submission of this challenge."),
                submission: list[int] = typer.Option([], help="Rejudge these submission ids."),
                home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Queue submissions to be scored again (each result records the scorer version)."""
    from occam.errors import OccamError

    if not challenge and not submission:
        raise OccamError("nothing to rejudge", "pass --challenge ID or --submission N")
    arena = _arena(home, db)
    n = arena.rejudge(list(submission) or None, challenge_id=challenge)
    arena.log_admin(CLI_ACTOR, "rejudge", challenge or f"submissions {list(submission)}", {"requeued": n})
    console.print(f"{n} submissions re-queued")


def freeze_cmd(challenge: str, undo: bool = typer.Option(False, help="Unfreeze."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Freeze the public leaderboard now (or unfreeze)."""
    arena = _arena(home, db)
    arena.set_freeze(challenge, not undo)
    arena.log_admin(CLI_ACTOR, "unfreeze" if undo else "freeze", challenge)
    console.print(f"{challenge}: {'unfrozen' if undo else 'frozen'}")


def reveal_cmd(challenge: str, undo: bool = typer.Option(False, help="Hide the private leaderboard again."),
               confirm: str | None = typer.Option(None, "--confirm", help="The challenge id again (asked if not given)."),
               force: bool = typer.Option(False, "--force", help="Reveal before the challenge's end."),
               home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Reveal the private leaderboard (type the id to confirm; refused before the end unless --force)."""
    arena = _arena(home, db)
    if undo:
        arena.set_revealed(challenge, False)
        arena.log_admin(CLI_ACTOR, "hide private", challenge)
        console.print(f"{challenge}: private leaderboard hidden")
        return
    if confirm is None:
        confirm = typer.prompt(f"Type the challenge id ({challenge}) to reveal its private leaderboard")
    arena.reveal(challenge, confirm=confirm, force=force, actor=CLI_ACTOR)
    console.print(f"{challenge}: private leaderboard revealed")


def disqualify_cmd(submission: int | None = typer.Option(None), team: str | None = typer.Option(None),
                   reason: str = typer.Option("", help="Shown to the team."), undo: bool = typer.Option(False),
                   home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Disqualify a submission or a team (or undo)."""
    from occam.errors import OccamError

    arena = _arena(home, db)
    if submission is not None:
        arena.disqualify_submission(submission, reason, undo=undo)
        arena.log_admin(CLI_ACTOR, "reinstate submission" if undo else "disqualify submission", f"submission {submission}",
                        reason)
    elif team is not None:
        t = next((t for t in arena.teams() if t.name == team), None)
        if t is None:
            raise OccamError(f"no team {team!r}", "see `occam arena team list`")
        arena.disqualify_team(t.id, reason, undo=undo)
        arena.log_admin(CLI_ACTOR, "reinstate team" if undo else "disqualify team", t.name, reason)
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


CLI_ACTOR = "admin@cli"  # who the admin log names for actions taken with the CLI on this machine


def _iso_time(value: str, flag: str) -> float:
    from occam.arena.challenges import _epoch
    from occam.errors import OccamError

    try:
        return _epoch(value, flag)
    except OccamError:
        raise OccamError(f"{flag} {value!r} is not a date-time", f"write {flag} as e.g. 2026-11-29T17:00:00Z") from None


def challenge_edit_cmd(challenge: str = typer.Argument(..., help="The challenge id."),
                       title: str | None = typer.Option(None, "--title"),
                       description: str | None = typer.Option(None, "--description"),
                       start: str | None = typer.Option(None, "--start", help="UTC date-time, e.g. 2026-11-27T09:00:00Z."),
                       end: str | None = typer.Option(None, "--end", help="UTC date-time, e.g. 2026-11-29T17:00:00Z."),
                       freeze: str | None = typer.Option(None, "--freeze", help="UTC date-time of the freeze."),
                       daily_quota: int | None = typer.Option(None, "--daily-quota"),
                       final_selections: int | None = typer.Option(None, "--final-selections"),
                       home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Change a challenge's title, description, times or quotas (the rest: re-add it with --replace)."""
    from occam.errors import OccamError

    changes: dict = {k: v for k, v in (("title", title), ("description", description), ("daily_quota", daily_quota),
                                       ("final_selections", final_selections)) if v is not None}
    for key, flag, value in (("start_at", "--start", start), ("end_at", "--end", end), ("freeze_at", "--freeze", freeze)):
        if value is not None:
            changes[key] = _iso_time(value, flag)
    if not changes:
        raise OccamError("nothing to change", "pass --title, --description, --start, --end, --freeze, --daily-quota "
                                              "or --final-selections")
    c = _arena(home, db).edit_challenge(challenge, changes, actor=CLI_ACTOR)
    console.print(f"{c.id}: changed {', '.join(sorted(changes))}", highlight=False)


def challenge_hide_cmd(challenge: str = typer.Argument(...), undo: bool = typer.Option(False, help="Show it again."),
                       home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Hide a challenge from teams and anonymous visitors (pages and API); only the admin sees it."""
    _arena(home, db).set_visibility(challenge, hidden=not undo, actor=CLI_ACTOR)
    console.print(f"{challenge}: {'visible' if undo else 'hidden'}")


def challenge_archive_cmd(challenge: str = typer.Argument(...), undo: bool = typer.Option(False, help="Unarchive."),
                          home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Archive a challenge: still shown, read-only (no uploads)."""
    _arena(home, db).set_visibility(challenge, archived=not undo, actor=CLI_ACTOR)
    console.print(f"{challenge}: {'unarchived' if undo else 'archived (read-only)'}")


def challenge_invite_cmd(challenge: str = typer.Argument(...),
                         on: bool = typer.Option(..., "--on/--off", help="Open self-registration (prints a new code) "
                                                                         "or close it."),
                         home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Team self-registration with an invite code, per challenge (each --on makes a new code)."""
    arena = _arena(home, db)
    arena.challenge(challenge)
    code = arena.set_invite(challenge, on, actor=CLI_ACTOR)
    if code:
        console.print(f"{challenge}: invite code (shown once); teams register at /register?challenge={challenge}",
                      highlight=False)
        print(code)
    else:
        console.print(f"{challenge}: self-registration off")


def dataset_add_cmd(name: str = typer.Argument(..., help="A name for the dataset (letters, digits, '-', '_')."),
                    path: Path = typer.Argument(..., help="IDX images file, NPZ file (x, y) or a folder of PNGs."),
                    labels: Path | None = typer.Option(None, "--labels", help="Labels: an IDX labels file, or a CSV "
                                                                             "(file,label) for a PNG folder."),
                    fmt: str | None = typer.Option(None, "--format", help="idx, npz or png (default: from PATH)."),
                    num_classes: int | None = typer.Option(None, "--num-classes", help="Classes (default: from labels)."),
                    replace: bool = typer.Option(False, help="Replace a dataset of the same name."),
                    home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """Register a private test set: stored in the database, read only by the scoring workers, never served."""
    from occam.errors import OccamError

    if fmt is not None and fmt not in ("idx", "npz", "png"):
        raise OccamError(f"--format {fmt!r} is not known", "use --format idx, npz or png")
    m = _arena(home, db).add_dataset(name, path, labels, fmt=fmt, num_classes=num_classes, replace=replace,
                                     actor=CLI_ACTOR)
    console.print(f"private dataset [bold]{m.name}[/]: {m.count:,} images of shape {list(m.input_shape)}, "
                  f"{m.num_classes} classes; use it with dataset = \"{m.name}\" in a challenge's [sparse] table",
                  highlight=False)


def dataset_list_cmd(home: Path | None = HomeOpt, db: str | None = DbOpt) -> None:
    """List the private datasets (names, sizes, shapes; never their labels)."""
    for m in _arena(home, db).datasets():
        console.print(f"{m.name}	{m.count}	{'x'.join(map(str, m.input_shape))}	{m.num_classes} classes", highlight=False)


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
    ch.command("edit")(challenge_edit_cmd)
    ch.command("hide")(challenge_hide_cmd)
    ch.command("archive")(challenge_archive_cmd)
    ch.command("invite")(challenge_invite_cmd)
    dsc = typer.Typer(help="Private test sets (read by the scoring workers only).", no_args_is_help=True)
    sub.add_typer(dsc, name="dataset")
    dsc.command("add")(dataset_add_cmd)
    dsc.command("list")(dataset_list_cmd)
    tm = typer.Typer(help="Teams.", no_args_is_help=True)
    sub.add_typer(tm, name="team")
    tm.command("add")(team_add_cmd)
    tm.command("list")(team_list_cmd)
    tm.command("token")(team_token_cmd)
    app.command("submit")(submit_cmd)
