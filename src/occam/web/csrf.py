"""Cross-site request forgery: a state-changing request must come from the arena's own pages, or carry a token header.

Browsers attach the session cookie to any request to the arena's host, including forms auto-submitted by a page on
*another port of the same host* (SameSite cookies stop other sites, not other origins of the same site). So every
POST/PUT/PATCH/DELETE that would be authenticated by the cookie must show that it comes from the arena's own origin:

- ``Sec-Fetch-Site: same-origin`` (or ``none``, a request the user made directly) when the browser sends it;
- otherwise an ``Origin`` (or, failing that, ``Referer``) equal to the arena's origin.

Requests that authenticate with the ``Authorization: Bearer`` or ``X-Occam-Token`` header are not forgeable (a page
cannot make a browser add them cross-origin without CORS, which the arena does not grant), so they pass: the CLI,
scripts and ``curl`` work as before. Login itself is protected too: a forged login would plant a token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import JSONResponse

__all__ = ["csrf_problem", "CSRFGuard"]

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _origin_of(url: str) -> str | None:
    try:
        p = urlsplit(url)
    except ValueError:
        return None
    if not p.scheme or not p.netloc:
        return None
    port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    return f"{p.scheme}://{(p.hostname or '').lower()}:{port}"


def csrf_problem(method: str, headers: dict[str, str], own_origin: str, extra_origins: Iterable[str] = ()) -> str | None:
    """Why this request looks forged, or None. ``headers``: lower-case names."""
    if method.upper() not in UNSAFE:
        return None
    if headers.get("authorization", "").lower().startswith("bearer ") or headers.get("x-occam-token"):
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
        return f"the request came from another origin (Sec-Fetch-Site: {site})"
    allowed = {o for o in (_origin_of(own_origin), *(_origin_of(x) for x in extra_origins)) if o}
    origin = headers.get("origin")
    if origin and origin != "null":
        return None if _origin_of(origin) in allowed else f"the request came from {origin}"
    referer = headers.get("referer")
    if referer:
        return None if _origin_of(referer) in allowed else "the request came from another page's origin"
    return "the request says nothing of where it came from (no Origin, Referer or Sec-Fetch-Site)"


class CSRFGuard:
    """ASGI middleware: refuses forged state-changing requests with 403 before they reach a route."""

    def __init__(self, app: Any, trusted_origins: Iterable[str] = ()):
        self.app = app
        self.trusted = tuple(trusted_origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            scheme = scope.get("scheme", "http")
            host = headers.get("host") or "{}:{}".format(*scope.get("server", ("localhost", 80)))
            problem = csrf_problem(scope["method"], headers, f"{scheme}://{host}", self.trusted)
            if problem is not None:
                resp = JSONResponse({"error": f"refused: {problem}",
                                     "fix": "submit from the arena's own pages, or send the token in an "
                                            "'Authorization: Bearer TOKEN' header", "code": "csrf"}, status_code=403)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)
