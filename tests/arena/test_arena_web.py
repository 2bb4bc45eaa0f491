"""The HTTP layer against a live uvicorn server: access control on every route, uploads, SSE, CSV."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from arena_helpers import digits_spec, wait_status

from occam.arena.schema import Submission
from occam.web.context import ADMIN, PUBLIC, TEAM

FASTAPI_DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
SECRET_NAME = "alpha-secret-weights.onnx"


def _h(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def site(make_arena, live, models):
    """A live arena with two teams; team A has one scored submission with a recognizable file name."""
    arena = make_arena(None, max_upload_bytes=2_000_000)
    arena.add_challenge(digits_spec(daily_quota=50))
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    url = live(arena)
    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(tok_a),
                   files={"file": (SECRET_NAME, models.good)})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    wait_status(arena, sid)
    return {"arena": arena, "url": url, "a": tok_a, "b": tok_b, "admin": arena.admin_token, "sid": sid}


def _concrete(path: str, site: dict) -> str:
    a_team = site["arena"].viewer(site["a"]).team_id
    return (path.replace("{cid}", "digits-test").replace("{sid}", str(site["sid"]))
            .replace("{tid}", str(a_team)).replace("{name}", "arena.js"))


def test_every_route_checks_access(site, models):
    from fastapi.routing import APIRoute

    from occam.arena.service import Viewer
    from occam.web.app import create_app, iter_routes

    app = create_app(site["arena"].settings, arena=site["arena"], init=False, plugins=False)
    url = site["url"]
    secret_sha = site["arena"].submission(Viewer("admin"), site["sid"]).sha256
    checked = 0
    # admin routes last (they disqualify, freeze and end things)
    routes = sorted(iter_routes(app.routes), key=lambda r: ("/admin" in r[0], r[0]))
    for route_path, methods, endpoint, route in routes:
        if route_path in FASTAPI_DOCS:
            continue
        level = getattr(endpoint, "occam_access", None)
        assert level in (PUBLIC, TEAM, ADMIN), f"{route_path} has no access tag (use occam.web.access)"
        path = _concrete(route_path, site)
        for method in sorted(methods - {"HEAD"}):
            def call(token, *, method=method, path=path, route=route):
                kw: dict = {"headers": _h(token), "timeout": 30}
                if method == "POST":
                    if "submissions" in path and path.endswith("submissions") or path.endswith("/submit"):
                        kw["files"] = {"file": ("m.onnx", models.sparse)}
                    elif path == "/login":
                        kw["data"] = {"token": token or "x", "next": "/"}
                    elif isinstance(route, APIRoute) and route.body_field is not None:
                        kw["json"] = ({"name": f"t{time.monotonic_ns()}"} if path.endswith("/teams") else
                                      {"title": "Edited"} if path.endswith("/edit") else
                                      {"confirm": "digits-test", "force": True} if path.endswith("/reveal") else {})
                if path.endswith("/events"):
                    with httpx.stream(method, url + path, **kw) as resp:
                        return resp.status_code, ""
                resp = httpx.request(method, url + path, **kw)
                return resp.status_code, resp.text

            anon, _ = call(None)
            other, other_body = call(site["b"])
            admin, _ = call(site["admin"])
            where = f"{method} {route_path}"
            assert SECRET_NAME not in other_body, f"{where} leaks team A's file name"
            assert secret_sha not in other_body, f"{where} leaks team A's file hash"
            if level == PUBLIC:
                if path not in ("/login", "/logout", "/register"):  # forms a forged request must not reach (CSRF)
                    assert anon < 400 and other < 400 and admin < 400, (where, anon, other, admin)
            elif level == TEAM:
                assert anon == 401, (where, anon)
                # the admin passes authentication; acting as a team (submit, pick finals) is refused clearly
                assert admin < 400 or (admin == 403 and method == "POST"), (where, admin)
                if "{sid}" in route_path:
                    assert other == 404, (where, other)
                else:
                    assert other < 400, (where, other)
            else:
                assert (anon, other) == (401, 403), (where, anon, other)
                assert admin < 400, (where, admin)
            checked += 1
    assert checked >= 30


def test_bad_uploads_get_clear_errors_and_leave_db_consistent(site, models):
    arena, url = site["arena"], site["url"]
    arena.add_challenge(digits_spec("small", max_bytes=3000, daily_quota=50))
    cases = {
        "not-onnx": (b"PK\x03\x04 this is a zip file", "not a valid ONNX"),
        "truncated": (models.good[: len(models.good) // 2], "ONNX"),
        "too-large": (models.good, "limit"),
        "wrong-shape": (models.wrong_shape, "output"),
        "empty": (b"", "empty"),
    }
    for name, (data, needle) in cases.items():
        cid = "small" if name == "too-large" else "digits-test"
        r = httpx.post(f"{url}/api/challenges/{cid}/submissions", headers=_h(site["b"]),
                       files={"file": (f"{name}.onnx", data)})
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert not body["accepted"] and needle in body["reason"] and body["fix"], (name, body)
    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(site["b"]),
                   files={"file": ("nan.onnx", models.nan)})
    assert r.status_code == 202
    sub = wait_status(arena, r.json()["id"])
    got = httpx.get(f"{url}/api/submissions/{sub.id}", headers=_h(site["b"])).json()
    assert got["status"] == "failed" and "NaN" in got["error"] and got["fix"] and got["error_kind"] == "model"
    huge = b"\0" * (arena.settings.max_upload_bytes + 300 * 1024)
    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(site["b"]),
                   files={"file": ("huge.onnx", huge)})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(site["b"]),
                   files={"nofile": ("x", b"x")})
    assert r.status_code == 422 and "file" in r.json()["error"]
    me = httpx.get(f"{url}/api/me", headers=_h(site["b"])).json()
    assert me["quota"]["digits-test"]["used"] == 1 and me["quota"]["small"]["used"] == 0
    from sqlalchemy import select

    with arena.db.read() as s:
        rows = list(s.scalars(select(Submission).where(Submission.team_id == arena.viewer(site["b"]).team_id)))
    rejected = [x for x in rows if x.status == "rejected"]
    assert len(rejected) == 5 and all(x.sha256 is None and not x.counts_quota and x.error for x in rejected)
    assert all(x.status in ("rejected", "failed") for x in rows)
    blobs = list(arena.blobs.root.rglob("*.onnx"))
    assert len(blobs) == 2  # team A's good model and team B's NaN model; nothing from rejected uploads


def test_sse_pushes_leaderboard_updates(site, models):
    url = site["url"]
    events: list[dict] = []
    with httpx.stream("GET", f"{url}/api/challenges/digits-test/events", timeout=30) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        submitted = False
        deadline = time.monotonic() + 40
        event = None
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "leaderboard":
                events.append(json.loads(line[6:]))
                if not submitted:
                    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(site["b"]),
                                   files={"file": ("b.onnx", models.sparse)})
                    assert r.status_code == 202
                    submitted = True
                elif {e["team"] for e in events[-1]["entries"]} == {"alpha", "bravo"}:
                    break
            assert time.monotonic() < deadline, "no leaderboard update arrived"
    assert [e["team"] for e in events[0]["entries"]] == ["alpha"]
    assert len(events[-1]["entries"]) == 2


def test_csv_export_pages_and_openapi(site):
    url, admin = site["url"], site["admin"]
    r = httpx.get(f"{url}/api/admin/challenges/digits-test/leaderboard.csv", headers=_h(admin))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.strip().splitlines()
    assert lines[0].startswith("rank,team,submission_id,score") and lines[1].startswith("1,alpha,")
    r = httpx.get(f"{url}/api/admin/challenges/digits-test/submissions.csv", headers=_h(admin))
    assert SECRET_NAME in r.text
    assert httpx.get(f"{url}/api/admin/challenges/digits-test/submissions.csv", headers=_h(site["b"])).status_code == 403
    spec = httpx.get(f"{url}/openapi.json").json()
    for p in ("/api/challenges", "/api/challenges/{cid}/leaderboard", "/api/challenges/{cid}/submissions",
              "/api/submissions/{sid}"):
        assert p in spec["paths"], p
    page = httpx.get(f"{url}/challenges/digits-test").text
    assert "λ" in page and "alpha" in page and "/vendor/plotly.min.js" in page
    js = httpx.get(f"{url}/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    team_page = httpx.get(f"{url}/team", headers=_h(site["a"])).text
    assert f'/lens/submissions/{site["sid"]}' in team_page and "Quota" in team_page
    assert re.search(r"resets at \d{4}-\d\d-\d\dT00:00:00Z", team_page)


@pytest.mark.postgres
def test_submit_and_worker_on_postgres(make_arena, live, models, pg_cluster):
    arena = make_arena(pg_cluster.create_database())
    arena.add_challenge(digits_spec())
    _, tok = arena.add_team("pg-team")
    url = live(arena)
    r = httpx.post(f"{url}/api/challenges/digits-test/submissions", headers=_h(tok),
                   files={"file": ("m.onnx", models.good)})
    assert r.status_code == 202
    wait_status(arena, r.json()["id"])
    board = httpx.get(f"{url}/api/challenges/digits-test/leaderboard").json()
    assert [e["team"] for e in board["entries"]] == ["pg-team"]
    assert httpx.get(f"{url}/api/challenges/digits-test/leaderboard?board=private").status_code == 403
