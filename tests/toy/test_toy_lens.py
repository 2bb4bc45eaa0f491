"""Toy runs in the Lens: the ``toy`` model kind, its checkpoint axis, the toy views (contract battery and live
edits), the CLI without a task, and the page in real Chromium following the checkpoint scrubber.

Set OCCAM_TOY_SCREENSHOTS=docs/img to (re)write the screenshots used by docs/toy.md.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from occam.errors import OccamError
from occam.lens.checks import check_view
from occam.lens.kinds import open_model
from occam.lens.view import run_view, views_for
from occam.toy.grok import GrokConfig, head_ablation_loss, train_grok
from occam.toy.induction import InductionConfig, train_induction
from occam.toy.lens_views import grok_phases
from occam.toy.tms import TMSConfig, train_tms

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs (seconds): a 1-layer transformer on a + b mod 11, TMS 5 → 2 ×3, induction on 4 tokens."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toy-lens")
    train_grok(GrokConfig(p=11, kind="transformer", model={"d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64},
                          steps=40, n_log_checkpoints=5, checkpoint_every=20, eval_every=5), root / "grok")
    train_tms(TMSConfig(n_instances=3, steps=50, batch=64, n_checkpoints=4), root / "tms")
    train_induction(InductionConfig(vocab=8, half=4, d_model=16, n_heads=2, steps=30, batch=8, n_checkpoints=4,
                                    eval_batch=16), root / "induction")
    return root


def test_a_run_directory_opens_as_the_toy_kind(runs):
    lm = open_model(runs / "grok")
    assert lm.kind == "toy" and lm.experiment == "grok"
    assert [c[0] for c in lm.checkpoints] == [f"step {s}" for s in lm.run.steps]
    assert lm.checkpoint == len(lm.checkpoints) - 1 and lm.step == 40
    assert lm.task.name == "a + b mod 11" and lm.n_val == int((~lm.data.train).sum())
    assert open_model(str(runs / "tms"), kind="toy").experiment == "tms"
    with pytest.raises(OccamError, match="names its own task"):
        open_model(runs / "grok", "digits", kind="toy")
    with pytest.raises(OccamError, match="out of range") as exc:
        lm.checkout(len(lm.checkpoints))
    assert "between 0 and" in exc.value.fix
    assert lm.step == 40  # a refused checkout leaves the model as it was


def test_a_checkpoint_round_trips_and_views_follow_it(runs):
    lm = open_model(runs / "grok")
    last = run_view(lm, "toy-fourier").data
    train_view = run_view(lm, "toy-training").data
    lm.checkout(0)
    saved = torch.load(runs / "grok" / lm.run.meta["checkpoints"][0]["file"], weights_only=True)
    for name, param in lm.net.state_dict().items():
        assert torch.equal(param, saved[name])
    first = run_view(lm, "toy-fourier").data
    assert first["step"] == 0 and last["step"] == 40
    assert not np.allclose(first["spectrum"], last["spectrum"])  # the view shows the checkpoint's weights
    again = run_view(lm, "toy-training").data
    assert again["step"] == 0 and train_view["step"] == 40
    assert again["current"]["test_loss"] == pytest.approx(lm.run.meta["checkpoints"][0]["metrics"]["test_loss"])


@pytest.mark.parametrize("run,views", [
    ("grok", {"toy-training", "toy-fourier", "toy-attention", "toy-ablate-frequency", "toy-ablate-head"}),
    ("tms", {"toy-training", "toy-tms"}),
    ("induction", {"toy-training", "toy-induction-attention", "toy-ablate-head"}),
])
def test_toy_views_pass_the_battery(runs, run, views):
    lm = open_model(runs / run)
    assert {v.name for v in views_for(lm)} == views  # each run gets its own views, none of the image ones
    for view in views_for(lm):
        res = check_view(view, lm)
        assert res.payload["png"].startswith("data:image/png;base64,")


def test_ablation_views_report_the_loss_with_and_without(runs):
    lm = open_model(runs / "grok")
    d = run_view(lm, "toy-ablate-head", head=1).data
    assert d["loss_ablated"] == pytest.approx(head_ablation_loss(lm.net, lm.data, 1))
    assert d["loss"] != pytest.approx(d["loss_ablated"])
    f = run_view(lm, "toy-ablate-frequency", freq=2).data
    assert len(f["per_frequency"]) == 5 and f["test_loss_ablated"] == pytest.approx(f["per_frequency"][1])
    assert f["test_loss_ablated"] != pytest.approx(f["test_loss"])
    with pytest.raises(OccamError, match="freq"):
        run_view(lm, "toy-ablate-frequency", freq=6)  # p = 11 has frequencies 1 … 5
    ind = open_model(runs / "induction")
    h = run_view(ind, "toy-ablate-head", layer=1, head=0).data
    assert h["per_head"].shape == (2, 2) and h["loss_ablated"] == h["per_head"][1, 0]


def test_grok_phases_from_hand_made_curves():
    steps = [0, 100, 200, 300, 400, 500, 600]
    train_acc = [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    test_loss = [4.0, 6.0, 8.0, 7.0, 3.0, 0.5, 0.1]
    test_acc = [0.0, 0.0, 0.0, 0.1, 0.6, 0.995, 1.0]
    assert grok_phases(steps, train_acc, test_loss, test_acc) == [
        {"name": "memorization", "start": 0, "end": 200},
        {"name": "circuit formation", "start": 200, "end": 400},
        {"name": "cleanup", "start": 400, "end": 500}]
    assert grok_phases(steps[:3], train_acc[:3], test_loss[:3], test_acc[:3]) == [
        {"name": "memorization", "start": 0, "end": 200}, {"name": "circuit formation", "start": 200, "end": 200}]


def test_cli_opens_a_run_without_a_task(runs, tmp_path):
    out = tmp_path / "tms.html"
    r = subprocess.run([sys.executable, "-m", "occam", "lens", str(runs / "tms"), "--export", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "toy-tms" in html and "Superposition" in html and "superposition (5 → 2)" in html


# ---- the page in Chromium --------------------------------------------------------------------------------
@contextlib.contextmanager
def _serve(session):
    import uvicorn

    from occam.web.lens_routes import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(session), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.time()
    while not srv.started:
        assert time.time() - t0 < 30, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        th.join(timeout=10)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_page_follows_the_checkpoint_selector(runs):
    sync_api = pytest.importorskip("playwright.sync_api")
    from occam.lens.views import LensSession

    session = LensSession(open_model(runs / "grok"))
    shots = os.environ.get("OCCAM_TOY_SCREENSHOTS")
    with _serve(session) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/lens/m/{session.id}")
            page.wait_for_selector("body[data-ready='1']", timeout=90_000)
            assert page.locator("#view-overview").count() == 0  # no image-classifier panels for a toy run
            training = "#view-toy-training .generic-out"
            assert "checkpoint at step 40" in page.inner_text(training)
            assert page.locator(f"{training} img").count() == 1
            before = page.inner_text("#view-toy-fourier .generic-out")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                page.locator("#view-toy-training").screenshot(path=str(Path(shots) / "toy-training.png"), scale="css")
                page.locator("#view-toy-fourier").screenshot(path=str(Path(shots) / "toy-fourier.png"), scale="css")
            # the scrubber (a slider): every view reloads at step 0
            page.eval_on_selector("#checkpoint", "el => { el.value = '0'; el.dispatchEvent(new Event('change')); }")
            page.wait_for_function("document.body.dataset.ready === '1' && document.querySelector("
                                   "'#view-toy-training .generic-out').innerText.includes('step 0:')", timeout=90_000)
            assert "checkpoint at step 0:" in page.inner_text(training)
            assert page.inner_text("#view-toy-fourier .generic-out") != before
            assert session.lm.checkpoint == 0
            # a live edit: ablate another head, the loss shown changes with it
            sec = page.locator("#view-toy-ablate-head")
            sec.locator("[data-param=head]").fill("1")
            sec.locator(".generic-go").click()
            page.wait_for_function("document.querySelector('#view-toy-ablate-head .generic-out').innerText"
                                   ".includes('L0H1')", timeout=60_000)
            assert not errors, errors
        finally:
            browser.close()
