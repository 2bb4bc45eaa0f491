"""CLI: ``occam train``, ``occam pareto``, ``occam baselines`` and ``occam demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def _parse_opts(opts: list[str]) -> dict:
    """``--opt width=24 --opt hidden=64,32`` → {"width": 24, "hidden": (64, 32)}."""
    from occam.errors import OccamError

    out: dict = {}
    for item in opts:
        if "=" not in item:
            raise OccamError(f"--opt {item!r} is not KEY=VALUE", "write e.g. --opt width=24")
        key, value = item.split("=", 1)
        parts = [p for p in value.split(",") if p]
        try:
            nums = [float(p) if "." in p else int(p) for p in parts]
        except ValueError:
            raise OccamError(f"--opt {item!r}: {value!r} is not a number or list of numbers",
                             "write e.g. --opt width=24") from None
        out[key.strip().replace("-", "_")] = tuple(nums) if "," in value else nums[0]
    return out


def train_cmd(
    task: str = typer.Argument(..., help="Task name (see `occam data list`)."),
    arch: str = typer.Option("sepcnn", "--arch", "-a", help="mlp, lenet5, sepcnn or vit; mlp:W is a W-unit MLP."),
    out: Path = typer.Option(None, "--out", "-o", help="ONNX file to write (card beside it). Default runs/TASK-ARCH.onnx."),
    epochs: float = typer.Option(10.0, help="Passes over the training split (an upper bound with --minutes)."),
    minutes: float = typer.Option(None, help="Wall-clock budget; the LR and pruning schedules follow it."),
    prune: str = typer.Option("none", help="none, oneshot (prune at half-time, then fine-tune) or gradual (Zhu & Gupta)."),
    target_nnz: int = typer.Option(None, "--target-nnz", help="Non-zero stored numbers to end with (implies --prune gradual)."),
    sparsity: float = typer.Option(None, help="Fraction of prunable weights to zero instead of --target-nnz."),
    l1: float = typer.Option(0.0, help="L1 penalty on prunable weights."),
    seed: int = typer.Option(0, help="Random seed (runs with the same seed and no --minutes are identical)."),
    batch_size: int = typer.Option(128, "--batch-size"),
    lr: float = typer.Option(None, help="Peak learning rate (default per architecture)."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn off the task's augmentation."),
    no_calibrate: bool = typer.Option(False, "--no-calibrate", help="Skip folding a temperature into the head."),
    init: Path = typer.Option(None, "--init", help="Checkpoint (.pt) to start from, e.g. from `occam fractal pretrain`."),
    opt: list[str] = typer.Option([], "--opt", help="Architecture option KEY=VALUE, repeatable (e.g. --opt width=24)."),
    train_limit: int = typer.Option(None, "--train-limit", help="Use only the first N training examples."),
    threads: int = typer.Option(None, help="PyTorch threads (default: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Train a zoo model, write ONNX + a JSON card + a .pt checkpoint, and print val metrics."""
    from occam.models import save_checkpoint
    from occam.progress import RichReporter
    from occam.tasks import get_task
    from occam.training import TrainConfig, train

    if target_nnz is not None and prune == "none":
        prune = "gradual"
    cfg = TrainConfig(task=task, arch=arch, arch_kwargs=_parse_opts(opt), epochs=epochs, minutes=minutes, prune=prune,
                      target_nnz=target_nnz, sparsity=sparsity, l1=l1, seed=seed, batch_size=batch_size, lr=lr,
                      augment=not no_augment, calibrate=not no_calibrate, init=str(init) if init else None,
                      train_limit=train_limit, threads=threads)
    spec = get_task(task)
    out = out or Path("runs") / f"{task}-{arch}.onnx"
    result = train(cfg, out, reporter=RichReporter())
    t = get_task(task)
    save_checkpoint(result.model, out.with_suffix(".pt"), arch=arch, arch_kwargs=cfg.arch_kwargs,
                    input_shape=t.input_shape, num_classes=t.num_classes, extra={"card": result.card})
    card = result.card
    if json_out:
        print(json.dumps(card, indent=2))
        return
    v = card["val"]
    console.print(f"[bold green]wrote[/] {out} ({card['nnz']} non-zero numbers, {card['wall_seconds']} s)")
    console.print(f"val ({spec.name}): CE {v['ce']:.4f}  accuracy {v['accuracy']:.2%}  score {v['score']:.4f} at λ={v['lam']:g}")
    console.print(f"score it: occam score {out} --task {task}")


def pareto_cmd(
    task: str = typer.Argument(..., help="Task name."),
    arch: str = typer.Option("sepcnn", "--arch", "-a", help="Architecture(s), comma-separated."),
    nnz: str = typer.Option("500,1000,2000,4000", help="Comma-separated nnz targets."),
    epochs: float = typer.Option(10.0),
    minutes: float = typer.Option(None, help="Budget per model."),
    prune: str = typer.Option("gradual", help="oneshot or gradual."),
    seed: int = typer.Option(0),
    opt: list[str] = typer.Option([], "--opt", help="Architecture option KEY=VALUE, repeatable."),
    lam: float = typer.Option(None, help="λ for the score and iso-score lines (default: the task's)."),
    out: Path = typer.Option(Path("runs/pareto"), "--out", "-o", help="Output folder."),
    split: str = typer.Option("test", help="Split to score on (val or test)."),
) -> None:
    """Train a series of models at increasing nnz, score each, and plot the accuracy/score-vs-nnz frontier."""
    from occam.errors import OccamError
    from occam.training.sweep import sweep

    try:
        targets = [int(v) for v in nnz.split(",") if v.strip()]
    except ValueError:
        raise OccamError(f"--nnz {nnz!r} is not a comma-separated list of integers", "write e.g. --nnz 500,1000,2000") from None
    rows = sweep(task, [a.strip() for a in arch.split(",")], targets, out=out, epochs=epochs, minutes=minutes, prune=prune,
                 seed=seed, arch_kwargs=_parse_opts(opt), lam=lam, split=split, console=console)
    console.print(f"[bold green]wrote[/] {out}/pareto.csv, pareto.png, pareto.html ({len(rows)} models)")


def baselines_cmd(
    tasks: str = typer.Option("", help="Comma-separated tasks (default: every task available here)."),
    archs: str = typer.Option("mlp,lenet5,sepcnn,vit", help="Comma-separated architectures."),
    epochs: float = typer.Option(None, help="Epochs per model (default per task)."),
    out: Path = typer.Option(Path("runs/baselines"), "--out", "-o"),
    readme: Path = typer.Option(None, help="Rewrite the baseline table between markers in this README."),
) -> None:
    """Train every zoo model on every available task, score val and test, and print the baseline table."""
    from occam.training.baselines import run_baselines

    run_baselines([t for t in tasks.split(",") if t], [a for a in archs.split(",") if a], out=out, epochs=epochs,
                  readme=readme, console=console)


def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Where the demo model goes."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the arena with the demo model submitted."),
    minutes: float = typer.Option(1.5, help="Training budget for the demo model."),
) -> None:
    """The main job on embedded defaults: train a small Fashion-MNIST model, score it, then start the arena."""
    from occam.training.baselines import demo

    demo(out=out, minutes=minutes, serve=serve, console=console)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("pareto")(pareto_cmd)
    app.command("baselines")(baselines_cmd)
    app.command("demo")(demo_cmd)
