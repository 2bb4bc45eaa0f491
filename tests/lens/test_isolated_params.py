"""Every view parameter the arena's Lens forwards is bounded: numbers have a range or index into the model, and a
value out of range is a clear error (the child never starts a runaway computation for it)."""

from __future__ import annotations

import pytest

from occam.errors import OccamError

# integer parameters that index into the model (a unit, a row): bounded by the model, checked by the view
INDEXES = {"unit", "row", "index", "feature", "query"}
# numeric parameters that drive the work done (steps, images, sizes, examples): must have an upper bound
WORK = {"steps", "images", "size", "k", "n_train", "n", "count", "samples", "batch", "epochs"}


def test_every_numeric_param_is_bounded() -> None:
    from occam.lens.views import VIEWS

    missing = []
    for view in VIEWS.values():
        for p in view.params:
            if p.type not in ("int", "float"):
                continue
            if p.name in INDEXES and p.type == "int":
                assert p.min is not None, f"{view.name}.{p.name}: an index needs min=0"
                continue
            if getattr(p, "upper", None) is not None and p.min is not None:  # bounded by the model (toy views)
                continue
            if p.max is None or p.min is None:
                missing.append(f"{view.name}.{p.name}")
    assert not missing, f"unbounded view parameters: {missing}"


@pytest.mark.parametrize("name,params,match", [
    ("adversarial", {"method": "pgd", "steps": 2000}, "between 1 and 500"),
    ("triggers", {"steps": 10**6}, "between 1 and 5000"),
    ("units", {"k": 10**6}, "between 1 and 50"),
])
def test_out_of_range_work_is_refused_with_the_range(lenet_digits, name, params, match) -> None:
    from occam.lens.kinds import open_model
    from occam.lens.view import validate_params
    from occam.lens.views import get_view

    lm = open_model(lenet_digits, "digits")
    with pytest.raises(OccamError, match=match) as info:
        validate_params(get_view(name), params, lm)
    assert "pass" in info.value.fix


def test_out_of_range_indexes_are_clear_errors(lenet_digits) -> None:
    from occam.lens.kinds import open_model
    from occam.lens.views import run_view

    lm = open_model(lenet_digits, "digits")
    with pytest.raises(OccamError, match="has 16 units") as info:
        run_view(lm, "units", {"layer": "max_pool2d_1", "unit": 10**9})
    assert "0..15" in info.value.fix
    w = run_view(lm, "editor", {"weight": "conv1.weight", "row": 10**9}).data["weight"]
    assert w["row"] < 6 and len(w["values"]) > 0  # a row past the end shows the last one
