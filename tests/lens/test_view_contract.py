"""Every registered Lens view passes the view contract (occam.lens.checks.check_view), and so does the
documented example view; parameters are refused with errors that name them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from occam.errors import OccamError
from occam.lens.checks import ViewCheckError, check_html, check_view, tiny_model
from occam.lens.view import Param, View, get_view, run_view, validate_params
from occam.lens.views import VIEWS, LensSession

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.mark.parametrize("name", sorted(n for n, v in VIEWS.items() if "image-classifier" in v.kinds))  # toy: tests/toy
def test_every_registered_view_passes_the_contract(name, tiny):
    model = tiny if VIEWS[name].applies_to(tiny) else tiny_model("vit")  # e.g. attention: a model with attention
    res = check_view(VIEWS[name], model)
    assert res.n_val == model.n_val and res.html


def test_builtin_views_are_the_twelve():
    assert list(VIEWS)[:12] == ["overview", "units", "featvis", "readouts", "attribution", "adversarial", "editor",
                                "pruning", "steering", "sae", "clusters", "triggers"]


def test_example_view_registers_and_passes(tiny):
    from occam.lens.views import register_view, views_for

    mod = _load("weight_norms_view")
    view = register_view(mod.WeightNorms)
    try:
        assert "weight-norms" in [v.name for v in views_for(tiny)]
        res = check_view(view, tiny)
        first = res.data["weights"][0]
        assert first["name"] == tiny.module.weight_names[0] or first["shape"]
        assert res.data["weights"][0]["row_norms"][0] >= res.data["weights"][0]["row_norms"][-1]  # descending
        assert "<table" in res._repr_html_()
        # the page gets a panel for it (its parameters as a form, its fragment), the route serves it
        from fastapi.testclient import TestClient

        from occam.web.lens_routes import create_app

        s = LensSession(tiny)
        c = TestClient(create_app(s))
        page = c.get(f"/lens/m/{s.id}").text
        assert 'id="view-weight-norms"' in page and 'data-param="order"' in page
        r = c.get(f"/lens/api/{s.id}/views/weight-norms", params={"p": 1, "order": "asc"}).json()
        assert r["params"] == {"p": 1.0, "top": 5, "order": "asc"} and "(L1)" in r["html"]
    finally:
        VIEWS.pop("weight-norms", None)


def test_parameter_errors_name_the_parameter_and_the_range(tiny):
    adv = get_view("adversarial")
    with pytest.raises(OccamError, match=r"view 'adversarial': parameter eps must be between 0 and 1, got 2"):
        validate_params(adv, {"eps": 2}, tiny)
    with pytest.raises(OccamError, match=r"parameter eps must be a number, got 'x'"):
        validate_params(adv, {"eps": "x"}, tiny)
    with pytest.raises(OccamError, match=r"parameter method must be one of fgsm, pgd") as e:
        validate_params(adv, {"method": "cw"}, tiny)
    assert "pick one of" in e.value.fix
    with pytest.raises(OccamError, match=r"view 'adversarial' has no parameter 'epsilon'") as e:
        validate_params(adv, {"epsilon": 0.1}, tiny)
    assert "eps" in e.value.fix
    with pytest.raises(OccamError, match=rf"parameter index must be between 0 and {tiny.n_val - 1}"):
        validate_params(adv, {"index": tiny.n_val}, tiny)
    with pytest.raises(OccamError, match=r"parameter layer must be one of the model's layers") as e:
        validate_params(get_view("units"), {"layer": "nope"}, tiny)
    assert "relu" in e.value.fix
    # query-string texts are converted; defaults fill the rest
    p = validate_params(adv, {"eps": "0.05", "index": "3"}, tiny)
    assert p == {"index": 3, "eps": 0.05, "method": "fgsm", "steps": 10, "target": None}


def test_the_battery_catches_a_broken_view(tiny):
    class Pngs(View):
        name, title, kinds = "pngs", "PNGs", ("image-classifier",)
        params = (Param("n", "int", 1, min=0, max=3),)

        def compute(self, model, params, *, progress=None):
            return {"src": "data:image/png;base64,AAAA"}

    with pytest.raises(ViewCheckError, match="compute returned drawing, not data"):
        check_view(Pngs(), tiny, export=False)

    class Loose(Pngs):
        name = "loose"

        def compute(self, model, params, *, progress=None):
            return {"n": params["n"]}

        def html(self, payload):
            return "<div><p>unclosed</div>"

    with pytest.raises(ViewCheckError, match="not well formed"):
        check_view(Loose(), tiny, export=False)
    with pytest.raises(ViewCheckError, match="empty"):
        check_html(Loose(), "  ")


def test_python_api_result(tiny):
    res = run_view(tiny, "units", layer="relu", unit=1)
    assert res.data["unit"] == 1 and len(res.data["top"]) == 6
    assert res.data["top"][0]["image"].shape == (1, 8, 8)  # data, not PNG
    assert res.payload["top"][0]["src"].startswith("data:image/png;base64,")
    assert res._repr_html_().count("<img") == 12
    assert res.to_json()["n_val"] == tiny.n_val
