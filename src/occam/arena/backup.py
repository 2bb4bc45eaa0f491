"""Online backups: SQLite's backup API (consistent while the server runs) plus the content-addressed blobs."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from occam.arena.config import ArenaSettings


def backup(settings: ArenaSettings, dest: Path) -> dict[str, Any]:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    url = settings.url
    info: dict[str, Any] = {}
    if url.startswith("sqlite"):
        src_path = url.split(":///", 1)[1]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = dest / f"arena-{stamp}.sqlite3"
        src = sqlite3.connect(src_path, timeout=60)
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst, pages=1024, sleep=0.01)  # copies in steps; writers keep going meanwhile
        finally:
            dst.close()
            src.close()
        info["database"] = str(target)
    else:
        info["database"] = "not copied (PostgreSQL)"
        info["hint"] = "back up PostgreSQL with: pg_dump --format=custom --file=arena.dump DBNAME"
    # blobs are immutable and named by their hash: copy the ones the backup lacks
    src_blobs = settings.blobs_dir
    copied = total = 0
    if src_blobs.exists():
        for f in src_blobs.rglob("*.onnx"):
            total += 1
            out = dest / "blobs" / f.relative_to(src_blobs)
            if out.exists() and out.stat().st_size == f.stat().st_size:
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".part")
            shutil.copyfile(f, tmp)
            tmp.replace(out)
            copied += 1
    info.update(copied=copied, blobs=total)
    return info
