"""The depth views, comparison, the checkpoint scrubber and foreign models in real Chromium.

Set OCCAM_LENS_SCREENSHOTS=docs/img to (re)write the depth views' screenshots used by docs/lens.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _shot(page, view: str, name: str | None = None) -> None:
    out = os.environ.get("OCCAM_LENS_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.locator(f"#view-{view}").screenshot(path=str(Path(out) / f"lens-{name or view}.png"), scale="css")


def _open(page, view: str, timeout: int = 120_000) -> None:
    """Scroll a lazy panel into view and wait until it has computed."""
    page.locator(f"#view-{view}").scroll_into_view_if_needed()
    page.wait_for_selector(f"#view-{view}[data-loaded='1']", timeout=timeout)


def _out(page, view: str) -> str:
    return page.inner_text(f"#view-{view} .generic-out")


def _show(page, view: str, params: dict[str, str], expect: str, timeout: int = 120_000) -> None:
    for k, v in params.items():
        sel = f"#view-{view} [data-param='{k}']"
        if page.locator(sel).evaluate("e => e.tagName") == "SELECT":
            page.select_option(sel, v)
        else:
            page.fill(sel, v)
    page.click(f"#view-{view} .generic-go")
    page.wait_for_function(f"document.querySelector('#view-{view} .generic-out').innerText.includes({expect!r})",
                           timeout=timeout)


def test_depth_views_and_compare(lenet_digits, serve_lens, browser):
    from occam.lens.model import open_model
    from occam.lens.views import LensSession

    session = LensSession(open_model(lenet_digits, "digits", name="lenet5-digits"))
    with serve_lens(session) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lens/m/{session.id}")
        page.wait_for_selector("body[data-ready='1']", timeout=90_000)
        # lazy: the depth panels, far down the page, have not computed yet
        assert page.get_attribute("#view-patching", "data-loaded") is None
        assert _out(page, "patching") == ""
        # patching: a layer × position map for two pickers, and with the adversarial image as the corrupted input
        _open(page, "patching")
        assert "whole layer" in _out(page, "patching")
        assert page.locator("#view-patching .generic-out img").count() >= 4
        _show(page, "patching", {"clean": "3", "attack": "fgsm", "eps": "0.3"}, "fgsm ε=0.3 on #3")
        _shot(page, "patching")
        # attribution: eight methods, a target class
        _open(page, "attribution-methods")
        assert page.locator("#view-attribution-methods .generic-out img").count() == 9
        _show(page, "attribution-methods", {"target": "7", "method": "all"}, "explaining")
        assert "explaining 7" in _out(page, "attribution-methods").replace("\n", " ") or "7" in _out(
            page, "attribution-methods")
        _shot(page, "attribution-methods")
        # feature visualization with objectives
        _open(page, "featvis-objectives")
        _show(page, "featvis-objectives", {"objective": "class", "index": "2", "n": "3", "steps": "16"}, "objective")
        assert page.locator("#view-featvis-objectives .generic-out img").count() == 3
        _shot(page, "featvis-objectives")
        # the long ones wait for Show
        _open(page, "logit-lens")
        assert "press Show" in _out(page, "logit-lens")
        _show(page, "logit-lens", {"steps": "30", "n_train": "300", "index": "4"}, "translator quality")
        assert page.locator("#view-logit-lens table.lens-dist tr").count() == len(session.lm.layers) + 1
        _shot(page, "logit-lens")
        _open(page, "dictionary")
        _show(page, "dictionary", {"layer": "relu_1", "size": "16", "steps": "60", "target_l0": "3"}, "loss recovered")
        assert page.locator("#view-dictionary .generic-out img").count() == 8
        _shot(page, "dictionary")
        # compare: with a snapshot of these weights, nothing differs; after an edit, differences are named
        page.select_option("#compare-with", "snapshot")
        page.wait_for_selector("body[data-compare='1']", timeout=120_000)
        _show(page, "patching", {"attack": "none", "clean": "0", "corrupted": "1"}, "no differences")
        assert page.locator("#view-patching .side-by-side .side").count() == 2
        assert "no differences" in page.inner_text("#view-overview .compare-out")
        r = page.request.post(f"{base}/lens/api/{session.id}/edit",
                              data={"name": "conv1.weight", "index": 0, "value": 4.0})
        assert r.ok
        _show(page, "patching", {}, "differences;")
        assert page.locator("#view-patching .diff.changed li").count() >= 1
        _shot(page, "patching", "compare")
        page.select_option("#compare-with", "")
        page.wait_for_selector("body[data-compare='0']")
        assert not errors, errors
        page.close()


def test_checkpoint_scrubber_every_open_view_follows(lenet_digits, serve_lens, browser, tmp_path):
    from occam.lens.checks import tiny_model
    from occam.lens.model import open_model
    from occam.lens.views import LensSession

    (tmp_path / "epoch1.onnx").write_bytes(tiny_model().to_onnx_bytes())  # untrained
    (tmp_path / "epoch2.onnx").write_bytes(lenet_digits)
    session = LensSession(open_model(tmp_path, "digits", name="run"))
    assert [c[0] for c in session.lm.checkpoints] == ["epoch1", "epoch2"]
    with serve_lens(session) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lens/m/{session.id}")
        page.wait_for_selector("body[data-ready='1']", timeout=90_000)
        assert page.get_attribute("#checkpoint", "type") == "range"
        assert page.inner_text("#checkpoint-label") == "epoch2"
        _open(page, "units")
        _open(page, "patching")
        loss = page.inner_text("#ov-metrics")
        units = page.inner_text("#unit-detail")
        patch = _out(page, "patching")
        page.evaluate("const s = document.querySelector('#checkpoint'); s.value = 0; s.dispatchEvent(new Event('input'));"
                      "s.dispatchEvent(new Event('change'))")
        page.wait_for_selector("body[data-checkpoint='0']", timeout=120_000)
        assert page.inner_text("#checkpoint-label") == "epoch1"
        assert page.inner_text("#ov-metrics") != loss
        assert page.inner_text("#unit-detail") != units  # open views re-requested their data
        assert _out(page, "patching") != patch
        assert session.lm.checkpoint == 0
        assert not errors, errors
        page.close()


@pytest.mark.parametrize("which", ["legacy", "helper", "residual"])
def test_foreign_models_open_and_every_view_works(foreign_models, serve_lens, browser, which):
    from occam.lens.model import open_model
    from occam.lens.views import LensSession

    session = LensSession(open_model(foreign_models[which], "digits", name=which))
    lm = session.lm
    with serve_lens(session) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lens/m/{session.id}")
        page.wait_for_selector("body[data-ready='1']", timeout=90_000)
        page.evaluate("lensLoadAll()")
        page.wait_for_selector("body[data-all='1']", timeout=240_000)
        failed = page.eval_on_selector_all(".view .err", "es => es.map(e => e.closest('section').id + ': ' + e.innerText)")
        assert not failed, failed
        # every unit link: layer names with "/" and "::" are encoded and open the page focused on that unit
        odd = [x.name for x in lm.layers if "/" in x.name or ":" in x.name]
        assert odd
        for name in odd[:3]:
            page.select_option("#unit-layer", name)
            page.fill("#unit-index", "0")
            page.click("#unit-go")
            page.wait_for_function(f"document.querySelector('#unit-detail').innerText.includes({name + '[0]'!r})")
            href = page.get_attribute("#unit-link", "href")
            assert href == f"/lens/m/{session.id}/units/{quote(name, safe='')}/0"
        page.goto(base + href)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        last = odd[min(2, len(odd) - 1)] + "[0]"
        page.wait_for_function(f"document.querySelector('#unit-detail').innerText.includes({last!r})")
        # a weight edit with the slider (on the head, which every image reaches) updates the loss
        page.evaluate("lensLoadAll()")
        page.wait_for_selector("#ed-grid td", timeout=60_000)
        last_weight = page.eval_on_selector("#ed-weight", "s => s.options[s.options.length - 1].value")  # the head
        page.select_option("#ed-weight", last_weight)
        page.wait_for_function(f"document.querySelector('#ed-sel').innerText.startsWith({last_weight!r})")
        before = page.inner_text("#ed-loss")
        page.click("#ed-grid td >> nth=0")
        box = page.locator("#ed-slider").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.98, box["y"] + box["height"] / 2, steps=6)
        page.mouse.up()
        page.wait_for_function(f"document.querySelector('#ed-loss').innerText !== {before!r}", timeout=30_000)
        assert not errors, errors
        page.close()
