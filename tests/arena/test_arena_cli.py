"""The command line: challenge/team admin, `occam submit`, and `occam arena demo --once`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from occam.cli import main as cli_main

OCCAM = [sys.executable, "-m", "occam"]

CHALLENGE = """
id = "cli-digits"
title = "Digits from the CLI"
task = "digits"
lam = 30
start = 2020-01-01T00:00:00Z
end = 2099-01-01T00:00:00Z
[submissions]
daily_quota = 3
"""


def test_cli_admin_and_submit(tmp_path, models, live, make_arena, capsys):
    home = tmp_path / "cli-home"
    toml = tmp_path / "c.toml"
    toml.write_text(CHALLENGE)
    cli_main(["arena", "challenge", "add", str(toml), "--home", str(home)])
    cli_main(["arena", "team", "add", "cli-team", "--home", str(home)])
    out = capsys.readouterr().out
    token = next(line for line in out.splitlines() if line.startswith("occ_team_"))
    assert "cli-digits" in out and "Admin token" in out
    cli_main(["arena", "challenge", "list", "--home", str(home)])
    assert "running" in capsys.readouterr().out
    arena = make_arena(None, home=home)
    url = live(arena)
    cli_main(["submit", str(models.good_path), "--server", url, "--token", token])
    out = capsys.readouterr().out
    assert "score" in out and "accuracy" in out
    cli_main(["arena", "export", "cli-digits", "--home", str(home)])
    assert "1,cli-team," in capsys.readouterr().out
    cli_main(["arena", "backup", str(tmp_path / "bk"), "--home", str(home)])
    snap = next((tmp_path / "bk").glob("arena-*.sqlite3"))
    import sqlite3

    with sqlite3.connect(snap) as con:
        assert con.execute("select count(*) from submissions where status = 'scored'").fetchone()[0] == 1
    assert len(list((tmp_path / "bk" / "blobs").rglob("*.onnx"))) == 1
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    try:
        cli_main(["submit", str(bad), "--server", url, "--token", token])
    except SystemExit as exc:
        assert exc.code == 2
    assert "ONNX" in capsys.readouterr().err


def test_demo_once(tmp_path, models):
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run([*OCCAM, "arena", "demo", "--model", str(models.good_path), "--task", "digits", "--once",
                           "--port", "0", "--home", str(tmp_path / "demo")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ARENA_URL=http://127.0.0.1:" in proc.stdout and "ARENA_TEAM_TOKEN=occ_team_" in proc.stdout
    assert "ARENA_ADMIN_TOKEN=occ_admin_" in proc.stdout and "score" in proc.stdout
    assert Path(tmp_path / "demo" / "arena.sqlite3").exists()
