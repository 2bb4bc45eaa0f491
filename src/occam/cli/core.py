"""CLI: core commands at the top level (``occam inspect``, ``occam score``; ``train``, ``pareto``
and ``baselines`` are added by their own functions below).

Heavy libraries are imported inside the command functions: ``occam score`` must never import
PyTorch, and ``occam --help`` should start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    register_scoring(app)


# ---- inspect / score (scoring part) -----------------------------------------------------------

def register_scoring(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
    app.command("score")(score_cmd)


def _exit(code: int) -> None:
    """Exit with ``code``. (SystemExit, not typer.Exit: ``occam.cli.main`` runs click with
    ``standalone_mode=False``, which turns typer.Exit into a return value, not an exit status.)"""
    if code:
        sys.exit(code)


def _print_json(obj) -> None:
    import json

    typer.echo(json.dumps(obj, indent=2))


def _tensor_table(tensors, title: str):
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("tensor", "left"), ("where", "left"), ("dtype", "left"), ("shape", "left"),
                         ("stored", "right"), ("nnz", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in tensors:
        table.add_row(t.name, t.where, t.dtype, "×".join(map(str, t.shape)) or "scalar", f"{t.size:,}",
                      f"{t.nnz:,}")
    return table


def inspect_cmd(
    model: Path = typer.Argument(..., help="the ONNX file"),
    task: str | None = typer.Option(None, "--task", "-t", help="check inputs/outputs against this task"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """The guard's verdict on an ONNX model and the count of every number it stores. Exit 1 if rejected."""
    from occam.scoring import inspect_model
    from occam.tasks import get_task

    task_obj = get_task(task) if task else None
    report = inspect_model(model, task_obj)
    if as_json:
        _print_json(report.to_dict())
        _exit(0 if report.ok else 1)
        return
    from rich.console import Console

    console = Console()
    if report.tensors:
        console.print(_tensor_table(report.tensors, f"Stored tensors in {model.name}"))
    if report.nnz is not None:
        console.print(f"nnz [bold]{report.nnz:,}[/] of {report.stored_values:,} stored values"
                      + (f"; opset {report.opset}" if report.opset else "")
                      + (f"; input {report.input_shape} → output {report.output_shape}"
                         if report.input_shape else ""), highlight=False)
    if report.ops:
        console.print("ops: " + ", ".join(f"{k}×{v}" for k, v in report.ops.items()), highlight=False)
    if report.ok:
        checked = " (onnxruntime cross-check passed)" if report.cross_checked else ""
        console.print(f"[bold green]accepted[/]{checked}" + (f" for task {task}" if task else ""))
        return
    err = Console(stderr=True)
    err.print(f"[bold red]rejected:[/] {report.reason}", highlight=False)
    if report.fix:
        err.print(f"[bold]fix:[/] {report.fix}", highlight=False)
    _exit(1)


def score_cmd(
    model: Path = typer.Argument(..., help="the ONNX file"),
    task: str = typer.Option(..., "--task", "-t", help="task to score on (see `occam data list`)"),
    split: str = typer.Option("test", "--split", help="val or test"),
    lam: float | None = typer.Option(None, "--lam", help="λ (default: the task's)"),
    threads: int | None = typer.Option(None, "--threads", help="onnxruntime threads (default: up to 4)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Score an ONNX model: score = CE + log10(max(1, nnz)) / λ (lower is better)."""
    from occam.errors import OccamError
    from occam.scoring import score_model
    from occam.tasks import get_task

    if split not in ("val", "test"):
        raise OccamError(f"unknown split {split!r}", "use --split val or --split test")
    task_obj = get_task(task)
    if not model.exists():
        raise OccamError(f"model file not found: {model}", "check the path")
    result = score_model(model, task_obj, split=split, lam=lam, threads=threads)
    if as_json:
        _print_json(result.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{task_obj.title}[/] {split} ({result.n:,} images), λ = {result.lam:g}", highlight=False)
    console.print(f"score     [bold]{result.score:.4f}[/]", highlight=False)
    console.print(f"CE        {result.ce:.4f}", highlight=False)
    console.print(f"accuracy  {result.accuracy:.2%}", highlight=False)
    console.print(f"nnz       {result.nnz:,}  (stored values {result.stored_values:,})", highlight=False)
    table = Table(title="Per-class accuracy")
    table.add_column("class")
    table.add_column("name")
    table.add_column("accuracy", justify="right")
    for c, acc in enumerate(result.per_class_accuracy):
        name = task_obj.class_names[c] if c < len(task_obj.class_names) else str(c)
        table.add_row(str(c), name, "—" if acc is None else f"{acc:.2%}")
    console.print(table)
    console.print(f"[dim]{result.seconds:.2f} s, scorer {result.scorer_version}[/]")
