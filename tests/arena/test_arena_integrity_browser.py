"""Real Chromium through Playwright: a page on another port of the same host cannot make a logged-in browser reveal
the private leaderboard or upload for a team (403, nothing changed); the organizer's own buttons still work (reveal
with the id typed, edit, hide, invite code); a team registers with the invite code, writes a note, sees the history."""

from __future__ import annotations

import http.server
import re
import threading

import pytest
from arena_helpers import digits_spec, wait_status
from test_arena_browser import _login, browser  # noqa: F401 - the module-scoped Chromium fixture

from occam.arena.schema import Submission

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><html><body>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe>
<form id="f1" method="post" enctype="text/plain" target="sink1" action="{arena}/api/admin/challenges/digits-test/reveal">
<input name='{{"confirm": "digits-test", "force": true, "x": "' value='"}}'></form>
<form id="f2" method="post" target="sink2" action="{arena}/api/admin/challenges/digits-test/reveal?hide=false"></form>
<script>
document.getElementById("f1").submit();
document.getElementById("f2").submit();
const fd = new FormData();
fd.append("file", new Blob([new Uint8Array({model})]), "m.onnx");
fetch("{arena}/challenges/digits-test/submit", {{method: "POST", body: fd, credentials: "include", mode: "no-cors"}})
  .finally(() => {{ document.title = "sent"; }});
fetch("{arena}/api/challenges/digits-test/submissions", {{method: "POST", body: fd, credentials: "include", mode: "no-cors"}})
  .finally(() => {{ document.body.dataset.done = "1"; }});
</script></body></html>"""


class _Attacker:
    """An HTTP server on another port of 127.0.0.1 serving one page."""

    def __init__(self, html: str):
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Attacker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_same_site_forgery_refused_and_organizer_flows_work(browser, make_arena, live, models):  # noqa: F811
    arena = make_arena(None)
    arena.add_challenge(digits_spec(title="Digits, " + "W" * 3000))
    _, tok_a = arena.add_team("alpha")
    url = live(arena)
    ctx_admin, admin = _login(browser, url, arena.admin_token)
    ctx_a, page_a = _login(browser, url, tok_a)
    assert admin.url.endswith("/admin") and page_a.url.endswith("/team")
    # a long unbroken title wraps instead of widening the page
    page_a.goto(f"{url}/challenges/digits-test")
    assert page_a.evaluate("document.documentElement.scrollWidth") <= 1300

    # the attacker's page, on another port of the same host, opened in both logged-in browsers
    html = ATTACK.format(arena=url, model=list(models.good))
    with _Attacker(html) as attacker:
        for ctx in (ctx_admin, ctx_a):
            seen: list[tuple[str, int]] = []
            ctx.on("response", lambda r, seen=seen: seen.append((r.url, r.status)) if r.url.startswith(url) else None)
            evil = ctx.new_page()
            evil.goto(attacker.url)
            evil.wait_for_selector("body[data-done='1']", state="attached", timeout=20000)
            evil.wait_for_timeout(500)
            hits = [(u, s) for u, s in seen if "/reveal" in u or "submi" in u]
            assert len(hits) >= 3, seen
            assert all(s == 403 for _, s in hits), hits
            evil.close()
    with arena.db.read() as s:
        assert s.query(Submission).count() == 0
    assert not arena.challenge("digits-test").revealed

    # the team's own page uploads; the team writes a note; the history plot shows it
    page_a.goto(f"{url}/challenges/digits-test")
    page_a.set_input_files("#upload-file", str(models.good_path))
    page_a.click("#upload-button")
    page_a.wait_for_url(re.compile(r".*/submissions/\d+$"))
    sid = int(page_a.url.rsplit("/", 1)[1])
    assert wait_status(arena, sid, {"scored", "failed"}, timeout=120).status == "scored"
    page_a.reload()
    page_a.fill("#note-text", "first try: plain linear")
    page_a.click("#note-button")
    page_a.wait_for_selector("#note-shown")
    assert page_a.inner_text("#note-shown") == "first try: plain linear"
    page_a.goto(f"{url}/challenges/digits-test")
    page_a.wait_for_selector("#history .main-svg", timeout=20000)
    assert "alpha" in page_a.inner_text("#history")

    # the organizer: reveal asks for the id (a wrong one changes nothing), edit, invite code, hide
    admin.goto(f"{url}/admin")
    answers, alerts = ["oops", "digits-test"], []

    def on_dialog(d) -> None:  # noqa: ANN001
        if d.type == "prompt":
            d.accept(answers.pop(0))
        else:
            alerts.append(d.message)
            d.dismiss()

    admin.on("dialog", on_dialog)
    admin.click("button.reveal-force")
    admin.wait_for_timeout(1000)
    assert not arena.challenge("digits-test").revealed and any("type the challenge id" in a for a in alerts), alerts
    with admin.expect_navigation():
        admin.click("button.reveal-force")
    assert arena.challenge("digits-test").revealed
    admin.click("details.edit summary")
    admin.fill("form.edit-form input[name=title]", "Digits, renamed")
    with admin.expect_navigation():
        admin.click("form.edit-form button")
    assert arena.challenge("digits-test").title == "Digits, renamed"
    admin.click("button.invite")
    admin.wait_for_selector("#invite-code")
    code = admin.inner_text("#invite-code")
    assert code.startswith("inv_")

    # a new team registers with the code, in a fresh browser, and is logged in
    ctx_new = browser.new_context()
    newcomer = ctx_new.new_page()
    newcomer.goto(f"{url}/register?challenge=digits-test")
    newcomer.fill("input[name=code]", "inv_wrong")
    newcomer.fill("input[name=name]", "Walk-ins")
    newcomer.click("#register-button")
    assert "invite code is not valid" in newcomer.inner_text("#register-error")
    newcomer.fill("input[name=code]", code)
    newcomer.click("#register-button")
    newcomer.wait_for_selector("#new-team-token")
    assert len(newcomer.inner_text("#new-team-token")) > 20
    newcomer.goto(f"{url}/team")
    assert "Digits, renamed" in newcomer.inner_text("main")
    assert "Walk-ins" in [t.name for t in arena.teams()]

    # hide: teams and anonymous visitors no longer see it
    admin.goto(f"{url}/admin")
    with admin.expect_navigation():
        admin.click("button.hide")
    assert arena.challenge("digits-test").hidden
    anon = browser.new_context().new_page()
    assert anon.goto(f"{url}/challenges/digits-test").status == 404
    assert "renamed" not in anon.goto(f"{url}/").text()
    anon.context.close()
    assert newcomer.goto(f"{url}/challenges/digits-test").status == 404
    log = admin.goto(f"{url}/admin") and admin.inner_text("#admin-log")
    for action in ("reveal", "edit challenge", "invite on", "visibility"):
        assert action in log
    assert "admin@127.0.0.1" in log
    for c in (ctx_admin, ctx_a, ctx_new):
        c.close()
