"""CLI for the toy models: ``occam toy grok | tms | induction | llc``.

A thin layer over :mod:`occam.toy`: heavy imports (PyTorch, matplotlib) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def _reporter(quiet: bool):  # noqa: ANN202
    from occam.progress import RichReporter

    return None if quiet else RichReporter(console)


def _threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)


def _fmt(v: object, nd: int = 3) -> str:
    return "—" if v is None else (f"{v:.{nd}g}" if isinstance(v, float) else str(v))


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Toy models: grokking, superposition, induction heads, local learning coefficient.",
                      no_args_is_help=True)
    app.add_typer(sub, name="toy")

    @sub.command("grok")
    def grok(
        out: Path = typer.Option(Path("runs/toy/grok"), "--out", help="Run directory (run.json, checkpoints/, grok.png)."),
        canonical: bool = typer.Option(False, "--canonical", help="Nanda et al.'s setting: p=113, 1-layer transformer, "
                                       "fraction 0.3, lr 1e-3, 20k steps (long: run it with nohup in the background)."),
        p: int | None = typer.Option(None, help="Prime modulus (default 59; 113 with --canonical)."),
        op: str = typer.Option("+", help="Operation: + - * /"),
        frac: float | None = typer.Option(None, "--frac", help="Train fraction (default 0.5; 0.3 with --canonical)."),
        kind: str | None = typer.Option(None, help="onehot_mlp, embed_mlp or transformer."),
        steps: int | None = typer.Option(None, help="Training steps (default 3000; 20000 with --canonical)."),
        lr: float | None = typer.Option(None, help="AdamW learning rate."),
        weight_decay: float | None = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 1)."),
        seed: int = typer.Option(0, help="Seed of the split and the initialization."),
        device: str = typer.Option("cpu", help="Torch device (cpu, cuda)."),
        threads: int | None = typer.Option(None, help="Torch CPU threads (default: PyTorch's choice)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Train a model on a∘b mod p until it groks; progress measures per checkpoint; grok.png."""
        from occam.toy.grok import GrokConfig, train_grok
        from occam.toy.plots import grok_png

        _threads(threads)
        cfg = GrokConfig.canonical() if canonical else GrokConfig()
        for name, val in (("p", p), ("frac_train", frac), ("steps", steps), ("lr", lr), ("weight_decay", weight_decay)):
            if val is not None:
                setattr(cfg, name, val)
        if kind is not None:
            cfg.kind, cfg.model = kind, ({"hidden": 256} if kind != "transformer" else {})
        cfg.op, cfg.seed, cfg.device = op, seed, device
        s = train_grok(cfg, out, _reporter(quiet))
        png = grok_png(out)
        f = s["final"]
        _table(f"grok p={cfg.p} {cfg.op} {cfg.kind}", [
            ("train loss / acc", f"{_fmt(f['train_loss'])} / {_fmt(f['train_acc'])}"),
            ("test loss / acc", f"{_fmt(f['test_loss'])} / {_fmt(f['test_acc'])}"),
            ("step train acc ≥ 99 %", _fmt(s["step_train_acc_99"])),
            ("step test acc ≥ 99 %", _fmt(s["step_test_acc_99"])),
            ("key frequencies (logits)", _fmt(s.get("final_key_freqs"))),
            ("median single-frequency share of neurons",
             _fmt(float(sorted(s["neuron_single_freq"])[len(s["neuron_single_freq"]) // 2])) if s.get("neuron_single_freq")
             else "—"),
            ("training seconds", f"{s['train_seconds']:.1f} ({1000 * s['seconds_per_step']:.2f} ms/step)"),
            ("run / figure", f"{out} / {png.name}"),
        ])

    @sub.command("tms")
    def tms(
        out: Path = typer.Option(Path("runs/toy/tms"), "--out", help="Folder for the two runs (sparsity/, dims/)."),
        steps: int = typer.Option(10_000, help="Training steps of each run."),
        instances: int = typer.Option(10, help="Instances (one per sparsity) trained at once."),
        dims: bool = typer.Option(True, "--dims/--no-dims", help="Also run the dimensionality experiment."),
        dims_features: int = typer.Option(100, "--dims-features", help="Features of the dimensionality run."),
        dims_hidden: int = typer.Option(10, "--dims-hidden", help="Hidden dimensions of the dimensionality run."),
        seed: int = typer.Option(0, help="Seed."),
        threads: int | None = typer.Option(1, help="Torch CPU threads (tiny tensors: 1 is fastest)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Toy Models of Superposition: 5 features → 2 dims over a sparsity sweep, and a dimensionality run."""
        import numpy as np

        from occam.toy.plots import tms_png
        from occam.toy.tms import TMSConfig, train_tms

        _threads(threads)
        s = train_tms(TMSConfig(steps=steps, n_instances=instances, seed=seed), out / "sparsity", _reporter(quiet))
        tms_png(out / "sparsity")
        rows = [(f"S = {sp:.3f}", f"D* {d:.2f}, {n} features") for sp, d, n in
                zip(s["sparsity"], s["d_star"], s["n_represented"], strict=True)]
        if dims:
            cfg = TMSConfig(n_features=dims_features, n_hidden=dims_hidden, n_instances=instances, importance_decay=1.0,
                            prob_min=0.01, steps=steps, seed=seed)
            d = train_tms(cfg, out / "dims", _reporter(quiet), name="tms_dims")
            tms_png(out / "dims")
            di = np.array(d["d_i"])
            rows.append((f"{dims_features}→{dims_hidden}: D* dense / sparse", f"{d['d_star'][0]:.2f} / {d['d_star'][-1]:.2f}"))
            rows.append((f"{dims_features}→{dims_hidden}: D_i of the sparsest instance (quartiles)",
                         " ".join(f"{q:.2f}" for q in np.quantile(di[-1][di[-1] > 0.05], [0.25, 0.5, 0.75]))))
        rows.append(("training seconds (5→2)", f"{s['train_seconds']:.1f}"))
        _table("Toy Models of Superposition", rows)

    @sub.command("induction")
    def induction(
        out: Path = typer.Option(Path("runs/toy/induction"), "--out", help="Run directory."),
        steps: int = typer.Option(1000, help="Training steps."),
        vocab: int = typer.Option(64, help="Vocabulary size."),
        half: int = typer.Option(12, help="Length of the random half (the sequence is it, repeated once)."),
        seed: int = typer.Option(0, help="Seed."),
        threads: int | None = typer.Option(1, help="Torch CPU threads (small tensors: 1 is fastest)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """A 2-layer attention-only transformer on repeated random sequences: the induction phase change."""
        import numpy as np

        from occam.toy.induction import InductionConfig, train_induction
        from occam.toy.plots import induction_png

        _threads(threads)
        s = train_induction(InductionConfig(steps=steps, vocab=vocab, half=half, seed=seed), out, _reporter(quiet))
        induction_png(out)
        ind = np.array(s["final"]["induction"])
        layer, head = np.unravel_index(ind.argmax(), ind.shape)
        _table("induction heads", [
            ("loss first half / repeated half", f"{s['final']['loss_first_half']:.3f} / {s['final']['loss_repeat']:.3f}"),
            ("phase change (steps)", f"{_fmt(s['phase_start'])} → {_fmt(s['phase_end'])}"),
            ("best induction head", f"L{layer}H{head}: {ind.max():.2f}"),
            ("heads scoring > 0.4", str(int((ind > 0.4).sum()))),
            ("training seconds", f"{s['train_seconds']:.1f}"),
        ])

    @sub.command("llc")
    def llc(
        run: Path = typer.Argument(..., help="A toy run directory."),
        every: int = typer.Option(4, help="Estimate at every N-th checkpoint."),
        chains: int = typer.Option(4, help="SGLD chains per checkpoint."),
        steps: int = typer.Option(400, help="SGLD steps per chain."),
        epsilon: float = typer.Option(1e-4, help="SGLD step size."),
        gamma: float = typer.Option(100.0, help="Localization strength."),
        seed: int = typer.Option(0, help="Seed."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Local learning coefficient (SGLD) over a run's checkpoints; writes llc.json and llc.png into the run."""
        import json

        from occam.toy.llc import SGLDConfig, llc_over_checkpoints
        from occam.toy.plots import llc_png

        cfg = SGLDConfig(epsilon=epsilon, gamma=gamma, chains=chains, steps=steps, burn_in=steps // 4, seed=seed)
        res = llc_over_checkpoints(run, cfg, every=max(1, every), reporter=_reporter(quiet))
        (run / "llc.json").write_text(json.dumps(res | {"sgld": cfg.__dict__}, indent=1))
        llc_png(run, res)
        _table(f"LLC of {run}", [(f"step {s}", f"{v:.2f} ± {e:.2f}") for s, v, e in
                                 zip(res["step"], res["llc"], res["llc_std"], strict=True)])
