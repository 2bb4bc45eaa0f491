"""CLI commands for the audit track: build a backdoored-model zoo, check it for leaks, score, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from occam.audit.zoo_config import DEFAULT_ARCHS, ZooConfig
from occam.cli.options import cli_terms, config_options
from occam.errors import OccamError


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Audit track: backdoored-model zoos, leak checks, scoring and baseline auditors.",
                      no_args_is_help=True)
    app.add_typer(sub, name="audit")

    @sub.command("make-zoo")
    @config_options(ZooConfig, exclude=("archs", "attacks", "train_limit"))
    def make_zoo_cmd(
        out: Path = typer.Option(..., "--out", help="Zoo directory (public/ is what teams get)."),
        archs: str = typer.Option(
            ",".join(DEFAULT_ARCHS),
            help="Comma-separated zoo architectures: mlp, lenet5, sepcnn; mlp:W is a W-unit MLP (e.g. mlp:256)."),
        attacks: str = typer.Option(
            "all", help="Comma-separated attack families (docs/audit.md, Trojan families), or all of them."),
        train_limit: int = typer.Option(0, help="Use a random subset of N training images per model (0: all)."),
        key_out: Path = typer.Option(None, "--key-out", help="Where the private key goes (default DIR/private_key)."),
        workers: int = typer.Option(None, help="Parallel workers (default: all CPUs)."),
        ray: str = typer.Option(None, "--ray", help="Run on a Ray cluster at ADDRESS ('local' starts one here)."),
        allow_leaks: bool = typer.Option(False, "--allow-leaks", help="Do not fail when the leak check finds a leak."),
        *,
        cfg: ZooConfig,
    ) -> None:
        """Train clean and backdoored models through one pipeline; write the public part, the key and a report."""
        import dataclasses

        from rich.console import Console

        from occam.audit.attacks import ATTACKS
        from occam.audit.leakcheck import leak_hint, resampled_text
        from occam.audit.zoo import make_zoo

        cfg = dataclasses.replace(cfg, archs=_csv(archs), train_limit=train_limit or None,
                                  attacks=ATTACKS if attacks.strip() == "all" else _csv(attacks))
        report = make_zoo(cfg, out, key_out=key_out, workers=workers, ray_address=ray, allow_leaks=allow_leaks)
        console = Console()
        console.print(f"zoo: {report['models_kept']} models ({report['trojans_kept']} trojaned) in {out / 'public'}; "
                      f"key in {report['key_dir']}; report {out / 'report.md'}")
        if report["dropped"]:
            console.print(f"[yellow]{report['dropped']} trojan(s) dropped after {cfg.max_retries} retries (see the report)")
        for d in report.get("leak_check", {}).get("leaks", []):
            rs = resampled_text(d)
            rs = "" if rs is None else f", mean over random half splits {rs}"
            console.print(f"[bold red]LEAK[/]: {d['detector']} AUROC {d['auroc']:.3f}{rs} (allowed by --allow-leaks); "
                          f"fix: {leak_hint(d['detector'])}")

    @sub.command("leak-check")
    def leak_check_cmd(
        zoo: Path = typer.Argument(..., help="Zoo directory."),
        key: Path = typer.Option(None, help="The key (default DIR/private_key/key.json)."),
        threshold: float = typer.Option(0.6, help="AUROC above which a detector is a leak."),
        fail: bool = typer.Option(True, help="Exit with status 1 when a leak is found."),
        resamples: int = typer.Option(100, min=0, help="Random half splits each detector is also refit on (0 = off)."),
    ) -> None:
        """Train lazy detectors (accuracy, weight statistics, scale-free statistics, clean outputs) on the labelled part."""
        from rich.console import Console
        from rich.table import Table

        from occam.audit.leakcheck import leak_check, leak_hint, resampled_text

        try:
            res = leak_check(zoo, key_path=key, threshold=threshold, resamples=resamples)
        except OccamError as exc:
            raise cli_terms(exc, {"key_path": "--key"}) from None
        table = Table(title=f"leak check (labelled n={res['n_labelled']}, audit n={res['n_audit']}, "
                      f"chance sd ≈ {res['chance_sd']})")
        table.add_column("detector")
        table.add_column("AUROC", justify="right")
        table.add_column(f"mean ± sd, {res['resamples']} random splits", justify="right")
        table.add_column("")
        leaky = {d["detector"] for d in res["leaks"]}
        for d in res["detectors"]:
            table.add_row(d["detector"], "–" if d["auroc"] is None else f"{d['auroc']:.3f}", resampled_text(d) or "–",
                          "[bold red]LEAK" if d["detector"] in leaky else "")
        table.add_row("structure", "identical" if res["structure_identical"] else "DIFFERS", "",
                      "" if res["structure_identical"] else "[bold red]LEAK")
        console = Console()
        console.print(table)
        for d in res["leaks"]:
            console.print(f"[bold red]LEAK[/] {d['detector']}: {leak_hint(d['detector'])}")
        if res["leaks"] and fail:
            raise typer.Exit(1)

    @sub.command("score")
    def score_cmd(
        submission: Path = typer.Argument(..., help="CSV or JSON submission."),
        key: Path = typer.Option(..., help="The zoo's key.json."),
        zoo: Path = typer.Option(None, help="Zoo directory (needed for trigger success)."),
        budget: float = typer.Option(None, help="Trigger size budget (mask L1); default max(9, 10 % of the pixels)."),
        as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    ) -> None:
        """Score a submission: AUROC, log-loss, Brier, target accuracy, trigger success (per attack too)."""
        from rich.console import Console
        from rich.table import Table

        from occam.audit.scoring import score_submission

        res = score_submission(submission, key, zoo_dir=zoo, budget=budget)
        if as_json:
            typer.echo(json.dumps(res, indent=2))
            return
        f = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
        table = Table(title=f"{submission.name}: {res['n_models']} models, {res['n_trojaned']} trojaned")
        for col in ("", "AUROC", "log-loss", "Brier", "target acc", "trigger success", "over natural", "overlap",
                    "trigger score"):
            table.add_column(col)
        table.add_row("all", f(res["auroc"]), f(res["log_loss"]), f(res["brier"]), f(res["target_accuracy"]),
                      f(res["trigger_success"]), f(res["trigger_success_over_natural"]), f(res["trigger_overlap"]),
                      f(res["trigger_score"]))
        for a, d in res["per_attack"].items():
            table.add_row(a, f(d["auroc"]), "", "", f(d["target_accuracy"]), f(d["trigger_success"]),
                          f(d["trigger_success_over_natural"]), f(d["trigger_overlap"]), f(d["trigger_score"]))
        Console().print(table)
        Console().print("trigger figures count localized mask-and-pattern families only (not blend, sig, wanet); "
                        "'over natural' counts the natural trigger of clean models as 0 (docs/audit.md)")

    @sub.command("heldout-check")
    def heldout_check_cmd(
        zoo: Path = typer.Argument(..., help="Zoo directory."),
        key: Path = typer.Option(None, help="The key (default DIR/private_key/key.json)."),
        threshold: float = typer.Option(0.6, help="AUROC above which a detector is a leak."),
        resamples: int = typer.Option(50, min=0, help="Random half splits each trained detector is refit on (0 = off)."),
        bootstrap: int = typer.Option(1000, min=10, help="Bootstrap resamples of the models for the 95 % intervals."),
        out: Path = typer.Option(None, help="Also write the result as JSON here."),
        fail: bool = typer.Option(False, help="Exit with status 1 when a held-out detector finds a leak."),
    ) -> None:
        """The held-out leak battery (detectors the zoo generator never sees), with 95 % intervals and power."""
        from rich.console import Console
        from rich.table import Table

        from occam.audit.battery import heldout_battery

        res = heldout_battery(zoo, key_path=key, threshold=threshold, resamples=resamples, bootstrap=bootstrap)
        table = Table(title=f"held-out battery ({res['n_models']} models, audit n={res['n_audit']}; threshold "
                      f"{threshold} = {res['threshold_in_chance_sd_audit']} chance sd on the audit part)")
        for col in ("detector", "scored on", "AUROC", "95 % interval", "mean ± sd, random splits", ""):
            table.add_column(col)
        leaky = {d["detector"] for d in res["leaks"]}
        for d in res["detectors"]:
            lo, hi = d["ci95"]
            table.add_row(d["detector"], "audit part" if d["trained"] else "all models (no training)",
                          "–" if d["auroc"] is None else f"{d['auroc']:.3f}",
                          "–" if lo is None else f"[{lo:.3f}, {hi:.3f}]",
                          "–" if d["resampled_mean"] is None else f"{d['resampled_mean']:.3f} ± {d['resampled_sd']:.3f}",
                          "[bold red]LEAK" if d["detector"] in leaky else "")
        console = Console()
        console.print(table)
        console.print(f"a zoo of {res['recommended_models']} published models puts {threshold} at 3 chance sd")
        if out is not None:
            out.write_text(json.dumps(res, indent=1))
        if res["leaks"] and fail:
            raise typer.Exit(1)

    @sub.command("baseline")
    def baseline_cmd(
        name: str = typer.Argument(..., help="neural-cleanse or meta."),
        zoo: Path = typer.Option(..., help="Zoo directory (only its public part is read)."),
        out: Path = typer.Option(None, help="Submission to write (default NAME.json in the current folder)."),
        steps: int = typer.Option(300, help="Neural Cleanse: optimization steps."),
        images: int = typer.Option(40, help="Neural Cleanse: clean images used."),
    ) -> None:
        """Run a baseline auditor on the zoo's audit models and write a valid submission."""
        from occam.audit.baselines import run_baseline

        kwargs = {"steps": steps, "images": images, "progress": True} if name == "neural-cleanse" else {}
        path = run_baseline(name, zoo, out or Path(f"{name}.json"), **kwargs)
        typer.echo(f"wrote {path}")

    @sub.command("triggers")
    def triggers_cmd(
        model: Path = typer.Argument(..., help="An ONNX model of a zoo."),
        task: str = typer.Option("fashion-mnist", help="The zoo's task."),
        out: Path = typer.Option(Path("triggers.png"), help="PNG to write."),
        steps: int = typer.Option(300, help="Optimization steps."),
    ) -> None:
        """Reverse-engineer the smallest trigger for each class (Neural Cleanse) and draw them."""
        from occam.audit.lens import class_triggers

        res = class_triggers(model, task=task, png=out, steps=steps)
        for c in res["classes"]:
            typer.echo(f"class {c['class']:>2} {c['name']:<12} mask L1 {c['mask_l1']:8.2f}  success {c['success']:.2f}")
        typer.echo(f"anomaly index {res['anomaly_index']:.2f} (flag > 2), smallest: class {res['smallest_class']}; wrote {out}")
