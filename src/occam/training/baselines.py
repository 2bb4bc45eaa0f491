"""Baselines (every zoo model on every available task) and the demo's training step."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from occam.tasks import get_task, list_tasks
from occam.training.recipe import TrainConfig, train

# Budgets chosen so the whole table rebuilds in about 20 minutes on 2 cores.
DEFAULT_EPOCHS = {"fashion-mnist": 2.0, "mnist": 2.0, "cifar10": 4.0, "digits": 40.0, "mnist1d": 40.0}
ARCH_OPTIONS = {("vit", "digits"): {"patch": 2}}

MARK_START, MARK_END = "<!-- baselines:start -->", "<!-- baselines:end -->"


def run_baselines(tasks: list[str], archs: list[str], *, out: Path, epochs: float | None = None, readme: Path | None = None,
                  console: Console | None = None) -> list[dict]:
    from occam.progress import RichReporter
    from occam.scoring import score_model

    console = console or Console()
    chosen = [get_task(t) for t in tasks] if tasks else [t for t in list_tasks() if t.available]
    rows = []
    for spec in chosen:
        for arch in archs:
            path = Path(out) / f"{spec.name}-{arch}.onnx"
            cfg = TrainConfig(task=spec.name, arch=arch, arch_kwargs=ARCH_OPTIONS.get((arch, spec.name), {}),
                              epochs=epochs or DEFAULT_EPOCHS.get(spec.name, 5.0), seed=0)
            result = train(cfg, path, reporter=RichReporter(console=console, transient=True))
            val = score_model(path, spec, split="val").to_dict()
            test = score_model(path, spec, split="test").to_dict()
            row = {"task": spec.name, "arch": arch, "nnz": test["nnz"], "lam": test["lam"], "epochs": cfg.epochs,
                   "val_score": val["score"], "val_accuracy": val["accuracy"], "test_score": test["score"],
                   "test_ce": test["ce"], "test_accuracy": test["accuracy"], "train_seconds": result.card["wall_seconds"]}
            rows.append(row)
            console.print(f"{spec.name:14} {arch:7} nnz {row['nnz']:>7}  test score {row['test_score']:.4f}  "
                          f"acc {row['test_accuracy']:.2%}")
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "baselines.json").write_text(json.dumps(rows, indent=2))
    table = markdown_table(rows)
    (Path(out) / "baselines.md").write_text(table + "\n")
    console.print(_rich_table(rows))
    if readme is not None:
        replace_between_markers(readme, table)
        console.print(f"updated the table in {readme}")
    return rows


def markdown_table(rows: list[dict]) -> str:
    head = ("| task | model | nnz | λ | epochs | val score | val acc | test score | test CE | test acc | train s |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['task']} | {r['arch']} | {r['nnz']:,} | {r['lam']:g} | {r['epochs']:g} | {r['val_score']:.4f} | "
             f"{r['val_accuracy']:.2%} | {r['test_score']:.4f} | {r['test_ce']:.4f} | {r['test_accuracy']:.2%} | "
             f"{r['train_seconds']:.0f} |" for r in rows]
    return "\n".join([head, *lines])


def _rich_table(rows: list[dict]) -> Table:
    t = Table(title="Baselines (score = CE + log10(nnz)/λ; lower is better)")
    for col in ("task", "model", "nnz", "val score", "test score", "test acc"):
        t.add_column(col, justify="right" if col not in ("task", "model") else "left")
    for r in rows:
        t.add_row(r["task"], r["arch"], f"{r['nnz']:,}", f"{r['val_score']:.4f}", f"{r['test_score']:.4f}",
                  f"{r['test_accuracy']:.2%}")
    return t


def replace_between_markers(path: Path, body: str) -> None:
    text = path.read_text()
    pattern = re.compile(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), re.S)
    if not pattern.search(text):
        text += f"\n{MARK_START}\n{body}\n{MARK_END}\n"
    else:
        text = pattern.sub(lambda _: f"{MARK_START}\n{body}\n{MARK_END}", text)
    path.write_text(text)


def demo(*, out: Path, minutes: float, console: Console) -> Path:
    """Train (or reuse) a small Fashion-MNIST model and score it on the test set; returns its path
    (``occam demo`` then starts the arena demo with it)."""
    from occam.progress import RichReporter
    from occam.scoring import score_model

    out = Path(out)
    model = out / "fashion-mnist-sepcnn.onnx"
    card = model.with_suffix(".json")
    if model.exists() and card.exists():
        console.print(f"reusing {model} (delete it to retrain)")
    else:
        console.print(f"[bold]1/3[/] training a separable-conv CNN on Fashion-MNIST for up to {minutes:g} min")
        train(TrainConfig(task="fashion-mnist", arch="sepcnn", epochs=6, minutes=minutes, prune="gradual", target_nnz=2000),
              model, reporter=RichReporter(console=console))
    console.print("[bold]2/3[/] scoring it on the 10,000 test images in a sandboxed child process")
    result = score_model(model, "fashion-mnist", split="test").to_dict()
    t = Table(title=f"{model.name} on Fashion-MNIST test")
    for col in ("score", "CE", "accuracy", "nnz", "λ"):
        t.add_column(col, justify="right")
    t.add_row(f"{result['score']:.4f}", f"{result['ce']:.4f}", f"{result['accuracy']:.2%}", f"{result['nnz']:,}",
              f"{result['lam']:g}")
    console.print(t)
    return model
