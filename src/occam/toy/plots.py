"""Figures for the toy experiments: matplotlib PNGs written into the run directory (Agg, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grok_png(run_dir: str | Path) -> Path:
    """Loss and accuracy curves with restricted/excluded loss, the Gini of the embedding spectrum, the final spectrum
    and the neurons' single-frequency fractions."""
    from occam.toy.runs import load_run

    run = load_run(run_dir)
    plt = _plt()
    c = run.meta["summary"]["curve"]
    steps = np.maximum(np.array(run.steps), 1)
    fig, ax = plt.subplots(2, 2, figsize=(11, 7.5))
    a = ax[0, 0]
    a.plot(np.maximum(c["step"], 1), c["train_loss"], label="train")
    a.plot(np.maximum(c["step"], 1), c["test_loss"], label="test")
    if not np.isnan(run.metrics("restricted_loss")).all():
        a.plot(steps, run.metrics("restricted_loss"), "--", label="restricted (key freqs kept)")
        a.plot(steps, run.metrics("excluded_loss"), ":", label="excluded (key freqs removed, train)")
    a.set(xscale="log", yscale="log", xlabel="step", ylabel="cross-entropy", title="loss")
    a.legend(fontsize=8)
    a = ax[0, 1]
    a.plot(np.maximum(c["step"], 1), c["train_acc"], label="train")
    a.plot(np.maximum(c["step"], 1), c["test_acc"], label="test")
    a2 = a.twinx()
    a2.plot(steps, run.metrics("gini"), "k--", lw=1, label="Gini of embedding spectrum")
    a2.set_ylabel("Gini")
    a.set(xscale="log", xlabel="step", ylabel="accuracy", title="accuracy and sparsity of the embedding")
    a.legend(loc="upper left", fontsize=8)
    a2.legend(loc="lower right", fontsize=8)
    spec = np.array(run.meta["checkpoints"][-1]["metrics"]["spectrum"])
    ax[1, 0].bar(np.arange(1, len(spec) + 1), spec)
    ax[1, 0].set(xlabel="frequency k", ylabel="norm", title=f"embedding Fourier spectrum at step {run.steps[-1]}")
    frac = run.meta["summary"].get("neuron_single_freq")
    if frac:
        ax[1, 1].hist(frac, bins=30)
        ax[1, 1].set(xlabel="share of variance in the top frequency", ylabel="neurons",
                     title="how single-frequency each neuron is (final)")
    fig.tight_layout()
    out = Path(run_dir) / "grok.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def tms_png(run_dir: str | Path) -> Path:
    """One panel per instance with the features' 2-D directions (if m = 2), and D* against 1/(1−S)."""
    from occam.toy.runs import load_run

    run = load_run(run_dir)
    plt = _plt()
    s = run.meta["summary"]
    W = run.state_dict(run.steps[-1])["W"].numpy()
    n_inst, m, _ = W.shape
    inv = 1 / np.maximum(1 - np.array(s["sparsity"]), 1e-9)
    if m == 2:
        cols = min(n_inst + 1, 6)
        rows = -(-(n_inst + 1) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.5 * rows), squeeze=False)
        ax = axes.ravel()
        for extra in ax[n_inst + 1:]:
            extra.axis("off")
        imp = np.array(run.task["importance"])
        for i in range(n_inst):
            for j in range(W.shape[2]):
                ax[i].plot([0, W[i, 0, j]], [0, W[i, 1, j]], color=plt.cm.viridis(imp[j] / imp.max()))
                ax[i].scatter(W[i, 0, j], W[i, 1, j], s=12, color=plt.cm.viridis(imp[j] / imp.max()))
            ax[i].set(xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), xticks=[], yticks=[], title=f"S={s['sparsity'][i]:.2f}")
            ax[i].set_aspect("equal")
        last = ax[n_inst]
    else:
        fig, (last, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        d_i = np.array(s["d_i"])
        for i in range(n_inst):
            ax2.scatter(np.full(d_i.shape[1], inv[i]), d_i[i], s=6, alpha=0.5)
        for f in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 1 / 3):
            ax2.axhline(f, color="grey", lw=0.5)
        ax2.set(xscale="log", xlabel="1/(1−S)", ylabel="D_i", title="feature dimensionality D_i")
    last.plot(inv, s["d_star"], "o-")
    last.set(xscale="log", xlabel="1/(1−S)", ylabel="D* = m/‖W‖²_F", title="dimensions per feature")
    fig.tight_layout()
    out = Path(run_dir) / "tms.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def induction_png(run_dir: str | Path) -> Path:
    """Loss on each half over training, the induction score over training and per head at the end."""
    from occam.toy.runs import load_run

    run = load_run(run_dir)
    plt = _plt()
    steps = np.maximum(run.steps, 1)
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    ax[0].plot(steps, run.metrics("loss_first_half"), label="first half (random)")
    ax[0].plot(steps, run.metrics("loss_repeat"), label="repeated half")
    ax[0].set(xlabel="step", ylabel="loss", title="the induction phase change")
    ax[0].legend()
    ax[1].plot(steps, run.metrics("max_induction"))
    ax[1].set(xlabel="step", ylabel="max induction score (layer 1)", title="induction score")
    ind = np.array(run.meta["checkpoints"][-1]["metrics"]["induction"])
    im = ax[2].imshow(ind, vmin=0, vmax=1, cmap="viridis")
    ax[2].set(xlabel="head", ylabel="layer", title="induction score per head (final)")
    fig.colorbar(im, ax=ax[2])
    fig.tight_layout()
    out = Path(run_dir) / "induction.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def llc_png(run_dir: str | Path, result: dict[str, list]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.errorbar(np.maximum(result["step"], 1), result["llc"], yerr=result["llc_std"], fmt="o-")
    ax.set(xscale="log", xlabel="step", ylabel="LLC estimate", title="local learning coefficient (SGLD)")
    fig.tight_layout()
    out = Path(run_dir) / "llc.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
