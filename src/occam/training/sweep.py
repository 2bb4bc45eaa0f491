"""The Pareto sweep: train at several nnz targets, score each with the contest's scorer, plot."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console

from occam.tasks import get_task
from occam.training.recipe import TrainConfig, train

FIELDS = ["series", "arch", "target_nnz", "nnz", "split", "lam", "score", "ce", "accuracy", "val_score", "wall_seconds", "path"]


def sweep(task: str, archs: list[str], targets: list[int], *, out: Path, epochs: float = 10.0, minutes: float | None = None,
          prune: str = "gradual", seed: int = 0, arch_kwargs: dict | None = None, lam: float | None = None,
          split: str = "test", console: Console | None = None) -> list[dict]:
    """Train ``arch`` × ``targets`` models, score them on ``split``, write CSV, PNG and HTML under ``out``."""
    from occam.progress import RichReporter
    from occam.scoring import score_model
    from occam.training.plots import pareto_html, pareto_png

    spec = get_task(task)
    lam = lam or spec.default_lam
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for arch in archs:
        for target in targets:
            path = out / f"{task}-{arch}-{target}.onnx"
            cfg = TrainConfig(task=task, arch=arch, arch_kwargs=dict(arch_kwargs or {}), epochs=epochs, minutes=minutes,
                              prune=prune, target_nnz=target, seed=seed)
            if console:
                console.print(f"[bold]{arch}[/] → nnz ≤ {target}")
            result = train(cfg, path, reporter=RichReporter(console=console, transient=True) if console else None)
            scored = score_model(path, spec, split=split, lam=lam).to_dict()
            row = {"series": f"{arch} ({prune})", "arch": arch, "target_nnz": target, "nnz": scored["nnz"], "split": split,
                   "lam": lam, "score": scored["score"], "ce": scored["ce"], "accuracy": scored["accuracy"],
                   "val_score": result.card["val"]["score"], "wall_seconds": result.card["wall_seconds"], "path": str(path)}
            rows.append(row)
            if console:
                console.print(f"  nnz {row['nnz']}  {split} CE {row['ce']:.4f}  acc {row['accuracy']:.2%}  "
                              f"score {row['score']:.4f}")
            write_csv(rows, out / "pareto.csv")
    title = f"{spec.title}: {split} score vs nnz"
    pareto_png(rows, out / "pareto.png", lam=lam, title=title)
    pareto_html(rows, out / "pareto.html", lam=lam, title=title)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
