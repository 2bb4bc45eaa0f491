"""A small HTTP client for contestants (``occam submit``) and scripts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from occam.errors import OccamError


def _client(server: str, token: str | None, timeout: float = 60.0):  # noqa: ANN202
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


def _raise(resp: Any) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {"error": resp.text[:300]}
    raise OccamError(f"the server answered {resp.status_code}: {body.get('error') or body.get('reason') or body}",
                     body.get("fix") or None)


def pick_challenge(server: str, token: str | None, challenge: str | None) -> str:
    if challenge:
        return challenge
    with _client(server, token) as c:
        r = c.get("/api/challenges")
        _raise(r)
        open_ = [x["id"] for x in r.json() if x["phase"] in ("running", "frozen")]
    if len(open_) == 1:
        return open_[0]
    if not open_:
        raise OccamError(f"no challenge is open on {server}", "ask the organizers when it opens")
    raise OccamError(f"{len(open_)} challenges are open: {', '.join(open_)}", "pass --challenge ID")


def submit(server: str, token: str, model: Path, *, challenge: str | None = None, wait: bool = True,
           timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
    """Upload ``model``; with ``wait``, poll until it is scored or failed. Returns the submission JSON."""
    model = Path(model)
    if not model.is_file():
        raise OccamError(f"model file {model} not found", "pass the path of an .onnx file")
    cid = pick_challenge(server, token, challenge)
    with _client(server, token, timeout=120) as c:
        with model.open("rb") as fh:
            r = c.post(f"/api/challenges/{cid}/submissions",
                       files={"file": (model.name, fh, "application/octet-stream")})
        if r.status_code == 422:
            body = r.json()
            if "reason" in body:
                raise OccamError(f"the guard refused {model.name}: {body['reason']}", body.get("fix") or None)
        _raise(r)
        sub = r.json()
        if not wait:
            return sub
        deadline = time.monotonic() + timeout
        while True:
            r = c.get(f"/api/submissions/{sub['id']}")
            _raise(r)
            got = r.json()
            if got["status"] in ("scored", "failed", "rejected"):
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(poll)
