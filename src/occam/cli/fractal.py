"""CLI commands for FractalDB: ``occam fractal make | show | pretrain | experiment``.

Heavy libraries (NumPy kernels via Numba, PyTorch, Ray) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from occam.cli.options import config_options
from occam.fractal.config import ExperimentConfig, FractalConfig, PretrainConfig

console = Console(stderr=True)


def _ints(text: str, what: str) -> tuple[int, ...]:
    from occam.errors import OccamError

    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise OccamError(f"{what} must be comma-separated integers, got {text!r}", f"pass e.g. --{what} 0,1,2") from None
    if not vals:
        raise OccamError(f"{what} is empty", f"pass e.g. --{what} 0,1,2")
    return vals


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="FractalDB: synthetic pre-training data (Kataoka et al. 2020), fast.",
                      no_args_is_help=True)
    app.add_typer(sub, name="fractal")

    @sub.command("make")
    @config_options(FractalConfig, exclude=("search_size", "search_points", "pad", "intensity"),
                    flags={"colour": "--colour/--gray"})
    def make(
        *,
        cfg: FractalConfig,
        out: Path = typer.Option(..., "--out", help="Output directory (shards + manifest.json)."),
        workers: int | None = typer.Option(None, help="Local worker processes (default: all CPUs)."),
        ray: str | None = typer.Option(None, "--ray", help="Run on Ray: a cluster address, or 'local'."),
        png: bool = typer.Option(False, "--png", help="Also export every image as PNG under OUT/png/."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Render FractalDB into sharded .npy arrays (resumable: re-running skips finished shards)."""
        import time

        from occam.fractal.fractaldb import make_fractaldb

        cfg.validate()
        t0 = time.perf_counter()
        manifest = make_fractaldb(cfg, out, workers=workers, ray_address=ray, png=png, progress=not quiet)
        n = sum(s["count"] for s in manifest["shards"].values())
        dt = time.perf_counter() - t0
        console.print(f"{len(manifest['shards'])}/{cfg.categories} categories, {n} images in {out} "
                      f"({dt:.1f} s this run)")

    @sub.command("show")
    def show(
        directory: Path = typer.Argument(..., help="A directory written by occam fractal make."),
        out: Path | None = typer.Option(None, "--out", help="PNG path (default DIR/contact_sheet.png)."),
        rows: int = typer.Option(8, help="Categories shown (one per row)."),
        cols: int = typer.Option(8, help="Instances per category."),
        thumb: int = typer.Option(96, help="Thumbnail side in pixels."),
    ) -> None:
        """Write a contact-sheet PNG of a generated dataset."""
        from occam.fractal.fractaldb import contact_sheet

        path = contact_sheet(directory, out, rows=rows, cols=cols, thumb=thumb)
        console.print(f"contact sheet: {path}")
        typer.echo(str(path))

    @sub.command("pretrain")
    @config_options(PretrainConfig, include=("arch", "categories", "instances", "points", "patch", "epochs",
                                             "batch_size", "workers", "seed", "sampler", "lr", "threads"))
    def pretrain_cmd(
        *,
        cfg: PretrainConfig,
        out: Path = typer.Option(..., "--out", help="Checkpoint path (.pt)."),
        task: str = typer.Option("fashion-mnist", help="Task whose input shape the fractals take."),
    ) -> None:
        """Pre-train a zoo model to classify fractal categories rendered on the fly."""
        import dataclasses

        from occam.fractal.pretrain import pretrain
        from occam.tasks import get_task

        cfg = dataclasses.replace(cfg, input_shape=get_task(task).input_shape)
        _, info = pretrain(cfg, out, log=console.print)
        console.print(f"checkpoint: {out} ({info['steps']} steps, {info['seconds']} s); "
                      f"fine-tune with: occam train {task} --arch {cfg.arch} --init {out}")

    @sub.command("experiment")
    @config_options(PretrainConfig, include=("categories", "instances", "points", "epochs"),
                    flags={"epochs": "--pretrain-epochs"}, param="pre")
    @config_options(ExperimentConfig, include=("arch", "finetune_steps"), param="exp")
    def experiment(
        *,
        exp: ExperimentConfig,
        pre: PretrainConfig,
        out: Path = typer.Option(Path("runs/fractal-experiment"), "--out", help="Output folder (CSV + PNG)."),
        task: list[str] = typer.Option(["fashion-mnist", "cifar10"], "--task",
                                       help="Tasks (skipped when their files are missing)."),
        sizes: str = typer.Option("100,500,1000", help="Labelled subset sizes."),
        seeds: str = typer.Option("0,1,2", help="Seeds (error bars are over these)."),
        quick: bool = typer.Option(False, "--quick", help="One seed, two sizes, short runs (a smoke test)."),
    ) -> None:
        """Scratch versus fractal pre-training on small labelled subsets, at matched compute."""
        import dataclasses

        from occam.fractal.pretrain import run_experiment, summarize

        cfg = dataclasses.replace(exp, tasks=tuple(task), sizes=_ints(sizes, "sizes"), seeds=_ints(seeds, "seeds"),
                                  pretrain=pre)
        if quick:
            cfg.sizes, cfg.seeds, cfg.finetune_steps, cfg.test_limit = cfg.sizes[:2], cfg.seeds[:1], 60, 2000
            pre.categories, pre.instances, pre.epochs = 16, 64, 1.0
        rows = run_experiment(cfg, out, log=console.print)
        for s in summarize(rows):
            typer.echo(f"{s['task']:14s} n={s['n_labelled']:5d} {s['arm']:9s} "
                       f"{s['mean_accuracy']:.4f} ± {s['std_accuracy']:.4f} ({s['seeds']} seeds)")
        console.print(f"results: {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'fractal_pretrain.png'}")
