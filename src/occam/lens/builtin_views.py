"""The Lens's twelve built-in views of image classifiers, one :class:`~occam.lens.view.View` each.

Each computes data with :mod:`occam.lens.analysis` (and featvis, sae, triggers) on the model's
one activation cache, and draws it twice: ``payload`` for the page's scripts (images as PNG data
URIs) and ``html`` for notebooks and the route's fragment. No web imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from occam.lens import analysis as A
from occam.lens.images import heat_uri, to_png_uri
from occam.lens.kinds import ImageClassifierKind
from occam.lens.view import Param, View, esc, register_view, to_json

__all__ = ["BUILTIN_VIEWS"]

IMAGE = (ImageClassifierKind.name,)


# ---- drawing helpers -----------------------------------------------------------------------------------
def _metrics(m: dict[str, Any] | None) -> str:
    if not m:
        return ""
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    return (f'<p class="metrics">val loss <b>{f(m.get("ce"))}</b> · accuracy <b>{f(m.get("accuracy"))}</b> · '
            f'nnz <b>{m.get("nnz")}</b> · score <b>{f(m.get("score"))}</b> · {m.get("n")} val examples</p>')


def _figs(items: list[tuple[str, str]]) -> str:
    return '<div class="imgs">' + "".join(f'<figure><img src="{esc(src)}"><figcaption>{esc(cap)}</figcaption></figure>'
                                          for src, cap in items) + "</div>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "–" if v is None else (f"{v:.4g}" if isinstance(v, float) else esc(v))

    return ('<table class="t"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows) + "</table>")


def _wrap(title: str, body: str) -> str:
    return f'<div class="lens-view"><h3>{esc(title)}</h3>{body}</div>'


def _cards(cards: list[dict[str, Any]], scale: int = 3) -> list[dict[str, Any]]:
    out = []
    for c in cards:
        d = {k: v for k, v in c.items() if k not in ("image", "heat")}
        d["src"] = to_png_uri(np.asarray(c["image"]), scale=scale, heat=c.get("heat"))
        out.append(to_json(d))
    return out


def _card_figs(cards: list[dict[str, Any]]) -> str:
    return _figs([(c["src"], f"#{c['index']} y={c['label']}" + (f" {c['act']:.2f}" if c.get("act") is not None else ""))
                  for c in cards])


def _hidden_layer(lm: Any) -> str:
    hidden = [x for x in lm.layers if x.name != lm.module.output_name]
    return (hidden[len(hidden) // 2] if hidden else lm.layers[-1]).name


def _images3(lm: Any) -> bool:
    return len(lm.task.input_shape) in (1, 3)


# ---- the views ---------------------------------------------------------------------------------------------
class Overview(View):
    name, title = "overview", "Overview"
    description = "graph with shapes and nnz per layer, val metrics, confusion matrix"
    kinds = IMAGE

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return {**A.overview(lm), "images": A.image_list(lm)}

    def payload(self, data: Any) -> Any:
        return to_json({**data, "images": [{"index": im["index"], "label": im["label"],
                                            "src": to_png_uri(im["image"], scale=3)} for im in data["images"]]})

    def html(self, p: Any) -> str:
        rows = [[n["op"], n["output"], "×".join(map(str, n["shape"])), n["nnz"]] for n in p["nodes"]]
        conf = _table(["true \\ predicted", *p["classes"]], [[c, *row] for c, row in zip(p["classes"], p["confusion"],
                                                                                        strict=False)])
        return _wrap(self.title, _metrics(p["metrics"]) + _table(["op", "value", "shape", "nnz"], rows) + conf)


class Units(View):
    name, title = "units", "Units"
    description = "top/bottom images, histogram and ablation for one neuron or channel"
    kinds = IMAGE
    params = (Param("layer", "layer", help="the layer (value name)"),
              Param("unit", "int", 0, min=0, help="the neuron or channel index"),
              Param("k", "int", 6, min=1, max=50, help="images shown at each end"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.unit_detail(lm, params["layer"], params["unit"], params["k"])

    def payload(self, data: Any) -> Any:
        d = {k: v for k, v in data.items() if k not in ("top", "bottom", "url")}
        return to_json({**d, "top": _cards(data["top"]), "bottom": _cards(data["bottom"])})

    def html(self, p: Any) -> str:
        head = (f"<p>{esc(p['layer'])}[{p['unit']}] of {p['units']} · ablate to 0: Δloss {p['d_ce_zero']:.4f}, "
                f"Δacc {p['d_acc_zero']:.4f} · ablate to mean: Δloss {p['d_ce_mean']:.4f}</p>")
        return _wrap(self.title, head + "<p>top-activating</p>" + _card_figs(p["top"]) + "<p>bottom-activating</p>"
                     + _card_figs(p["bottom"]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        layer = _hidden_layer(lm)
        return [{"layer": layer, "unit": u} for u in range(min(lm.layer(layer).units, 4))]


class FeatureVis(View):
    name, title = "featvis", "Feature visualization"
    description = "activation maximization (Fourier parameterization, jitter, TV)"
    kinds = IMAGE
    params = (Param("layer", "layer", optional=True, help="the layer of the unit to maximize"),
              Param("unit", "int", None, min=0, optional=True), Param("cls", "class", None, optional=True,
                                                                      help="maximize this class's logit instead"),
              Param("steps", "int", 128, min=1, max=1000), Param("tv", "float", 0.05, min=0, max=10),
              Param("jitter", "int", 1, min=0, max=8), Param("fourier", "bool", True))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and _images3(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.errors import OccamError
        from occam.lens.featvis import visualize

        if params["cls"] is None and params["layer"] is None:
            raise OccamError("feature visualization needs a target: a layer and unit, or a class",
                             "pass layer and unit, or cls")
        return visualize(lm, params["layer"], params["unit"], params["cls"], steps=params["steps"], tv=params["tv"],
                         jitter=params["jitter"], fourier=params["fourier"])

    def payload(self, data: Any) -> Any:
        return to_json({**{k: v for k, v in data.items() if k != "image"}, "src": to_png_uri(data["image"], scale=6)})

    def html(self, p: Any) -> str:
        return _wrap(self.title, _figs([(p["src"], f"{p['target']} · activation {p['activation']:.3f}")]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{"layer": _hidden_layer(lm), "unit": 0}, {"cls": 0}]

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"cls": 0, "steps": 4}


class Readouts(View):
    name, title = "readouts", "Layer readouts"
    description = "a linear probe per layer and the direct projection through the head"
    kinds = IMAGE
    params = (Param("n_train", "int", 1500, min=20, max=20000, help="training examples for the probes"),)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.readouts(lm, n_train=params["n_train"])

    def html(self, p: Any) -> str:
        return _wrap(self.title, _table(["layer", "units", "probe acc", "direct acc"],
                                        [[r["layer"], r["units"], r["probe_acc"], r["direct_acc"]] for r in p["layers"]]))

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"n_train": 100}


class Attribution(View):
    name, title = "attribution", "Attribution"
    description = "saliency, integrated gradients and occlusion (Captum)"
    kinds = IMAGE
    params = (Param("index", "image", 0, help="the validation example"),
              Param("target", "class", None, optional=True, help="the class to explain (default: the prediction)"))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and _images3(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.attribution(lm, params["index"], params["target"])

    def payload(self, data: Any) -> Any:
        maps = ("saliency", "integrated_gradients", "occlusion")
        d = {k: v for k, v in data.items() if k not in maps and k != "image"}
        d["image"] = to_png_uri(data["image"], scale=6)
        for k in maps:
            d[k] = heat_uri(data[k], 6)
        return to_json(d)

    def html(self, p: Any) -> str:
        return _wrap(self.title, f"<p>explaining class {p['target']} (label {p['label']})</p>" + _figs(
            [(p["image"], "image"), (p["saliency"], "saliency"), (p["integrated_gradients"], "integrated gradients"),
             (p["occlusion"], "occlusion")]))


class Adversarial(View):
    name, title = "adversarial", "Adversarial"
    description = "FGSM/PGD at a chosen ε, and painting on the image"
    kinds = IMAGE
    params = (Param("index", "image", 0), Param("eps", "float", 0.1, min=0, max=1, help="L∞ budget"),
              Param("method", "str", "fgsm", choices=("fgsm", "pgd")), Param("steps", "int", 10, min=1, max=500),
              Param("target", "class", None, optional=True, help="targeted attack toward this class"))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and _images3(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.adversarial(lm, params["index"], params["eps"], params["method"], params["steps"], params["target"])

    def payload(self, data: Any) -> Any:
        d = {k: v for k, v in data.items() if k not in ("image", "adv", "perturbation")}
        d.update(image=to_png_uri(data["image"], scale=6), adv=to_png_uri(data["adv"], scale=6),
                 perturbation=heat_uri(data["perturbation"], 6))
        return to_json(d)

    def html(self, p: Any) -> str:
        return _wrap(self.title, _figs([(p["image"], f"original → {p['pred_before']}"),
                                        (p["perturbation"], f"perturbation (L∞ {p['linf']:.3f})"),
                                        (p["adv"], f"adversarial → {p['pred_after']}")]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{"eps": e} for e in (0.05, 0.1, 0.2)]

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"method": "pgd", "steps": 2, "eps": 0.1}


class WeightEditor(View):
    name, title = "editor", "Weight editor"
    description = "edit weights with live val loss, accuracy, nnz and score"
    kinds = IMAGE
    params = (Param("weight", "weight", help="the weight shown"), Param("row", "int", 0, min=0,
                                                                         help="the filter (conv) or row (dense)"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        history = len(lm._editor.history) if lm._editor is not None else 0
        return {"weights": A.weights_list(lm), "metrics": lm.metrics(), "history": history,
                "weight": A.weight_view(lm, params["weight"], params["row"])}

    def html(self, p: Any) -> str:
        w = p["weight"]
        return _wrap(self.title, _metrics(p["metrics"]) + _table(["weight", "shape", "nnz", "size"], [
            [x["name"], "×".join(map(str, x["shape"])), x["nnz"], x["size"]] for x in p["weights"]])
            + f"<p>{esc(w['name'])} row {w['row']}: {len(w['values'])} values, |max| {w['absmax']:.4f}</p>")


class Pruning(View):
    name, title = "pruning", "Pruning"
    description = "magnitude threshold, global or per layer, with the live score"
    kinds = IMAGE
    params = (Param("threshold", "float", 0.0, min=0, max=1e6, help="zero every |w| below this"),
              Param("scope", "str", "global", choices=("global", "layer")),
              Param("layer", "weight", None, optional=True, help="the weight pruned when scope is layer"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        d = A.prune(lm, params["threshold"], params["scope"], params["layer"])
        return {**d, "prunable": A.prunable(lm)}

    def html(self, p: Any) -> str:
        return _wrap(self.title, f"<p>|w| &lt; {p['threshold']} ({esc(p['scope'])}): removed {p['removed']} weights</p>"
                     + _metrics(p["metrics"]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{"threshold": t} for t in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)]


class Steering(View):
    name, title = "steering", "Steering"
    description = "add a direction at a layer with a strength slider"
    kinds = IMAGE
    params = (Param("layer", "layer"), Param("strength", "float", 0.0, min=-100, max=100),
              Param("direction", "str", "classes", choices=("classes", "unit"),
                    help="mean(class a) − mean(class b), or one unit"),
              Param("a", "class", 0), Param("b", "class", 1), Param("unit", "int", 0, min=0))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.steer(lm, params["layer"], params["strength"], params["direction"], params["a"], params["b"],
                       params["unit"])

    def html(self, p: Any) -> str:
        return _wrap(self.title, f"<p>{esc(p['layer'])} + {p['strength']} × direction</p>" + _metrics(p["metrics"])
                     + "<p>unsteered:</p>" + _metrics(p["base"]) + _table(
                         ["class", "predictions before", "after"],
                         [[i, a, b] for i, (a, b) in enumerate(zip(p["pred_counts_before"], p["pred_counts_after"],
                                                                   strict=False))]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{"layer": _hidden_layer(lm), "strength": s} for s in (-2.0, -1.0, 0.0, 1.0, 2.0)]


class Dictionary(View):
    name, title = "sae", "Dictionary learning"
    description = "a sparse autoencoder on a layer's activations"
    kinds = IMAGE
    job = True
    params = (Param("layer", "layer"), Param("size", "int", 64, min=1, max=4096, help="dictionary features"),
              Param("l1", "float", 1e-3, min=0, max=10, help="sparsity penalty"),
              Param("steps", "int", 300, min=1, max=5000))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.sae import sae_report, train_sae

        sae = train_sae(lm, params["layer"], params["size"], params["l1"], params["steps"], progress=progress)
        return {**sae_report(lm, params["layer"], sae), "steps": params["steps"], "l1": params["l1"]}

    def payload(self, data: Any) -> Any:
        feats = [{**f, "top": _cards(f["top"], scale=2)} for f in data["features"]]
        return to_json({**data, "features": feats})

    def html(self, p: Any) -> str:
        return _wrap(self.title, f"<p>{esc(p['layer'])}: {p['size']} features · FVU {p['fvu']:.3f} · L0 {p['l0']:.1f} · "
                     f"dead {p['dead']}</p><p>spliced in:</p>{_metrics(p['spliced'])}<p>original:</p>{_metrics(p['base'])}"
                     + "".join(f"<div>feature {f['feature']}{_card_figs(f['top'])}</div>" for f in p["features"][:6]))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{"size": 32, "steps": 150}]

    def job_key(self, model: Any, params: dict[str, Any]) -> str | None:
        from occam.lens.triggers import weights_key

        return f"{weights_key(model)}:{sorted(params.items())}"

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"size": 8, "steps": 5}


class Clusters(View):
    name, title = "clusters", "Clusters"
    description = "units clustered by their activation patterns, tagged by class"
    kinds = IMAGE
    params = (Param("layer", "layer"), Param("k", "int", 4, min=1, max=256, help="clusters"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        return A.clusters(lm, params["layer"], params["k"])

    def html(self, p: Any) -> str:
        return _wrap(self.title, _table(["cluster", "units", "responds to"],
                                        [[c["cluster"], ", ".join(map(str, c["units"])), ", ".join(c["tags"])]
                                         for c in p["clusters"]]))


class Triggers(View):
    name, title = "triggers", "Triggers"
    description = "the reverse-engineered backdoor trigger of every class (Neural Cleanse)"
    kinds = IMAGE
    job = True
    params = (Param("steps", "int", 300, min=1, max=5000), Param("images", "int", 40, min=1, max=200))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and len(model.task.input_shape) == 3

    def require(self, model: Any) -> None:
        from occam.lens.cleanse import check_image_task

        if super().applies_to(model):
            check_image_task(model.task)  # says what the trigger search needs
        super().require(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.triggers import trigger_search

        return trigger_search(lm, params["steps"], params["images"], progress=progress)

    def payload(self, data: Any) -> Any:
        from occam.lens.triggers import trigger_payload

        return to_json(trigger_payload(data))

    def html(self, p: Any) -> str:
        side = "above" if p["flagged"] else "not above"
        return _wrap(self.title, f"<p>anomaly index {p['anomaly_index']:.2f}, {side} the MAD rule's threshold (uncalibrated: "
                     f"this model's classes only; the trigger-evidence view compares with clean models); smallest "
                     f"trigger: class {p['smallest_class']}</p>" + _table(
                         ["class", "mask L1", "success", "val success", "anomaly"],
                         [[c["class"], c["mask_l1"], c["success"], c["val_success"], c["anomaly"]] for c in p["classes"]])
                     + _figs([(c["mask_src"], f"{c['name']} L1 {c['mask_l1']:.1f}") for c in p["classes"]]))

    def start(self, model: Any, params: dict[str, Any], *, jobs: dict | None = None, wait: bool = False,
              admit: Callable[[], None] | None = None) -> Any:
        """The trigger search's own job (:func:`occam.lens.triggers.start_job`: cached per weights, steps, images)."""
        from occam.lens.triggers import start_job

        return start_job(model, params["steps"], params["images"], jobs=jobs, wait=wait, admit=admit)

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"steps": 5, "images": 5}


BUILTIN_VIEWS: list[View] = [register_view(v) for v in (
    Overview, Units, FeatureVis, Readouts, Attribution, Adversarial, WeightEditor, Pruning, Steering, Dictionary,
    Clusters, Triggers)]

