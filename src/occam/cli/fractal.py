"""CLI commands for FractalDB: ``occam fractal make | show | pretrain | experiment``.

Heavy libraries (NumPy kernels via Numba, PyTorch, Ray) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

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
    def make(
        out: Path = typer.Option(..., "--out", help="Output directory (shards + manifest.json)."),
        categories: int = typer.Option(1000, help="Number of fractal categories (classes)."),
        instances: int = typer.Option(1000, help="Images per category (flips × weight variants × renders)."),
        size: int = typer.Option(362, help="Image side in pixels."),
        points: int = typer.Option(200_000, help="Chaos-game points per image."),
        seed: int = typer.Option(0, help="Seed: the same seed and settings give the same arrays."),
        patch: bool = typer.Option(True, "--patch/--no-patch", help="Draw a random 3×3 patch at every point."),
        colour: bool = typer.Option(False, "--colour/--gray", help="Colour (hue cycling) or grayscale images."),
        sampler: str = typer.Option("search", help="search (FractalDB's filling-rate search) or contractive "
                                                   "(Anderson & Farrell's sampler)."),
        threshold: float = typer.Option(0.2, help="Minimum filling rate of a category's attractor."),
        workers: int | None = typer.Option(None, help="Local worker processes (default: all CPUs)."),
        ray: str | None = typer.Option(None, "--ray", help="Run on Ray: a cluster address, or 'local'."),
        png: bool = typer.Option(False, "--png", help="Also export every image as PNG under OUT/png/."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Render FractalDB into sharded .npy arrays (resumable: re-running skips finished shards)."""
        import time

        from occam.fractal.fractaldb import FractalConfig, make_fractaldb

        cfg = FractalConfig(categories=categories, instances=instances, size=size, points=points, seed=seed,
                            patch=patch, colour=colour, sampler=sampler, threshold=threshold).validate()
        t0 = time.perf_counter()
        manifest = make_fractaldb(cfg, out, workers=workers, ray_address=ray, png=png, progress=not quiet)
        n = sum(s["count"] for s in manifest["shards"].values())
        dt = time.perf_counter() - t0
        console.print(f"{len(manifest['shards'])}/{categories} categories, {n} images in {out} "
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
    def pretrain_cmd(
        out: Path = typer.Option(..., "--out", help="Checkpoint path (.pt)."),
        task: str = typer.Option("fashion-mnist", help="Task whose input shape the fractals take."),
        arch: str = typer.Option("lenet5", help="Zoo architecture: mlp, lenet5, sepcnn, vit."),
        categories: int = typer.Option(64, help="Fractal categories (classes of the pre-training task)."),
        instances: int = typer.Option(200, help="Instances per category."),
        points: int = typer.Option(3000, help="Points per image (at 28×28, a few thousand fill the shape)."),
        patch: bool = typer.Option(False, "--patch/--no-patch", help="3×3 patch rendering."),
        epochs: float = typer.Option(2.0, help="Passes over categories × instances."),
        batch_size: int = typer.Option(128),
        workers: int = typer.Option(0, help="DataLoader worker processes rendering on the fly."),
        seed: int = typer.Option(0),
    ) -> None:
        """Pre-train a zoo model to classify fractal categories rendered on the fly."""
        from occam.fractal.pretrain import PretrainConfig, pretrain
        from occam.tasks import get_task

        shape = get_task(task).input_shape
        cfg = PretrainConfig(arch=arch, input_shape=shape, categories=categories, instances=instances,
                             points=points, patch=patch, epochs=epochs, batch_size=batch_size, workers=workers,
                             seed=seed)
        _, info = pretrain(cfg, out, log=console.print)
        console.print(f"checkpoint: {out} ({info['steps']} steps, {info['seconds']} s); "
                      f"fine-tune with: occam train --task {task} --arch {arch} --init {out}")

    @sub.command("experiment")
    def experiment(
        out: Path = typer.Option(Path("runs/fractal-experiment"), "--out", help="Output folder (CSV + PNG)."),
        task: list[str] = typer.Option(["fashion-mnist", "cifar10"], "--task",
                                       help="Tasks (skipped when their files are missing)."),
        sizes: str = typer.Option("100,500,1000", help="Labelled subset sizes."),
        seeds: str = typer.Option("0,1,2", help="Seeds (error bars are over these)."),
        arch: str = typer.Option("lenet5"),
        finetune_steps: int = typer.Option(300, help="Fine-tuning steps (scratch+ adds the pre-training steps)."),
        categories: int = typer.Option(64),
        instances: int = typer.Option(200),
        points: int = typer.Option(3000),
        pretrain_epochs: float = typer.Option(2.0),
        quick: bool = typer.Option(False, "--quick", help="One seed, two sizes, short runs (a smoke test)."),
    ) -> None:
        """Scratch versus fractal pre-training on small labelled subsets, at matched compute."""
        from occam.fractal.pretrain import ExperimentConfig, PretrainConfig, run_experiment, summarize

        pre = PretrainConfig(arch=arch, categories=categories, instances=instances, points=points,
                             epochs=pretrain_epochs)
        cfg = ExperimentConfig(tasks=tuple(task), sizes=_ints(sizes, "sizes"), seeds=_ints(seeds, "seeds"), arch=arch,
                               finetune_steps=finetune_steps, pretrain=pre)
        if quick:
            cfg.sizes, cfg.seeds, cfg.finetune_steps, cfg.test_limit = cfg.sizes[:2], cfg.seeds[:1], 60, 2000
            pre.categories, pre.instances, pre.epochs = 16, 64, 1.0
        rows = run_experiment(cfg, out, log=console.print)
        for s in summarize(rows):
            typer.echo(f"{s['task']:14s} n={s['n_labelled']:5d} {s['arm']:9s} "
                       f"{s['mean_accuracy']:.4f} ± {s['std_accuracy']:.4f} ({s['seeds']} seeds)")
        console.print(f"results: {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'fractal_pretrain.png'}")
