"""Uploaded files, named by their SHA-256 (identical uploads are stored once).

The database holds every upload (table ``blobs``), so a worker on another machine needs nothing but the
database: it fetches the file of the job it leases and checks its SHA-256. The local folder (``HOME/blobs``)
is a cache in front of it, written on upload and on first fetch. Files uploaded before the database held
them (arenas created by earlier releases) are still read from the folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from occam.errors import OccamError

if TYPE_CHECKING:
    from occam.arena.db import Database


class BlobStore:
    def __init__(self, root: Path, db: Database | None = None):
        self.root = Path(root)
        self.db = db
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise OccamError(f"bad content hash {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}.onnx"

    def put(self, data: bytes, *, in_db: bool = True) -> str:
        """Store ``data``; returns its SHA-256. ``in_db=False``: only the local copy (the caller writes the
        database copy with :meth:`put_in` inside its own transaction, e.g. with the submission row)."""
        digest = hashlib.sha256(data).hexdigest()
        if self.db is not None and in_db:
            with self.db.write() as s:
                self.put_in(s, digest, data)
        self._put_file(digest, data)
        return digest

    def put_in(self, session: Any, digest: str, data: bytes) -> None:
        """Add the database copy in ``session``'s transaction (a no-op when that content is stored already, also
        when another transaction stores it at the same moment)."""
        from occam.arena.schema import Blob

        if self.db is None:
            return
        values = {"sha256": digest, "size": len(data), "data": data, "created_at": time.time()}
        if self.db.is_postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        session.execute(insert(Blob).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))

    def _put_file(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".up-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        if path.exists():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
            if self.db is None:
                raise OccamError(f"stored file {sha256[:12]}… is corrupt", "restore it from a backup, then rejudge")
        if self.db is not None:
            from occam.arena.schema import Blob

            with self.db.read() as s:
                data = s.scalar(select(Blob.data).where(Blob.sha256 == sha256))
            if data is not None:
                data = bytes(data)
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise OccamError(f"stored file {sha256[:12]}… is corrupt in the database",
                                     "restore the database from a backup, then rejudge")
                try:
                    self._put_file(sha256, data)  # cache it here
                except OSError:
                    pass
                return data
        raise OccamError(f"stored file {sha256[:12]}… is missing from {self.root}"
                         + (" and from the database" if self.db is not None else ""),
                         "restore the blobs/ folder or the database from a backup, then rejudge")
