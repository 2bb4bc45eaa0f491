from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from occam.lens import analysis as A
from occam.lens.editor import Editor
from occam.lens.model import open_model
from occam.lens.sae import SAE, splice_metrics
from occam.lens.views import VIEWS, views_for
from occam.models import build_model
from occam.scoring import compute_metrics, count_model, inspect_model
from occam.tasks import get_task


@pytest.fixture
def lm(lenet_digits):
    return open_model(lenet_digits, "digits")


def test_steering_at_zero_is_a_no_op(lm):
    for layer in ("relu", "relu_2"):
        d = A.steer(lm, layer, 0.0, "classes", 0, 1)
        assert d["metrics"] == d["base"]
        assert d["pred_counts_before"] == d["pred_counts_after"]
    assert A.steer(lm, "relu_2", 3.0, "classes", 0, 1)["metrics"] != lm.metrics()


def test_exact_sae_leaves_metrics_unchanged(lm):
    for layer in ("relu_1", "linear"):
        units = lm.layer(layer).units
        assert splice_metrics(lm, layer, SAE.identity(units)) == lm.metrics()


def test_last_layer_readout_equals_logits(lm):
    spec = lm.head()
    assert spec is not None and spec[0] == "relu_3"
    z = A.direct_projection(lm, spec[0])
    assert torch.equal(z, lm.logits())
    ro = A.readouts(lm, n_train=300)
    last = {r["layer"]: r for r in ro["layers"]}
    acc = float((lm.logits().argmax(1) == lm.y).double().mean())
    assert last["relu_3"]["direct_acc"] == acc and last["logits"]["direct_acc"] == acc
    assert all(0 <= r["probe_acc"] <= 1 for r in ro["layers"])


def test_edit_then_undo_restores_metrics_exactly(lm):
    ed = Editor(lm)
    m0 = ed.metrics()
    for name, idx, v in (("conv1.weight", 3, 0.7), ("fc1.weight", 100, -1.0), ("head.bias", 2, 0.0),
                         ("conv2.weight", 40, 0.0)):
        m = ed.set_weight(name, idx, v)
        ref = ed.full_forward_metrics()
        assert abs(m["ce"] - ref["ce"]) < 1e-6 and m["accuracy"] == ref["accuracy"]
        assert m["nnz"] == lm.nnz()
    assert ed.metrics()["nnz"] == m0["nnz"] - 2  # two weights zeroed
    for _ in range(4):
        ed.undo()
    assert ed.metrics() == m0


def test_saved_edit_scores_what_the_editor_showed(lm):
    ed = Editor(lm)
    ed.set_weight("fc1.weight", 5, 0.0)
    ed.set_weight("conv2.weight", 7, 0.5)
    shown = ed.sync()
    data = lm.to_onnx_bytes()
    task = get_task("digits")
    assert inspect_model(data, task).ok
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x, y = task.floats("val"), task.labels("val")
    logits = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    import onnx

    nnz = count_model(onnx.load_from_string(data)).nnz
    scored = compute_metrics(logits, y, num_classes=10, nnz=nnz, lam=task.default_lam)
    assert nnz == shown["nnz"]
    assert scored["accuracy"] == shown["accuracy"]
    assert abs(scored["ce"] - shown["ce"]) < 1e-6 and abs(scored["score"] - shown["score"]) < 1e-6


def test_views_registry_and_torch_module():
    lm = open_model(build_model("mlp", (1, 8, 8), 10), "digits")
    names = [v.name for v in views_for(lm)]
    image_views = [v for v in VIEWS.values() if "image-classifier" in v.kinds]  # other kinds bring their own
    assert names[:2] == ["overview", "units"] and len(names) == len(image_views) == 18 and names[-1] == "trigger-evidence"
    assert lm.info.checkpoints == ["final"]


def test_prune_and_clusters(lm):
    d = A.prune(lm, 0.05)
    assert d["metrics"]["nnz"] == lm.nnz() - d["removed"]
    assert lm.metrics()["nnz"] == lm.nnz()  # not applied
    c = A.clusters(lm, "relu_2", 3)
    assert sorted(u for cl in c["clusters"] for u in cl["units"]) == list(range(120))
    u = A.unit_detail(lm, "relu", 1)
    assert len(u["top"]) == 6 and np.isfinite(u["d_ce_zero"])


def test_conv_slider_drag_stays_exact_and_release_is_cheap(lm):
    ed = Editor(lm)
    m0 = ed.metrics()
    for step in range(12):  # one drag on a conv1 weight, then one on a conv2 bias
        ed.set_weight("conv1.weight", 7, -1.0 + step / 6)
    for step in range(6):
        ed.set_weight("conv2.bias", 3, step / 3)
    released = ed.sync()
    assert ed.full_syncs == 0  # the release did not re-run the whole model
    ref = ed.full_forward_metrics()
    assert abs(released["ce"] - ref["ce"]) < 1e-6 and released["accuracy"] == ref["accuracy"]
    for _ in range(18):
        ed.undo()
    assert ed.metrics() == m0
