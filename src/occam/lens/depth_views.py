"""The Lens's depth views: activation patching, the tuned logit lens, attribution with a method picker,
feature-visualization objectives, dictionary learning at a target L0, calibrated trigger evidence and
attention patterns. Each is a :class:`~occam.lens.view.View` over a pure computation of its own module
(patching, tuned, attribution, featvis_objectives, dictionary, calibration); the page shows them in
its generic panel (the parameters as a form, the ``html`` fragment). No web imports.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from occam.errors import OccamError
from occam.lens.images import heat_uri, to_png_uri
from occam.lens.kinds import ImageClassifierKind
from occam.lens.view import Param, View, esc, register_view, to_json

__all__ = ["DEPTH_VIEWS", "attention_values"]

IMAGE = (ImageClassifierKind.name,)


# ---- small helpers ------------------------------------------------------------------------------------
def _wrap(title: str, body: str) -> str:
    return f'<div class="lens-view"><h3>{esc(title)}</h3>{body}</div>'


def _fig(src: str, cap: str, cls: str = "") -> str:
    return f'<figure class="{cls}"><img src="{esc(src)}"><figcaption>{esc(cap)}</figcaption></figure>'


def _cell(v: Any, d: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:.{d}f}" if isinstance(v, float) else esc(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return ('<table class="t"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows) + "</table>")


def _bars(values: Any, names: list[str], signed: bool = False) -> str:
    """Inline horizontal bars (a table with CSS widths): probabilities or signed effects per class."""
    v = np.asarray(values, dtype=np.float64)
    a = float(np.abs(v).max()) or 1.0
    rows = []
    for n, x in zip(names, v, strict=False):
        w = int(round(100 * abs(x) / a))
        colour = "#d62728" if x >= 0 else "#1f77b4"
        rows.append(f'<tr><td class="cn">{esc(n)}</td><td class="bar"><span style="display:inline-block;height:.8em;'
                    f'width:{w}px;background:{colour}"></span></td><td>{x:+.3f}</td></tr>' if signed else
                    f'<tr><td class="cn">{esc(n)}</td><td class="bar"><span style="display:inline-block;height:.8em;'
                    f'width:{w}px;background:#1f77b4"></span></td><td>{x:.3f}</td></tr>')
    return '<table class="t bars">' + "".join(rows) + "</table>"


def _images3(lm: Any) -> bool:
    return len(lm.task.input_shape) in (1, 3)


class _LRU(OrderedDict):
    """A small cache of fitted objects (translators, dictionaries) keyed by the weights and settings."""

    def __init__(self, size: int = 4):
        super().__init__()
        self.size = size

    def get_or(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        val = make()
        self[key] = val
        while len(self) > self.size:
            self.popitem(last=False)
        return val


def _wkey(lm: Any) -> str:
    from occam.lens.triggers import weights_key

    return weights_key(lm)


def _input(lm: Any, index: int) -> np.ndarray:
    return lm.x[index].numpy()


# ---- activation patching -----------------------------------------------------------------------------------
class Patching(View):
    name, title = "patching", "Activation patching"
    description = ("run the corrupted input with one place of one layer taken from the clean run: the fraction of the "
                   "logit difference each place restores (layer × position)")
    kinds = IMAGE
    params = (Param("clean", "image", 0, help="the clean validation example"),
              Param("corrupted", "image", 1, help="the corrupted example (ignored when attack is set)"),
              Param("attack", "str", "none", choices=("none", "fgsm", "pgd"),
                    help="use the adversarial view's output for the clean image as the corrupted input"),
              Param("eps", "float", 0.2, min=0, max=1, help="the attack's L∞ budget"),
              Param("granularity", "str", "position", choices=("position", "unit"),
                    help="patch each position (all channels) or each channel (all positions)"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens import analysis as A
        from occam.lens.patching import patching_map

        clean: Any = params["clean"]
        if params["attack"] != "none":
            adv = A.adversarial(lm, clean, params["eps"], params["attack"], 10, None)
            corrupted: Any = np.asarray(adv["adv"], dtype=np.float32)[None]
            source = f"{params['attack']} ε={params['eps']} on #{clean}"
        else:
            if params["corrupted"] == clean:
                raise OccamError("the clean and corrupted inputs are the same image",
                                 "pick another corrupted image, or set attack to fgsm or pgd")
            corrupted = params["corrupted"]
            source = f"#{corrupted}"
        m = patching_map(lm, clean, corrupted, granularity=params["granularity"])
        m["clean_image"] = _input(lm, clean)
        m["corrupted_image"] = corrupted[0] if isinstance(corrupted, np.ndarray) else _input(lm, corrupted)
        m["corrupted_source"] = source
        return m

    def payload(self, data: Any) -> Any:
        layers = []
        for r in data["layers"]:
            rest = np.asarray(r["restored"], dtype=np.float64)
            row = {k: v for k, v in r.items() if k not in ("restored", "logit_diff")}
            row["max"] = float(np.nanmax(rest)) if rest.size and np.isfinite(rest).any() else None
            row["restored"] = rest
            if rest.ndim >= 1 and rest.size:
                row["src"] = heat_uri(np.nan_to_num(rest), 8 if rest.ndim == 2 else 4, vmax=1.0)
            layers.append(row)
        d = {k: v for k, v in data.items() if k not in ("layers", "clean_image", "corrupted_image")}
        d.update(layers=layers, clean_src=to_png_uri(data["clean_image"], scale=4),
                 corrupted_src=to_png_uri(data["corrupted_image"], scale=4))
        return to_json(d)

    def html(self, p: Any) -> str:
        a, b = p["class_names"]
        head = (f"<p>clean → <b>{esc(a)}</b>, corrupted ({esc(p['corrupted_source'])}) → <b>{esc(b)}</b>; logit difference "
                f"{esc(a)} − {esc(b)}: clean {_cell(p['ld_clean'])}, corrupted {_cell(p['ld_corrupted'])}. Colour: fraction "
                "restored, red +1 (the clean answer back), blue −1.</p>")
        figs = '<div class="imgs">' + _fig(p["clean_src"], f"clean: {a}") + _fig(p["corrupted_src"], f"corrupted: {b}")
        figs += "".join(_fig(r["src"], f"{r['layer']} ({r['op']}) whole {_cell(r['whole_layer'], 2)}")
                        for r in p["layers"] if r.get("src")) + "</div>"
        rows = [[r["layer"], r["op"], r["granularity"], "×".join(map(str, r["shape"])), r["whole_layer"], r["max"]]
                for r in p["layers"]]
        return _wrap(self.title, head + figs + _table(["layer", "op", "places", "shape", "whole layer", "best place"], rows))

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return [{}]


# ---- tuned logit lens ------------------------------------------------------------------------------------------
_TRANSLATORS = _LRU(4)


def translators_for(lm: Any, steps: int, n_train: int) -> Any:
    """The tuned-lens translators of ``lm``'s current weights (fitted once per weights and settings)."""
    from occam.lens.tuned import fit_translators

    return _TRANSLATORS.get_or(f"{_wkey(lm)}:{steps}:{n_train}",
                               lambda: fit_translators(lm, steps=steps, n_train=min(n_train, _n_train(lm))))


def _n_train(lm: Any) -> int:
    try:
        return max(1, int(lm.task.n_train))
    except (AttributeError, TypeError, ValueError):
        return 2000


class LogitLens(View):
    name, title = "logit-lens", "Logit lens (tuned)"
    job = True  # fitting the translators takes seconds: the page computes it when asked
    description = ("an affine translator per layer to the logits (tuned lens): each layer's class distribution for one "
                   "image, and how well each layer's translator agrees with the model")
    kinds = IMAGE
    params = (Param("index", "image", 0, help="the validation example"),
              Param("steps", "int", 150, min=1, max=5000, help="translator training steps (fitted once per weights)"),
              Param("n_train", "int", 1000, min=20, max=20000, help="training examples for the translators"))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.tuned import layer_distributions, translator_quality

        tr = translators_for(lm, params["steps"], params["n_train"])
        d = layer_distributions(lm, tr, params["index"])
        d["quality"] = translator_quality(lm, tr)
        d["image"] = _input(lm, params["index"])
        d["index"] = params["index"]
        return d

    def payload(self, data: Any) -> Any:
        d = {k: v for k, v in data.items() if k != "image"}
        d["src"] = to_png_uri(data["image"], scale=4) if _images_ok(data["image"]) else None
        return to_json(d)

    def html(self, p: Any) -> str:
        names = p["class_names"]
        label = f" (label {esc(names[p['label']])})" if p.get("label") is not None else ""
        img = '<div class="imgs">' + _fig(p["src"], f"#{p['index']}") + "</div>" if p.get("src") else ""
        head = ["layer", *names]
        rows = []
        for r in p["layers"]:
            top = int(np.argmax(r["probs"]))
            rows.append("<tr><td>" + esc(r["layer"]) + "</td>" + "".join(
                f'<td style="background:rgba(31,119,180,{min(1.0, float(x)):.2f})"'
                f'{" class=top" if i == top else ""}>{float(x):.2f}</td>' for i, x in enumerate(r["probs"])) + "</tr>")
        dist = ('<table class="t lens-dist"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                + "".join(rows) + "</table>")
        q = p["quality"]
        qual = _table(["layer", "agreement with the model", "accuracy", "KL (nats)", "pooled", "init"],
                      [[r["layer"], r["agreement"], r["accuracy"], r["kl"], "yes" if r["pooled"] else "no", r["init"]]
                       for r in q["layers"]])
        return _wrap(self.title, f"<p>per-layer class distributions for image #{p['index']}{label}; the model predicts "
                     f"<b>{esc(names[int(np.argmax(p['probs']))])}</b></p>" + img + dist
                     + f"<p>translator quality on {q['n']} val images (model accuracy {_cell(q['model_accuracy'])}):</p>"
                     + qual)

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"steps": 3, "n_train": 40}

    def job_key(self, model: Any, params: dict[str, Any]) -> str | None:
        return f"{_wkey(model)}:{sorted(params.items())}"


def _images_ok(x: Any) -> bool:
    return np.asarray(x).ndim in (1, 3)


# ---- attribution with a method picker -------------------------------------------------------------------------
class AttributionMethods(View):
    name, title = "attribution-methods", "Attribution (method picker)"
    description = ("eight Captum methods (saliency, input × gradient, integrated gradients, DeepLift, GradientShap, "
                   "guided backprop, occlusion, Grad-CAM) for a chosen target class, on one symmetric colour scale")
    kinds = IMAGE
    params = (Param("index", "image", 0, help="the validation example"),
              Param("method", "str", "all", choices=("all", "saliency", "input_x_gradient", "integrated_gradients",
                                                     "deeplift", "gradient_shap", "guided_backprop", "occlusion",
                                                     "grad_cam"), help="one method, or all on a shared scale"),
              Param("target", "class", None, optional=True, help="the class explained (default: the prediction)"))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and _images3(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.attribution import METHODS, attribute, colour_scale

        methods = METHODS if params["method"] == "all" else (params["method"],)
        maps, deltas, target, skipped = {}, {}, None, {}
        for m in methods:
            try:
                r = attribute(lm, params["index"], m, params["target"])
            except OccamError as e:
                if params["method"] != "all":
                    raise
                skipped[m] = e.problem  # e.g. Grad-CAM on a model without a channel-first layer
                continue
            maps[m] = r["maps"][0]
            target = r["targets"][0]
            if "delta" in r:
                deltas[m] = float(r["delta"][0])
        first = next(iter(maps.values()))
        signed = [v for k, v in maps.items() if k != "grad_cam" and v.shape == first.shape]
        vmax = colour_scale(np.stack([v.sum(0) if v.ndim == 3 else v for v in signed])) if signed else 1.0
        logits = lm.logits(lm.x[params["index"]:params["index"] + 1])[0].numpy()
        return {"index": params["index"], "image": _input(lm, params["index"]), "maps": maps, "vmax": vmax,
                "target": int(target), "target_name": lm.task.class_names[int(target)], "deltas": deltas,
                "label": int(lm.y[params["index"]]), "label_name": lm.task.class_names[int(lm.y[params["index"]])],
                "pred": int(np.argmax(logits)), "pred_name": lm.task.class_names[int(np.argmax(logits))],
                "class_names": list(lm.task.class_names), "skipped": skipped}

    def payload(self, data: Any) -> Any:
        from occam.lens.attribution import colour_scale

        d = {k: v for k, v in data.items() if k not in ("image", "maps")}
        d["src"] = to_png_uri(data["image"], scale=5)
        d["maps"] = []
        for m, a in data["maps"].items():
            own = m == "grad_cam"  # a layer's map: its own scale
            vmax = colour_scale(a.sum(0) if a.ndim == 3 else a) if own else data["vmax"]
            d["maps"].append({"method": m, "src": heat_uri(a, 5, vmax=vmax or 1.0), "vmax": vmax})
        return to_json(d)

    def html(self, p: Any) -> str:
        head = (f"<p>image #{p['index']} (label {esc(p['label_name'])}, predicted {esc(p['pred_name'])}); explaining "
                f"<b>{esc(p['target_name'])}</b>. Red raises that logit, blue lowers it; one symmetric scale ±"
                f"{_cell(p['vmax'], 4)} for all signed maps (Grad-CAM: its own).</p>")
        figs = _fig(p["src"], "image") + "".join(
            _fig(m["src"], m["method"].replace("_", " ") + (f" (gap {p['deltas'][m['method']]:.3g})"
                                                            if m["method"] in p["deltas"] else "")) for m in p["maps"])
        skipped = "".join(f"<p class=\"hint\">{esc(m)}: {esc(why)}</p>" for m, why in p.get("skipped", {}).items())
        return _wrap(self.title, head + f'<div class="imgs">{figs}</div>' + skipped)

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"method": "saliency"}


# ---- feature-visualization objectives ------------------------------------------------------------------------
class FeatvisObjectives(View):
    name, title = "featvis-objectives", "Feature visualization (objectives)"
    description = ("optimize several images for a unit, a channel or a class logit (or its negative), with a "
                   "diversity term and the standard transforms")
    kinds = IMAGE
    params = (Param("objective", "str", "channel", choices=("unit", "channel", "class")),
              Param("layer", "layer", help="the layer (unit and channel objectives)"),
              Param("index", "int", 0, min=0, help="the unit, channel or class"),
              Param("negative", "bool", False, help="minimize instead of maximize"),
              Param("n", "int", 4, min=1, max=16, help="images optimized together"),
              Param("diversity", "float", 1.0, min=0, max=100, help="weight of the diversity term"),
              Param("transforms", "bool", True, help="pad, jitter, scale and rotate every step"),
              Param("steps", "int", 128, min=1, max=2000))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and _images3(model)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens import featvis_objectives as F

        kind, i = params["objective"], params["index"]
        obj = F.class_logit(i) if kind == "class" else (F.unit if kind == "unit" else F.channel)(params["layer"], i)
        if params["negative"]:
            obj = F.negative(obj)
        r = F.visualize_objective(lm, obj, n=params["n"], steps=params["steps"], diversity=params["diversity"],
                                  transforms=F.TRANSFORMS if params["transforms"] else ())
        r["images"] = np.asarray(r["images"])
        return r

    def payload(self, data: Any) -> Any:
        d = {k: v for k, v in data.items() if k != "images"}
        d["srcs"] = [to_png_uri(im, scale=5) for im in data["images"]]
        return to_json(d)

    def html(self, p: Any) -> str:
        sim = "" if p.get("similarity") is None else f" · mean Gram similarity {_cell(p['similarity'])}"
        head = (f"<p>objective <code>{esc(p['objective'])}</code> · diversity {p['diversity']}{sim} · transforms "
                f"{esc(', '.join(p['transforms']) or 'none')} · {p['steps']} steps</p>")
        return _wrap(self.title, head + '<div class="imgs">' + "".join(
            _fig(s, f"value {v:.3f}") for s, v in zip(p["srcs"], p["values"], strict=False)) + "</div>")

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"objective": "class", "n": 2, "steps": 3}


# ---- dictionary learning at a target L0 ---------------------------------------------------------------------
_DICTS = _LRU(4)


class DictionaryL0(View):
    name, title = "dictionary", "Dictionary learning (target L0)"
    job = True  # the L1 sweep trains several dictionaries: the page computes it when asked
    description = ("a sparse autoencoder whose L1 penalty is searched to reach a target L0, with dead-feature "
                   "resampling; loss recovered and a dashboard per feature")
    kinds = IMAGE
    params = (Param("layer", "layer"), Param("target_l0", "float", 4.0, min=0.1, max=4096, help="active features wanted"),
              Param("size", "int", 32, min=2, max=4096, help="dictionary features"),
              Param("steps", "int", 300, min=1, max=5000, help="training steps per try"),
              Param("feature", "int", None, min=0, optional=True,
                    help="the feature on the dashboard (default: the most frequent)"))

    def fit(self, lm: Any, params: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from occam.lens.dictionary import sweep_l1

        key = f"{_wkey(lm)}:{params['layer']}:{params['target_l0']}:{params['size']}:{params['steps']}"
        return _DICTS.get_or(key, lambda: sweep_l1(lm, params["layer"], params["target_l0"], size=params["size"],
                                                   steps=params["steps"]))

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.dictionary import feature_dashboard, sae_summary

        sae, stats = self.fit(lm, params)
        summary = sae_summary(lm, params["layer"], sae)
        f = params["feature"] if params["feature"] is not None else summary["features_by_frequency"][0]
        dash = feature_dashboard(lm, params["layer"], sae, f, top=min(8, lm.n_val))
        for r in dash["top"]:
            r["image"] = _input(lm, r["index"])
        return {"layer": params["layer"], "target_l0": params["target_l0"], "sweep": stats, "summary": summary,
                "dashboard": dash}

    def payload(self, data: Any) -> Any:
        dash = dict(data["dashboard"])
        top = []
        for r in dash["top"]:
            heat = r.get("heatmap")
            h = None
            img = np.asarray(r["image"])
            if heat is not None and img.ndim == 3:
                hm = np.asarray(heat, dtype=np.float32)
                if hm.ndim == 2:
                    reps = (img.shape[1] // hm.shape[0] or 1, img.shape[2] // hm.shape[1] or 1)
                    hm = np.kron(hm, np.ones(reps, dtype=np.float32))
                    pad = [(0, max(0, img.shape[1] - hm.shape[0])), (0, max(0, img.shape[2] - hm.shape[1]))]
                    hm = np.pad(hm, pad)[: img.shape[1], : img.shape[2]]
                    h = hm / (float(hm.max()) or 1.0)
            top.append({k: v for k, v in r.items() if k not in ("image", "heatmap")}
                       | {"src": to_png_uri(img, scale=3, heat=h), "heatmap": heat})
        dash["top"] = top
        s = {k: v for k, v in data["summary"].items() if k not in ("freq",)}
        s["features_by_frequency"] = s["features_by_frequency"][:32]
        return to_json({**{k: v for k, v in data.items() if k not in ("dashboard", "summary")}, "dashboard": dash,
                        "summary": s})

    def html(self, p: Any) -> str:
        s, d, lr = p["summary"], p["dashboard"], p["summary"]["loss_recovered"]
        hist = p["sweep"].get("history", [])
        head = (f"<p>{esc(p['layer'])}: {s['size']} features, target L0 {p['target_l0']} → L0 {_cell(s.get('l0'), 2)} · "
                f"FVU {_cell(s.get('fvu'))} · dead {s.get('dead')} · loss recovered <b>{_cell(lr.get('fraction'))}</b> "
                f"(val loss {_cell(lr.get('ce_clean'))} clean, {_cell(lr.get('ce_sae'))} with the SAE, "
                f"{_cell(lr.get('ce_mean_ablation'))} mean-ablated) · {len(hist)} L1 tries</p>")
        counts, edges = d["histogram"]["counts"], d["histogram"]["edges"]
        cmax = max(counts) if counts else 1
        histo = ('<div class="hist">' + "".join(
            f'<span title="{edges[i]:.3g}–{edges[i + 1]:.3g}: {c}" style="display:inline-block;width:8px;'
            f'height:{int(60 * c / (cmax or 1))}px;background:#1f77b4;margin-right:1px;vertical-align:bottom"></span>'
            for i, c in enumerate(counts)) + "</div>")
        cards = '<div class="imgs">' + "".join(_fig(r["src"], f"#{r['index']} {r['label_name']} {r['act']:.2f}")
                                               for r in d["top"]) + "</div>"
        effect = _bars(d["logit_effect"], d["class_names"], signed=True)
        direct = ("<p>direct logit effect (decoder direction through the head):</p>"
                  + _bars(d["direct_logits"], d["class_names"], signed=True)) if d.get("direct_logits") else ""
        return _wrap(self.title, head + f"<h4>feature {d['feature']} (fires on {100 * d['freq']:.1f}% of images)</h4>"
                     + "<p>top-activating images (red: where it fires)</p>" + cards
                     + "<p>histogram of its non-zero activations</p>" + histo
                     + "<p>logit effect of removing it on its top images:</p>" + effect + direct
                     + "<p>features by frequency: " + ", ".join(map(str, s["features_by_frequency"][:16])) + "</p>")

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"size": 8, "steps": 5, "target_l0": 2.0}

    def job_key(self, model: Any, params: dict[str, Any]) -> str | None:
        return f"{_wkey(model)}:{sorted(params.items())}"


# ---- calibrated trigger evidence ------------------------------------------------------------------------------
class TriggerEvidence(View):
    name, title = "trigger-evidence", "Trigger evidence (calibrated)"
    description = ("the Neural Cleanse statistics beside the same statistics of clean reference models of the same "
                   "architecture and task: evidence with its basis, not a verdict")
    kinds = IMAGE
    job = True
    params = (Param("steps", "int", 300, min=1, max=5000), Param("images", "int", 40, min=1, max=200),
              Param("n_models", "int", 8, min=2, max=64, help="clean reference models (trained once, cached)"),
              Param("epochs", "float", 10.0, min=0.01, max=100, help="their training epochs"),
              Param("statistic", "str", "anomaly_index", choices=("anomaly_index", "min_l1_ratio")))

    def applies_to(self, model: Any) -> bool:
        return super().applies_to(model) and len(model.task.input_shape) == 3

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        from occam.lens.calibration import STATISTICS, calibrated_verdict
        from occam.lens.triggers import trigger_search

        if params["statistic"] not in STATISTICS:
            raise OccamError(f"unknown statistic {params['statistic']!r}", "use one of: " + ", ".join(STATISTICS))
        result = trigger_search(lm, params["steps"], params["images"])
        v = calibrated_verdict(lm, result, n_models=params["n_models"], epochs=params["epochs"],
                               statistic=params["statistic"], progress=progress)
        v["search"] = {k: result.get(k) for k in ("anomaly_index", "smallest_class", "median_l1", "mad", "steps",
                                                    "images", "threshold")}
        v["class_names"] = list(lm.task.class_names)
        return v

    def html(self, p: Any) -> str:
        s = p["search"]
        k = s.get("smallest_class")
        name = p["class_names"][k] if isinstance(k, int) and 0 <= k < len(p["class_names"]) else k
        rows = [[key, val] for key, val in p.items() if isinstance(val, int | float | str)
                and key not in ("wording", "model", "evidence", "flagged", "mad_rule_flagged")]
        b = p.get("basis") or {}
        if isinstance(b, dict):
            vals = ", ".join(f"{x:.3g}" for x in b.get("values", []) if isinstance(x, int | float))
            basis = (f"{b.get('n_models')} clean {esc(b.get('arch'))} models trained on {esc(b.get('task'))} for "
                     f"{b.get('epochs')} epochs, searched with {b.get('steps')} steps on {b.get('images')} images; "
                     f"their {esc(p.get('statistic', 'statistic'))}: {vals}")
        else:
            basis = esc(b)
        return _wrap(self.title, f"<p class=\"evidence\"><b>{esc(p.get('evidence', ''))}</b>: {esc(p.get('wording', ''))}</p>"
                     f"<p>basis: {basis}</p>"
                     f"<p>Neural Cleanse on this model alone: anomaly index {_cell(s.get('anomaly_index'), 2)} (MAD rule, "
                     f"uncalibrated), smallest trigger for class {esc(name)}.</p>" + _table(["", ""], rows))

    def quick_params(self, lm: Any) -> dict[str, Any]:
        return {"steps": 3, "images": 4, "n_models": 2, "epochs": 0.02}

    def export_params(self, lm: Any) -> list[dict[str, Any]]:
        return []  # training the clean references takes minutes: not precomputed in a static export

    def job_key(self, model: Any, params: dict[str, Any]) -> str | None:
        return f"{_wkey(model)}:{sorted(params.items())}"


# ---- attention ----------------------------------------------------------------------------------------------
def attention_values(lm: Any) -> list[str]:
    """The model's attention patterns: outputs of Softmax nodes shaped [N, heads, T, T] (rows sum to 1)."""
    out: list[str] = []
    env: dict[str, Any] | None = None
    for node in lm.module.nodes:
        if node.op != "Softmax" or node.outputs[0] == lm.module.output_name:
            continue
        if env is None:
            env = lm.module.run(lm.x[:1])
        v = env.get(node.outputs[0])
        shape = tuple(v.shape) if v is not None else None
        if shape is not None and len(shape) == 4 and shape[-1] == shape[-2]:
            out.append(node.outputs[0])
    return out


class Attention(View):
    name, title = "attention", "Attention"
    description = "per-head attention patterns and attention rollout (any model with softmax attention)"
    kinds = ("any",)  # every model kind whose graph has softmax attention (the toy transformers' kinds too)
    params = (Param("index", "image", 0, help="the validation example"),
              Param("query", "int", None, min=0, optional=True, help="the query token (default: the mean over queries)"))

    def applies_to(self, model: Any) -> bool:
        if getattr(model, "module", None) is None or getattr(model, "x", None) is None:
            return False
        cached = getattr(model, "_attention_values", None)
        if cached is None:
            try:
                cached = attention_values(model)
            except Exception:  # noqa: BLE001 - a model the interpreter cannot run has no attention view
                cached = []
            try:
                model._attention_values = cached
            except AttributeError:
                pass
        return bool(cached)

    def compute(self, lm: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        import torch

        names = attention_values(lm)
        i = params["index"]
        with torch.no_grad():
            env = lm.module.run(lm.x[i:i + 1])
        pats = [env[n][0].double().numpy() for n in names]  # [heads, T, T]
        t = pats[0].shape[-1]
        q = params["query"]
        if q is not None and q >= t:
            raise OccamError(f"query token {q} is out of range: the model has {t} tokens", f"pass query 0..{t - 1}")
        roll = np.eye(t)
        for a in pats:
            m = a.mean(0) + np.eye(t)
            m = m / m.sum(-1, keepdims=True)
            roll = m @ roll
        grid = _grid(lm, t)
        focus = roll[q] if q is not None else roll.mean(0)
        return {"index": i, "image": _input(lm, i), "layers": names, "patterns": pats, "rollout": roll,
                "rollout_focus": focus, "grid": grid, "tokens": t, "query": q}

    def payload(self, data: Any) -> Any:
        d = {k: v for k, v in data.items() if k not in ("image", "patterns")}
        sc = max(6, 96 // max(1, int(data["tokens"])))
        d["heads"] = [[heat_uri(h, sc, vmax=1.0) for h in a] for a in data["patterns"]]
        d["rollout_src"] = heat_uri(data["rollout"], sc, vmax=float(np.abs(data["rollout"]).max()) or 1.0)
        img = np.asarray(data["image"])
        d["src"] = to_png_uri(img, scale=8)
        if data["grid"] is not None and img.ndim == 3:
            gh, gw = data["grid"]
            hm = np.asarray(data["rollout_focus"]).reshape(gh, gw)
            hm = np.kron(hm, np.ones((img.shape[1] // gh, img.shape[2] // gw)))
            d["overlay_src"] = to_png_uri(img, scale=8, heat=hm / (hm.max() or 1.0))
        return to_json(d)

    def html(self, p: Any) -> str:
        rows = "".join(f"<p>{esc(name)}</p>" + '<div class="imgs">' + "".join(
            _fig(src, f"head {h}") for h, src in enumerate(heads)) + "</div>" for name, heads in zip(p["layers"], p["heads"],
                                                                                                 strict=False))
        over = _fig(p["overlay_src"], "rollout on the image") if p.get("overlay_src") else ""
        return _wrap(self.title, f"<p>image #{p['index']}: {len(p['layers'])} attention layers, {p['tokens']} tokens "
                     "(rows: queries, columns: keys; darker red = more attention)</p>" + rows
                     + '<div class="imgs">' + _fig(p["src"], "image") + _fig(p["rollout_src"], "attention rollout")
                     + over + "</div>")


def _grid(lm: Any, tokens: int) -> tuple[int, int] | None:
    shape = tuple(lm.task.input_shape)
    if len(shape) != 3:
        return None
    h, w = shape[1], shape[2]
    for gh in range(1, tokens + 1):
        if tokens % gh == 0:
            gw = tokens // gh
            if h % gh == 0 and w % gw == 0 and h // gh == w // gw:
                return gh, gw
    return None


DEPTH_VIEWS: list[View] = [register_view(v) for v in (
    Patching, LogitLens, AttributionMethods, FeatvisObjectives, DictionaryL0, TriggerEvidence, Attention)]
