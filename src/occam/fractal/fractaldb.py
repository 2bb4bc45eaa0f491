"""FractalDB on disk: seeded, resumable, sharded generation and a contact sheet.

Layout of an output directory::

    manifest.json            config, format version, one entry per finished shard
    shard_00000.npy          uint8 [instances, H, W] (grayscale) or [instances, H, W, 3]
    shard_00001.npy          ...   (one shard per category; its label is the category)
    png/00000/00000.png      only with ``png=True``

Every shard is written to a temporary name and renamed, and the manifest is rewritten
(atomically) after every shard, so an interrupted run loses at most the shards in flight;
running the same command again skips the shards the manifest lists and whose files exist.
The images depend only on the config (seed included), never on the number of workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from occam.errors import OccamError
from occam.fractal.config import FractalConfig
from occam.fractal.ifs import IFS, render_instances, search_category

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def category_ifs(config: FractalConfig, category: int) -> tuple[IFS, float, int]:
    """(IFS code, filling rate, candidates tried) of one category under ``config``."""
    res = search_category(config.seed, category, sampler=config.sampler, threshold=config.threshold,
                          size=config.search_size, n_points=config.search_points)
    return res.ifs, res.fill, res.tries


def render_category(config: FractalConfig, category: int, ifs: IFS | None = None,
                    instances: list[int] | None = None) -> np.ndarray:
    """The images of one category (all its instances by default)."""
    if ifs is None:
        ifs = category_ifs(config, category)[0]
    inst = list(range(config.instances)) if instances is None else instances
    return render_instances(ifs, inst, seed=config.seed, category=category, size=config.size,
                            n_points=config.points, patch=config.patch, colour=config.colour,
                            pad=config.effective_pad, intensity=config.intensity)


def shard_name(category: int) -> str:
    return f"shard_{category:05d}.npy"


def make_shard(config_json: dict[str, Any], category: int, out_dir: str, png: bool = False) -> dict[str, Any]:
    """Search, render and write one category's shard; returns its manifest entry (runs in workers)."""
    config = FractalConfig.from_json(config_json)
    ifs, fill, tries = category_ifs(config, category)
    images = render_category(config, category, ifs)
    out = Path(out_dir)
    _atomic_save(out / shard_name(category), images)
    if png:
        _write_pngs(out / "png" / f"{category:05d}", images)
    return {"category": category, "file": shard_name(category), "count": int(len(images)),
            "fill": round(fill, 6), "tries": tries, "ifs": ifs.to_json()}


def _atomic_save(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, arr)
    os.replace(tmp, path)


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:05d}.png")


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OccamError(f"cannot write to {out}: {exc.strerror or exc}",
                         "choose an output directory (`out`) you can write to") from None


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise OccamError(f"{path} is not a readable manifest: {exc}",
                         "delete the directory or choose another output directory") from None


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)


def make_fractaldb(
    config: FractalConfig,
    out: Path | str,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    png: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate (or finish) the dataset of ``config`` under ``out``; returns the manifest."""
    config.validate()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OccamError(f"{out} exists and is not a directory", "choose another output directory")
    _check_writable(out)
    manifest = read_manifest(out)
    if manifest is None:
        manifest = {"format": "occam-fractaldb", "version": FORMAT_VERSION, "config": config.to_json(),
                    "image_shape": list(config.image_shape), "dtype": "uint8", "shards": {}}
    elif manifest.get("config") != config.to_json():
        raise OccamError(f"{out} already holds a fractal dataset made with other settings",
                         "re-run with the same settings to resume, or choose another output directory")
    done = {int(k) for k, v in manifest["shards"].items() if (out / v["file"]).exists()}
    manifest["shards"] = {k: v for k, v in manifest["shards"].items() if int(k) in done}
    todo = [c for c in range(config.categories) if c not in done]
    manifest["complete"] = not todo
    _write_manifest(out, manifest)
    if not todo:
        return manifest

    from occam.executor import run_jobs

    cfg = config.to_json()
    jobs = [(cfg, c, str(out), png) for c in todo]

    def on_result(_: int, entry: dict[str, Any]) -> None:
        manifest["shards"][str(entry["category"])] = entry
        _write_manifest(out, manifest)

    run_jobs(make_shard, jobs, workers=workers, ray_address=ray_address, star=True,
             progress=progress, progress_description=f"fractals → {out.name}", on_result=on_result)
    manifest["shards"] = dict(sorted(manifest["shards"].items(), key=lambda kv: int(kv[0])))
    manifest["complete"] = len(manifest["shards"]) == config.categories
    _write_manifest(out, manifest)
    return manifest


def load_fractaldb(out: Path | str, mmap: bool = True) -> tuple[FractalConfig, list[np.ndarray]]:
    """(config, per-category image arrays) of a finished directory."""
    out = Path(out).expanduser()
    manifest = read_manifest(out)
    if manifest is None:
        raise OccamError(f"no {MANIFEST} in {out}", "generate it first (make_fractaldb, or `occam fractal make`)")
    config = FractalConfig.from_json(manifest["config"])
    shards = []
    for c in sorted(int(k) for k in manifest["shards"]):
        path = out / manifest["shards"][str(c)]["file"]
        if not path.exists():
            raise OccamError(f"{path} is missing", "re-run occam fractal make with the same settings")
        shards.append(np.load(path, mmap_mode="r" if mmap else None))
    return config, shards


def contact_sheet(out: Path | str, dest: Path | str | None = None, *, rows: int = 8, cols: int = 8,
                  thumb: int = 96) -> Path:
    """A PNG grid: one row per category (the first ``rows``), ``cols`` instances each.

    The instances shown step through the weight variants (every 4th instance: no flips).
    """
    from PIL import Image

    out = Path(out).expanduser()
    _, shards = load_fractaldb(out)
    if not shards:
        raise OccamError(f"{out} has no finished shards yet", "run occam fractal make first")
    if rows < 1 or cols < 1 or thumb < 8:
        raise OccamError("rows, cols must be >= 1 and thumb >= 8", "pass positive values")
    shards = shards[:rows]
    gap = 2
    sheet = np.full((len(shards) * (thumb + gap) + gap, cols * (thumb + gap) + gap, 3), 255, dtype=np.uint8)
    for r, shard in enumerate(shards):
        n = len(shard)
        picks = [(4 * j) % n if n >= 4 * cols else j % n for j in range(cols)]
        for j, i in enumerate(picks):
            img = np.asarray(shard[i])
            resample = Image.Resampling.BOX if img.shape[0] > thumb else Image.Resampling.NEAREST
            pil = Image.fromarray(img).convert("RGB").resize((thumb, thumb), resample)
            y, x = gap + r * (thumb + gap), gap + j * (thumb + gap)
            sheet[y:y + thumb, x:x + thumb] = np.asarray(pil)
    dest = Path(dest).expanduser() if dest else out / "contact_sheet.png"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(dest)
    except OSError as exc:
        raise OccamError(f"cannot write {dest}: {exc.strerror or exc}", "choose a writable path for the sheet (`dest`)") from None
    return dest
