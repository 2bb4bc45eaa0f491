"""The audit track's downloads: the public part of a challenge's zoo, for teams (an arena router plugin).

``occam.web.app.ROUTER_PLUGINS`` includes :func:`create_router` whenever this module imports. Routes
(team token or admin token; anonymous visitors get 401, or a login redirect for pages):

- ``GET /api/challenges/{cid}/files``: the index (name, size, SHA-256, URL) of every servable file;
- ``GET /api/challenges/{cid}/files/{name}``: one file, by its exact name in that index;
- ``GET /api/challenges/{cid}/zoo.zip``: all of them in one zip (unzips to ``public/``);
- ``GET /challenges/{cid}/files``: the same index as a page, with a Lens link next to each model.

The arena's Lens (:mod:`occam.web.lens_routes`) opens zoo models through :func:`zoo_model` and
:func:`read_model`: the same access and the same index, a model being an ``.onnx`` entry named by
its file name without the extension (:func:`zoo_models`).

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
import re
import threading
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from occam.arena.schema import Challenge
from occam.arena.service import Refused
from occam.audit.arena import ServedFile, public_index, zoo_facts
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


_MODEL_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def served(ctx: Any, request: Request, cid: str) -> tuple[Challenge, list[ServedFile]]:
    """The challenge and its zoo's public index, for a team or the admin (401 otherwise; 404 for a challenge
    without a zoo; 503, without server paths for teams, when the zoo cannot be served)."""
    v = ctx.require_team(request)
    c = ctx.arena.challenge(cid)
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


def zoo_models(files: list[ServedFile]) -> dict[str, ServedFile]:
    """The models of a public index that the Lens opens, by name: every ``.onnx`` entry under its file name
    without the extension (``models/model_0007.onnx`` → ``model_0007``). Names that are not plain (letters,
    digits, '.', '-', '_'; no leading '.') or that two entries share are left out."""
    out: dict[str, ServedFile] = {}
    shared: set[str] = set()
    for f in files:
        base = f.name.rsplit("/", 1)[-1]
        name = base[:-5] if base.endswith(".onnx") else ""
        if not _MODEL_NAME.fullmatch(name):
            continue
        if name in out or name in shared:
            out.pop(name, None)
            shared.add(name)
            continue
        out[name] = f
    return out


def lens_url(cid: str, name: str) -> str:
    """Where the arena's Lens opens zoo model ``name`` of challenge ``cid``."""
    return f"/lens/challenges/{cid}/zoo/{name}"


def zoo_model(ctx: Any, request: Request, cid: str, name: str) -> tuple[Challenge, ServedFile, str]:
    """Zoo model ``name`` of challenge ``cid`` for the Lens, with the zoo manifest's task. Access as for the
    downloads; ``name`` is looked up as a string in :func:`zoo_models` of the public index (never joined to a
    path), and anything else answers 404."""
    c, files = served(ctx, request, cid)
    f = zoo_models(files).get(name)
    if f is None:  # the name is not echoed: it is the caller's input
        raise Refused(f"no such model in the zoo of challenge {c.id!r}",
                      f"see /challenges/{c.id}/files for the models", status=404, code="not_found")
    try:
        task = zoo_facts(c.audit_zoo_dir, c.audit_zoo_id).task
    except OccamError as exc:
        log.error("challenge %s: cannot read the zoo's manifest: %s", c.id, exc.problem)
        raise Refused(f"the zoo of challenge {c.id!r} is unavailable on the server", "tell the organizers",
                      status=503, code="zoo_unavailable") from exc
    return c, f, task


def _checked_path(c: Challenge, f: ServedFile) -> Path:
    """``f``'s file, if it is still the regular file under ``public/`` that was indexed (503 otherwise)."""
    pub = (Path(c.audit_zoo_dir) / "public").resolve()
    p = f.path
    if p.is_symlink() or not p.is_file() or pub not in p.resolve().parents or p.stat().st_size != f.size:
        log.error("challenge %s: %s changed since the zoo was indexed; refused", c.id, p)
        raise Refused(f"the zoo of challenge {c.id!r} changed on the server", "tell the organizers",
                      status=503, code="zoo_unavailable")
    return p


def read_model(c: Challenge, f: ServedFile) -> bytes:
    """The bytes of an indexed file, checked against the index's SHA-256 (503 when they differ)."""
    data = _checked_path(c, f).read_bytes()
    if hashlib.sha256(data).hexdigest() != f.sha256:
        log.error("challenge %s: %s changed since the zoo was indexed; refused", c.id, f.path)
        raise Refused(f"the zoo of challenge {c.id!r} changed on the server", "tell the organizers",
                      status=503, code="zoo_unavailable")
    return data


def create_router(ctx: Any) -> APIRouter:
    from occam.web.context import TEAM, access
    from occam.web.serialize import challenge_json

    r = APIRouter(tags=["audit"])

    def entries(cid: str, files: list[ServedFile]) -> list[dict[str, Any]]:
        """Each file's name, size, SHA-256 and URL; a model's also its Lens page."""
        model_of = {f.name: name for name, f in zoo_models(files).items()}
        out = []
        for f in files:
            e = {"name": f.name, "size": f.size, "sha256": f.sha256, "url": f"/api/challenges/{cid}/files/{f.name}"}
            if f.name in model_of:
                e["lens"] = lens_url(cid, model_of[f.name])
            out.append(e)
        return out

    @r.get("/api/challenges/{cid}/files", summary="The audit zoo's public files (index with sizes and SHA-256)")
    @access(TEAM)
    def list_files(request: Request, cid: str) -> dict[str, Any]:
        c, files = served(ctx, request, cid)
        return {"challenge": c.id, "zoo_id": c.audit_zoo_id, "files": entries(c.id, files),
                "zip": f"/api/challenges/{c.id}/zoo.zip"}

    @r.get("/api/challenges/{cid}/files/{name:path}", summary="Download one public file of the audit zoo")
    @access(TEAM)
    def get_file(request: Request, cid: str, name: str):
        c, files = served(ctx, request, cid)
        f = {x.name: x for x in files}.get(name)  # an exact string match: never a path join on user input
        if f is None:
            raise Refused(f"no such file in the zoo of challenge {c.id!r}",
                          f"see GET /api/challenges/{c.id}/files for the list", status=404, code="not_found")
        p = _checked_path(c, f)
        return FileResponse(p, media_type=_media_type(f.name), filename=f.name.rsplit("/", 1)[-1],
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/api/challenges/{cid}/zoo.zip", summary="The audit zoo's public part as one zip (unzips to public/)")
    @access(TEAM)
    def get_zip(request: Request, cid: str):
        c, files = served(ctx, request, cid)
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
        c, files = served(ctx, request, cid)
        return ctx.render(request, "audit_files.html", c=challenge_json(c), files=entries(c.id, files),
                          total=sum(f.size for f in files))

    return r
