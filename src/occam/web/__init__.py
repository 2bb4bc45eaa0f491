"""The Arena's web layer: a FastAPI app factory, JSON API, server-rendered pages and SSE.

>>> from occam.web import create_app
>>> app = create_app(settings, extra_routers=[my_router_factory])

A router factory takes a :class:`occam.web.context.WebContext` and returns an ``APIRouter``;
tag each endpoint with :func:`occam.web.context.access` so the access-control tests cover it.
"""

from occam.web.app import ROUTER_PLUGINS, create_app
from occam.web.context import WebContext, access

__all__ = ["create_app", "WebContext", "access", "ROUTER_PLUGINS"]
