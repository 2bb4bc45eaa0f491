"""Contest integrity on real databases: a private test set no team can see (scored end to end, then every route
and CLI verb swept for its labels), strict challenge files, CSV formula escaping, the guarded reveal and the admin
log through the API, hidden and archived challenges, notes, history and identical-file flags."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from arena_helpers import WorkerThread, digits_spec, wait_status

from occam.arena.challenges import parse_challenge
from occam.arena.schema import Challenge, PrivateDataset
from occam.arena.service import Arena, Refused, Viewer
from occam.errors import OccamError

TOML = """id = "{cid}"
title = "Private digits"
task = "digits"
lam = 30.0
start = 2020-01-01T00:00:00Z
end = 2099-01-01T00:00:00Z
[split]
seed = 5
public_fraction = 0.5
[submissions]
daily_quota = 5
[limits]
wall_seconds = 60
"""


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _private_digits(tmp_path: Path, n: int = 200) -> tuple[Path, np.ndarray, np.ndarray]:
    """A private test set: digits test images in an order (and count) no public file has."""
    from occam.tasks import get_task

    x, y = get_task("digits").load("test")
    idx = np.random.default_rng(123).permutation(len(y))[:n]
    px, py = np.ascontiguousarray(x[idx]), np.asarray(y[idx], dtype=np.int64)
    path = tmp_path / "hold.npz"
    np.savez(path, x=px, y=py)
    return path, px, py


def _leak_patterns(labels: np.ndarray, run: int = 16) -> list[str]:
    """Every `run`-long window of the label sequence, as digits, as a JSON list and as comma-separated text."""
    seq = [int(v) for v in labels]
    out: set[str] = set()
    for i in range(len(seq) - run + 1):
        w = seq[i:i + run]
        out.update({"".join(map(str, w)), json.dumps(w), ", ".join(map(str, w)), ",".join(map(str, w))})
    return sorted(out)


def _leaks(text: str, patterns: list[str], blob_piece: bytes, raw: bytes) -> list[str]:
    found = [p for p in patterns if p in text]
    if blob_piece in raw:
        found.append("<dataset blob>")
    return found


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values.get(m.group(1), "x"), path)


def test_private_dataset_challenge_scored_end_to_end_and_no_route_or_cli_verb_leaks_it(make_arena, db_url, serve,
                                                                                       models, tmp_path):
    from occam.scoring import compute_metrics, run_logits
    from occam.web.app import create_app, iter_routes

    arena = make_arena(db_url)
    path, px, py = _private_digits(tmp_path)
    arena.add_dataset("hold", path, num_classes=10)
    spec = parse_challenge(TOML.format(cid="held") + '[sparse]\ndataset = "hold"\n')
    arena.add_challenge(spec)
    stored = arena.challenge("held")
    assert json.loads(stored.track_settings) == {"dataset": "hold"}
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    url = serve(arena).url

    # scored end to end, on the private images: the public/private halves match a direct run on them
    r = httpx.post(f"{url}/api/challenges/held/submissions", headers=_h(tok_a),
                   files={"file": ("m.onnx", models.good)}, timeout=60)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    sub = wait_status(arena, sid, {"scored", "failed"}, timeout=120)
    assert sub.status == "scored", sub.error
    from occam.arena.challenges import public_mask

    logits = run_logits(models.good, px, threads=1)
    mask = public_mask(len(py), spec.split_seed, spec.public_fraction)
    want = compute_metrics(logits[mask], py[mask], num_classes=10, nnz=sub.nnz, lam=spec.lam)
    assert sub.public_accuracy == pytest.approx(float(want["accuracy"]), abs=1e-6)
    assert sub.public_ce == pytest.approx(float(want["ce"]), rel=1e-4)
    page = httpx.get(f"{url}/challenges/held").text
    assert "contestants can train on the test labels" not in page  # a private test set: no warning
    assert httpx.get(f"{url}/api/challenges/held").json()["test_set"] == "private dataset"

    # the sweep: every route, as team alpha (owner of the submission), as bravo and anonymously
    patterns = _leak_patterns(py)
    with arena.db.read() as s:
        blob = arena.blobs.get(s.get(PrivateDataset, "hold").blob_sha256)
    piece = blob[len(blob) // 2:len(blob) // 2 + 48]
    # the detector itself finds the labels in any of the forms it looks for
    for form in (json.dumps(py.tolist()), "".join(map(str, py.tolist())), ",".join(map(str, py[40:70].tolist()))):
        assert _leaks(form, patterns, piece, form.encode())
    assert _leaks("x", patterns, piece, b"..." + piece) == ["<dataset blob>"]
    values = {"cid": "held", "sid": str(sid), "tid": "1", "name": "arena.js", "mid": f"s{sid}", "model": "m",
              "board": "public", "view": "overview", "path": "overview", "challenge": "held"}
    app = create_app(arena.settings, arena=arena, init=False, plugins=True)
    swept = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for route_path, methods, _endpoint, _route in iter_routes(app.routes):
            target = _fill(route_path, values)
            for method in sorted(methods - {"HEAD", "OPTIONS"}):
                for who in ({"Authorization": f"Bearer {tok_a}"}, {"Authorization": f"Bearer {tok_b}"}, {}):
                    if "events" in target:
                        with client.stream(method, target, headers=who, timeout=10) as resp:
                            raw = b""
                            for chunk in resp.iter_bytes():
                                raw += chunk
                                if len(raw) > 2000 or b"event: leaderboard" in raw:
                                    break
                    else:
                        kw = {"json": {}} if method != "GET" else {"params": {"board": "private"} if "leaderboard" in target
                                                                   else {}}
                        raw = client.request(method, target, headers=who, **kw).content
                    text = raw.decode("utf-8", "replace")
                    assert not _leaks(text, patterns, piece, raw), (method, target, who, text[:300])
                    swept += 1
    assert swept > 60  # every route, three viewers

    # every CLI verb: --help everywhere, and the team's verbs against the server with a team token
    from typer.main import get_command
    from typer.testing import CliRunner

    from occam.cli import app as cli_app

    runner = CliRunner()
    root = get_command(cli_app)
    verbs: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:  # noqa: ANN001
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, child in subs.items():
                walk(child, [*prefix, name])
        else:
            verbs.append(prefix)

    walk(root, [])
    assert ["arena", "dataset", "add"] in verbs and ["submit"] in verbs
    for verb in verbs:
        out = runner.invoke(cli_app, [*verb, "--help"])
        assert not _leaks(out.output, patterns, piece, out.output.encode()), verb
    team_runs = [["submit", str(models.good_path), "--server", url, "--token", tok_b, "--challenge", "held"],
                 ["arena", "download-zoo", "--server", url, "--token", tok_b, "--challenge", "held",
                  "--out", str(tmp_path / "dl")]]
    for argv in team_runs:
        out = runner.invoke(cli_app, argv)
        assert not _leaks(out.output, patterns, piece, out.output.encode()), argv


def test_strict_challenge_files_and_test_set_sources(arena: Arena, tmp_path: Path) -> None:
    before = [c.id for c in arena.challenges()]
    bad = [
        (TOML.format(cid="a").replace("lam = 30.0", 'lam = "ten"'), r"lam must be a number, got 'ten' \(str\)"),
        (TOML.format(cid="a").replace("[submissions]", "[submision]"), r"unknown section 'submision'"),
        (TOML.format(cid="a") + "colour = 3\n", r"\[limits\] 'colour'"),
        (TOML.format(cid="a").replace("seed = 5", "seed = 5.5"), r"split.seed must be a whole number"),
        (TOML.format(cid="a") + '[sparse]\ndataset = "nope"\n', r"private dataset 'nope', which is not registered"),
        (TOML.format(cid="a") + "[sparse]\nsecret_test = true\n", r"cannot generate a test set"),
        (TOML.format(cid="a") + "[sparse]\ntest_size = 500\n", r"test_size applies only with secret_test"),
        (TOML.format(cid="a") + "[sparse]\nsecret_test = 1\n", r"sparse.secret_test must be true or false"),
    ]
    for text, match in bad:
        with pytest.raises(OccamError, match=match) as info:
            arena.add_challenge(parse_challenge(text))
        assert info.value.fix, info.value.problem
    with pytest.raises(OccamError) as info:
        parse_challenge(TOML.format(cid="a").replace("[submissions]", "[submision]"))
    assert "did you mean 'submissions'" in info.value.fix and "split" in info.value.fix
    # a private dataset whose images do not fit the task
    np.savez(tmp_path / "wide.npz", x=np.zeros((20, 1, 9, 9), np.uint8), y=np.arange(20) % 10)
    arena.add_dataset("wide", tmp_path / "wide.npz", num_classes=10)
    with pytest.raises(OccamError, match=r"shape \[1, 9, 9\].*takes \[1, 8, 8\]"):
        arena.add_challenge(parse_challenge(TOML.format(cid="a") + '[sparse]\ndataset = "wide"\n'))
    assert [c.id for c in arena.challenges()] == before  # nothing stored
    # a generated task: a secret seed, stored but never served; no public-labels warning
    from occam.web.serialize import challenge_json

    spec = parse_challenge(TOML.format(cid="gen").replace('"digits"', '"mnist1d"') +
                           "[sparse]\nsecret_test = true\ntest_size = 300\n")
    c = arena.add_challenge(spec)
    seed = json.loads(arena.challenge("gen").track_settings)["secret_seed"]
    cj = challenge_json(arena.challenge("gen"))
    assert str(seed) not in json.dumps(cj) and cj["test_set"] == "generated from a secret seed" and cj["warning"] == ""
    assert c.id == "gen"
    # the task's public split: the warning on the page's JSON and in the organizer's line
    from occam.arena.tracks import ChallengeInfo, get_track

    digits = arena.challenge("digits-test")
    assert challenge_json(digits)["warning"].startswith("contestants can train on the test labels")
    assert "use a private dataset for prizes" in get_track("sparse").describe(ChallengeInfo.of(digits))


def test_csv_exports_escape_formula_cells(arena: Arena) -> None:
    from occam.arena import leaderboard as lb
    from occam.arena.tracks import get_track

    team, _ = arena.add_team("=HYPERLINK(\"http://x\")")
    arena.submit(Viewer("team", team.id, team.name), "digits-test", b"not onnx", filename="+cmd.onnx")
    with arena.db.read() as s:
        text = lb.submissions_csv(s, arena.challenge("digits-test"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[-1]["team"] == "'=HYPERLINK(\"http://x\")" and rows[-1]["filename"] == "'+cmd.onnx"
    entry = SimpleNamespace(rank=1, team="@SUM(A1)", submission_id=1, score=1.0, ce=0.5, accuracy=0.9, nnz=10,
                            submitted_at=time.time(), submissions=1, scorer_version="1")
    board = list(csv.DictReader(io.StringIO(get_track("sparse").leaderboard_csv([entry]))))
    assert board[0]["team"] == "'@SUM(A1)" and board[0]["score"] == "1.000000"  # numbers pass unchanged


def test_admin_api_reveal_log_visibility_notes_history_identical(make_arena, db_url, models) -> None:
    from fastapi.testclient import TestClient

    from occam.web.app import create_app

    arena = make_arena(db_url)
    arena.add_challenge(digits_spec())
    admin = _h(arena.admin_token)
    ta, tok_a = arena.add_team("alpha")
    tb, tok_b = arena.add_team("bravo")
    app = create_app(arena.settings, arena=arena, init=False, plugins=False)
    with TestClient(app, client=("10.1.2.3", 5555)) as c, WorkerThread(arena):
        url = "/api/admin/challenges/digits-test"
        # reveal: the id typed again, and the end (or force)
        r = c.post(f"{url}/reveal", headers=admin, json={})
        assert r.status_code == 409 and "type the challenge id" in r.json()["error"]
        r = c.post(f"{url}/reveal", headers=admin, json={"confirm": "digits-test"})
        assert r.status_code == 409 and "has not ended yet" in r.json()["error"]
        assert not arena.challenge("digits-test").revealed
        # two teams upload the same file: scored, flagged as identical, both in the history
        sids = []
        for tok in (tok_a, tok_b):
            r = c.post("/api/challenges/digits-test/submissions", headers=_h(tok), files={"file": ("m.onnx", models.good)})
            assert r.status_code == 202, r.text
            sids.append(r.json()["id"])
        for sid in sids:
            assert wait_status(arena, sid, {"scored"}, timeout=120).status == "scored"
        flagged = c.get(f"{url}/identical", headers=admin).json()
        assert [sorted(t["team"] for t in f["teams"]) for f in flagged] == [["alpha", "bravo"]]
        assert "Identical files from different teams" in c.get("/admin", headers=admin).text
        hist = c.get("/api/challenges/digits-test/history").json()
        assert sorted(t["team"] for t in hist["teams"]) == ["alpha", "bravo"]
        assert all(len(t["points"]) == 1 and t["points"][0][0].endswith("Z") for t in hist["teams"])
        assert c.get("/api/challenges/digits-test/history?board=private").status_code == 403
        # notes: the team writes and sees its own; bravo cannot read or write it; the admin sees none
        r = c.post(f"/api/submissions/{sids[0]}/note", headers=_h(tok_a), json={"note": "baseline, lr 0.1"})
        assert r.status_code == 200 and r.json()["team_note"] == "baseline, lr 0.1"
        assert c.post(f"/api/submissions/{sids[0]}/note", headers=_h(tok_b), json={"note": "x"}).status_code == 404
        assert c.post(f"/api/submissions/{sids[0]}/note", headers=_h(tok_a),
                      json={"note": "y" * 600}).status_code == 400
        assert c.get(f"/api/submissions/{sids[0]}", headers=admin).json()["team_note"] is None
        assert "baseline, lr 0.1" in c.get(f"/submissions/{sids[0]}", headers=_h(tok_a)).text
        # edit, with bad input refused and nothing changed
        r = c.post(f"{url}/edit", headers=admin, json={"end": "tomorrow"})
        assert r.status_code == 400 and "not a date-time" in r.json()["error"]
        r = c.post(f"{url}/edit", headers=admin, json={"daily_quota": "ten"})
        assert r.status_code == 422
        assert arena.challenge("digits-test").daily_quota == 5
        r = c.post(f"{url}/edit", headers=admin, json={"title": "Renamed", "end": "2099-01-01T00:00:00Z"})
        assert r.status_code == 200 and r.json()["title"] == "Renamed" and r.json()["end"] == "2099-01-01T00:00:00Z"
        # archived: read-only; hidden: 404 for teams and anonymous visitors, on the API and the pages
        assert c.post(f"{url}/visibility", headers=admin, json={"archived": True}).status_code == 200
        r = c.post("/api/challenges/digits-test/submissions", headers=_h(tok_a), files={"file": ("m.onnx", models.good)})
        assert r.status_code == 403 and "archived" in r.json()["error"]
        assert c.post(f"{url}/visibility", headers=admin, json={"hidden": True, "archived": False}).status_code == 200
        for who in ({}, _h(tok_a)):
            assert c.get("/api/challenges", headers=who).json() == []
            for path in ("/api/challenges/digits-test", "/api/challenges/digits-test/leaderboard",
                         "/api/challenges/digits-test/history", "/challenges/digits-test"):
                assert c.get(path, headers=who).status_code == 404, path
            assert "Renamed" not in c.get("/", headers=who).text
        assert "digits-test" not in c.get("/api/me", headers=_h(tok_a)).text
        assert c.get("/api/challenges/digits-test", headers=admin).json()["hidden"] is True
        # the reveal after the end, and the log names who and from where
        arena.end_now("digits-test")
        r = c.post(f"{url}/reveal", headers=admin, json={"confirm": "digits-test"})
        assert r.status_code == 200 and r.json()["revealed"] is True
        log = c.get("/api/admin/log", headers=admin).json()
        actions = [e["action"] for e in log]
        for a in ("reveal", "visibility", "edit challenge"):
            assert a in actions
        assert all(e["actor"] == "admin@10.1.2.3" for e in log if e["action"] in ("reveal", "edit challenge"))
        assert "admin@10.1.2.3" in c.get("/admin", headers=admin).text
        # a team cannot read the log or the flags
        assert c.get("/api/admin/log", headers=_h(tok_a)).status_code == 403
    with arena.db.read() as s:
        assert s.get(Challenge, "digits-test").title == "Renamed"


def _said(out) -> str:  # noqa: ANN001 - a click Result: what the CLI printed, and the error it ended with
    return out.output + (str(out.exception) if out.exception else "")


def test_cli_organizer_verbs(make_arena, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from occam.cli import app as cli_app

    arena = make_arena(None)
    arena.add_challenge(digits_spec())
    home = ["--home", str(arena.settings.home)]
    run = CliRunner().invoke
    path, _, py = _private_digits(tmp_path, n=50)
    out = run(cli_app, ["arena", "dataset", "add", "hold", str(path), "--num-classes", "10", *home])
    assert out.exit_code == 0, out.output
    out = run(cli_app, ["arena", "dataset", "list", *home])
    assert out.output.split() == ["hold", "50", "1x8x8", "10", "classes"] and "".join(map(str, py[:16])) not in _said(out)
    out = run(cli_app, ["arena", "dataset", "add", "bad", str(path), "--format", "tiff", *home])
    assert out.exit_code != 0 and "--format 'tiff' is not known" in _said(out)
    out = run(cli_app, ["arena", "challenge", "edit", "digits-test", "--title", "Edited", "--end", "2099-01-01T00:00:00Z",
                        *home])
    assert out.exit_code == 0, out.output
    out = run(cli_app, ["arena", "challenge", "edit", "digits-test", "--end", "soon", *home])
    assert out.exit_code != 0 and "--end 'soon' is not a date-time" in _said(out)
    assert arena.challenge("digits-test").title == "Edited"
    out = run(cli_app, ["arena", "challenge", "invite", "digits-test", "--on", *home])
    code = out.output.strip().splitlines()[-1]
    assert out.exit_code == 0 and code.startswith("inv_")
    team, _ = arena.register_team("digits-test", code, "Walk-ins")
    assert team.name == "Walk-ins"
    assert run(cli_app, ["arena", "challenge", "invite", "digits-test", "--off", *home]).exit_code == 0
    with pytest.raises(Refused, match="invite code is not valid"):
        arena.register_team("digits-test", code, "Late")
    for verb in ("hide", "archive"):
        assert run(cli_app, ["arena", "challenge", verb, "digits-test", *home]).exit_code == 0
    c = arena.challenge("digits-test")
    assert c.hidden and c.archived
    out = run(cli_app, ["arena", "reveal", "digits-test", "--confirm", "digits-test", *home])
    assert out.exit_code != 0 and "has not ended yet" in _said(out)
    out = run(cli_app, ["arena", "reveal", "digits-test", "--confirm", "wrong", "--force", *home])
    assert out.exit_code != 0 and "type the challenge id" in _said(out)
    assert run(cli_app, ["arena", "reveal", "digits-test", "--confirm", "digits-test", "--force", *home]).exit_code == 0
    actions = [e["action"] for e in arena.admin_log()]
    for a in ("add dataset", "edit challenge", "invite on", "invite off", "visibility", "reveal"):
        assert a in actions, (a, actions)
