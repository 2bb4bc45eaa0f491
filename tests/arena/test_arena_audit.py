"""The `audit` challenge type end to end: a real tiny zoo, real SQLite, a live server with every plugin.

Registration (TOML and CLI, with its errors), team downloads (each file, the zip), submissions with
rounded public scores and higher-is-better boards, malformed files naming the row and field, the
strict quota, and a crawl of every route as anonymous, two teams and the admin that finds no key
material anywhere (the Lens included, on a submission and on a zoo model), plus path traversal against the
download endpoint.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import shutil
import urllib.parse
import zipfile
from pathlib import Path

import httpx
import pytest
from arena_helpers import (
    AUDIT_CID,
    _audit_names,
    _key,
    _labelled_names,
    audit_spec,
    predictions,
    wait_status,
)

from occam.arena.challenges import parse_challenge
from occam.arena.service import Arena
from occam.errors import OccamError

CID = AUDIT_CID  # the `zoo` (built once per session) and `serve` fixtures are in conftest.py


def _h(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def site(make_arena, zoo, serve):
    """A live arena with an audit challenge, two teams and a worker."""
    arena: Arena = make_arena(None)
    arena.add_challenge(audit_spec(zoo))
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    server = serve(arena)
    return {"arena": arena, "url": server.url, "a": tok_a, "b": tok_b, "admin": arena.admin_token, "server": server}


def _submit(site: dict, token: str, data: bytes, name: str = "predictions.csv") -> httpx.Response:
    return httpx.post(f"{site['url']}/api/challenges/{CID}/submissions", headers=_h(token),
                      files={"file": (name, data)}, timeout=30)


# ---- registration ---------------------------------------------------------------------------------------------------

TOML = """
id = "zoo-hunt"
title = "Zoo hunt"
track = "audit"
start = 2020-01-01T00:00:00Z
end = 2099-01-01T00:00:00Z
[split]
seed = 5
[audit]
zoo = "ZOO"
"""


def test_register_audit_challenge(zoo, tmp_path, make_arena, capsys):
    from occam.cli import main as cli_main

    # the organizer's path: a TOML file next to the zoo (relative path), `occam arena challenge add`
    shutil.copytree(zoo / "public", tmp_path / "zoo" / "public")
    shutil.copytree(zoo / "private_key", tmp_path / "zoo" / "private_key", ignore=shutil.ignore_patterns("*.pt"))
    toml = tmp_path / "hunt.toml"
    toml.write_text(TOML.replace("ZOO", "zoo"))
    home = tmp_path / "home"
    cli_main(["arena", "challenge", "add", str(toml), "--home", str(home)])
    out = capsys.readouterr().out
    assert "zoo-hunt" in out and "track audit" in out and "2 uploads per team per day" in out
    arena = make_arena(None, home=home)
    c = arena.challenge("zoo-hunt")
    manifest = json.loads((zoo / "public" / "manifest.json").read_text())
    assert (c.task, c.daily_quota, c.settings["zoo_id"]) == ("digits", 2, manifest["zoo_id"])
    assert c.settings["key_path"] == str((tmp_path / "zoo" / "private_key" / "key.json").resolve())
    pub, priv = c.settings["public_models"], c.settings["private_models"]
    assert sorted(pub + priv) == _audit_names(zoo) and not set(pub) & set(priv)
    key = _key(zoo)["models"]
    for half in (pub, priv):  # both halves can compute AUROC
        assert {key[n]["trojaned"] for n in half} == {True, False}
    spec = parse_challenge(TOML.replace("ZOO", "zoo"), base_dir=tmp_path)
    assert (spec.settings["zoo"], spec.settings["key"]) == (str(tmp_path / "zoo"), None)
    # the same seed gives the same halves; --replace keeps them
    arena.add_challenge(spec, replace=True)
    assert arena.challenge("zoo-hunt").settings["public_models"] == pub

    def refused(text: str, match: str, *, base: Path = tmp_path) -> None:
        with pytest.raises(OccamError, match=match) as info:
            arena.add_challenge(parse_challenge(text, base_dir=base), replace=True)
        assert info.value.fix, f"no fix for {info.value.problem!r}"

    other_key = tmp_path / "other-key.json"
    k = _key(zoo)
    other_key.write_text(json.dumps({**k, "zoo_id": "0123456789abcdef"}))
    refused(TOML.replace('zoo = "ZOO"', ""), r"needs an \[audit\] table")
    refused(TOML.replace("ZOO", "no-such-zoo"), "does not exist")
    refused(TOML.replace('zoo = "ZOO"', f'zoo = "zoo"\nkey = "{other_key}"'), "belongs to zoo")
    refused(TOML.replace('zoo = "ZOO"', 'zoo = "zoo"\nkey = "missing.json"'), "does not exist")
    refused(TOML.replace('zoo = "ZOO"', 'zoo = "zoo"\nkeys = "x"'), r"unknown key \[audit\] 'keys'")
    refused(TOML.replace('track = "audit"', 'track = "audit"\ntask = "fashion-mnist"').replace("ZOO", "zoo"),
            "trained on task 'digits'")
    refused(TOML.replace('track = "audit"', 'track = "sparse"\ntask = "digits"').replace("ZOO", "zoo"),
            r"has an \[audit\] table but track")
    # a key inside public/, or a copy of it under another name there, is refused
    pub_dir = tmp_path / "zoo" / "public"
    (pub_dir / "secret").mkdir()
    shutil.copy(tmp_path / "zoo" / "private_key" / "key.json", pub_dir / "secret" / "key.json")
    refused(TOML.replace('zoo = "ZOO"', 'zoo = "zoo"\nkey = "zoo/public/secret/key.json"'), "inside the public folder")
    shutil.rmtree(pub_dir / "secret")
    shutil.copy(tmp_path / "zoo" / "private_key" / "key.json", pub_dir / "notes.json")
    refused(TOML.replace("ZOO", "zoo"), "is a copy of the key")
    (pub_dir / "notes.json").write_text(json.dumps({"models": {_audit_names(zoo)[0]: {"trojaned": True}}}))
    refused(TOML.replace("ZOO", "zoo"), "carries labels of audit model")
    (pub_dir / "notes.json").unlink()
    # a modified model file no longer matches the zoo_id
    model = next((pub_dir / "models").glob("*.onnx"))
    model.write_bytes(model.read_bytes() + b"\0")
    refused(TOML.replace("ZOO", "zoo"), "zoo_id")


# ---- downloads, submissions, boards ---------------------------------------------------------------------------------

def test_team_downloads_submits_and_sees_rounded_scores(site, zoo):
    from occam.audit.zoo import public_files

    url, a, b = site["url"], site["a"], site["b"]
    expected = {p.relative_to(zoo / "public").as_posix(): p.read_bytes() for p in public_files(zoo)}
    assert {"manifest.json", "labelled.json"} <= set(expected) and len(expected) == 2 + len(_key(zoo)["models"])
    # anonymous visitors are asked to log in
    assert httpx.get(f"{url}/api/challenges/{CID}/files").status_code == 401
    r = httpx.get(f"{url}/challenges/{CID}/files", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    anon_page = httpx.get(f"{url}/challenges/{CID}").text
    assert "Download the zoo" in anon_page and "to download the zoo" in anon_page and "zoo.zip" not in anon_page
    page = httpx.get(f"{url}/challenges/{CID}", headers=_h(a)).text
    assert f"/api/challenges/{CID}/zoo.zip" in page and 'accept=".csv,.json"' in page and "pareto" not in page.lower()
    # the index lists exactly the servable files; each downloads byte for byte
    index = httpx.get(f"{url}/api/challenges/{CID}/files", headers=_h(a)).json()
    assert {f["name"] for f in index["files"]} == set(expected)
    for f in index["files"]:
        r = httpx.get(url + f["url"], headers=_h(a))
        assert r.status_code == 200 and r.content == expected[f["name"]], f["name"]
        assert f["name"].rsplit("/", 1)[-1] in r.headers["content-disposition"]
    r = httpx.get(f"{url}/api/challenges/{CID}/zoo.zip", headers=_h(b))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == {f"public/{n}": d for n, d in expected.items()}
    assert httpx.get(f"{url}/api/challenges/{CID}/zoo.zip", headers=_h(a)).content == r.content  # cached, stable
    files_page = httpx.get(f"{url}/challenges/{CID}/files", headers=_h(a)).text
    assert all(n in files_page for n in expected)

    # alpha is right, bravo inverted: AUROC 1 and 0 on both halves
    ra, rb = _submit(site, a, predictions(zoo)), _submit(site, b, predictions(zoo, right=False), "p.csv")
    assert ra.status_code == 202 and rb.status_code == 202, (ra.text, rb.text)
    assert ra.json()["quota_left"] == 1
    for sid in (ra.json()["id"], rb.json()["id"]):
        assert wait_status(site["arena"], sid).status == "scored"
    sub = httpx.get(f"{url}/api/submissions/{ra.json()['id']}", headers=_h(a)).json()
    assert sub["public_score"] == 1.0 and sub["scorer_version"] == "audit-1" and sub["nnz"] is None
    pub = sub["audit_public"]
    assert pub["auroc"] == 1.0 and pub["target_accuracy"] == 1.0 and pub["trigger_success"] == 0.0
    for k, v in pub.items():  # rounded to 2 decimals
        assert v == round(v, 2), (k, v)
    assert pub["log_loss"] == round(pub["log_loss"], 2) and 0 < pub["log_loss"] < 1
    assert "private_score" not in sub and "audit_private" not in sub  # hidden until the reveal
    assert sub["links"]["inspect"] is None
    html = httpx.get(f"{url}/submissions/{ra.json()['id']}", headers=_h(a)).text
    assert "Public AUROC" in html and "Private AUROC" not in html
    team_page = httpx.get(f"{url}/team", headers=_h(a)).text
    assert "AUROC" in team_page and "Inspect" not in team_page
    # the uploaded file comes back as it was; the Lens refuses it clearly
    r = httpx.get(f"{url}/api/submissions/{ra.json()['id']}/file", headers=_h(a))
    assert r.content == predictions(zoo) and ".csv" in r.headers["content-disposition"]
    r = httpx.get(f"{url}/lens/submissions/{ra.json()['id']}", headers=_h(a))
    assert r.status_code == 409 and "not a model" in r.json()["error"]

    # boards: higher AUROC first; public rounded, private hidden until revealed, then exact
    board = httpx.get(f"{url}/api/challenges/{CID}/leaderboard").json()
    assert board["track"] == "audit" and board["higher_is_better"] is True
    assert [(e["team"], e["score"]) for e in board["entries"]] == [("alpha", 1.0), ("bravo", 0.0)]
    assert all(e["extra"]["brier"] == round(e["extra"]["brier"], 2) for e in board["entries"])
    assert httpx.get(f"{url}/api/challenges/{CID}/leaderboard?board=private").status_code == 403
    assert httpx.get(f"{url}/api/challenges/{CID}/pareto").json()["points"] == []
    r = httpx.post(f"{url}/api/admin/challenges/{CID}/reveal", headers=_h(site["admin"]),
                   json={"confirm": CID, "force": True})
    assert r.status_code == 200
    priv = httpx.get(f"{url}/api/challenges/{CID}/leaderboard?board=private").json()
    assert [(e["team"], e["score"]) for e in priv["entries"]] == [("alpha", 1.0), ("bravo", 0.0)]
    ll = priv["entries"][0]["ce"]
    assert ll != round(ll, 2)  # the final ranking is exact
    sub = httpx.get(f"{url}/api/submissions/{ra.json()['id']}", headers=_h(a)).json()
    assert sub["private_score"] == 1.0 and sub["audit_private"]["log_loss"] == ll
    csv_text = httpx.get(f"{url}/api/admin/challenges/{CID}/leaderboard.csv?board=private",
                         headers=_h(site["admin"])).text
    assert csv_text.splitlines()[0].startswith("rank,team,submission_id,auroc,log_loss")
    assert csv_text.splitlines()[1].startswith("1,alpha,")


def test_malformed_submissions_name_row_and_field(site, zoo):
    url, a = site["url"], site["a"]
    names, labelled = _audit_names(zoo), _labelled_names(zoo)
    good = predictions(zoo).decode().splitlines()
    first = names[0]
    cases = [
        ("\n".join([good[0], f"{first},abc,"] + good[2:]), rf"row 1 \(model '{first}'\): field 'p_trojan' must be a number"),
        ("\n".join([good[0], f"{first},1.5,"] + good[2:]), rf"row 1 \(model '{first}'\): field 'p_trojan' must lie in"),
        ("\n".join([good[0], f"{first},0.5,seven"] + good[2:]), rf"row 1 \(model '{first}'\): field 'target'"),
        ("\n".join(good[:-1]), r"no row for 1 audit model"),
        ("\n".join(good + [f"{labelled[0]},0.5,"]), rf"model '{labelled[0]}'\): field 'model' names a model of the labelled"),
        ("\n".join(good + ["model_9999,0.5,"]), r"field 'model' names no model of this zoo"),
        ("\n".join(good + [f"{first},0.5,"]), r"field 'model' repeats row 1"),
        ("model,score\nx,1\n", r"lacks the column 'p_trojan'"),
        (json.dumps([{"model": n, "p_trojan": 0.5} for n in names[:-1]] + [{"model": names[-1]}]),
         rf"row {len(names)} \(model '{names[-1]}'\): field 'p_trojan' is missing"),
        (json.dumps([{"model": n, "p_trojan": 0.5, "mask": "m.png", "pattern": "p.png"} for n in names]),
         r"row 1 .*field 'mask' names a file"),
        (json.dumps([{"model": n, "p_trojan": 0.5, "mask": [[0.1] * 3], "pattern": [[0.1] * 3]} for n in names]),
         r"row 1 .*field 'mask' has shape \[1, 3\], expected \[8, 8\]"),
        (json.dumps([{"model": n, "p_trojan": 0.5, "mask": [[1.0] * 8] * 8, "pattern": [[1.0] * 8] * 8}
                     for n in names]), r"row 1 .*field 'mask' has L1 norm 64.00, above the budget"),
        ("{not json", r"not valid JSON"),
        ("[" * 50000, r"cannot be read as CSV or JSON"),
        ("model,p_trojan\n\0\0,\0\n", r"(cannot be read|row 1)"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage", r"not UTF-8"),
        (b"", r"empty"),
    ]
    for body, needle in cases:
        data = body if isinstance(body, bytes) else body.encode()
        r = _submit(site, a, data, "bad.json" if data[:1] in (b"[", b"{") else "bad.csv")
        assert r.status_code == 422, (needle, r.text)
        got = r.json()
        assert not got["accepted"] and re.search(needle, got["reason"]), (needle, got["reason"])
        assert got["fix"], got
    # the browser form shows the same error on the submission page
    r = httpx.post(f"{url}/challenges/{CID}/submit", headers=_h(a), files={"file": ("x.csv", b"model,p_trojan\nm,x\n")},
                   follow_redirects=True)
    assert r.status_code == 200 and "This file was refused" in r.text and "field &#39;p_trojan&#39;" in r.text
    me = httpx.get(f"{url}/api/me", headers=_h(a)).json()
    assert me["quota"][CID] == {**me["quota"][CID], "used": 0, "left": 2}  # refused files use no quota


def test_quota_is_strict(site, zoo):
    url, a = site["url"], site["a"]
    for left in (1, 0):
        r = _submit(site, a, predictions(zoo))
        assert r.status_code == 202 and r.json()["quota_left"] == left
    r = _submit(site, a, predictions(zoo, right=False))
    assert r.status_code == 429 and "used its 2 submissions" in r.json()["error"] and "00:00 UTC" in r.json()["fix"]
    assert _submit(site, site["b"], predictions(zoo)).status_code == 202  # per team
    page = httpx.get(f"{url}/challenges/{CID}", headers=_h(a)).text
    assert "0 of 2 left today" in page and "rounded" in page


def test_zoo_gone_from_the_server_fails_cleanly(make_arena, zoo, serve, tmp_path):
    """A zoo moved or a key deleted after registration: clear errors, no server paths shown, quota given back."""
    from occam.arena.worker import Worker

    copy = tmp_path / "zoo"
    shutil.copytree(zoo / "public", copy / "public")
    shutil.copytree(zoo / "private_key", copy / "private_key", ignore=shutil.ignore_patterns("*.pt"))
    arena: Arena = make_arena(None)
    arena.add_challenge(audit_spec(copy, cid="gone"))
    _, tok = arena.add_team("alpha")
    url = serve(arena, worker=False).url
    # the key disappears after the upload was checked: the worker fails it as the platform's fault
    r = httpx.post(f"{url}/api/challenges/gone/submissions", headers=_h(tok), files={"file": ("p.csv", predictions(zoo))})
    assert r.status_code == 202, r.text
    (copy / "private_key" / "key.json").unlink()
    Worker(arena).run(max_jobs=1, exit_when_idle=True)
    sub = httpx.get(f"{url}/api/submissions/{r.json()['id']}", headers=_h(tok)).json()
    assert sub["status"] == "failed" and sub["error_kind"] == "platform" and "cannot load" in sub["error"]
    assert str(copy) not in json.dumps(sub)
    assert httpx.get(f"{url}/api/me", headers=_h(tok)).json()["quota"]["gone"]["used"] == 0
    # the whole zoo moves away: uploads are refused at once (no quota), downloads answer 503 without paths
    shutil.copy(zoo / "private_key" / "key.json", copy / "private_key" / "key.json")
    copy.rename(tmp_path / "moved")
    arena.add_challenge(audit_spec(tmp_path / "moved", cid="gone2"))
    shutil.rmtree(tmp_path / "moved")
    r = httpx.post(f"{url}/api/challenges/gone2/submissions", headers=_h(tok), files={"file": ("p.csv", predictions(zoo))})
    assert r.status_code == 422 and "cannot read this challenge's zoo" in r.json()["reason"], r.text
    for path in ("files", "zoo.zip", "files/manifest.json"):
        r = httpx.get(f"{url}/api/challenges/gone2/{path}", headers=_h(tok))
        assert r.status_code == 503 and "unavailable" in r.json()["error"] and str(tmp_path) not in r.text, r.text
    r = httpx.get(f"{url}/api/challenges/gone2/files", headers=_h(arena.admin_token))
    assert r.status_code == 503 and "moved" in r.json()["error"]  # the admin sees why
    assert httpx.get(f"{url}/api/challenges/gone2/files", headers=_h(tok)).status_code == 503


# ---- the key is never served ---------------------------------------------------------------------------------------

def _secrets(zoo: Path, arena: Arena) -> dict[str, str]:
    """Strings that would betray the key: its text, each audit model's key entry, its seeds and accuracies, the
    key's and zoo's locations, and which models form the public half."""
    key_path = zoo / "private_key" / "key.json"
    key = _key(zoo)
    out = {"key file": key_path.read_text(), "key path": str(key_path.resolve()), "zoo dir": str(zoo.resolve())}
    c = arena.challenge(CID)
    out["public half"] = json.dumps(c.settings["public_models"])
    out["private half"] = json.dumps(c.settings["private_models"])
    for n in _audit_names(zoo):
        v = key["models"][n]
        out[f"{n} entry"] = json.dumps(v)
        out[f"{n} entry (indented)"] = json.dumps(v, indent=1)
        for k in ("seed", "clean_acc", "asr"):
            if v.get(k) is not None and len(repr(v[k])) >= 7:  # distinctive values only (not 1.0)
                out[f"{n} {k}"] = repr(v[k])
        for trig in ("trigger", "decoy_trigger"):
            if v.get(trig):
                out[f"{n} {trig}"] = json.dumps(v[trig])
                if len(str(v[trig]["seed"])) >= 6:
                    out[f"{n} {trig} seed"] = str(v[trig]["seed"])
    return out


def _leaks(body: str, secrets: dict[str, str], audit: list[str]) -> list[str]:
    found = [name for name, s in secrets.items() if s and s in body]
    for n in audit:  # a label record of an audit model, in any JSON layout
        if re.search(rf'"{n}"\s*:\s*\{{[^{{}}]*"(trojaned|target|attack|trigger)"', body):
            found.append(f"{n} label record")
    return found


TRAVERSAL = [
    "../private_key/key.json", "..%2fprivate_key%2fkey.json", "%2e%2e/private_key/key.json",
    "%2e%2e%2fprivate_key%2fkey.json", "%252e%252e%252fprivate_key%252fkey.json", "models/../../private_key/key.json",
    "models/%2e%2e/%2e%2e/private_key/key.json", "..\\private_key\\key.json", "..%5cprivate_key%5ckey.json",
    "private_key/key.json", "key.json", "../../zoo/private_key/key.json", "manifest.json%00../private_key/key.json",
    "./manifest.json/../../private_key/key.json", "../private_key/plan.json", "../report.json",
    "models/../manifest.json", ".", "..", "",
]


def test_no_endpoint_or_page_serves_key_material(site, zoo):
    from fastapi.routing import APIRoute

    from occam.audit import arena as audit_arena
    from occam.web.app import iter_routes

    arena, url = site["arena"], site["url"]
    r = _submit(site, site["a"], predictions(zoo))
    sid = r.json()["id"]
    wait_status(arena, sid)
    secrets = _secrets(zoo, arena)
    audit = _audit_names(zoo)
    key_path = zoo / "private_key" / "key.json"
    served = [p.relative_to(zoo / "public").as_posix() for p in audit_arena.public_files(zoo)]
    team_id = arena.viewer(site["a"]).team_id
    zoo_mid = f"z.{CID}.{audit[0]}"  # an audit model in the Lens (a submission's id is crawled too)
    fills = {"{cid}": CID, "{sid}": str(sid), "{tid}": str(team_id), "{model}": audit[0], "{layer}": "x",
             "{unit}": "0", "{job}": "x"}
    viewers = {"anon": None, "alpha": site["a"], "bravo": site["b"], "admin": site["admin"]}
    bad_csv = b"model,p_trojan\nmodel_0000,abc\n"
    checked = 0

    def check(where: str, status: int, body: str, lens: bool) -> None:
        nonlocal checked
        leaks = _leaks(body, secrets, audit)
        assert not leaks, f"{where} answers {status} with key material: {leaks}"
        assert lens or status < 500, f"{where} crashed: {status} {body[:300]}"
        checked += 1

    routes = sorted(iter_routes(site["server"].app.routes), key=lambda t: t[0])
    paths = {p for p, *_ in routes}
    assert "/api/challenges/{cid}/files/{name:path}" in paths and "/api/challenges/{cid}/zoo.zip" in paths
    assert "/lens/challenges/{cid}/zoo/{model}" in paths and "/lens/api/{mid}/triggers" in paths
    zoo_answers: dict[str, int] = {}
    for route_path, methods, _endpoint, route in routes:
        if route_path in ("/docs/oauth2-redirect",):
            continue
        templates = [route_path]
        if "{name:path}" in route_path:
            templates = [route_path.replace("{name:path}", n) for n in served]
        elif "{name}" in route_path:
            templates = [route_path.replace("{name}", "arena.js")]
        if "{mid}" in route_path:
            templates = [t.replace("{mid}", m) for t in templates for m in (f"s{sid}", zoo_mid)]
        for template in templates:
            path = template
            for k, v in fills.items():
                path = path.replace(k, v)
            # the Lens answers a CSV submission 409 or, for views it cannot show, may fail; a zoo model must not
            lens = route_path.startswith("/lens") and zoo_mid not in path and "/zoo/" not in path
            for method in sorted(methods - {"HEAD"}):
                if method == "POST" and "/admin" in path:
                    continue  # admin actions are crawled as GETs only (POSTs end or freeze the challenge)
                for who, token in viewers.items():
                    kw: dict = {"headers": _h(token), "timeout": 60}
                    if method == "POST":
                        if path.endswith("/submissions") or path.endswith("/submit"):
                            kw["files"] = {"file": ("bad.csv", bad_csv)}
                        elif path == "/login":
                            kw["data"] = {"token": token or "x", "next": "/"}
                        elif path.endswith("/triggers"):
                            kw["json"] = {"steps": 10, "images": 5}  # a real search, kept short
                        elif isinstance(route, APIRoute) and route.body_field is not None:
                            kw["json"] = {}
                    where = f"{method} {path} as {who}"
                    if path.endswith("/events"):
                        with httpx.stream(method, url + path, **kw) as resp:
                            body = ""
                            for line in resp.iter_lines():
                                body += line + "\n"
                                if line.startswith("data: "):
                                    break
                        check(where, resp.status_code, body, lens)
                        continue
                    resp = httpx.request(method, url + path, **kw)
                    body = resp.text if not path.endswith(".zip") else ""
                    check(where, resp.status_code, body, lens)
                    if path.endswith("zoo.zip") and resp.status_code == 200:
                        with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
                            assert sorted(zf.namelist()) == sorted(f"public/{n}" for n in served)
                            for n in zf.namelist():
                                check(f"{where} member {n}", 200, zf.read(n).decode("latin-1"), lens)
                    if who in ("alpha", "bravo", "admin") and "/files/" in path and method == "GET":
                        assert resp.status_code == 200, where
                    if zoo_mid in path or "/zoo/" in path:
                        zoo_answers[f"{method} {path} as {who}"] = resp.status_code
    assert checked > 250
    # the zoo model really opened in the Lens for every viewer who may see it, and for nobody else
    for who in viewers:
        ok = 401 if who == "anon" else 200
        assert zoo_answers[f"GET /lens/api/{zoo_mid}/overview as {who}"] == ok
        assert zoo_answers[f"GET /lens/m/{zoo_mid} as {who}"] == ok
        assert zoo_answers[f"POST /lens/api/{zoo_mid}/triggers as {who}"] == ok
        assert zoo_answers[f"GET /lens/challenges/{CID}/zoo/{audit[0]} as {who}"] == (401 if who == "anon" else 303)

    # the download endpoint refuses the key under any spelling, sent raw (no client-side normalization)
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    attempts = TRAVERSAL + [str(key_path), str(key_path.resolve()), "/" + str(key_path),
                            urllib.parse.quote(str(key_path), safe=""), urllib.parse.quote("../private_key/key.json")]
    for attempt in attempts:
        for who, token in (("alpha", site["a"]), ("admin", site["admin"])):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.request("GET", f"/api/challenges/{CID}/files/{attempt}", headers=_h(token))
                resp = conn.getresponse()
                body = resp.read().decode("latin-1")
            finally:
                conn.close()
            where = f"GET files/{attempt} as {who}"
            assert resp.status == 404, (where, resp.status, body[:200])
            assert not _leaks(body, secrets, audit), where
    assert httpx.get(f"{url}/api/challenges/{CID}/files/../private_key/key.json", headers=_h(site["a"])).status_code == 404

    # files planted in public/ after registration are never served: a symlink to the key, a copy of the key
    audit_arena._public_index.cache_clear()
    pub = zoo / "public"
    (pub / "k.json").symlink_to(key_path)
    shutil.copy(key_path, pub / "notes.json")
    try:
        names = {f["name"] for f in httpx.get(f"{url}/api/challenges/{CID}/files", headers=_h(site["a"])).json()["files"]}
        assert names == set(served)
        for planted in ("k.json", "notes.json"):
            r = httpx.get(f"{url}/api/challenges/{CID}/files/{planted}", headers=_h(site["a"]))
            assert r.status_code == 404 and not _leaks(r.text, secrets, audit)
    finally:
        (pub / "k.json").unlink()
        (pub / "notes.json").unlink()
        audit_arena._public_index.cache_clear()
