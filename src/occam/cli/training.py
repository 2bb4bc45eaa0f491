"""CLI: ``occam train``, ``occam pareto``, ``occam baselines`` and ``occam demo``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from occam.cli.options import config_options
from occam.training.config import TrainConfig

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


def _list_presets(value: bool) -> None:
    if not value:
        return
    from occam.training.presets import PRESETS

    for p in PRESETS.values():
        console.print(f"[bold]{p.name}[/] ({p.task}): {p.description}", highlight=False)
        flags = " ".join(_preset_flags(p.values))
        console.print(f"  = occam train {p.task} {flags}", highlight=False, soft_wrap=True)
        if p.figure:
            console.print(f"  reached: {p.figure}", highlight=False)
    raise typer.Exit(0)


def _preset_flags(values: dict) -> list[str]:
    from occam.cli.options import field_flag

    out = []
    for k, v in values.items():
        if k == "arch_kwargs":
            out += [f"--opt {kk}={vv}" for kk, vv in v.items()]
        elif isinstance(v, bool):
            out.append(field_flag(k) if v else f"--no-{k.replace('_', '-')}")
        else:
            out.append(f"{field_flag(k)} {v:g}" if isinstance(v, float) else f"{field_flag(k)} {v}")
    return out


@config_options(TrainConfig, exclude=("arch_kwargs",), flags={"arch": ("--arch", "-a")}, explicit="given")
def train_cmd(
    task: str = typer.Argument(..., help="Task name (see `occam data list`)."),
    *,
    cfg: TrainConfig,
    given: set[str],
    out: Path = typer.Option(None, "--out", "-o", help="ONNX file to write (card beside it). Default runs/TASK-ARCH.onnx."),
    opt: list[str] = typer.Option([], "--opt", help="Architecture option KEY=VALUE, repeatable (e.g. --opt width=24)."),
    preset: str = typer.Option(None, "--preset", help="Start from a named recipe (options given here override it)."),
    list_presets: bool = typer.Option(False, "--list-presets", is_eager=True, callback=_list_presets,
                                      help="List the named recipes and exit."),
    json_out: bool = typer.Option(False, "--json", help="Print the card as JSON."),
) -> None:
    """Train a zoo model, write ONNX + a JSON card + a .pt checkpoint, and print val metrics."""
    import dataclasses

    from occam.models import save_checkpoint
    from occam.progress import RichReporter
    from occam.tasks import get_task
    from occam.training import train

    arch_kwargs = _parse_opts(opt)
    if preset:
        from occam.training.presets import get_preset

        base = get_preset(preset).config(task)
        arch_kwargs = {**base.arch_kwargs, **arch_kwargs}
        cfg = dataclasses.replace(base, **{k: getattr(cfg, k) for k in given})
    if cfg.target_nnz is not None and cfg.prune == "none":
        cfg = dataclasses.replace(cfg, prune="gradual")
    cfg = dataclasses.replace(cfg, arch_kwargs=arch_kwargs)
    spec = get_task(task)
    out = out or Path("runs") / f"{task}-{cfg.arch}.onnx"
    result = train(cfg, out, reporter=RichReporter())
    save_checkpoint(result.model, out.with_suffix(".pt"), arch=cfg.arch, arch_kwargs=cfg.arch_kwargs,
                    input_shape=spec.input_shape, num_classes=spec.num_classes, extra={"card": result.card})
    card = result.card
    if json_out:
        print(json.dumps(card, indent=2))
        return
    v = card["val"]
    console.print(f"[bold green]wrote[/] {out} ({card['nnz']} non-zero numbers, {card['wall_seconds']} s)")
    console.print(f"val ({spec.name}): CE {v['ce']:.4f}  accuracy {v['accuracy']:.2%}  score {v['score']:.4f} at λ={v['lam']:g}")
    console.print(f"score it: occam score {out} --task {task}")


@config_options(TrainConfig, include=("epochs", "minutes", "seed"))
def pareto_cmd(
    task: str = typer.Argument(..., help="Task name."),
    *,
    cfg: TrainConfig,
    arch: str = typer.Option("sepcnn", "--arch", "-a", help="Architecture(s), comma-separated."),
    nnz: str = typer.Option("500,1000,2000,4000", help="Comma-separated nnz targets."),
    prune: str = typer.Option("gradual", help="oneshot or gradual (a sweep always prunes)."),
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
    rows = sweep(task, [a.strip() for a in arch.split(",")], targets, out=out, epochs=cfg.epochs, minutes=cfg.minutes,
                 prune=prune, seed=cfg.seed, arch_kwargs=_parse_opts(opt), lam=lam, split=split, console=console)
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

    model = demo(out=out, minutes=minutes, console=console)
    if serve:
        console.print("[bold]3/3[/] starting the arena with a demo challenge and this model submitted")
        from occam.cli import main as cli_main

        cli_main(["arena", "demo", "--model", str(model)])


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("pareto")(pareto_cmd)
    app.command("baselines")(baselines_cmd)
    app.command("demo")(demo_cmd)
