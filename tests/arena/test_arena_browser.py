"""Real Chromium through Playwright: a team uploads in the browser and sees itself ranked (live for others),
another team never sees that submission, the admin exports CSV.

Set OCCAM_DOC_SCREENSHOTS=1 to refresh docs/img/arena_*.png.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from arena_helpers import digits_spec

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOC_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (scripts/install-system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser, url: str, token: str):
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto(f"{url}/login")
    page.fill("#token", token)
    page.click("#login-button")
    page.wait_for_load_state()
    return ctx, page


def _shot(page, name: str) -> None:
    if os.environ.get("OCCAM_DOC_SCREENSHOTS"):
        DOC_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMG / f"arena_{name}.png"), full_page=True)


def test_browser_upload_rank_isolation_and_export(browser, make_arena, live, models):
    arena = make_arena(None)
    arena.add_challenge(digits_spec(title="Digits, sparse track"))
    _, tok_a = arena.add_team("alpha")
    _, tok_b = arena.add_team("bravo")
    url = live(arena)
    # bravo watches the (empty) leaderboard
    ctx_b, page_b = _login(browser, url, tok_b)
    assert page_b.url.endswith("/team")
    page_b.goto(f"{url}/challenges/digits-test")
    page_b.wait_for_selector("#live-status:has-text('Live')")
    assert "No scored submission yet" in page_b.inner_text("#leaderboard")
    # alpha uploads through the form and waits on its submission page
    ctx_a, page_a = _login(browser, url, tok_a)
    page_a.goto(f"{url}/challenges/digits-test")
    page_a.set_input_files("#upload-file", str(models.good_path))
    page_a.click("#upload-button")
    page_a.wait_for_url(re.compile(r".*/submissions/\d+$"))
    sid = int(page_a.url.rsplit("/", 1)[1])
    page_a.wait_for_selector("#sub-status:has-text('scored')", timeout=60_000)
    assert page_a.inner_text("#sub-score") != "–"
    _shot(page_a, "submission")
    page_a.goto(f"{url}/challenges/digits-test")
    row = page_a.locator("#leaderboard tbody tr").first
    assert row.locator("td").nth(0).inner_text() == "1" and row.locator("td").nth(1).inner_text().startswith("alpha")
    assert row.locator("a.inspect").get_attribute("href") == f"/lens/submissions/{sid}"
    if os.environ.get("OCCAM_DOC_SCREENSHOTS"):  # a fuller board for the docs
        from arena_helpers import wait_status
        from arena_models import variant

        for i, frac in enumerate((0.5, 0.8, 0.9, 0.95)):
            _, tok = arena.add_team(["charlie", "delta", "echo", "foxtrot"][i])
            v = arena.viewer(tok)
            for j, scale in enumerate((1.0, 0.5)):
                data = variant(models.good, zero_fraction=frac, scale=scale, seed=i * 2 + j)
                wait_status(arena, arena.submit(v, "digits-test", data).submission_id)
        page_a.reload()
    page_a.wait_for_selector("#pareto-acc .main-svg")
    page_a.wait_for_selector("#pareto-ce .main-svg")
    _shot(page_a, "challenge")
    page_a.goto(f"{url}/team")
    assert page_a.locator(f"tr.sub[data-id='{sid}'] a.inspect").get_attribute("href") == f"/lens/submissions/{sid}"
    _shot(page_a, "team")
    # bravo's open page got alpha through server-sent events, without a reload
    page_b.wait_for_selector("#leaderboard tbody tr[data-team='alpha']", timeout=30_000)
    assert page_b.locator("#leaderboard a.inspect").count() == 0
    # ...but none of bravo's pages or API calls show alpha's submission itself
    page_b.goto(f"{url}/team")
    assert f"/submissions/{sid}" not in page_b.content()
    resp = page_b.goto(f"{url}/submissions/{sid}")
    assert resp.status == 404 and "no submission" in page_b.inner_text("#error")
    for path in (f"/api/submissions/{sid}", f"/api/submissions/{sid}/file"):
        assert page_b.request.get(url + path).status == 404
    listing = page_b.request.get(f"{url}/api/challenges/digits-test/submissions").json()
    assert listing["submissions"] == []
    assert page_b.request.get(f"{url}/api/admin/challenges/digits-test/submissions.csv").status == 403
    # the admin exports the leaderboard as CSV from the admin page
    ctx_adm, page_adm = _login(browser, url, arena.admin_token)
    assert page_adm.url.endswith("/admin")
    _shot(page_adm, "admin")
    with page_adm.expect_download() as dl:
        page_adm.click("a.export-lb")
    text = Path(dl.value.path()).read_text()
    assert text.splitlines()[0].startswith("rank,team") and text.splitlines()[1].startswith("1,alpha,")
    for c in (ctx_a, ctx_b, ctx_adm):
        c.close()
