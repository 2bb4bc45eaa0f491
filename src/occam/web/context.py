"""What every router gets: the arena, the templates, and the viewer (who is asking)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.templating import Jinja2Templates

from occam.arena.config import ArenaSettings
from occam.arena.service import ANON, Arena, Refused, Viewer

COOKIE = "occam_token"
TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")

F = TypeVar("F", bound=Callable[..., Any])

# Access levels, attached to every endpoint function (tests iterate over app.routes and check them):
PUBLIC = "public"  # anyone; content is filtered by who asks (e.g. leaderboards)
TEAM = "team"      # a team (sees only its own things) or the admin; 401 otherwise
ADMIN = "admin"    # the admin token only; 401/403 otherwise


def access(level: str) -> Callable[[F], F]:
    """Tag an endpoint with its access level (``public``, ``team`` or ``admin``)."""
    if level not in (PUBLIC, TEAM, ADMIN):
        raise ValueError(level)

    def deco(fn: F) -> F:
        fn.occam_access = level  # type: ignore[attr-defined]
        return fn

    return deco


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    tok = request.headers.get("x-occam-token")
    if tok:
        return tok.strip()
    return request.cookies.get(COOKIE)


@dataclass
class WebContext:
    arena: Arena
    settings: ArenaSettings
    templates: Jinja2Templates

    def viewer(self, request: Request) -> Viewer:
        cached = getattr(request.state, "viewer", None)
        if cached is not None:
            return cached
        tok = token_of(request)
        v = self.arena.viewer(tok) if tok else ANON
        request.state.viewer = v
        return v

    def require_team(self, request: Request) -> Viewer:
        """A team or the admin; raises 401 otherwise."""
        v = self.viewer(request)
        if not (v.is_team or v.is_admin):
            raise Refused("log in first", "send 'Authorization: Bearer TOKEN' or log in at /login",
                          status=401, code="unauthenticated")
        return v

    def require_admin(self, request: Request) -> Viewer:
        v = self.viewer(request)
        if v.is_admin:
            return v
        if v.is_team:
            raise Refused("admins only", "use the admin token", status=403, code="forbidden")
        raise Refused("admins only: log in first", "use the admin token (occam arena admin-token)",
                      status=401, code="unauthenticated")

    def visible_challenges(self, request: Request) -> list[Any]:
        """The challenges this viewer may see: hidden ones only for the admin."""
        v = self.viewer(request)
        return [c for c in self.arena.challenges() if v.is_admin or not c.hidden]

    def check_challenge_visible(self, request: Request) -> None:
        """A router dependency: a route whose path names a hidden challenge answers 404 to all but the admin
        (the same answer as for a challenge that does not exist)."""
        cid = request.path_params.get("cid")
        if cid is None:
            return
        v = self.viewer(request)
        if v.is_admin:
            return
        c = self.arena._challenge_cached(str(cid))  # 404 when it does not exist; cached a second (uploads pass here)
        if c.hidden:
            raise Refused(f"no challenge {cid!r}", "see GET /api/challenges for the list", status=404, code="not_found")

    def render(self, request: Request, name: str, status_code: int = 200, **ctx: Any):  # noqa: ANN201
        ctx.setdefault("viewer", self.viewer(request))
        ctx.setdefault("site_title", self.settings.site_title)
        return self.templates.TemplateResponse(request, name, ctx, status_code=status_code)
