"""A small HTTP client for contestants (``occam submit``, ``occam arena download-zoo``) and scripts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from occam.errors import OccamError


class ServerRefused(OccamError):
    """The server answered with an HTTP error; ``status`` is its code."""

    def __init__(self, problem: str, fix: str | None = None, *, status: int = 0):
        super().__init__(problem, fix)
        self.status = status


def _client(server: str, token: str | None, timeout: Any = 60.0):  # noqa: ANN202, ANN401
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


@contextlib.contextmanager
def _reachable(server: str) -> Iterator[None]:
    """Turn "server down", "no such host", "not a URL" and time-outs into an OccamError with a fix."""
    import httpx

    try:
        yield
    except httpx.TimeoutException as exc:
        raise OccamError(f"the arena at {server} did not answer in time ({type(exc).__name__})",
                         "try again later; if it persists, tell the organizers") from exc
    except (httpx.TransportError, httpx.InvalidURL) as exc:
        raise OccamError(f"cannot reach the arena at {server} ({exc or type(exc).__name__})",
                         "check --server (or $OCCAM_SERVER), e.g. https://arena.example.org, "
                         "and that the server is up") from exc


# how long a command waits for a server that refuses connections (e.g. one that is starting) before giving up
START_WAIT_SECONDS = 15.0


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` (an httpx error) means "nothing listens there (yet)"."""
    import httpx

    if not isinstance(exc, httpx.ConnectError):
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _get_waiting(server: str, token: str | None, path: str, *, wait_seconds: float | None = None) -> Any:  # noqa: ANN401
    """GET ``path``; while the connection is refused (a server that is starting), retry with backoff for up to
    ``wait_seconds`` (default :data:`START_WAIT_SECONDS`), then raise an OccamError naming the URL."""
    import httpx

    budget = START_WAIT_SECONDS if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + budget
    delay = 0.25
    while True:
        try:
            with _client(server, token) as c:
                return c.get(path)
        except httpx.ConnectError as exc:
            if not _refused(exc):
                with _reachable(server):
                    raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise OccamError(f"the arena at {server} refused the connection for {budget:g} s (nothing listens there)",
                                 "start it (`occam arena serve`), or check --server (or $OCCAM_SERVER) and its port"
                                 ) from exc
            time.sleep(min(delay, left))
            delay = min(delay * 2, 2.0)
        except (httpx.TransportError, httpx.InvalidURL):
            with _reachable(server):
                raise


def _raise(resp: Any) -> None:  # noqa: ANN401
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        body = {"error": resp.text[:300]}
    message = body.get("error") or body.get("reason") or body
    if resp.status_code == 401:
        raise ServerRefused(f"the server did not accept your token ({message})",
                            "check --token (or $OCCAM_TOKEN): a team token starts with occ_team_; "
                            "ask the organizers for a new one if yours was rotated", status=401)
    raise ServerRefused(f"the server answered {resp.status_code}: {message}", body.get("fix") or None,
                        status=resp.status_code)


def get_challenge(server: str, token: str | None, challenge: str) -> dict[str, Any]:
    """The public JSON of one challenge (its ``track`` among the rest); waits briefly for a server that is starting."""
    r = _get_waiting(server, token, f"/api/challenges/{challenge}")
    _raise(r)
    return r.json()


def pick_challenge(server: str, token: str | None, challenge: str | None, *, with_files: bool = False) -> str:
    """``challenge``, or else the one open challenge (one that offers files, with ``with_files``) on the server."""
    if challenge:
        return challenge
    r = _get_waiting(server, token, "/api/challenges")
    _raise(r)
    listed = r.json()
    if with_files:
        listed = [x for x in listed if (x.get("links") or {}).get("files")]
    open_ = [x["id"] for x in listed if x["phase"] in ("running", "frozen")]
    if len(open_) == 1:
        return open_[0]
    what = "challenge"
    if with_files:  # name the track when every candidate has the same one ("2 audit challenges are open")
        kinds = {x.get("track", "") for x in listed}
        what = f"{kinds.pop()} challenge" if len(kinds) == 1 else "challenge with files"
    plural = what.replace("challenge", "challenges", 1)
    if not open_:
        if with_files and len(listed) == 1:  # e.g. the zoo of a challenge that has ended
            return listed[0]["id"]
        if with_files and listed:
            raise OccamError(f"no {what} is open on {server}; closed ones: {', '.join(x['id'] for x in listed)}",
                             "pass --challenge ID")
        raise OccamError(f"no {what} is open on {server}", "ask the organizers when it opens")
    raise OccamError(f"{len(open_)} {plural} are open: {', '.join(open_)}", "pass --challenge ID")


# ---- uploads --------------------------------------------------------------------------------------------------------

def submit(server: str, token: str, model: Path, *, challenge: str | None = None, wait: bool = True,
           timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
    """Upload ``model`` (what the challenge's track takes: an ONNX file, or e.g. a CSV/JSON prediction file; the
    track's :meth:`~occam.arena.tracks.Track.client_upload` reads it); with ``wait``, poll until it is scored or
    failed. Returns the submission JSON plus ``track`` (the challenge's), ``quota_left`` and ``note`` (what the
    track did to the file, '' for nothing)."""
    from occam.arena.tracks import DEFAULT_TRACK, get_track

    model = Path(model)
    if not model.is_file():
        if model.suffix.lower() in (".csv", ".json"):
            raise OccamError(f"prediction file {model} not found", "pass the path of a .csv or .json file")
        raise OccamError(f"model file {model} not found", "pass the path of an .onnx file")
    cid = pick_challenge(server, token, challenge)
    track_name = get_challenge(server, token, cid).get("track", DEFAULT_TRACK)
    track = get_track(track_name)
    up = track.client_upload(model, cid)
    with _reachable(server), _client(server, token, timeout=120) as c:
        r = c.post(f"/api/challenges/{cid}/submissions", files={"file": (up.filename, up.data, up.content_type)})
        if r.status_code == 422:
            body = r.json()
            if "reason" in body:
                if track.uploads_models:
                    raise OccamError(f"{track.refused_by} refused {model.name}: {body['reason']}", body.get("fix") or None)
                raise OccamError(f"{track.refused_by} refused {model.name} (no quota used): {body['reason']}",
                                 body.get("fix") or None)
        _raise(r)
        sub = r.json()
        extra = {"track": track_name, "quota_left": sub.get("quota_left"), "note": up.note}
        if not wait:
            return {**sub, **extra}
        deadline = time.monotonic() + timeout
        while True:
            r = c.get(f"/api/submissions/{sub['id']}")
            _raise(r)
            got = r.json()
            if got["status"] in ("scored", "failed", "rejected") or time.monotonic() > deadline:
                return {**got, **extra}
            time.sleep(poll)


# ---- a challenge's files (e.g. an audit zoo) ----------------------------------------------------------------------

def _safe_name(name: Any) -> str:  # noqa: ANN401
    """An index entry's name as a relative POSIX path that stays inside ``public/`` (else OccamError)."""
    p = PurePosixPath(name) if isinstance(name, str) else None
    if (p is None or not name or name != p.as_posix() or p.is_absolute() or "\\" in name or ":" in name
            or any(part in ("", ".", "..") for part in p.parts)):
        raise OccamError(f"the server's file index lists an unsafe name {name!r}", "tell the organizers; nothing was written")
    return name


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _matches(public: Path, files: list[dict[str, Any]]) -> bool:
    for f in files:
        p = public / f["name"]
        if p.is_symlink() or not p.is_file() or p.stat().st_size != f["size"] or _sha256_file(p) != f["sha256"]:
            return False
    return True


def _copy_checked(src: Any, dest: Path, entry: dict[str, Any], reporter: Any = None) -> None:  # noqa: ANN401
    """Copy the stream ``src`` to ``dest``; its size and SHA-256 must match the index ``entry``."""
    h, n = hashlib.sha256(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
            if n > entry["size"]:
                break
            h.update(chunk)
            out.write(chunk)
            if reporter is not None:
                reporter.update(len(chunk))
    if n != entry["size"] or h.hexdigest() != entry["sha256"]:
        raise OccamError(f"{entry['name']} does not match the server's file index (size {n:,} bytes, expected "
                         f"{entry['size']:,}; or its SHA-256 differs)",
                         "download again; if it persists, tell the organizers (nothing was unpacked)")


def _stream_to(c: Any, url: str, dest: Path, reporter: Any, description: str) -> None:  # noqa: ANN401
    with c.stream("GET", url) as r:
        if r.status_code >= 400:
            r.read()
            _raise(r)
        total = int(r.headers.get("content-length") or 0) or None
        if reporter is not None:
            reporter.start(total, description)
        try:
            with dest.open("wb") as out:
                for chunk in r.iter_bytes(1 << 16):
                    out.write(chunk)
                    if reporter is not None:
                        reporter.update(len(chunk))
        finally:
            if reporter is not None:
                reporter.finish()


def _unpack(zip_path: Path, files: list[dict[str, Any]], public: Path) -> None:
    """Unpack exactly the indexed files of ``zip_path`` (``public/NAME``) into ``public``, checking each one."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise OccamError(f"the downloaded zip is damaged ({exc})", "download again") from exc
    with zf:
        members = {i.filename: i for i in zf.infolist() if not i.is_dir()}
        wanted = {f"public/{f['name']}": f for f in files}
        extra, missing = sorted(set(members) - set(wanted)), sorted(set(wanted) - set(members))
        if extra or missing:
            detail = "; ".join(x for x in (f"not in the index: {', '.join(extra[:5])}" if extra else "",
                                           f"missing: {', '.join(missing[:5])}" if missing else "") if x)
            raise OccamError(f"the zip does not hold the files of the server's index ({detail})",
                             "download again (the zoo may have changed meanwhile); if it persists, tell the organizers")
        for member, entry in wanted.items():
            if members[member].file_size != entry["size"]:
                raise OccamError(f"{entry['name']} in the zip has {members[member].file_size:,} bytes, the index "
                                 f"says {entry['size']:,}", "download again; if it persists, tell the organizers")
            with zf.open(members[member]) as src:
                _copy_checked(src, public / entry["name"], entry)


def download_zoo(server: str, token: str, out: str | Path, *, challenge: str | None = None, force: bool = False,
                 reporter: Any = None) -> dict[str, Any]:  # noqa: ANN401
    """Download the files a challenge's track offers (e.g. the public part of an audit challenge's zoo) into
    ``out/public`` (ready for ``--zoo out``).

    Takes ``zoo.zip`` (or, when the server cannot zip it, the files one by one), checks every file's size and
    SHA-256 against the server's index, and unpacks into a staging folder that replaces ``out/public`` only
    when all of it checked out. ``reporter`` (``start(total, description)``, ``update(advance)``, ``finish()``)
    shows the bytes. An ``out/public`` that already holds the indexed files is left as it is (unless ``force``);
    one with other contents is refused unless ``force``. Returns a summary dict.
    """
    import httpx

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OccamError(f"--out {out} is a file", "pass a folder (it is created when missing)")
    cid = pick_challenge(server, token, challenge, with_files=True)
    info = get_challenge(server, token, cid)
    if not (info.get("links") or {}).get("files"):
        raise OccamError(f"challenge {cid!r} is a {info.get('track')!r} challenge: it has no zoo to download",
                         "pass --challenge ID of a challenge with files (GET /api/challenges lists their links.files)")
    limits = httpx.Timeout(60.0, read=600.0)  # a big zoo's zip is built on the first request
    with _reachable(server), _client(server, token, timeout=limits) as c:
        r = c.get(f"/api/challenges/{cid}/files")
        _raise(r)
        index = r.json()
        files = index["files"]
        for f in files:
            _safe_name(f["name"])
        summary = {"challenge": cid, "track": info.get("track"), "zoo_id": index.get("zoo_id"), "files": len(files),
                   "bytes": sum(int(f["size"]) for f in files), "dir": out, "public": out / "public"}
        public = out / "public"
        if public.exists() or public.is_symlink():
            if not force and public.is_dir() and _matches(public, files):
                return {**summary, "via": "already there"}
            if not force:
                raise OccamError(f"{public} exists and does not hold zoo {index.get('zoo_id')} as the server lists it",
                                 "pass --force to replace it, or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".occam-download-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "public").mkdir(parents=True)
        try:
            zip_path = staging / "zoo.zip"
            via = "zip"
            try:
                _stream_to(c, index.get("zip") or f"/api/challenges/{cid}/zoo.zip", zip_path, reporter,
                           f"{cid} zoo.zip")
            except ServerRefused as exc:
                if exc.status != 503:
                    raise
                via = "files"  # the server cannot zip it right now: fetch the files one by one
            if via == "zip":
                _unpack(zip_path, files, staging / "public")
                zip_path.unlink()
            else:
                _download_files(c, files, staging / "public", reporter, cid)
            _check_manifest(staging / "public", index.get("zoo_id"))
            if public.is_symlink() or public.is_file():
                public.unlink()
            elif public.exists():
                shutil.rmtree(public)
            os.replace(staging / "public", public)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {**summary, "via": via}


def _download_files(c: Any, files: list[dict[str, Any]], public: Path, reporter: Any, cid: str) -> None:  # noqa: ANN401
    if reporter is not None:
        reporter.start(sum(int(f["size"]) for f in files), f"{cid} zoo files")
    try:
        for f in files:
            with c.stream("GET", f["url"]) as r:
                if r.status_code >= 400:
                    r.read()
                    _raise(r)
                _copy_checked(_Chunks(r.iter_bytes(1 << 16)), public / f["name"], f, reporter)
    finally:
        if reporter is not None:
            reporter.finish()


class _Chunks:
    """A ``read(n)`` face for an iterator of byte chunks (chunk sizes as they come)."""

    def __init__(self, it: Iterator[bytes]):
        self.it = it

    def read(self, _n: int = -1) -> bytes:
        return next(self.it, b"")


def _check_manifest(public: Path, zoo_id: str | None) -> None:
    manifest = public / "manifest.json"
    if not manifest.is_file() or not zoo_id:
        return
    try:
        got = json.loads(manifest.read_text()).get("zoo_id")
    except (ValueError, AttributeError):
        got = None
    if got is not None and got != zoo_id:
        raise OccamError(f"the downloaded manifest.json is of zoo {got!r}, the server's index of {zoo_id!r}",
                         "download again; if it persists, tell the organizers")
