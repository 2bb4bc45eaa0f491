"""Downloads a track offers (e.g. the public part of an audit challenge's zoo), for teams; the web side of
:meth:`occam.arena.tracks.Track.public_files`.

``occam.web.app.ROUTER_PLUGINS`` includes :func:`create_router`. Routes (team token or admin token; anonymous
visitors get 401, or a login redirect for pages), for a challenge whose track offers files:

- ``GET /api/challenges/{cid}/files``: the index (name, size, SHA-256, URL) of every servable file;
- ``GET /api/challenges/{cid}/files/{name}``: one file, by its exact name in that index;
- ``GET /api/challenges/{cid}/zoo.zip``: all of them in one zip (unzips to ``public/``);
- ``GET /challenges/{cid}/files``: the same index as a page (the track's ``files`` fragment), with a Lens link
  next to each model the track lets the Lens open (:meth:`Track.lens_models`).

The arena's Lens (:mod:`occam.web.lens_routes`) opens those models through :func:`track_model` and
:func:`read_model`: the same access and the same index.

Only the track's index entries are ever served. A requested name is looked up in that index as a string and
never joined to a path, so ``..``, absolute paths and encoded variants cannot reach anything else; each file is
checked again (a regular file inside the entry's ``root``, the indexed size and SHA-256) when served. The web
process never shows what the track keeps private (the audit track: the zoo's location, the key path, which
models form the public half).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse

from occam.arena.schema import Challenge
from occam.arena.service import Refused
from occam.arena.tracks import ChallengeInfo, ServedFile, Track, get_track
from occam.errors import OccamError

log = logging.getLogger("occam.web.track_files")

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


def served(ctx: Any, request: Request, cid: str) -> tuple[Challenge, Track, list[ServedFile]]:  # noqa: ANN401
    """The challenge, its track and the track's public files, for a team or the admin (401 otherwise; 404 for a
    challenge whose track offers none; 503, without server paths for teams, when they cannot be served)."""
    v = ctx.require_team(request)
    c = ctx.arena.challenge(cid)
    track = get_track(c.track)
    try:
        files = track.public_files(ChallengeInfo.of(c))
    except OccamError as exc:
        log.error("challenge %s: the files cannot be served: %s", cid, exc.problem)
        detail = f": {exc.problem}" if v.is_admin else ""  # teams never see server paths
        raise Refused(f"the zoo of challenge {cid!r} is unavailable on the server{detail}",
                      exc.fix if v.is_admin else "tell the organizers", status=503, code="zoo_unavailable") from exc
    if files is None:
        raise Refused(f"challenge {cid!r} has no zoo to download (its {c.track} track offers no files)",
                      "see GET /api/challenges: a challenge with files lists links.files", status=404,
                      code="not_found")
    return c, track, files


def lens_url(cid: str, track: Track, name: str) -> str:
    """Where the arena's Lens opens model ``name`` of challenge ``cid``."""
    return f"/lens/challenges/{cid}/{track.lens_path}/{name}"


def track_model(ctx: Any, request: Request, cid: str, name: str) -> tuple[Challenge, ServedFile, str]:  # noqa: ANN401
    """Model ``name`` of challenge ``cid`` for the Lens, with the task to open it with. Access as for the
    downloads; ``name`` is looked up as a string in the track's :meth:`Track.lens_models` of the public index
    (never joined to a path), and anything else answers 404."""
    c, track, files = served(ctx, request, cid)
    info = ChallengeInfo.of(c)
    f = track.lens_models(info, files).get(name)
    if f is None:  # the name is not echoed: it is the caller's input
        raise Refused(f"no such model in the zoo of challenge {c.id!r}",
                      f"see /challenges/{c.id}/files for the models", status=404, code="not_found")
    try:
        task = track.lens_task(info)
    except OccamError as exc:
        log.error("challenge %s: cannot read the task of its models: %s", c.id, exc.problem)
        raise Refused(f"the zoo of challenge {c.id!r} is unavailable on the server", "tell the organizers",
                      status=503, code="zoo_unavailable") from exc
    return c, f, task


def _checked_path(c: Challenge, f: ServedFile) -> Path:
    """``f``'s file, if it is still the regular file under ``public/`` that was indexed (503 otherwise)."""
    root = (f.root or f.path.parent).resolve()
    p = f.path
    if p.is_symlink() or not p.is_file() or root not in p.resolve().parents or p.stat().st_size != f.size:
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


def create_router(ctx: Any) -> APIRouter:  # noqa: ANN401
    from occam.web.context import TEAM, access
    from occam.web.serialize import challenge_json

    r = APIRouter(tags=["track files"], dependencies=[Depends(ctx.check_challenge_visible)])

    def entries(c: Challenge, track: Track, files: list[ServedFile]) -> list[dict[str, Any]]:
        """Each file's name, size, SHA-256 and URL; a model's also its Lens page."""
        model_of = {f.name: name for name, f in track.lens_models(ChallengeInfo.of(c), files).items()}
        out = []
        for f in files:
            e = {"name": f.name, "size": f.size, "sha256": f.sha256, "url": f"/api/challenges/{c.id}/files/{f.name}"}
            if f.name in model_of:
                e["lens"] = lens_url(c.id, track, model_of[f.name])
            out.append(e)
        return out

    @r.get("/api/challenges/{cid}/files", summary="The challenge's public files (index with sizes and SHA-256)")
    @access(TEAM)
    def list_files(request: Request, cid: str) -> dict[str, Any]:
        c, track, files = served(ctx, request, cid)
        return {"challenge": c.id, **track.files_meta(ChallengeInfo.of(c)), "files": entries(c, track, files),
                "zip": f"/api/challenges/{c.id}/zoo.zip"}

    @r.get("/api/challenges/{cid}/files/{name:path}", summary="Download one public file of the challenge")
    @access(TEAM)
    def get_file(request: Request, cid: str, name: str):
        c, _, files = served(ctx, request, cid)
        f = {x.name: x for x in files}.get(name)  # an exact string match: never a path join on user input
        if f is None:
            raise Refused(f"no such file in the zoo of challenge {c.id!r}",
                          f"see GET /api/challenges/{c.id}/files for the list", status=404, code="not_found")
        p = _checked_path(c, f)
        return FileResponse(p, media_type=_media_type(f.name), filename=f.name.rsplit("/", 1)[-1],
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/api/challenges/{cid}/zoo.zip", summary="The challenge's public files as one zip (unzips to public/)")
    @access(TEAM)
    def get_zip(request: Request, cid: str):
        c, track, files = served(ctx, request, cid)
        version = track.files_version(ChallengeInfo.of(c))
        dest = Path(ctx.settings.home) / "track-downloads" / f"{c.id}-{version}.zip"
        with _ZIP_LOCK:
            if not dest.is_file():
                try:
                    build_zip(files, dest)
                except (OccamError, OSError) as exc:  # a changed zoo, a full disk, an unwritable home
                    log.error("challenge %s: cannot build %s: %s", c.id, dest, exc)
                    raise Refused(f"the zoo of challenge {c.id!r} cannot be zipped on the server right now",
                                  "download the files one by one, and tell the organizers", status=503,
                                  code="zoo_unavailable") from exc
        return FileResponse(dest, media_type="application/zip", filename=f"{c.id}-zoo-{version}.zip",
                            headers={"Cache-Control": "private, max-age=300"})

    @r.get("/challenges/{cid}/files", response_class=HTMLResponse, include_in_schema=False)
    @access(TEAM)
    def files_page(request: Request, cid: str):
        c, track, files = served(ctx, request, cid)
        return ctx.render(request, track.fragments.get("files", "tracks/default_files.html"), c=challenge_json(c),
                          files=entries(c, track, files), total=sum(f.size for f in files))

    return r
