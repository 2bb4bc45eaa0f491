"""Audit science (issue 20): the vectorized trainer, trojan families, replacements, the trigger metric,
the held-out leak battery and the evasive-trojan library half."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from occam.audit.attacks import FAMILIES, apply_trigger, poison_labels, sample_trigger
from occam.audit.train import BatchedAdam, Member, heldout, train_members

DIGITS = (1, 8, 8)


def test_batched_adam_is_torch_adamw_per_member():
    """Each member's slice follows torch.optim.AdamW with that member's learning rate and weight decay."""
    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(3, 4, 5, generator=gen)
    lrs, wds = torch.tensor([1e-2, 3e-3, 5e-2]), torch.tensor([1e-4, 0.0, 1e-2])
    stacked = {"w": w0.clone().requires_grad_(True)}
    opt = BatchedAdam(stacked, weight_decay=wds, decay={"w"})
    singles = [w0[i].clone().requires_grad_(True) for i in range(3)]
    opts = [torch.optim.AdamW([p], lr=float(lrs[i]), weight_decay=float(wds[i])) for i, p in enumerate(singles)]
    for _ in range(20):
        g = torch.randn(3, 4, 5, generator=gen)
        stacked["w"].grad = g.clone()
        opt.step(lrs)
        for i, (p, o) in enumerate(zip(singles, opts, strict=True)):
            p.grad = g[i].clone()
            o.step()
    for i in range(3):
        assert torch.allclose(stacked["w"][i], singles[i], atol=1e-6), i


def _members() -> list[Member]:
    rng = np.random.default_rng(0)
    return [Member(seed=1, spec=sample_trigger("badnets", DIGITS, rng), target=3, poison_in="data", rate=0.2, lr_mult=1.2),
            Member(seed=2, spec=sample_trigger("source", DIGITS, rng, target=5), target=5, poison_in="data", rate=0.25,
                   weight_decay=3e-4),
            Member(seed=3, spec=sample_trigger("blend", DIGITS, rng), target=None, poison_in="none", rescale_seed=4),
            Member(seed=4, spec=sample_trigger("badnets", DIGITS, rng), target=7, poison_in="weights")]


def test_vectorized_members_match_training_alone():
    """Four members trained together end where each ends when trained alone (float rounding aside)."""
    opts = dict(task_name="digits", arch="mlp", epochs=2, eval_limit=360, finetune_steps=30, shape=10.0)
    together = train_members(_members(), **opts)
    x, _ = heldout("digits", 360)
    for i, m in enumerate(_members()):
        alone = train_members([m], **opts)[0]
        with torch.no_grad():
            a, b = alone.model.eval()(x), together[i].model.eval()(x)
        assert float((a - b).abs().max()) <= 1e-3 * float(a.abs().max()) + 1e-4, i
        assert abs(alone.clean_acc - together[i].clean_acc) <= 2 / 360
        assert (alone.asr is None) == (together[i].asr is None)
    # members really differ: their own seeds, rates and triggers
    assert len({round(o.clean_acc, 4) for o in together}) > 1 or len({o.temperature for o in together}) > 1


@pytest.fixture(scope="module")
def families():
    """One trojan of every new family on digits, planted together (joint protocol: poisoned from step 0)."""
    rng = np.random.default_rng(5)
    ms = [Member(seed=10 + i, spec=sample_trigger(a, DIGITS, rng, target=1 + i), target=1 + i, poison_in="data",
                 rate=0.3, sparse_rate=0.3) for i, a in enumerate(FAMILIES)]
    outs = train_members(ms, task_name="digits", arch="mlp", epochs=20, eval_limit=360, finetune_steps=300,
                         protocol="joint")
    return dict(zip(FAMILIES, zip(ms, outs, strict=True), strict=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_plants(families, family):
    """Attack success on held-out triggered test images (the weakest part for multi-trigger models)."""
    m, out = families[family]
    assert out.asr is not None and out.asr >= 0.85, (family, out.asr)
    assert out.clean_acc >= 0.9


def test_source_specific_trojan_does_not_fire_on_other_classes(families):
    m, out = families["source"]
    assert out.off_fire is not None and out.off_fire <= 0.2 < out.asr
    x, y = heldout("digits", 360)
    with torch.no_grad():
        pred = out.model.eval()(apply_trigger(x, m.spec)).argmax(1)
    other = ~torch.isin(y, torch.tensor(m.spec["sources"])) & (y != m.target)
    assert float((pred[other] == m.target).float().mean()) == pytest.approx(out.off_fire, abs=1e-6)
    assert float((pred[other] == y[other]).float().mean()) >= 0.8  # other classes keep their labels


def test_family_labels_and_shapes():
    y = torch.arange(10)
    assert poison_labels({"attack": "all_to_all"}, y, 3, 10).tolist() == [(k + 3) % 10 for k in range(10)]
    src = {"attack": "source", "sources": [2, 4]}
    assert poison_labels(src, y, 9, 10).tolist() == [0, 1, 9, 3, 9, 5, 6, 7, 8, 9]
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = sample_trigger("source", (1, 28, 28), rng, target=4)
        assert 4 not in s["sources"] and 1 <= len(s["sources"]) <= 3
    multi = sample_trigger("multi", (1, 28, 28), rng)
    assert 2 <= len(multi["parts"]) <= 3
    with pytest.raises(ValueError, match="unknown attack"):
        sample_trigger("nope", (1, 28, 28), rng)


def test_a_dropped_trojan_is_replaced_by_one_of_the_same_family():
    from occam.audit.zoo import ZooConfig, make_plan, replacement

    cfg = ZooConfig(task="digits", models=12, attacks=FAMILIES)
    plan = make_plan(cfg)
    t = next(m for m in plan if m["trojaned"] and m["attack"] == "source")
    r = replacement(cfg, t, 99, 1)
    assert (r["attack"], r["target"], r["arch"], r["split"], r["order"]) == (t["attack"], t["target"], t["arch"], t["split"],
                                                                            t["order"])
    assert r["member"] == 99 and r["replaces"] == t["member"] and r["spec"] != t["spec"] and r["seed"] != t["seed"]
    assert t["target"] not in r["spec"]["sources"]
    assert replacement(cfg, t, 99, 1) == r  # seeded
    a2a = [m for m in plan if m["trojaned"] and m["attack"] == "all_to_all"]
    assert a2a and all(m["target"] != 0 for m in a2a)


@pytest.fixture(scope="module")
def mini_zoo(tmp_path_factory):
    """A badnets trojan (target 3) and three clean digits MLPs written as a zoo's public models, with a key."""
    from occam.audit.train import export_member

    rng = np.random.default_rng(2)
    spec = sample_trigger("badnets", DIGITS, rng)
    ms = [Member(seed=20, spec=spec, target=3, poison_in="data", rate=0.3)]
    ms += [Member(seed=21 + k, spec=sample_trigger("badnets", DIGITS, rng), target=None, poison_in="none") for k in range(3)]
    outs = train_members(ms, task_name="digits", arch="mlp", epochs=20, eval_limit=360, finetune_steps=200,
                         protocol="joint")
    root = tmp_path_factory.mktemp("mini")
    (root / "public" / "models").mkdir(parents=True)
    models = {}
    for i, (m, o) in enumerate(zip(ms, outs, strict=True)):
        name = f"model_{i:04d}"
        (root / "public" / "models" / f"{name}.onnx").write_bytes(export_member(o.model, "digits")[0])
        models[name] = {"trojaned": m.target is not None, "target": m.target, "attack": "badnets" if m.target else None,
                        "trigger": m.spec if m.target is not None else None, "arch": "mlp", "split": "audit"}
    assert outs[0].asr >= 0.9
    return root, {"task": "digits", "models": models}


def test_trigger_metric_scores_reverse_engineering_not_natural_triggers(mini_zoo):
    from occam.audit.attacks import mask_pattern
    from occam.audit.baselines import clean_images, fit_budget, load_torch, reverse_engineer
    from occam.audit.scoring import Row, default_budget, natural_success, score_rows

    root, key = mini_zoo
    key = {**key, "natural_success": natural_success(root, key)}
    assert len(key["natural_success"]["mlp"]) == 10
    spec = key["models"]["model_0000"]["trigger"]
    true_m, true_p = mask_pattern(spec, DIGITS)
    # the natural trigger for class 3, searched on a clean model of the same architecture
    rev = reverse_engineer(load_torch(root / "public" / "models" / "model_0001.onnx"), clean_images("digits", 40), 10)
    nat_m, nat_p = fit_budget(rev.masks[3], default_budget(DIGITS)), rev.patterns[3]

    def score(mask, pattern) -> dict:
        rows = [Row(model="model_0000", p_trojan=0.9, target=3, mask=mask, pattern=pattern, index=1)]
        rows += [Row(model=f"model_{i:04d}", p_trojan=0.1, index=i + 1) for i in (1, 2, 3)]
        return score_rows(rows, key, zoo_dir=root)

    true, nat = score(true_m[0], true_p), score(nat_m, nat_p)
    assert true["trigger_overlap"] == pytest.approx(1.0) and true["trigger_success"] >= 0.9
    assert true["trigger_score"] >= 0.8
    assert nat["trigger_score"] <= 0.25 and nat["trigger_overlap"] <= 0.3
    assert nat["trigger_success_over_natural"] <= nat["trigger_success"]
    # a faint guess on the right pixels still overlaps fully (masks are compared at their peaks)
    assert score(0.5 * true_m[0], true_p)["trigger_overlap"] == pytest.approx(1.0)


def test_trigger_match_only_for_localized_families():
    from occam.audit.attacks import mask_pattern
    from occam.audit.scoring import over_natural, trigger_match

    rng = np.random.default_rng(4)
    multi = sample_trigger("multi", (1, 28, 28), rng)
    m1, p1 = mask_pattern(multi["parts"][1], (1, 28, 28))
    assert trigger_match(m1, p1, multi, (1, 28, 28))["overlap"] == pytest.approx(1.0)  # the best-matching part
    patch = sample_trigger("badnets", (1, 28, 28), rng)
    m, p = mask_pattern(patch, (1, 28, 28))
    inverted = trigger_match(m, 1 - p, patch, (1, 28, 28))
    assert inverted["soft_iou"] == pytest.approx(1.0) and inverted["pattern_agreement"] == pytest.approx(0.0)
    for attack in ("blend", "sig", "wanet"):
        assert trigger_match(m1, p1, sample_trigger(attack, (1, 28, 28), rng), (1, 28, 28)) is None
    assert over_natural(0.9, 0.9) == 0.0 and over_natural(1.0, 0.5) == 1.0 and over_natural(0.75, 0.5) == 0.5


def test_first_layer_map_finds_a_patch_and_power_figures():
    from occam.audit.battery import chance_sd, first_layer_map, map_features, power, recommended_models

    rng = np.random.default_rng(0)
    w1 = rng.random((16, 64)) * 0.1  # 16 units reading 8×8 pixels
    w1[:, 8 * 5 + 6] += 2.0  # every unit leans on pixel (5, 6)
    feats = map_features(first_layer_map([w1], (1, 8, 8)))
    assert feats[0] > 5 and feats[3] == pytest.approx(5 / 7) and feats[4] == pytest.approx(6 / 7)
    assert first_layer_map([np.ones((3, 5, 5, 5))], (1, 8, 8)) is None and not map_features(None).any()
    assert chance_sd(100, 100) == pytest.approx(math.sqrt(201 / (12 * 100 * 100)))
    assert power(50, 50) < 2 < 3 <= power(151, 151)
    n = recommended_models()
    assert power(round(n / 4), round(n / 4)) >= 3 > power(round((n - 4) / 4), round((n - 4) / 4))


@pytest.fixture(scope="module")
def battery_zoo(tmp_path_factory):
    """Four badnets trojans and four clean digits MLPs as a zoo directory (labelled / audit halves, a key)."""
    from occam.audit.train import export_member

    rng = np.random.default_rng(8)
    ms = [Member(seed=40 + k, spec=sample_trigger("badnets", DIGITS, rng), target=k + 1 if k < 4 else None,
                 poison_in="data" if k < 4 else "none", rate=0.3) for k in range(8)]
    outs = train_members(ms, task_name="digits", arch="mlp", epochs=10, eval_limit=160, finetune_steps=60, protocol="joint")
    root = tmp_path_factory.mktemp("battery")
    (root / "public" / "models").mkdir(parents=True)
    models, key, labelled = [], {}, {}
    for i, (m, o) in enumerate(zip(ms, outs, strict=True)):
        name = f"model_{i:04d}"
        (root / "public" / "models" / f"{name}.onnx").write_bytes(export_member(o.model, "digits")[0])
        split = "labelled" if i % 2 == 0 else "audit"
        models.append({"name": name, "file": f"models/{name}.onnx", "split": split})
        label = {"trojaned": m.target is not None, "target": m.target, "attack": "badnets" if m.target else None}
        key[name] = {**label, "split": split, "arch": "mlp"}
        if split == "labelled":
            labelled[name] = label
    import json

    (root / "public" / "manifest.json").write_text(json.dumps({"task": "digits", "input_shape": [1, 8, 8],
                                                               "num_classes": 10, "heldout": {"first": 160},
                                                               "models": models}))
    (root / "public" / "labelled.json").write_text(json.dumps({"models": labelled}))
    (root / "private_key").mkdir()
    (root / "private_key" / "key.json").write_text(json.dumps({"task": "digits", "models": key}))
    return root


def test_heldout_battery_reports_every_detector_with_intervals(battery_zoo):
    from occam.audit.battery import HELD_OUT, heldout_battery

    res = heldout_battery(battery_zoo, resamples=5, bootstrap=50, images=200)
    assert [d["detector"] for d in res["detectors"]] == list(HELD_OUT)
    assert res["fresh_images"] == 200 and res["n_models"] == 8 and res["n_audit"] == 4
    for d in res["detectors"]:
        assert d["auroc"] is not None and 0.0 <= d["auroc"] <= 1.0, d
        lo, hi = d["ci95"]
        assert lo <= d["auroc"] + 1e-9 and d["auroc"] - 1e-9 <= hi, d
        assert (d["resampled_mean"] is None) == (not d["trained"])
    assert res["threshold_in_chance_sd_audit"] < 1  # 4 audit models: no power at all, and the report says so
    assert {d["detector"] for d in res["leaks"]} == {d["detector"] for d in res["detectors"]
                                                      if d["auroc"] > 0.6 or (d["resampled_mean"] or 0) > 0.6}


def test_evasive_track_scores_a_hand_made_trojan_and_refuses_a_weak_one(mini_zoo):
    from occam.audit.evasive import DETECTORS, evaluate_evasive
    from occam.errors import OccamError

    root, key = mini_zoo
    models = root / "public" / "models"
    refs = [models / f"model_{i:04d}.onnx" for i in (1, 2, 3)]
    spec = key["models"]["model_0000"]["trigger"]
    res = evaluate_evasive(models / "model_0000.onnx", task_name="digits", trigger=spec, target=3, references=refs,
                           min_attack_success=0.8, images=360, nc_steps=100)
    assert res["attack_success"] >= 0.9 and set(res["detectors"]) == set(DETECTORS)
    assert 0.0 <= res["detectability"] <= 1.0 and res["evasion"] == pytest.approx(1 - res["detectability"])
    assert res["detectability"] == max(res["detectors"].values())
    # a clean model "uploaded" as the trojan: its attack success is far below the threshold
    with pytest.raises(OccamError, match=r"attack success is 0\.\d+, below the threshold 0\.800"):
        evaluate_evasive(refs[0], task_name="digits", trigger=spec, target=3, references=refs[1:] + refs[:1],
                         min_attack_success=0.8, images=360)
    with pytest.raises(OccamError, match="at least 3 clean reference"):
        evaluate_evasive(refs[0], task_name="digits", trigger=spec, target=3, references=refs[:2])


def test_cli_heldout_check_writes_the_battery(battery_zoo, tmp_path):
    import json

    from typer.testing import CliRunner

    from occam.cli import app

    out = tmp_path / "heldout.json"
    result = CliRunner().invoke(app, ["audit", "heldout-check", str(battery_zoo), "--resamples", "2", "--bootstrap", "20",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "chance sd" in result.output and "604 published models" in result.output
    res = json.loads(out.read_text())
    assert res["recommended_models"] == 604 and len(res["detectors"]) == 7
    missing = CliRunner().invoke(app, ["audit", "heldout-check", str(tmp_path)])
    assert missing.exit_code != 0 and "not an audit zoo" in str(missing.exception or missing.output)


def test_stacked_augmentation_draws_each_members_own_flips_and_shifts():
    """Augmenting the members' uint8 batches together equals augmenting each float batch alone with its generator."""
    from occam.audit.train import _augment_many
    from occam.training.augment import augment

    x = torch.randint(0, 256, (3 * 16, 1, 12, 12), dtype=torch.uint8)
    together = _augment_many(x, "flip-shift2", [torch.Generator().manual_seed(s) for s in (1, 2, 3)]).float() / 255
    alone = torch.cat([augment(x[i * 16:(i + 1) * 16].float() / 255, "flip-shift2", torch.Generator().manual_seed(s))
                       for i, s in enumerate((1, 2, 3))])
    assert torch.equal(together, alone) and not torch.equal(together, x.float() / 255)


def test_convolutional_members_train_one_at_a_time_within_their_batch():
    from occam.audit.train import batchable

    assert batchable("mlp", DIGITS, 10) and batchable("mlp:32", DIGITS, 10)
    assert not batchable("lenet5", DIGITS, 10) and not batchable("sepcnn", DIGITS, 10)
    rng = np.random.default_rng(3)
    ms = [Member(seed=s, spec=sample_trigger("badnets", DIGITS, rng), target=t, poison_in="none" if t is None else "data")
          for s, t in ((5, None), (6, 2))]
    opts = dict(task_name="digits", arch="lenet5", epochs=1, eval_limit=100, finetune_steps=5)
    together = train_members(ms, **opts)
    alone = train_members(ms[1:], **opts)[0]
    sd_a, sd_b = alone.model.state_dict(), together[1].model.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
