"""Uploaded files on local disk, named by their SHA-256 (identical uploads are stored once)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from occam.errors import OccamError


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise OccamError(f"bad content hash {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}.onnx"

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
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
        return digest

    def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        if not path.exists():
            raise OccamError(f"stored file {sha256[:12]}… is missing from {self.root}",
                             "restore the blobs/ folder from a backup, then rejudge")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OccamError(f"stored file {sha256[:12]}… is corrupt", "restore it from a backup, then rejudge")
        return data
