"""Every Lens view in real Chromium on a tiny digits model, plus the offline static export.

Set OCCAM_LENS_SCREENSHOTS=docs/img to (re)write the screenshots used by docs/lens.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWS = ["overview", "units", "featvis", "readouts", "attribution", "adversarial", "editor", "pruning", "steering",
         "sae", "clusters"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def server(lenet_digits, serve_lens):
    from occam.lens.model import open_model
    from occam.lens.views import LensSession

    session = LensSession(open_model(lenet_digits, "digits", name="lenet5-digits"))
    with serve_lens(session) as url:
        yield session, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _shot(page, view: str) -> None:
    out = os.environ.get("OCCAM_LENS_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.locator(f"#view-{view}").screenshot(path=str(Path(out) / f"lens_{view}.png"), scale="css")


def _load_all(page, timeout: int = 180_000) -> None:
    """Panels compute lazily (when scrolled into view): load every one, as a reader scrolling through would."""
    page.evaluate("lensLoadAll()")
    page.wait_for_selector("body[data-all='1']", timeout=timeout)


def _drag(page, selector: str, frac: float) -> None:
    box = page.locator(selector).bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * frac, y, steps=6)
    page.mouse.up()


def test_every_view_live(server, browser):
    session, base = server
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/lens/m/{session.id}")
    page.wait_for_selector("body[data-ready='1']", timeout=90_000)
    _load_all(page)
    for v in VIEWS:
        assert page.locator(f"#view-{v}").is_visible()
    # overview
    assert "accuracy" in page.inner_text("#ov-metrics")
    assert page.locator("#ov-graph .node").count() >= 10
    assert page.locator("#ov-confusion .main-svg").count() >= 1
    _shot(page, "overview")
    # units: pick a conv channel, follow its stable URL
    page.select_option("#unit-layer", "relu")
    page.fill("#unit-index", "2")
    page.click("#unit-go")
    page.wait_for_function("document.querySelector('#unit-detail').innerText.includes('relu[2]')")
    assert page.locator("#unit-detail img").count() == 12
    href = page.get_attribute("#unit-link", "href")
    assert href == f"/lens/m/{session.id}/units/relu/2"
    _shot(page, "units")
    # feature visualization of a class logit
    page.select_option("#fv-kind", "cls")
    page.fill("#fv-index", "3")
    page.click("#fv-go")
    page.wait_for_function("document.querySelector('#fv-out').innerText.includes('class 3')", timeout=60_000)
    _shot(page, "featvis")
    # readouts
    page.click("#ro-go")
    page.wait_for_selector("#ro-table table", timeout=90_000)
    assert page.locator("#ro-table tr").count() == len(session.lm.layers) + 1
    _shot(page, "readouts")
    # attribution
    page.select_option("#attr-index", "3")
    page.click("#attr-go")
    page.wait_for_function("document.querySelectorAll('#attr-out img').length === 4")
    _shot(page, "attribution")
    # adversarial: PGD, then paint
    page.select_option("#adv-method", "pgd")
    page.click("#adv-go")
    page.wait_for_function("document.querySelector('#adv-out').innerText.includes('pgd') || "
                           "document.querySelectorAll('#adv-out img').length === 3")
    page.wait_for_selector("#paint-class")
    box = page.locator("#paint").bounding_box()
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    for k in range(8):
        page.mouse.move(box["x"] + 10 + k * 18, box["y"] + 10 + k * 18, steps=2)
    page.mouse.up()
    page.wait_for_timeout(300)
    assert page.locator("#paint-class").count() == 1
    _shot(page, "adversarial")
    # weight editor: a slider drag changes the displayed loss; zero; undo
    page.select_option("#ed-weight", "conv1.weight")
    page.wait_for_selector("#ed-grid td")
    before = page.inner_text("#ed-loss")
    page.click("#ed-grid td >> nth=12")
    _drag(page, "#ed-slider", 0.95)
    page.wait_for_function(f"document.querySelector('#ed-loss').innerText !== '{before}'")
    assert page.inner_text("#ed-hist") != "0"
    nnz_before = int(page.inner_text("#ed-nnz"))
    page.click("#ed-zero")
    page.wait_for_function(f"+document.querySelector('#ed-nnz').innerText === {nnz_before - 1}")
    _shot(page, "editor")
    page.click("#ed-reset")
    page.wait_for_function(f"document.querySelector('#ed-loss').innerText === '{before}'")
    # pruning
    _drag(page, "#pr-slider", 0.6)
    page.wait_for_function("document.querySelector('#pr-out').innerText.includes('removed') && "
                           "!document.querySelector('#pr-out').innerText.includes('removed 0 ')")
    _shot(page, "pruning")
    # steering
    page.select_option("#st-layer", "relu_2")
    _drag(page, "#st-slider", 0.95)
    page.wait_for_function("document.querySelector('#st-val').innerText !== '0'")
    page.wait_for_timeout(300)
    _shot(page, "steering")
    # SAE
    page.select_option("#sae-layer", "relu_2")
    page.fill("#sae-steps", "60")
    page.click("#sae-go")
    page.wait_for_function("document.querySelector('#sae-status').innerText === 'done'", timeout=60_000)
    assert "spliced in" in page.inner_text("#sae-out")
    _shot(page, "sae")
    # clusters
    page.select_option("#cl-layer", "relu_2")
    page.click("#cl-go")
    page.wait_for_function("document.querySelector('#cl-out').innerText.includes('responds to')")
    _shot(page, "clusters")
    # the stable unit URL opens the page focused on that unit
    page.goto(base + href)
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    assert "relu[2]" in page.inner_text("#unit-detail")
    assert not errors, errors
    page.close()


def test_static_export_offline(server, browser, tmp_path):
    from occam.web.lens_routes import export_html

    session, _ = server
    out = export_html(session, tmp_path / "lens.html")
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_offline(True)
    requested: list[str] = []

    def block(route):
        if route.request.url.startswith("file://") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    ctx.route("**/*", block)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    _load_all(page, 60_000)
    assert "accuracy" in page.inner_text("#ov-metrics")
    assert page.locator("#ov-confusion .main-svg").count() >= 1  # plotly inlined
    assert page.locator("#unit-detail img").count() == 12
    assert page.locator("#fv-out img").count() == 1
    assert page.locator("#ro-table tr").count() > 2
    assert page.locator("#attr-out img").count() == 4
    assert page.locator("#adv-out img").count() == 3
    assert page.locator("#ed-grid td").count() > 0
    assert "removed" in page.inner_text("#pr-out")
    assert "val loss" in page.inner_text("#st-out")
    assert "spliced in" in page.inner_text("#sae-out")
    assert "responds to" in page.inner_text("#cl-out")
    assert page.locator("#trg-table tr.trg-row").count() == 10  # triggers precomputed at the page's defaults
    _drag(page, "#pr-slider", 0.5)  # snaps to a precomputed threshold
    page.wait_for_timeout(200)
    assert "removed" in page.inner_text("#pr-out")
    assert not errors, errors
    assert not requested, requested
    ctx.close()


def test_a_registered_view_gets_a_panel(server, browser, tmp_path):
    """A view registered from outside (the documented example) shows on the live page and in the export."""
    import importlib.util
    import sys

    from occam.lens.views import VIEWS, register_view
    from occam.web.lens_routes import export_html

    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "weight_norms_view.py"
    spec = importlib.util.spec_from_file_location("weight_norms_view", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["weight_norms_view"] = mod
    spec.loader.exec_module(mod)
    register_view(mod.WeightNorms)
    session, base = server
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lens/m/{session.id}")
        page.wait_for_selector("body[data-ready='1']", timeout=90_000)
        _load_all(page)
        assert f"same {session.lm.n_val} validation examples" in page.inner_text("#n-val")
        assert page.locator("#view-weight-norms .generic-out table tr").count() == 1 + len(
            [n for n in session.lm.module.weight_names if session.lm.module.weight(n).numel() > 1])
        page.select_option("#view-weight-norms select[data-param='order']", "asc")
        page.fill("#view-weight-norms input[data-param='p']", "1")
        page.click("#view-weight-norms .generic-go")
        page.wait_for_function("document.querySelector('#view-weight-norms .generic-out').innerText.includes('(L1)')")
        page.fill("#view-weight-norms input[data-param='p']", "99")
        page.click("#view-weight-norms .generic-go")
        page.wait_for_function("document.querySelector('#view-weight-norms .generic-out').innerText"
                               ".includes('must be between 0.5 and 10')")
        assert not errors, errors
        page.close()
        out = export_html(session, tmp_path / "lens.html")
        ctx = browser.new_context()
        ctx.set_offline(True)
        p2 = ctx.new_page()
        p2.goto(out.as_uri())
        p2.wait_for_selector("body[data-ready='1']", timeout=60_000)
        _load_all(p2, 60_000)
        assert "(L2)" in p2.inner_text("#view-weight-norms .generic-out")
        ctx.close()
    finally:
        VIEWS.pop("weight-norms", None)
