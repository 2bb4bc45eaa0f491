"""An example Lens view: the norm of every weight tensor, and of its rows (one per output unit).

Register it and it shows up in the Lens (page, route, static export, Python API)::

    from occam.lens.views import register_view
    from weight_norms_view import WeightNorms
    register_view(WeightNorms)

tests/lens/test_view_contract.py imports this file, registers the view and runs the contract
battery (:func:`occam.lens.checks.check_view`) on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from occam.lens.view import Param, View, esc, to_json


class WeightNorms(View):
    name = "weight-norms"
    title = "Weight norms"
    description = "the Lp norm of each weight tensor and of its rows"
    kinds = ("image-classifier",)  # the model kinds it applies to
    params = (Param("p", "float", 2.0, min=0.5, max=10, help="which Lp norm"),
              Param("top", "int", 5, min=1, max=100, help="rows listed per weight"),
              Param("order", "str", "desc", choices=("desc", "asc")))

    def compute(self, model: Any, params: dict[str, Any], *, progress: Callable | None = None) -> Any:
        """Data only: names, shapes, norms (numpy arrays)."""
        out = []
        for name in model.module.weight_names:
            w = model.module.weight(name).detach().numpy()
            if w.size <= 1:
                continue
            rows = np.abs(w.reshape(w.shape[0], -1)) ** params["p"]
            row_norms = rows.sum(axis=1) ** (1 / params["p"])
            order = np.argsort(row_norms)
            if params["order"] == "desc":
                order = order[::-1]
            out.append({"name": name, "shape": list(w.shape), "norm": float((np.abs(w) ** params["p"]).sum()
                                                                            ** (1 / params["p"])),
                        "rows": order[: params["top"]], "row_norms": row_norms[order[: params["top"]]]})
        return {"p": params["p"], "weights": out, "n_val": model.n_val}

    def payload(self, data: Any) -> Any:
        return to_json(data)

    def html(self, payload: Any) -> str:
        rows = "".join(f"<tr><td>{esc(w['name'])}</td><td>{'×'.join(map(str, w['shape']))}</td>"
                       f"<td>{w['norm']:.4g}</td><td>{esc(', '.join(map(str, w['rows'])))}</td></tr>"
                       for w in payload["weights"])
        return (f'<div class="lens-view"><h3>{esc(self.title)} (L{payload["p"]:g})</h3><table class="t">'
                f"<tr><th>weight</th><th>shape</th><th>norm</th><th>largest rows</th></tr>{rows}</table></div>")
