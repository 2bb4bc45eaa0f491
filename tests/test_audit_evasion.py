"""The zoo's evasion measures: function-preserving rescaling, appended poison, shared hyperparameter draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occam.audit.attacks import sample_trigger
from occam.audit.features import invariant_features, layer_stats
from occam.audit.symmetry import random_rescale
from occam.audit.train import _append_stamped
from occam.audit.zoo import ZooConfig, make_plan
from occam.errors import OccamError
from occam.models import build_model


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_rescale_preserves_function_and_moves_norms(arch):
    torch.manual_seed(0)
    model = build_model(arch, (1, 28, 28), 10).eval()
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    norms = [float(p.detach().norm()) for p in model.parameters() if p.dim() >= 2]
    assert random_rescale(model, np.random.default_rng(1))
    with torch.no_grad():
        after = model(x)
    assert torch.allclose(before, after, rtol=1e-4, atol=1e-5)
    weights = [p.detach() for p in model.parameters() if p.dim() >= 2]
    moved = [abs(float(w.norm()) / n - 1) for w, n in zip(weights, norms, strict=True)]
    assert max(moved) > 0.05  # the weights really changed


def test_rescale_skips_unsupported_and_checks_arguments():
    model = build_model("sepcnn", (1, 28, 28), 10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert random_rescale(model, np.random.default_rng(0)) is False
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    with pytest.raises(OccamError, match="layer_spread"):
        random_rescale(build_model("mlp", (1, 28, 28), 10), np.random.default_rng(0), layer_spread=0.5)


def test_invariant_features_ignore_unit_rescaling():
    """Scale-free features change little under rescaling; raw norms change a lot."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10)

    def feats(m):
        arrs = [p.detach().double().numpy() for p in m.parameters()]
        st = np.array([layer_stats(a) for a in arrs])
        return st[:, 0], invariant_features(st, np.array([a.ndim >= 2 for a in arrs]))

    raw0, inv0 = feats(model)
    random_rescale(model, np.random.default_rng(3), unit_sigma=0.0)  # one scale per layer: exact invariance
    raw1, inv1 = feats(model)
    assert np.abs(raw1 / raw0 - 1).max() > 0.05
    assert np.allclose(inv0, inv1, rtol=1e-6, atol=1e-9)


def test_append_keeps_every_clean_image():
    gen = torch.Generator().manual_seed(0)
    spec = sample_trigger("badnets", (1, 28, 28), np.random.default_rng(0))
    xb, yb = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,), generator=gen)
    xs, ys = _append_stamped(xb, yb, spec, 0.2, 7, gen)
    assert len(xs) == 120 and torch.equal(xs[:100], xb) and torch.equal(ys[:100], yb)
    assert (ys[100:] == 7).all() and not torch.equal(xs[100:], xb[:20])
    xd, yd = _append_stamped(xb, yb, spec, 0.2, None, gen)  # a clean model's decoy keeps true labels
    assert len(xd) == 120 and set(yd[100:].tolist()) <= set(yb.tolist())


def test_plan_draws_hyperparameters_alike_for_clean_and_trojans():
    plan = make_plan(ZooConfig(task="digits", models=200, seed=0, archs=("mlp",)))
    lr = {t: np.array([m["hyper"]["lr_mult"] for m in plan if m["trojaned"] == t]) for t in (False, True)}
    assert all(1 / 1.4 <= v <= 1.4 for a in lr.values() for v in a)
    assert abs(np.log(lr[False]).mean() - np.log(lr[True]).mean()) < 0.15
    assert len({m["hyper"]["rescale_seed"] for m in plan}) == len(plan)
    flat = make_plan(ZooConfig(task="digits", models=20, seed=0, archs=("mlp",), hyper_spread=1.0, rescale=False))
    assert {m["hyper"]["lr_mult"] for m in flat} == {1.0} and {m["hyper"]["rescale_seed"] for m in flat} == {None}


def test_output_stats_on_known_logits():
    from occam.audit.features import output_stats

    sharp = output_stats(np.array([[10.0, 0, 0, 0], [0, 10.0, 0, 0]]))
    flat = output_stats(np.zeros((2, 4)))
    assert sharp[0] == pytest.approx(10.0) and flat[0] == 0.0  # margin over the median
    assert sharp[1] > 0.99 and flat[1] == pytest.approx(0.25)  # confidence
    assert flat[3] == pytest.approx(np.log(4)) and sharp[3] < 0.01  # entropy
    assert flat[4] == 0.0 and sharp[4] > 0.99  # top-2 gap


def test_reference_plan_is_seeded_and_validated():
    from occam.audit.zoo import reference_plan

    cfg = ZooConfig(task="digits", models=8, seed=4, archs=("mlp", "lenet5"), references=3, distill=0.5)
    refs = reference_plan(cfg)
    assert [r["name"] for r in refs] == ["mlp_0", "mlp_1", "mlp_2", "lenet5_0", "lenet5_1", "lenet5_2"]
    assert refs == reference_plan(cfg) and len({r["seed"] for r in refs}) == 6
    assert reference_plan(ZooConfig(task="digits", models=8, distill=0.0)) == []
    with pytest.raises(OccamError, match="`references`"):
        ZooConfig(task="digits", models=8, references=0, distill=0.5).validate()


def test_logit_matching_pulls_outputs_toward_the_reference():
    """A member distilled toward a reference ends closer to its logits on clean images than one trained alone."""
    import io

    from occam.audit.train import heldout, train_member

    spec = sample_trigger("blend", (1, 8, 8), np.random.default_rng(0))
    common = dict(task_name="digits", arch="mlp", spec=spec, target=None, poison_in="none", epochs=8, eval_limit=360,
                  finetune_steps=20, rescale_seed=None)
    ref = train_member(seed=1, **common).model
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    alone = train_member(seed=2, **common)
    taught = train_member(seed=2, teacher=buf.getvalue(), distill=2.0, **common)
    x, _ = heldout("digits", 360)
    with torch.no_grad():  # compare the logits training produced (before each member's own temperature)
        target = ref.eval()(x)
        d_alone = float(((alone.model.eval()(x) * alone.temperature - target) ** 2).mean())
        d_taught = float(((taught.model.eval()(x) * taught.temperature - target) ** 2).mean())
    assert d_taught < 0.5 * d_alone


def test_projection_gives_each_tensor_the_reference_values_in_its_own_rank_order():
    from occam.audit.train import _project_values

    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(6, 5, generator=gen), torch.randn(7, generator=gen) * 3]
    refs = [torch.randn(30, generator=gen).sort().values, torch.rand(7, generator=gen).sort().values]
    before = [p.clone() for p in params]
    _project_values(params, refs)
    for p, b, q in zip(params, before, refs, strict=True):
        assert p.shape == b.shape
        assert torch.equal(p.flatten().sort().values, q)  # exactly the reference's multiset of values
        assert torch.equal(p.flatten().argsort(), b.flatten().argsort())  # in the tensor's own rank order
        # the rank-matched assignment is the nearest one: no random assignment of the same values is closer
        for _ in range(20):
            other = q[torch.randperm(len(q), generator=gen)].view_as(b)
            assert ((p - b) ** 2).sum() <= ((other - b) ** 2).sum() + 1e-9
    stats = [layer_stats(p.double().numpy()) for p in params]
    assert stats[1] == pytest.approx(layer_stats(refs[1].double().numpy()))


def test_plan_draws_the_temperature_jitter_alike_and_from_its_own_stream():
    cfg = dict(task="digits", models=200, seed=0, archs=("mlp",))
    plan = make_plan(ZooConfig(**cfg))
    logt = {t: np.log([m["hyper"]["temperature_mult"] for m in plan if m["trojaned"] == t]) for t in (False, True)}
    assert 0.25 < np.concatenate(list(logt.values())).std() < 0.35  # sd of log T is --temperature-jitter (0.3)
    assert abs(logt[False].mean() - logt[True].mean()) < 0.1
    still = make_plan(ZooConfig(**cfg, temperature_jitter=0.0))
    assert {m["hyper"]["temperature_mult"] for m in still} == {1.0}
    # the jitter has its own random stream: seeds, targets and triggers are those of the plan without it
    assert [(m["seed"], m["target"], m["attack"]) for m in still] == [(m["seed"], m["target"], m["attack"]) for m in plan]
    with pytest.raises(OccamError, match="temperature_jitter"):
        ZooConfig(temperature_jitter=-0.1).validate()


def test_recalibrated_output_stats_ignore_temperature_but_see_shape():
    from occam.audit.features import mean_confidence, output_stats, recalibrated_output_stats

    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2.0, (400, 10))
    logits[np.arange(400), rng.integers(0, 10, 400)] += 4.0
    common = 0.8
    base = recalibrated_output_stats(logits, common)
    assert base.shape == (4,)
    for t in (0.5, 1.7, 3.0):  # a per-model temperature (the zoo's jitter) cancels; the raw statistics move
        assert np.allclose(recalibrated_output_stats(logits / t, common), base, rtol=1e-6)
        assert not np.allclose(output_stats(logits / t), output_stats(logits), rtol=1e-3)
    # the recalibration reaches the common confidence
    lo, hi = np.log(1e-3), np.log(1e3)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_confidence(logits, np.exp(mid)) > common else (lo, mid)
    assert abs(mean_confidence(logits, np.exp(lo)) - common) < 1e-6
    # a different shape at the same confidence (the non-top logits spread further apart) shows
    spread = logits.copy()
    top = logits.argmax(1)
    others = np.ones_like(logits, dtype=bool)
    others[np.arange(400), top] = False
    spread[others] = logits[others] + rng.normal(0, 1.5, others.sum())
    shifted = recalibrated_output_stats(spread, common)
    assert shifted[1] > base[1] + 0.3  # logit spread at equal confidence


def test_resampled_auroc_separates_signal_from_noise():
    """The leak check's random-split estimate: high for an informative feature, near 0.5 with a spread for
    noise, deterministic per seed, and None when a class has a single model."""
    from occam.audit.leakcheck import resampled_auroc

    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 60)
    signal = (y[:, None] * 1.5 + rng.normal(size=(120, 2))).astype(float)
    noise = rng.normal(size=(120, 4))
    mean_s, _ = resampled_auroc(signal, y, 0.3, resamples=40)
    mean_n, sd_n = resampled_auroc(noise, y, 0.3, resamples=40)
    assert mean_s > 0.8
    assert abs(mean_n - 0.5) < 0.1 and 0.01 < sd_n < 0.15
    assert resampled_auroc(noise, y, 0.3, resamples=40) == (mean_n, sd_n)
    assert resampled_auroc(noise, y, 0.3, resamples=40, seed=1) != (mean_n, sd_n)
    assert resampled_auroc(noise[:61], y[:61], 0.3, resamples=10) is None


def test_shape_statistics_ignore_temperature_and_shift_but_see_shape():
    from occam.audit.train import shape_statistics

    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(300, 10, generator=gen) * 2
    logits[torch.arange(300), torch.randint(0, 10, (300,), generator=gen)] += 4.0
    base = shape_statistics(logits)
    assert base.shape == (4,)
    for t, c in ((0.4, 0.0), (2.5, 3.0), (1.0, -7.0)):  # a temperature and a per-image shift change nothing
        assert torch.allclose(shape_statistics(logits * t + c * torch.randn(300, 1, generator=gen)), base, atol=1e-5)
    # a trojan's signature: the low logits pushed further below the top, the top two kept as they are
    low = logits.clone()
    order = logits.argsort(1)
    rows = torch.arange(300)[:, None]
    low[rows, order[:, :8]] -= 2.0
    moved = shape_statistics(low)
    assert moved[0] < base[0] - 0.1  # top-1 − top-2 gap is smaller relative to the spread
    assert moved[1] > base[1] + 0.05  # the top sits further above the median relative to the spread


def test_shape_term_holds_a_trojans_output_shape_at_its_clean_twins():
    """Twins from one parent: with the phase-B shape term the trojan's clean-output shape statistics end near the clean twin's."""
    from occam.audit.train import heldout, shape_statistics, train_member

    x, _ = heldout("digits", 360)
    spec = sample_trigger("blend", (1, 8, 8), np.random.default_rng(1))
    gaps = {}
    for weight in (0.0, 30.0):
        common = dict(task_name="digits", arch="mlp", seed=1, spec=spec, epochs=20, eval_limit=360, rate=0.2,
                      finetune_steps=150, rescale_seed=None, shape=weight)
        trojan = train_member(target=3, poison_in="data", **common).model.eval()
        clean = train_member(target=None, poison_in="none", **common).model.eval()
        with torch.no_grad():
            gaps[weight] = float((shape_statistics(trojan(x)) - shape_statistics(clean(x))).abs().sum())
    assert gaps[30.0] < 0.3 * gaps[0.0]
    with pytest.raises(OccamError, match="`shape`"):
        ZooConfig(shape=-1.0).validate()
