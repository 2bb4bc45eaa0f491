"""Lens views of the ``toy`` kind (:mod:`occam.toy.lens_kind`): each reads the run at its current checkpoint.

* ``toy-training``: the training curves with the current step marked, the progress measures (restricted and
  excluded loss, Gini of the embedding spectrum), the grokking phases shaded; TMS and induction curves.
* ``toy-fourier``: the embedding's Fourier spectrum (key frequencies marked), neurons clustered by their frequency,
  the logits' norm in the 2-D Fourier basis.
* ``toy-attention`` (the grokking transformer, input ``a b =``) and ``toy-induction-attention`` (a held-out
  repeated sequence): attention patterns per head.
* ``toy-ablate-frequency`` and ``toy-ablate-head``: live edits. The test loss with and without one frequency (or
  head), and the same for every frequency (head) at once, so the chosen one is seen against the others.
* ``toy-tms``: WᵀW, the 2-D feature polygon (columns of W), D* against 1/(1−S) and each feature's D_i.

``compute`` returns numbers; ``payload`` adds the figures (matplotlib PNGs as data URIs); ``html`` is the
fragment the page's generic panel shows.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from occam.lens import views as _lens_views  # noqa: F401  (the built-in views register first: page order)
from occam.lens.view import Param, View, esc, register_view, to_json

__all__ = ["TOY_VIEWS", "ModelParam", "grok_phases"]


@dataclass(frozen=True)
class ModelParam(Param):
    """An int parameter whose upper bound depends on the model (p − 1, heads − 1, instances − 1…)."""

    upper: Callable[[Any], int] | None = None

    def bounds(self, model: Any) -> tuple[float | None, float | None, tuple[str, ...] | None]:
        if self.upper is not None and model is not None:
            return self.min, self.upper(model), None
        return self.min, self.max, self.choices


# ---- figures -------------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fragment(title: str, lines: list[str], images: list[str]) -> str:
    body = "".join(f"<p>{line}</p>" for line in lines)
    imgs = "".join(f'<img alt="{esc(title)}" style="max-width:100%;height:auto" src="{src}">' for src in images)
    return f'<div class="lens-view toy-view"><h3>{esc(title)}</h3>{body}<div class="imgs">{imgs}</div></div>'


def _fmt(x: Any, d: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}g}"


# ---- training curves -----------------------------------------------------------------------------------
def grok_phases(steps: list[int], train_acc: list[float], test_loss: list[float],
                test_acc: list[float]) -> list[dict[str, Any]]:
    """Memorization, circuit formation and cleanup from the curves (a heuristic after Nanda et al. 2023).

    Memorization: until train accuracy first reaches 99 %. Cleanup: from the first step after the test loss's
    peak where it is below half that peak, until test accuracy first reaches 99 %. Circuit formation: between.
    Phases not reached yet are left out."""
    if not steps:
        return []
    s = np.asarray(steps)
    mem = np.flatnonzero(np.asarray(train_acc) >= 0.99)
    if not len(mem):
        return [{"name": "memorization", "start": int(s[0]), "end": int(s[-1])}]
    mem_end = int(s[mem[0]])
    out = [{"name": "memorization", "start": int(s[0]), "end": mem_end}]
    tl = np.asarray(test_loss, dtype=float)
    peak = int(np.nanargmax(tl))
    grok = np.flatnonzero(np.asarray(test_acc) >= 0.99)
    end = int(s[grok[0]]) if len(grok) else None
    fall = [i for i in range(peak, len(s)) if tl[i] < tl[peak] / 2]
    start = int(s[fall[0]]) if fall else None
    if start is None and end is None:
        out.append({"name": "circuit formation", "start": mem_end, "end": int(s[-1])})
        return out
    c0 = max(mem_end, min(x for x in (start, end) if x is not None))
    out.append({"name": "circuit formation", "start": mem_end, "end": c0})
    if end is not None:
        out.append({"name": "cleanup", "start": c0, "end": max(c0, end)})
    else:
        out.append({"name": "cleanup", "start": c0, "end": int(s[-1])})
    return out


_PHASE_COLOURS = {"memorization": "#fde0c5", "circuit formation": "#d6e9f8", "cleanup": "#d9f2d0"}


class ToyTraining(View):
    name = "toy-training"
    title = "Training curves"
    description = "losses and progress measures over training; the dashed line is the checkpoint shown"
    kinds = ("toy",)
    params = (Param("log_x", "bool", True, help="logarithmic step axis"),)

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        run, exp = model.run, model.experiment
        ck_steps = [int(s) for s in run.steps]
        series: dict[str, dict[str, list]] = {}

        def add(name: str, steps: list, values: Any) -> None:
            v = np.asarray(values, dtype=float)
            if v.size and np.isfinite(v).any():
                series[name] = {"steps": list(steps), "values": v}

        phases: list[dict[str, Any]] = []
        if model.is_modular:
            curve = (run.meta.get("summary") or {}).get("curve") or {}
            if curve.get("step"):
                for k in ("train_loss", "test_loss", "test_acc", "train_acc"):
                    add(k, curve["step"], curve[k])
                phases = grok_phases(curve["step"], curve["train_acc"], curve["test_loss"], curve["test_acc"])
            else:  # a run still training: its checkpoints' metrics
                for k in ("train_loss", "test_loss", "test_acc", "train_acc"):
                    add(k, ck_steps, run.metrics(k))
            for k in ("restricted_loss", "excluded_loss", "gini", "neuron_single_freq_mean"):
                add(k, ck_steps, run.metrics(k))
        elif run.task.get("name") == "induction":
            for k in ("loss_first_half", "loss_repeat", "max_induction"):
                add(k, ck_steps, run.metrics(k))
        else:
            loss = np.array([np.mean(c["metrics"]["loss"]) for c in run.meta["checkpoints"]])
            add("loss (mean over instances)", ck_steps, loss)
            d_star = np.array([c["metrics"]["d_star"] for c in run.meta["checkpoints"]])
            for i in range(d_star.shape[1]):
                add(f"D* instance {i}", ck_steps, d_star[:, i])
        summary = run.meta.get("summary") or {}
        return {"experiment": exp, "step": model.step, "checkpoint": model.checkpoint, "series": series,
                "phases": phases, "current": model.metrics(), "log_x": params["log_x"],
                "key_freqs": summary.get("final_key_freqs"), "current_key_freqs":
                run.meta["checkpoints"][model.checkpoint]["metrics"].get("key_freqs")}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        out["png"] = self._figure(data)
        return out

    def _figure(self, d: dict[str, Any]) -> str:
        plt = _plt()
        s = d["series"]
        loss_keys = [k for k in s if "loss" in k]
        other = [k for k in s if k not in loss_keys]
        fig, axes = plt.subplots(1, 2 if other else 1, figsize=(9 if other else 5, 3.2), squeeze=False)
        for ax, keys in zip(axes[0], (loss_keys, other), strict=False):
            for ph in d["phases"]:
                ax.axvspan(max(ph["start"], 1 if d["log_x"] else 0), max(ph["end"], 1), color=_PHASE_COLOURS[ph["name"]],
                           label=ph["name"] if ax is axes[0][0] else None)
            for k in keys:
                st = np.asarray(s[k]["steps"], dtype=float)
                ax.plot(np.maximum(st, 1) if d["log_x"] else st, s[k]["values"], label=k, lw=1.2)
            ax.axvline(max(d["step"], 1) if d["log_x"] else d["step"], color="k", ls="--", lw=1)
            if d["log_x"]:
                ax.set_xscale("log")
            if keys is loss_keys and keys and all(np.nanmin(s[k]["values"]) > 0 for k in keys):
                ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.legend(fontsize=7)
        return _uri(fig)

    def html(self, payload: Any) -> str:
        cur = payload["current"]
        facts = " · ".join(f"{esc(k)} <b>{_fmt(v)}</b>" for k, v in cur.items() if k != "step")
        lines = [f"checkpoint at step <b>{payload['step']}</b>: {facts}"]
        if payload.get("phases"):
            lines.append("phases: " + ", ".join(f"{esc(p['name'])} {p['start']}–{p['end']}" for p in payload["phases"]))
        if payload.get("key_freqs"):
            lines.append(f"key frequencies (final logits): <b>{esc(', '.join(map(str, payload['key_freqs'])))}</b>"
                         + (f"; of this checkpoint's embedding: {esc(', '.join(map(str, payload['current_key_freqs'])))}"
                            if payload.get("current_key_freqs") else ""))
        return _fragment(self.title, lines, [payload["png"]])


# ---- Fourier -------------------------------------------------------------------------------------------
class _Modular(View):
    kinds = ("toy",)

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and model.is_modular and model.run.task.get("op") == "+"


class ToyFourier(_Modular):
    name = "toy-fourier"
    title = "Fourier structure"
    description = "the embedding's spectrum, neurons clustered by frequency, the logits in the 2-D Fourier basis"
    params = (Param("coverage", "float", 0.9, min=0.5, max=0.999, help="share of the spectrum the key frequencies cover"),)

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.toy import fourier

        p, net = model.p, model.net
        spec = fourier.embedding_spectrum(net)
        shares = fourier.neuron_frequency_shares(net, p)
        cluster, frac = fourier.neuron_clusters(shares)
        K = (p - 1) // 2
        counts = np.bincount(cluster, minlength=K + 1)[1:]
        logit_spec = fourier.logit_spectrum(net, p)
        return {"step": model.step, "p": p, "spectrum": spec, "gini": fourier.gini(spec),
                "key_freqs": fourier.key_frequencies(spec, params["coverage"]),
                "logit_key_freqs": fourier.key_frequencies(np.sqrt(logit_spec), params["coverage"]),
                "logit_spectrum": logit_spec, "neuron_counts": counts,
                "neuron_share_mean": np.array([frac[cluster == k].mean() if (cluster == k).any() else np.nan
                                               for k in range(1, K + 1)]),
                "single_freq_mean": float(frac.mean()), "logits_2d": fourier.logits_fourier_2d(net, p)}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        plt = _plt()
        K = len(data["spectrum"])
        ks = np.arange(1, K + 1)
        fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
        colours = ["#d62728" if k in data["key_freqs"] else "#1f77b4" for k in ks]
        ax[0].bar(ks, data["spectrum"], color=colours)
        ax[0].set(xlabel="frequency k", ylabel="‖embedding‖ at k", title=f"embedding (Gini {data['gini']:.2f})")
        ax[1].bar(ks, data["neuron_counts"], color="#2ca02c")
        ax[1].set(xlabel="dominant frequency", ylabel="neurons", title=f"neurons (single-freq {data['single_freq_mean']:.2f})")
        im = ax[2].imshow(np.log1p(data["logits_2d"]), cmap="viridis")
        ax[2].set(xlabel="b basis (1, cos1, sin1, …)", ylabel="a basis", title="logits, 2-D Fourier (log)")
        fig.colorbar(im, ax=ax[2], fraction=0.046)
        out["png"] = _uri(fig)
        return out

    def html(self, payload: Any) -> str:
        lines = [f"step <b>{payload['step']}</b> · key frequencies of the embedding: "
                 f"<b>{esc(', '.join(map(str, payload['key_freqs'])))}</b> · of the logits: "
                 f"<b>{esc(', '.join(map(str, payload['logit_key_freqs'])))}</b> · Gini {_fmt(payload['gini'], 3)}"]
        return _fragment(self.title, lines, [payload["png"]])


# ---- attention -----------------------------------------------------------------------------------------
def _heatmaps(patterns: np.ndarray, labels: list[str], titles: list[str]) -> str:
    plt = _plt()
    n = len(patterns)
    fig, axes = plt.subplots(1, n, figsize=(2.4 * n, 2.6), squeeze=False)
    for ax, pat, t in zip(axes[0], patterns, titles, strict=True):
        ax.imshow(pat, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(t, fontsize=8)
        if len(labels) <= 4:
            ax.set_xticks(range(len(labels)), labels)
            ax.set_yticks(range(len(labels)), labels)
        else:
            ax.set(xlabel="key", ylabel="query")
    return _uri(fig)


class ToyAttention(View):
    name = "toy-attention"
    title = "Attention patterns"
    description = "each head's attention for the input a b = (rows: queries; columns: keys)"
    kinds = ("toy",)
    params = (ModelParam("a", "int", 3, min=0, upper=lambda m: m.p - 1), ModelParam("b", "int", 5, min=0,
                                                                                    upper=lambda m: m.p - 1))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and model.is_modular and model.run.kind == "transformer"

    def quick_params(self, model: Any) -> dict[str, Any]:
        return {"a": min(3, model.p - 1), "b": min(5, model.p - 1)}

    def export_params(self, model: Any) -> list[dict[str, Any]]:
        return [self.quick_params(model)]

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.toy.grok import attention_patterns

        pat = attention_patterns(model.net, params["a"], params["b"])
        return {"step": model.step, "a": params["a"], "b": params["b"], "patterns": pat,
                "answer": (params["a"] + params["b"]) % model.p}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        out["png"] = _heatmaps(np.asarray(data["patterns"]), [str(data["a"]), str(data["b"]), "="],
                               [f"head {h}" for h in range(len(data["patterns"]))])
        return out

    def html(self, payload: Any) -> str:
        att = ", ".join(f"head {h}: {100 * row[-1][0]:.0f}% a, {100 * row[-1][1]:.0f}% b"
                        for h, row in enumerate(payload["patterns"]))
        return _fragment(self.title, [f"step <b>{payload['step']}</b> · input {payload['a']} {payload['b']} = "
                                      f"(answer {payload['answer']}) · at '=': {esc(att)}"], [payload["png"]])


class ToyInductionAttention(View):
    name = "toy-induction-attention"
    title = "Attention patterns (induction)"
    description = "each head's attention on a held-out repeated sequence; induction heads light the off-diagonal stripe"
    kinds = ("toy",)
    params = (ModelParam("sequence", "int", 0, min=0, upper=lambda m: m.n_val - 1, help="which held-out sequence"),)

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and model.run.kind == "attn_only"

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.toy.induction import attention_patterns, head_scores

        tokens = model.data[params["sequence"]: params["sequence"] + 1]
        pat = attention_patterns(model.net, tokens)  # (layers, heads, T, T) for one sequence
        pat = np.asarray(pat).reshape(model.n_layers, model.n_heads, tokens.shape[1], tokens.shape[1])
        import torch

        scores = head_scores(torch.as_tensor(pat).unsqueeze(1), int(model.run.task["half"]))
        return {"step": model.step, "sequence": params["sequence"], "tokens": tokens[0].numpy(), "patterns": pat,
                "induction": np.asarray(scores["induction"]), "previous": np.asarray(scores["previous"])}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        pat = np.asarray(data["patterns"])
        L, H = pat.shape[:2]
        out["png"] = _heatmaps(pat.reshape(L * H, *pat.shape[2:]), [],
                               [f"L{la}H{h} ind {data['induction'][la][h]:.2f}" for la in range(L) for h in range(H)])
        return out

    def html(self, payload: Any) -> str:
        ind = np.asarray(payload["induction"])
        la, h = np.unravel_index(int(np.argmax(ind)), ind.shape)
        return _fragment(self.title, [f"step <b>{payload['step']}</b> · sequence {payload['sequence']} · strongest "
                                      f"induction head L{la}H{h} (score {ind[la, h]:.2f} on this sequence)"],
                         [payload["png"]])


# ---- live edits ----------------------------------------------------------------------------------------
class ToyFrequencyAblation(_Modular):
    name = "toy-ablate-frequency"
    title = "Ablate a frequency"
    description = "the test loss with one frequency's cos/sin(k(a+b)) components removed from the logits (or kept alone)"
    params = (ModelParam("freq", "int", 1, min=1, upper=lambda m: (m.p - 1) // 2, help="frequency k"),
              Param("mode", "str", "remove", choices=("remove", "keep"), help="remove k, or keep only k"))

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.toy import fourier

        p = model.p
        logits = fourier.all_logits(model.net, p)
        test = ~model.data.train
        keep = params["mode"] == "keep"
        base = fourier.loss_on(logits, test)
        per = np.array([fourier.loss_on(fourier.ablate_frequencies(logits, [k], keep=keep), test)
                        for k in range(1, (p - 1) // 2 + 1)])
        edited = fourier.ablate_frequencies(logits, [params["freq"]], keep=keep).reshape(p * p, p)
        y = (fourier.all_pairs(p)[0] + fourier.all_pairs(p)[1]) % p
        acc = float((edited[test].argmax(-1) == y[test]).double().mean())
        base_acc = float((logits.reshape(p * p, p)[test].argmax(-1) == y[test]).double().mean())
        return {"step": model.step, "freq": params["freq"], "mode": params["mode"], "test_loss": base,
                "test_loss_ablated": float(per[params["freq"] - 1]), "test_acc": base_acc, "test_acc_ablated": acc,
                "per_frequency": per}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        plt = _plt()
        per = np.asarray(data["per_frequency"])
        ks = np.arange(1, len(per) + 1)
        fig, ax = plt.subplots(figsize=(6, 2.8))
        ax.bar(ks, per, color=["#d62728" if k == data["freq"] else "#9ecae1" for k in ks])
        ax.axhline(data["test_loss"], color="k", ls="--", lw=1, label="no ablation")
        ax.set(xlabel="frequency k", ylabel="test loss", title=f"test loss, {data['mode']} k")
        ax.legend(fontsize=7)
        out["png"] = _uri(fig)
        return out

    def html(self, payload: Any) -> str:
        verb = "removed" if payload["mode"] == "remove" else "kept alone"
        return _fragment(self.title, [
            f"step <b>{payload['step']}</b> · frequency {payload['freq']} {verb}: test loss "
            f"<b>{_fmt(payload['test_loss'])}</b> → <b>{_fmt(payload['test_loss_ablated'])}</b>, test accuracy "
            f"{_fmt(payload['test_acc'], 3)} → {_fmt(payload['test_acc_ablated'], 3)}"], [payload["png"]])


class ToyHeadAblation(View):
    name = "toy-ablate-head"
    title = "Ablate a head"
    description = "the test loss (induction: the loss on the repeated half) with one attention head's output zeroed"
    kinds = ("toy",)
    params = (ModelParam("layer", "int", 0, min=0, upper=lambda m: m.n_layers - 1),
              ModelParam("head", "int", 0, min=0, upper=lambda m: m.n_heads - 1))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and model.has_attention

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        import torch
        import torch.nn.functional as F

        net = model.net
        if model.run.kind == "attn_only":
            from occam.toy.induction import head_ablation_losses, split_losses

            tokens, half = model.data, int(model.run.task["half"])
            with torch.no_grad():
                base = split_losses(net(tokens), tokens, half)[1]
            per = np.asarray(head_ablation_losses(net, tokens, half), dtype=float).reshape(model.n_layers, model.n_heads)
            metric = "loss on the repeated half"
        else:
            data = model.data
            a, b, y = data.split("test")
            with torch.no_grad():
                base = float(F.cross_entropy(net(a, b), y))
                from occam.toy.grok import head_ablation_loss

                per = np.array([[head_ablation_loss(net, data, h) for h in range(model.n_heads)]])
            metric = "test loss"
        return {"step": model.step, "layer": params["layer"], "head": params["head"], "metric": metric,
                "loss": float(base), "loss_ablated": float(per[params["layer"], params["head"]]), "per_head": per}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        plt = _plt()
        per = np.asarray(data["per_head"])
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * per.shape[1], 0.9 + 0.9 * per.shape[0]))
        im = ax.imshow(per, cmap="Reds")
        for (i, j), v in np.ndenumerate(per):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    fontweight="bold" if (i, j) == (data["layer"], data["head"]) else "normal")
        ax.set(xlabel="head", ylabel="layer", title=f"{data['metric']} with the head zeroed")
        fig.colorbar(im, ax=ax, fraction=0.046)
        out["png"] = _uri(fig)
        return out

    def html(self, payload: Any) -> str:
        return _fragment(self.title, [
            f"step <b>{payload['step']}</b> · head L{payload['layer']}H{payload['head']} zeroed: {esc(payload['metric'])} "
            f"<b>{_fmt(payload['loss'])}</b> → <b>{_fmt(payload['loss_ablated'])}</b>"], [payload["png"]])


# ---- superposition -------------------------------------------------------------------------------------
class ToyTMS(View):
    name = "toy-tms"
    title = "Superposition"
    description = "WᵀW, the features in the hidden plane, D* against 1/(1−S) and each feature's D_i"
    kinds = ("toy",)
    params = (ModelParam("instance", "int", 0, min=0, upper=lambda m: m.n_instances - 1,
                         help="which instance (sparsity level)"),)

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and model.run.kind == "tms"

    def quick_params(self, model: Any) -> dict[str, Any]:
        return {"instance": model.n_instances - 1}

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.toy.tms import dimensionality

        W = model.net.W.detach()
        d = dimensionality(W)
        i = params["instance"]
        probs = np.asarray(model.run.task["feature_probs"], dtype=float)
        return {"step": model.step, "instance": i, "sparsity": 1 - probs, "inv_density": 1 / probs,
                "d_star": d["d_star"], "d_i": d["d_i"], "wtw": d["wtw"][i], "W": W[i].numpy(),
                "norms": d["norms"][i], "n_represented": d["n_represented"]}

    def payload(self, data: Any) -> Any:
        out = to_json(data)
        plt = _plt()
        i = data["instance"]
        W = np.asarray(data["W"])
        fig, ax = plt.subplots(2, 2, figsize=(9, 6.6))
        ax = ax.ravel()
        fig.subplots_adjust(hspace=0.45, wspace=0.35)
        lim = float(np.abs(data["wtw"]).max()) or 1.0
        im = ax[0].imshow(data["wtw"], cmap="RdBu", vmin=-lim, vmax=lim)
        ax[0].set_title(f"WᵀW (instance {i}, S = {data['sparsity'][i]:.2f})", fontsize=9)
        fig.colorbar(im, ax=ax[0], fraction=0.046)
        if W.shape[0] == 2:
            for j in range(W.shape[1]):
                ax[1].plot([0, W[0, j]], [0, W[1, j]], marker="o", lw=1.5)
            r = max(1.0, float(np.abs(W).max()) * 1.1)
            ax[1].set(xlim=(-r, r), ylim=(-r, r), aspect="equal", title="columns of W (features)")
        else:
            ax[1].bar(np.arange(len(data["norms"])), data["norms"])
            ax[1].set(title="‖W_i‖ per feature", xlabel="feature")
        x = np.asarray(data["inv_density"])
        ax[2].plot(x, data["d_star"], "o-")
        ax[2].plot([x[i]], [data["d_star"][i]], "o", color="#d62728", ms=10)
        ax[2].set(xscale="log", xlabel="1/(1−S)", ylabel="D* = m/‖W‖²_F", title="dimensions per feature")
        di = np.asarray(data["d_i"])
        for k in range(di.shape[0]):
            ax[3].scatter(np.full(di.shape[1], x[k]), di[k], s=8, color="#d62728" if k == i else "#1f77b4")
        for frac in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
            ax[3].axhline(frac, color="grey", lw=0.5, ls=":")
        ax[3].set(xscale="log", xlabel="1/(1−S)", ylabel="D_i", title="feature dimensionality")
        out["png"] = _uri(fig)
        return out

    def html(self, payload: Any) -> str:
        i = payload["instance"]
        return _fragment(self.title, [
            f"step <b>{payload['step']}</b> · instance {i} (S = {_fmt(payload['sparsity'][i], 3)}): D* "
            f"<b>{_fmt(payload['d_star'][i], 3)}</b>, {payload['n_represented'][i]} features represented"],
            [payload["png"]])


TOY_VIEWS: list[View] = [register_view(v) for v in (ToyTraining, ToyFourier, ToyAttention, ToyInductionAttention,
                                                     ToyFrequencyAblation, ToyHeadAblation, ToyTMS)]
