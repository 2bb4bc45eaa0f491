"""Browser slider latency: drag the weight slider → the new val loss on screen, over loopback.

LeNet-5 (untrained; the metric is speed) on Fashion-MNIST; the page's editor evaluates on the
5,000 val images. Chromium (Playwright) steps the slider with real input events; each sample is
the time from the input event to the metrics line (loss, accuracy, nnz, score) being
rewritten on screen (performance.now() in the page).

    .venv/bin/python benchmarks/lens_browser.py [--quick]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import numpy as np

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

JS = """async ([n]) => {
  // a sample ends when the editor's metrics line (val loss, accuracy, nnz, score) is rewritten
  const s = document.getElementById('ed-slider'), out = document.getElementById('ed-loss').parentElement;
  const times = [];
  for (let k = 0; k < n; k++) {
    const lo = +s.min, hi = +s.max;
    const v = lo + (hi - lo) * (0.05 + 0.9 * Math.random());
    const t0 = performance.now();
    const done = new Promise((res) => {
      const ob = new MutationObserver(() => { ob.disconnect(); res(); });
      ob.observe(out, {childList: true, characterData: true, subtree: true});
      setTimeout(() => { ob.disconnect(); res(); }, 5000);
    });
    s.value = v; s.dispatchEvent(new Event('input'));
    await done;
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  return times;
}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--task", default="fashion-mnist")
    args = ap.parse_args()
    import torch
    import uvicorn
    from playwright.sync_api import sync_playwright

    from occam.lens.model import open_model
    from occam.lens.views import LensSession
    from occam.models import build_model
    from occam.tasks import get_task
    from occam.web.lens_routes import create_app

    torch.set_num_threads(1)
    task = get_task(args.task)
    torch.manual_seed(0)
    session = LensSession(open_model(build_model("lenet5", task.input_shape, task.num_classes), task))  # one val set: all 5,000
    session.editor  # noqa: B018  (build the cache before timing)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(session), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    while not srv.started:
        time.sleep(0.05)
    n = 40 if args.quick else 200
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = b.new_page(viewport={"width": 1500, "height": 1000})
        page.on("pageerror", lambda e: print("# page error:", e, flush=True))
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/lens/m/{session.id}")
        print("# page loading", flush=True)
        page.wait_for_selector("body[data-ready='1']", timeout=300_000)  # the overview on screen: the page is usable
        usable = time.perf_counter() - t0
        page.evaluate("lensLoadAll()")  # panels are lazy: load them all so that nothing else computes while timing
        page.wait_for_selector("body[data-all='1']", timeout=300_000)
        everything = time.perf_counter() - t0
        page.wait_for_selector("#ed-grid td", timeout=300_000)
        page.select_option("#ed-weight", "fc1.weight")
        page.wait_for_timeout(500)
        page.click("#ed-grid td >> nth=7")
        page.evaluate(JS, [5])  # warm-up
        times = page.evaluate(JS, [n])
        b.close()
    srv.should_exit = True
    print(f"# {n} slider steps on fc1.weight, {len(session.editor.y)} val images; "
          f"median {np.median(times):.1f} ms, max {max(times):.1f} ms")
    print(f"BENCH lens_browser_drag_p95 {np.percentile(times, 95):.1f} ms")
    print(f"BENCH lens_browser_page_usable {usable:.2f} s (open to the overview on screen; other panels lazy)")
    print(f"BENCH lens_browser_page_all_panels {everything:.2f} s (every panel computed at its defaults)")


if __name__ == "__main__":
    main()
