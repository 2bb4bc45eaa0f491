"""The audit track's downloads: the public part of a challenge's zoo, for teams (an arena router plugin).

``occam.web.app.ROUTER_PLUGINS`` includes :func:`create_router` whenever this module imports. Routes
(team token or admin token; anonymous visitors get 401, or a login redirect for pages):

- ``GET /api/challenges/{cid}/files``: the index (name, size, SHA-256, URL) of every servable file;
- ``GET /api/challenges/{cid}/files/{name}``: one file, by its exact name in that index;
- ``GET /api/challenges/{cid}/zoo.zip``: all of them in one zip (unzips to ``public/``);
- ``GET /challenges/{cid}/files``: the same index as a page.

Only :func:`occam.audit.arena.public_index` entries are ever served (that is
:func:`occam.audit.zoo.public_files`: regular files under ``ZOO/public``, no symlinks, hidden files or
key files). A requested name is looked up in that index as a string and never joined to a path, so
``..``, absolute paths and encoded variants cannot reach anything else. This process never reads the
key and never shows the zoo's location, the key path or which models form the public half.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from occam.arena.models import Challenge
from occam.arena.service import Refused
from occam.audit.arena import ServedFile, public_index
from occam.errors import OccamError

log = logging.getLogger("occam.audit.web")

_ZIP_LOCK = threading.Lock()
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same zoo gives the same zip bytes


def _media_type(name: str) -> str:
    return "application/json" if name.endswith(".json") else "application/octet-stream"


def build_zip(files: list[ServedFile], dest: Path) -> Path:
    """Write ``files`` into ``dest`` as ``public/NAME`` (atomic; checks each file's SHA-256 against the index)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in files:
                data = f.path.read_bytes()
                if hashlib.sha256(data).hexdigest() != f.sha256:
                    raise OccamError(f"{f.path} changed since the zoo was indexed",
                                     "organizers: restore the registered zoo, then restart the server")
                info = zipfile.ZipInfo(f"public/{f.name}", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def create_router(ctx: Any) -> APIRouter:
    from occam.web.context import TEAM, access
    from occam.web.serialize import challenge_json

    r = APIRouter(tags=["audit"])
    arena = ctx.arena

    def served(request: Request, cid: str) -> tuple[Challenge, list[ServedFile]]:
        v = ctx.require_team(request)
        c = arena.challenge(cid)
        if c.track != "audit" or not c.audit_zoo_dir or not c.audit_zoo_id:
            raise Refused(f"challenge {cid!r} has no zoo to download (it is not an audit challenge)",
                          "see GET /api/challenges for the audit challenges", status=404, code="not_found")
        try:
            return c, public_index(c.audit_zoo_dir, c.audit_zoo_id)
        except OccamError as exc:
            log.error("challenge %s: the zoo cannot be served: %s", cid, exc.problem)
            detail = f": {exc.problem}" if v.is_admin else ""  # teams never see server paths
            raise Refused(f"the zoo of challenge {cid!r} is unavailable on the server{detail}",
                          exc.fix if v.is_admin else "tell the organizers", status=503, code="zoo_unavailable") from exc

    def entry(cid: str, f: ServedFile) -> dict[str, Any]:
        return {"name": f.name, "size": f.size, "sha256": f.sha256, "url": f"/api/challenges/{cid}/files/{f.name}"}

    @r.get("/api/challenges/{cid}/files", summary="The audit zoo's public files (index with sizes and SHA-256)")
    @access(TEAM)
    def list_files(request: Request, cid: str) -> dict[str, Any]:
        c, files = served(request, cid)
        return {"challenge": c.id, "zoo_id": c.audit_zoo_id, "files": [entry(c.id, f) for f in files],
                "zip": f"/api/challenges/{c.id}/zoo.zip"}

    @r.get("/api/challenges/{cid}/files/{name:path}", summary="Download one public file of the audit zoo")
    @access(TEAM)
    def get_file(request: Request, cid: str, name: str):
        c, files = served(request, cid)
        f = {x.name: x for x in files}.get(name)  # an exact string match: never a path join on user input
        if f is None:
            raise Refused(f"no such file in the zoo of challenge {c.id!r}",
                          f"see GET /api/challenges/{c.id}/files for the list", status=404, code="not_found")
        pub = (Path(c.audit_zoo_dir) / "public").resolve()
        p = f.path
        if p.is_symlink() or not p.is_file() or pub not in p.resolve().parents or p.stat().st_size != f.size:
            log.error("challenge %s: %s changed since the zoo was indexed; refused", c.id, p)
            raise Refused(f"the zoo of challenge {c.id!r} changed on the server", "tell the organizers",
                          status=503, code="zoo_unavailable")
        return FileResponse(p, media_type=_media_type(f.name), filename=f.name.rsplit("/", 1)[-1],
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/api/challenges/{cid}/zoo.zip", summary="The audit zoo's public part as one zip (unzips to public/)")
    @access(TEAM)
    def get_zip(request: Request, cid: str):
        c, files = served(request, cid)
        dest = Path(ctx.settings.home) / "audit-downloads" / f"{c.id}-{c.audit_zoo_id}.zip"
        with _ZIP_LOCK:
            if not dest.is_file():
                try:
                    build_zip(files, dest)
                except (OccamError, OSError) as exc:  # a changed zoo, a full disk, an unwritable home
                    log.error("challenge %s: cannot build %s: %s", c.id, dest, exc)
                    raise Refused(f"the zoo of challenge {c.id!r} cannot be zipped on the server right now",
                                  "download the files one by one, and tell the organizers", status=503,
                                  code="zoo_unavailable") from exc
        return FileResponse(dest, media_type="application/zip", filename=f"{c.id}-zoo-{c.audit_zoo_id}.zip",
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/challenges/{cid}/files", response_class=HTMLResponse, include_in_schema=False)
    @access(TEAM)
    def files_page(request: Request, cid: str):
        c, files = served(request, cid)
        return ctx.render(request, "audit_files.html", c=challenge_json(c), files=[entry(c.id, f) for f in files],
                          total=sum(f.size for f in files))

    return r
