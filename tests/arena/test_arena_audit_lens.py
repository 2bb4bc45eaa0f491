"""Zoo models of an audit challenge in the arena's Lens: a real tiny zoo, real SQLite, a live server with every
plugin, real Chromium.

A team follows the Lens link of the file list to /lens/challenges/{cid}/zoo/{model}, which opens the model
(looked up by name in the zoo's public index, with the manifest's task, read-only) under /lens/m/z.{cid}.{model};
the overview answers, a short trigger search returns all 10 classes and is cached for the next team;
anonymous visitors get what the downloads give them; unknown names and traversal answer 404. The session cache
and the job cap are checked on their own. (The key-material crawl in test_arena_audit.py covers these routes.)
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from arena_helpers import AUDIT_CID, audit_spec, digits_spec

from occam.arena.service import Arena

CID = AUDIT_CID
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _h(token: str | None, html: bool = False) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"} if token else {}
    if html:
        h["Accept"] = "text/html"
    return h


def _manifest(zoo: Path) -> dict:
    return json.loads((zoo / "public" / "manifest.json").read_text())


@pytest.fixture
def site(make_arena, zoo, serve):
    """A live arena (no worker: nothing is scored here) with an audit challenge, a sparse one and two teams."""
    arena: Arena = make_arena(None)
    arena.add_challenge(audit_spec(zoo))
    arena.add_challenge(digits_spec("sparse-test"))
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    server = serve(arena, worker=False)
    return {"arena": arena, "url": server.url, "a": tok_a, "b": tok_b, "admin": arena.admin_token}


def _wait(url: str, token: str, mid: str, job: dict, timeout: float = 120) -> dict:
    t0 = time.monotonic()
    while job["state"] == "running":
        assert time.monotonic() - t0 < timeout, f"trigger search still running after {timeout} s: {job}"
        time.sleep(0.1)
        r = httpx.get(f"{url}/lens/api/{mid}/triggers/{job['id']}", headers=_h(token), timeout=30)
        assert r.status_code == 200, r.text
        job = r.json()
    return job


def test_team_opens_a_zoo_model_in_the_lens(site, zoo):
    url, a, b = site["url"], site["a"], site["b"]
    manifest = _manifest(zoo)
    models = [m["name"] for m in manifest["models"]]
    # the file list links every model (and nothing else) to its Lens page; so does the API's index
    page = httpx.get(f"{url}/challenges/{CID}/files", headers=_h(a)).text
    for m in models:
        assert f'href="/lens/challenges/{CID}/zoo/{m}" class="lens"' in page, m
    assert page.count('class="lens"') == len(models)
    index = httpx.get(f"{url}/api/challenges/{CID}/files", headers=_h(a)).json()["files"]
    lens = {f["name"]: f.get("lens") for f in index}
    assert lens["manifest.json"] is None and lens["labelled.json"] is None
    assert {lens[m["file"]] for m in manifest["models"]} == {f"/lens/challenges/{CID}/zoo/{m}" for m in models}
    # the challenge page's download section points there too (for teams; anonymous visitors are asked to log in)
    assert 'id="zoo-lens"' in httpx.get(f"{url}/challenges/{CID}", headers=_h(a)).text
    assert 'id="zoo-lens"' not in httpx.get(f"{url}/challenges/{CID}").text

    name = models[0]
    mid = f"z.{CID}.{name}"
    r = httpx.get(f"{url}/lens/challenges/{CID}/zoo/{name}", headers=_h(a, html=True))
    assert r.status_code == 303 and r.headers["location"] == f"/lens/m/{mid}"
    r = httpx.get(f"{url}/lens/m/{mid}", headers=_h(a, html=True), timeout=60)
    assert r.status_code == 200 and f"Lens · {name}" in r.text and "task digits" in r.text
    assert 'id="view-triggers"' in r.text and 'id="ed-read-only"' in r.text
    ov = httpx.get(f"{url}/lens/api/{mid}/overview", headers=_h(a), timeout=60)
    assert ov.status_code == 200, ov.text
    ov = ov.json()
    assert ov["info"]["task"] == manifest["task"] == "digits" and ov["info"]["num_classes"] == 10
    assert ov["metrics"]["nnz"] > 0 and 0.5 < ov["metrics"]["accuracy"] <= 1
    assert "triggers" in [v["name"] for v in ov["views"]]
    # read-only: every team shares the session, so no team's edits reach another
    w = httpx.get(f"{url}/lens/api/{mid}/weights", headers=_h(b)).json()["weights"][0]["name"]
    for path, body in (("edit", {"name": w, "index": 0, "value": 0.0}), ("undo", None), ("sync", None), ("reset", None)):
        r = httpx.post(f"{url}/lens/api/{mid}/{path}", headers=_h(b), json=body)
        assert r.status_code == 409 and r.json()["code"] == "read_only" and "occam lens" in r.json()["fix"], r.text
    # the admin sees the same
    assert httpx.get(f"{url}/lens/api/{mid}/overview", headers=_h(site["admin"])).json()["hash"] == ov["hash"]


def test_triggers_run_on_the_server_and_are_cached_for_everyone(site, zoo):
    url, a, b = site["url"], site["a"], site["b"]
    name = _manifest(zoo)["models"][1]["name"]
    mid = f"z.{CID}.{name}"
    t0 = time.monotonic()
    r = httpx.post(f"{url}/lens/api/{mid}/triggers", headers=_h(a), json={"steps": 20, "images": 10}, timeout=60)
    assert r.status_code == 200, r.text
    job = _wait(url, a, mid, r.json())
    seconds = time.monotonic() - t0
    assert job["state"] == "done" and not job["cached"], job
    res = job["result"]
    assert [c["class"] for c in res["classes"]] == list(range(10))
    assert all(c["mask_src"].startswith("data:image/png;base64,") for c in res["classes"])
    assert 0 <= res["smallest_class"] < 10 and isinstance(res["flagged"], bool)
    # another team asks for the same search: the finished job answers at once
    r = httpx.post(f"{url}/lens/api/{mid}/triggers", headers=_h(b), json={"steps": 20, "images": 10})
    again = r.json()
    assert r.status_code == 200 and again["cached"] and again["id"] == job["id"] and again["result"] == res
    assert seconds < 120
    # bad input is refused before anything starts
    r = httpx.post(f"{url}/lens/api/{mid}/triggers", headers=_h(a), json={"steps": 0})
    assert r.status_code == 400 and "steps must be between" in r.json()["error"]


def test_anonymous_unknown_names_and_traversal(site, zoo):
    url, a = site["url"], site["a"]
    name = _manifest(zoo)["models"][0]["name"]
    mid = f"z.{CID}.{name}"
    # anonymous: the answers the downloads give (401 for API calls, the login page for pages)
    assert httpx.get(f"{url}/api/challenges/{CID}/files").status_code == 401
    for path in (f"/lens/api/{mid}/overview", f"/lens/challenges/{CID}/zoo/{name}", f"/lens/m/{mid}"):
        r = httpx.get(url + path)
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", (path, r.text)
    r = httpx.post(f"{url}/lens/api/{mid}/triggers", json={"steps": 20, "images": 10})
    assert r.status_code == 401
    for path in (f"/challenges/{CID}/files", f"/lens/challenges/{CID}/zoo/{name}", f"/lens/m/{mid}"):
        r = httpx.get(url + path, headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}", (path, r.status_code)
    # unknown names, other files of the zoo, traversal, other challenges: 404 for teams and the admin
    bad = ["model_9999", "manifest", "labelled", "key", "models", f"{name}.onnx", f"models%2F{name}", "..", ".",
           "%2e%2e", "..%2fprivate_key%2fkey", "..%5cprivate_key%5ckey", f"{name}%00", f".{name}", "private_key",
           f"{name.upper()}", f" {name}"]
    for who in (a, site["admin"]):
        for m in bad:
            for path in (f"/lens/challenges/{CID}/zoo/{m}", f"/lens/api/z.{CID}.{m}/overview"):
                r = httpx.get(url + path, headers=_h(who))
                assert r.status_code == 404, (path, r.status_code, r.text[:200])
                assert "private_key" not in r.text and str(zoo) not in r.text
        for path in (f"/lens/challenges/sparse-test/zoo/{name}", f"/lens/challenges/nope/zoo/{name}",
                     f"/lens/api/z.sparse-test.{name}/overview", f"/lens/api/z.nope.{name}/overview",
                     f"/lens/api/z.{CID}/overview", f"/lens/api/z..{name}/overview", "/lens/api/z/overview"):
            r = httpx.get(url + path, headers=_h(who))
            assert r.status_code == 404, (path, r.status_code, r.text[:200])
    # raw paths (no client-side normalization) reach no file either
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    for raw in (f"/lens/challenges/{CID}/zoo/../../../api/challenges/{CID}/files/../private_key/key.json",
                f"/lens/challenges/{CID}/zoo/models/{name}.onnx", f"/lens/challenges/{CID}/zoo/../private_key/key.json",
                f"/lens/api/z.{CID}.../private_key/key.json/overview", f"/lens/challenges/{CID}/zoo/%2e%2e%2fkey.json"):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("GET", raw, headers=_h(a))
            resp = conn.getresponse()
            body = resp.read().decode("latin-1")
        finally:
            conn.close()
        assert resp.status == 404, (raw, resp.status, body[:200])
        assert '"trojaned"' not in body and str(zoo) not in body


def test_session_cache_keeps_busy_sessions_and_drops_the_oldest(zoo):
    from occam.lens.model import LensModel
    from occam.lens.triggers import TriggerJob
    from occam.lens.views import LensSession
    from occam.tasks import get_task
    from occam.web.lens_routes import SessionCache

    paths = sorted((zoo / "public" / "models").glob("*.onnx"))[:4]
    opened: list[str] = []

    def opener(p: Path):
        def open_() -> LensSession:
            opened.append(p.stem)
            return LensSession(LensModel(p.read_bytes(), get_task("digits"), name=p.stem))
        return open_

    cache = SessionCache(2)
    s0 = cache.get("0", opener(paths[0]))
    assert cache.get("0", opener(paths[0])) is s0 and opened == [paths[0].stem]  # cached
    s0.trigger_jobs["j"] = TriggerJob("j", "k", 1, 1)  # a search still running: s0 stays open
    cache.get("1", opener(paths[1]))
    cache.get("2", opener(paths[2]))
    assert cache.keys() == ["0", "2"]  # "1" was the oldest idle one
    s0.trigger_jobs["j"].state = "done"
    cache.get("3", opener(paths[3]))
    assert cache.keys() == ["2", "3"] and len(cache) == 2
    assert cache.get("0", opener(paths[0])) is not s0 and opened.count(paths[0].stem) == 2  # reopened


def test_job_gate_caps_running_jobs_per_team_and_in_all():
    from occam.arena.service import Refused
    from occam.lens.triggers import TriggerJob
    from occam.web.lens_routes import ArenaJobGate

    gate = ArenaJobGate(per_owner=1, total=2)

    def new(job: TriggerJob):
        def start(admit):
            admit()
            return job
        return start

    def reuse(job: TriggerJob):
        return lambda admit: job

    a1 = gate("team:1", new(TriggerJob("a1", "k1", 1, 1)))
    with pytest.raises(Refused, match="at most 1 per team") as info:
        gate("team:1", new(TriggerJob("a2", "k2", 1, 1)))
    assert info.value.status == 429
    assert gate("team:1", reuse(a1)) is a1  # a running job is reused without a slot
    gate("team:2", new(TriggerJob("b1", "k3", 1, 1)))
    with pytest.raises(Refused, match="already runs 2 Lens jobs"):
        gate("admin", new(TriggerJob("c1", "k4", 1, 1)))
    a1.state = "done"
    assert gate("team:1", new(TriggerJob("a3", "k5", 1, 1))).id == "a3"


@pytest.mark.browser
def test_zoo_model_lens_page_in_chromium(site, zoo):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh installs it)")
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import sync_playwright

    url = site["url"]
    name = _manifest(zoo)["models"][2]["name"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = b.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/login")
            page.fill("input[name=token]", site["a"])
            page.click("#login-button")
            page.goto(f"{url}/challenges/{CID}/files")
            page.click(f"a.lens[href='/lens/challenges/{CID}/zoo/{name}']")
            page.wait_for_url(f"**/lens/m/z.{CID}.{name}")
            page.wait_for_selector("body[data-ready='1']", timeout=90_000)
            assert page.locator("#view-triggers").is_visible()
            page.fill("#trg-steps", "20")
            page.fill("#trg-images", "10")
            page.click("#trg-go")
            page.wait_for_function("document.querySelector('#trg-status').innerText.startsWith('done')",
                                   timeout=120_000)
            assert page.locator("#trg-table tr.trg-row").count() == 10
            assert not errors, errors
        finally:
            b.close()
