"""The team's command line for an audit challenge, against a live server with a real tiny zoo.

`occam arena download-zoo` (zip, SHA-256 check, unpack, re-run, refusals, the file-by-file fallback),
`occam audit baseline meta` on the downloaded folder, and `occam submit` of prediction files: the
printed rounded scores, a malformed file's row and field, trigger files inlined, and the errors for a
wrong track, a bad token and a server that is down.
"""

from __future__ import annotations

import json
import re
import socket

import httpx
import numpy as np
import pytest
from arena_helpers import AUDIT_CID, _audit_names, _key, audit_spec, digits_spec, predictions

from occam.cli import main as cli_main

CID = AUDIT_CID


@pytest.fixture
def site(make_arena, zoo, serve):
    """A live arena with an audit challenge (quota 20), a sparse one, a team and a worker."""
    arena = make_arena(None)
    arena.add_challenge(audit_spec(zoo, daily_quota=20))
    arena.add_challenge(digits_spec())
    _, token = arena.add_team("alpha")
    server = serve(arena)
    return {"arena": arena, "url": server.url, "token": token}


@pytest.fixture
def occam(capsys):
    """occam(*argv) runs the CLI in process; returns (exit code, stdout, stderr), whitespace collapsed."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = 0
        try:
            cli_main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return code, " ".join(out.split()), " ".join(err.split())

    return run


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_baseline_submit(site, zoo, occam, tmp_path):
    from occam.audit.zoo import public_files

    url, tok = site["url"], site["token"]
    auth = ("--server", url, "--token", tok)
    dl = tmp_path / "dl"
    # no --challenge: the one open *audit* challenge, though a sparse one is open too
    code, out, err = occam("arena", "download-zoo", *auth, "--out", dl, "--no-progress")
    assert code == 0, out + err
    manifest = json.loads((zoo / "public" / "manifest.json").read_text())
    assert f"zoo {manifest['zoo_id']} of challenge {CID}" in out and "matches the server's SHA-256 index" in out
    expected = {p.relative_to(zoo / "public").as_posix(): p.read_bytes() for p in public_files(zoo)}
    got = {p.relative_to(dl / "public").as_posix(): p.read_bytes() for p in (dl / "public").rglob("*") if p.is_file()}
    assert got == expected
    assert sorted(p.name for p in dl.iterdir()) == ["public"]  # no key, no zip, no staging folder left
    # again: already there, nothing downloaded
    code, out, _ = occam("arena", "download-zoo", *auth, "--out", dl, "--challenge", CID)
    assert code == 0 and "already holds" in out and "nothing downloaded" in out

    # the downloaded folder is a zoo for the baselines; their file goes up as it is
    code, out, err = occam("audit", "baseline", "meta", "--zoo", dl, "--out", dl / "meta.json")
    assert code == 0, out + err
    code, out, err = occam("submit", dl / "meta.json", *auth, "--challenge", CID)
    assert code == 0, out + err
    m = re.search(r"submission (\d+): public AUROC (\d\.\d\d), log-loss (\d+\.\d\d), Brier (\d\.\d\d), "
                  r"target accuracy (\d\.\d\d|n/a), trigger success (\d\.\d\d)", out)
    assert m, out
    sub = httpx.get(f"{url}/api/submissions/{m[1]}", headers={"Authorization": f"Bearer {tok}"}).json()
    assert sub["status"] == "scored" and sub["filename"] == "meta.json"
    pub = sub["audit_public"]
    assert m[2] == f"{pub['auroc']:.2f}" and m[3] == f"{pub['log_loss']:.2f}" and m[4] == f"{pub['brier']:.2f}"
    assert "rounded to 2 decimals" in out and "19 uploads left today" in out

    # a perfect CSV: AUROC 1.00 and every target right
    perfect = tmp_path / "perfect.csv"
    perfect.write_bytes(predictions(zoo))
    code, out, err = occam("submit", perfect, *auth, "--challenge", CID)
    assert code == 0, out + err
    assert re.search(r"public AUROC 1\.00, log-loss 0\.\d\d, Brier 0\.\d\d, target accuracy 1\.00, "
                     r"trigger success 0\.00", out), out

    # a malformed file: the server's row and field, the fix, exit 2, no quota used
    first = _audit_names(zoo)[0]
    bad = tmp_path / "bad.csv"
    lines = predictions(zoo).decode().splitlines()
    assert lines[1].startswith(f"{first},")
    bad.write_text("\n".join([lines[0], f"{first},abc,", *lines[2:]]) + "\n")
    code, out, err = occam("submit", bad, *auth, "--challenge", CID)
    assert code == 2, out + err
    assert (f"error: the server refused bad.csv (no quota used): row 1 (model '{first}'): field 'p_trojan' "
            f"must be a number, got 'abc'") in err, err
    assert "fix: give a probability between 0 and 1" in err
    me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {tok}"}).json()
    assert me["quota"][CID]["used"] == 2

    # trigger files next to a CSV are inlined; a missing one is named before anything is sent
    trig = tmp_path / "trig"
    trig.mkdir()
    mask = np.zeros((8, 8), np.float32)
    mask[:3, :3] = 1.0
    np.save(trig / "m.npy", mask)
    np.save(trig / "p.npy", np.ones((8, 8), np.float32))
    key = _key(zoo)["models"]
    rows = ["model,p_trojan,target,mask,pattern"]
    for i, n in enumerate(_audit_names(zoo)):
        files = "m.npy,p.npy" if i < 2 else ","
        rows.append(f"{n},{0.9 if key[n]['trojaned'] else 0.1},{key[n]['target'] if key[n]['trojaned'] else ''},"
                    f"{files}")
    (trig / "with_triggers.csv").write_text("\n".join(rows) + "\n")
    code, out, err = occam("submit", trig / "with_triggers.csv", *auth, "--challenge", CID)
    assert code == 0, out + err
    assert "inlined the trigger files of 2 rows" in out and "public AUROC 1.00" in out
    (trig / "m.npy").unlink()
    code, out, err = occam("submit", trig / "with_triggers.csv", *auth, "--challenge", CID)
    assert code == 2 and "with_triggers.csv was not uploaded" in err and "file 'm.npy' not found" in err, err
    me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {tok}"}).json()
    assert me["quota"][CID]["used"] == 3


def test_cli_errors_and_fallback(site, zoo, occam, tmp_path):
    url, tok, arena = site["url"], site["token"], site["arena"]
    auth = ("--server", url, "--token", tok)
    out_dir = tmp_path / "z"

    def fails(*argv: str) -> str:
        code, out, err = occam(*argv)
        assert code == 2, (argv, out, err)
        assert "fix:" in err, err
        return err

    # wrong track, bad token, server down, unknown challenge
    err = fails("arena", "download-zoo", *auth, "--out", out_dir, "--challenge", "digits-test")
    assert "challenge 'digits-test' is a 'sparse' challenge: it has no zoo to download" in err
    err = fails("arena", "download-zoo", "--server", url, "--token", "occ_team_nope", "--out", out_dir)
    assert "the server did not accept your token" in err and "occ_team_" in err
    down = f"http://127.0.0.1:{_closed_port()}"
    err = fails("arena", "download-zoo", "--server", down, "--token", tok, "--out", out_dir)
    assert f"the arena at {down}" in err and "--server" in err  # refused for the retry window, then this error
    err = fails("submit", tmp_path / "x.csv", "--server", down, "--token", tok)
    assert "prediction file" in err and "not found" in err
    (tmp_path / "p.csv").write_bytes(predictions(zoo))
    err = fails("submit", tmp_path / "p.csv", "--server", down, "--token", tok, "--challenge", CID)
    assert f"the arena at {down}" in err
    err = fails("arena", "download-zoo", *auth, "--out", out_dir, "--challenge", "nope")
    assert "no challenge 'nope'" in err
    assert not out_dir.exists()
    # a model for an audit challenge, a prediction file of another kind
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not really")
    err = fails("submit", onnx, *auth, "--challenge", CID)
    assert "is an audit challenge: it takes a prediction file" in err and "occam audit baseline meta" in err
    (tmp_path / "p.txt").write_bytes(predictions(zoo))
    assert ".csv or .json" in fails("submit", tmp_path / "p.txt", *auth, "--challenge", CID)

    # a second audit challenge whose zip the server cannot build: the files come one by one, checked
    arena.add_challenge(audit_spec(zoo, cid="audit-two"))
    zoo_id = arena.challenge("audit-two").settings["zoo_id"]
    (arena.settings.home / "track-downloads" / f"audit-two-{zoo_id}.zip").mkdir(parents=True)
    err = fails("arena", "download-zoo", *auth, "--out", out_dir)  # two audit challenges open now
    assert "2 audit challenges are open" in err
    code, out, err = occam("arena", "download-zoo", *auth, "--out", out_dir, "--challenge", "audit-two")
    assert code == 0 and "as single files" in out, out + err
    manifest = out_dir / "public" / "manifest.json"
    assert manifest.read_bytes() == (zoo / "public" / "manifest.json").read_bytes()
    # a folder holding something else is refused, then replaced with --force
    manifest.write_text("{}")
    err = fails("arena", "download-zoo", *auth, "--out", out_dir, "--challenge", CID)
    assert "exists and does not hold zoo" in err and "--force" in err
    code, out, err = occam("arena", "download-zoo", *auth, "--out", out_dir, "--challenge", CID, "--force")
    assert code == 0 and "as zoo.zip" in out, out + err
    assert manifest.read_bytes() == (zoo / "public" / "manifest.json").read_bytes()
