"""Audit track: a tiny digits zoo, its invariants, leak check, scoring, baselines, arena pieces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from occam.audit.scoring import SubmissionError, auroc, parse_submission, score_rows, score_submission
from occam.audit.zoo import ZooConfig, make_zoo, public_files
from occam.errors import OccamError

CFG = dict(task="digits", models=8, seed=3, epochs=20, archs=("mlp",), attacks=("wanet",), eval_limit=360, rate=0.2,
           finetune_steps=150, acc_tol=5.0, max_retries=2, distill=0.0)  # distillation: test_distilled_zoo below


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    make_zoo(ZooConfig(**CFG), out, workers=1, allow_leaks=True, progress=False)
    return out


def _key(zoo: Path) -> dict:
    return json.loads((zoo / "private_key" / "key.json").read_text())


def test_kept_trojans_meet_the_rules(zoo):
    key = _key(zoo)["models"]
    records = [json.loads(p.read_text()) for p in (zoo / "private_key" / "records").glob("*.json")]
    clean_acc = np.mean([v["clean_acc"] for v in key.values() if not v["trojaned"]])
    trojans = [v for v in key.values() if v["trojaned"]]
    report = json.loads((zoo / "report.json").read_text())
    # every kept model is published except the clean ones left out by accuracy matching
    assert trojans and len(key) == sum(r["status"] == "kept" for r in records) - report["unmatched_clean"]
    for v in trojans:
        assert v["asr"] >= ZooConfig().min_asr == 0.97
        assert abs(100 * (v["clean_acc"] - clean_acc)) <= CFG["acc_tol"] + 1e-6
        assert 0 <= v["target"] < 10
    # a dropped trojan never reaches the public part
    for r in records:
        if r["status"] == "dropped":
            assert not any(v["member"] == r["member"] for v in key.values())


def test_metadata_identical_across_models(zoo):
    import onnx

    files = sorted((zoo / "public" / "models").glob("*.onnx"))
    assert len(files) == len(_key(zoo)["models"])

    def stripped(path: Path) -> bytes:
        p = onnx.load(str(path))
        for init in p.graph.initializer:
            for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                init.ClearField(f)
        return p.SerializeToString(deterministic=True)

    ref = stripped(files[0])
    for f in files[1:]:
        assert stripped(f) == ref, f"{f.name} differs from {files[0].name} outside initializer values"
    p = onnx.load(str(files[0]))
    assert p.producer_name == "occam" and p.doc_string == "" and not p.metadata_props


def test_key_never_public(zoo):
    files = public_files(zoo)
    names = {p.name for p in files}
    assert "key.json" not in names and "plan.json" not in names
    assert all("private_key" not in p.parts for p in files)
    key_bytes = (zoo / "private_key" / "key.json").read_bytes()
    assert all(p.read_bytes() != key_bytes for p in files)
    manifest = json.loads((zoo / "public" / "manifest.json").read_text())
    for m in manifest["models"]:
        assert set(m) == {"name", "file", "split"}
    labelled = json.loads((zoo / "public" / "labelled.json").read_text())["models"]
    audit = {m["name"] for m in manifest["models"] if m["split"] == "audit"}
    assert audit and not (audit & set(labelled))
    # a symlink to the key planted in public/ is not served
    (zoo / "public" / "k.json").symlink_to(zoo / "private_key" / "key.json")
    try:
        assert all(p.name != "k.json" for p in public_files(zoo))
    finally:
        (zoo / "public" / "k.json").unlink()
    with pytest.raises(OccamError, match="inside the public"):
        make_zoo(ZooConfig(**CFG), zoo, key_out=zoo / "public" / "key", workers=1, progress=False)


def test_distilled_zoo_keeps_references_private(tmp_path):
    """With distillation (the default) two clean references per architecture are trained first and never served."""
    cfg = ZooConfig(**{**CFG, "models": 4, "attacks": ("blend",), "distill": 0.5})
    report = make_zoo(cfg, tmp_path / "zoo", workers=1, allow_leaks=True, progress=False, leak_check_enabled=False)
    zoo = tmp_path / "zoo"
    refs = sorted((zoo / "private_key" / "references").glob("*.pt"))
    assert [p.stem for p in refs] == ["mlp_0", "mlp_1"]
    served = [p.read_bytes() for p in public_files(zoo)]
    assert served and not any(p.read_bytes() in served for p in refs)
    assert all("references" not in p.parts for p in public_files(zoo))
    assert report["clean_kept"] == 2


def test_leak_check_report(zoo):
    from occam.audit.leakcheck import leak_check

    res = leak_check(zoo)
    assert {d["detector"] for d in res["detectors"]} == {"accuracy", "weight_norms", "weight_linear", "weight_invariant",
                                                         "clean_outputs", "clean_outputs_recalibrated"}
    assert res["structure_identical"] is True
    for d in res["detectors"]:  # every detector is also refit on random half splits (None only if a class has < 2 models)
        assert set(d) == {"detector", "auroc", "resampled_mean", "resampled_sd"}
        assert d["resampled_mean"] is None or 0 <= d["resampled_mean"] <= 1
    report = json.loads((zoo / "report.json").read_text())
    assert "leak_check" in report and (zoo / "report.md").read_text().count("| accuracy |") == 1
    assert "random half splits" in (zoo / "report.md").read_text()


def test_leak_report_names_a_fix_for_every_detector(zoo, tmp_path):
    """Each leak in report.md comes with the make-zoo options that answer it; every detector has one."""
    from occam.audit.leakcheck import LEAK_HINTS, leak_hint
    from occam.audit.zoo import write_report

    report = json.loads((zoo / "report.json").read_text())
    names = [d["detector"] for d in report["leak_check"]["detectors"]] + ["structure"]
    assert set(names) <= set(LEAK_HINTS)
    acc = next(d for d in report["leak_check"]["detectors"] if d["detector"] == "accuracy")
    report["leak_check"]["leaks"] = [{**acc, "auroc": 0.71, "resampled_mean": 0.66, "resampled_sd": 0.05}]
    write_report(tmp_path, report)
    text = (tmp_path / "report.md").read_text()
    assert "LEAK WARNING" in text and "0.710" in text and "0.660 ± 0.050" in text
    assert f"Fix: {leak_hint('accuracy')}" in text and "--extra-clean" in text


def test_resume_trains_nothing_and_refuses_other_options(zoo):
    zoo_id = _key(zoo)["zoo_id"]
    report = make_zoo(ZooConfig(**CFG), zoo, workers=1, allow_leaks=True, progress=False, leak_check_enabled=False)
    assert report["trained_now"] == 0 and _key(zoo)["zoo_id"] == zoo_id
    with pytest.raises(OccamError, match="different options"):
        make_zoo(ZooConfig(**{**CFG, "epochs": 5}), zoo, workers=1, progress=False)


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        y[:2] = [0, 1]
        s = np.round(rng.random(40), 1)  # many ties
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


@pytest.mark.parametrize("text, match", [
    ("model,p_trojan\nmodel_0000,0.3\nmodel_0001,abc\n", r"row 2 \(model 'model_0001'\): field 'p_trojan' must be a number"),
    ("model,p_trojan\nmodel_0000,1.5\n", r"row 1 \(model 'model_0000'\): field 'p_trojan' must lie in \[0, 1\]"),
    ("model,p_trojan,target\nmodel_0000,0.5,x\n", r"row 1 \(model 'model_0000'\): field 'target'"),
    ("model,p_trojan\n,0.5\n", r"row 1: field 'model' is missing"),
    ("model,score\nmodel_0000,0.5\n", r"lacks the column 'p_trojan'"),
    ("model,p_trojan\nmodel_0000,0.5\nmodel_0000,0.2\n", r"row 2 \(model 'model_0000'\): field 'model' repeats row 1"),
    ("model,p_trojan,mask,pattern\nmodel_0000,0.5,../etc/passwd.png,x.png\n", r"field 'mask' path"),
    ("model,p_trojan,mask,pattern\nmodel_0000,0.5,\"[[0, 1]\",\n", r"field 'mask' is not a valid inline JSON array"),
    ('[{"model": "model_0000", "p_trojan": 0.5}, {"model": "model_0001"}]',
     r"row 2 \(model 'model_0001'\): field 'p_trojan' is missing"),
    ('{"rows": [{"model": "model_0000", "p_trojan": 0.5, "mask": [[0.1]]}]}',
     r"row 1 \(model 'model_0000'\): field 'pattern' is missing"),
    ("{not json", r"not valid JSON"),
])
def test_malformed_submissions_name_row_and_field(tmp_path, text, match):
    path = tmp_path / ("s.json" if text.lstrip().startswith(("[", "{")) else "s.csv")
    path.write_text(text)
    with pytest.raises(SubmissionError, match=match):
        parse_submission(path)


def _perfect(zoo: Path) -> list[dict]:
    key = _key(zoo)["models"]
    return [{"model": n, "p_trojan": 0.9 if v["trojaned"] else 0.1, "target": v["target"]}
            for n, v in key.items() if v["split"] == "audit"]


def test_score_perfect_and_trigger_checks(zoo, tmp_path):
    key = _key(zoo)
    sub = tmp_path / "perfect.json"
    sub.write_text(json.dumps(_perfect(zoo)))
    res = score_submission(sub, zoo / "private_key" / "key.json", zoo_dir=zoo)
    assert res["auroc"] == 1.0 and res["target_accuracy"] == 1.0
    assert res["trigger_success"] is None and res["n_trigger_scored"] == 0  # WaNet: no mask and pattern to score
    assert res["brier"] == pytest.approx(0.01) and "wanet" in res["per_attack"]
    # a trigger as files next to the submission (npy mask, png pattern); an empty mask flips (almost) nothing
    rows = _perfect(zoo)
    troj = next(r for r in rows if key["models"][r["model"]]["trojaned"])
    np.save(tmp_path / "mask.npy", np.zeros((8, 8), np.float32))
    from PIL import Image

    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "pattern.png")
    troj.update(mask="mask.npy", pattern="pattern.png")
    sub.write_text(json.dumps(rows))
    res = score_submission(sub, key, zoo_dir=zoo)  # read and checked, though a WaNet model's trigger is not scored
    assert res["trigger_success"] is None and res["target_accuracy"] == 1.0
    # over budget → error naming the row and field
    troj.update(mask=np.ones((8, 8)).tolist(), pattern=np.ones((8, 8)).tolist())
    sub.write_text(json.dumps(rows))
    with pytest.raises(SubmissionError, match=r"field 'mask' has L1 norm 64.00, above the budget"):
        score_submission(sub, key, zoo_dir=zoo)
    # a missing model and an unknown model are errors
    sub.write_text(json.dumps(rows[1:]))
    with pytest.raises(SubmissionError, match="no row for 1 model"):
        score_submission(sub, key)
    sub.write_text(json.dumps(rows + [{"model": "model_9999", "p_trojan": 0.5}]))
    with pytest.raises(SubmissionError, match="field 'model' names no model"):
        score_submission(sub, key)


def test_baselines_write_valid_submissions(zoo, tmp_path):
    from occam.audit.baselines import run_baseline

    key = _key(zoo)
    for name, kwargs in (("meta", {}), ("neural-cleanse", {"steps": 40, "images": 20})):
        path = run_baseline(name, zoo, tmp_path / f"{name}.json", **kwargs)
        rows = parse_submission(path)
        res = score_rows(rows, key, zoo_dir=zoo)
        assert res["auroc"] is not None and 0 <= res["auroc"] <= 1
        assert res["n_models"] == sum(v["split"] == "audit" for v in key["models"].values())


def test_arena_pieces(zoo, tmp_path):
    from occam.audit.arena import register_zoo, round_scores, score_for_leaderboard, split_models

    reg = register_zoo(zoo)
    assert reg.audit_models and all((zoo / "private_key" / "key.json").resolve() != p.resolve() for p in reg.files)
    pub, priv = split_models(reg, 0.5, seed=1)
    assert set(pub) | set(priv) == set(reg.audit_models) and not set(pub) & set(priv)
    sub = tmp_path / "s.csv"
    key = reg.key["models"]
    lines = ["model,p_trojan,target"] + [f"{n},{0.8 if key[n]['trojaned'] else 0.3},{key[n]['target'] or ''}"
                                         for n in reg.audit_models]
    sub.write_text("\n".join(lines) + "\n")
    res = score_for_leaderboard(reg, sub, models=reg.audit_models)
    assert res["auroc"] == 1.0 and "per_attack" not in res
    assert round_scores({"auroc": 0.123456, "brier": 0.98765, "n_models": 4})["brier"] == 0.99
    raw = score_for_leaderboard(reg, sub.read_bytes(), filename="s.csv", models=reg.audit_models, public=False)
    assert raw["log_loss"] != round(raw["log_loss"], 2)
    # tampering with a public model or the manifest is caught
    first = next((zoo / "public" / "models").glob("*.onnx"))
    data = first.read_bytes()
    first.write_bytes(data + b"\0")
    try:
        with pytest.raises(OccamError, match="zoo_id"):
            register_zoo(zoo)
    finally:
        first.write_bytes(data)


def test_lens_triggers_png(zoo, tmp_path):
    from occam.audit.lens import class_triggers

    model = next((zoo / "public" / "models").glob("*.onnx"))
    res = class_triggers(model, task="digits", png=tmp_path / "t.png", steps=20, images=10)
    assert len(res["classes"]) == 10 and (tmp_path / "t.png").stat().st_size > 1000
    assert all(c["mask_l1"] >= 0 and len(c["mask"]) == 8 for c in res["classes"])


def test_cli_score_json(zoo, tmp_path):
    from typer.testing import CliRunner

    from occam.cli import app

    sub = tmp_path / "p.json"
    sub.write_text(json.dumps(_perfect(zoo)))
    result = CliRunner().invoke(app, ["audit", "score", str(sub), "--key", str(zoo / "private_key" / "key.json"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["auroc"] == 1.0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("OCCAM_SKIP_RAY") == "1", reason="Ray disabled")
def test_resume_one_member_on_local_ray(zoo, monkeypatch):
    """Delete one finished member and let a local Ray instance retrain its batch (the unit of work) through the executor."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    zoo_id = _key(zoo)["zoo_id"]
    rec = sorted((zoo / "private_key" / "records").glob("*.json"))[0]
    batch = json.loads(rec.read_text())["batch"]
    rec.unlink()
    report = make_zoo(ZooConfig(**CFG), zoo, workers=2, ray_address="local", allow_leaks=True, progress=False,
                      leak_check_enabled=False)
    assert report["trained_now"] == len(batch) and rec.exists()
    assert _key(zoo)["zoo_id"] == zoo_id  # same seed, same bytes


def test_accuracy_matching_picks_clean_models_at_the_trojans_quantiles():
    from occam.audit.zoo import accuracy_matched

    cfg = ZooConfig(models=12, archs=("mlp",))
    troj_acc = [0.80, 0.81, 0.82]
    clean_acc = [0.79, 0.805, 0.815, 0.83, 0.84, 0.85]
    members = [{"member": i, "arch": "mlp", "trojaned": True} for i in range(3)]
    members += [{"member": 3 + j, "arch": "mlp", "trojaned": False} for j in range(6)]
    records = {i: {"status": "kept", "clean_acc": a} for i, a in enumerate(troj_acc + clean_acc)}
    left_out = accuracy_matched(cfg, members, records)
    published = [records[m]["clean_acc"] for m in range(3, 9) if m not in left_out]
    # three clean models kept (trojan fraction 0.5), the ones nearest the trojans' accuracies
    assert sorted(published) == [0.805, 0.815, 0.83] or sorted(published) == [0.79, 0.805, 0.815]
    assert abs(np.mean(published) - np.mean(troj_acc)) < abs(np.mean(clean_acc) - np.mean(troj_acc))
    assert accuracy_matched(ZooConfig(models=12, archs=("mlp",), match_accuracy=False), members, records) == set()
    # fewer clean models than the trojan fraction asks for: nothing is left out
    assert accuracy_matched(cfg, members[:6], records) == set()


def test_plan_trains_extra_clean_models_only_when_matching_accuracy():
    from occam.audit.zoo import make_plan

    def counts(**kw):
        members = make_plan(ZooConfig(task="digits", models=24, archs=("mlp",), **kw))
        return sum(m["trojaned"] for m in members), sum(not m["trojaned"] for m in members)

    assert counts() == (12, 15)  # 12 planned clean models + 25 % spares for accuracy matching
    assert counts(extra_clean=0.0) == (12, 12)
    assert counts(match_accuracy=False) == (12, 12)  # without matching every clean model would be published
    with pytest.raises(OccamError, match="extra_clean"):
        ZooConfig(extra_clean=-1).validate()
    with pytest.raises(OccamError, match="calibration"):
        ZooConfig(calibration="platt").validate()


def test_confidence_temperature_restores_a_target_confidence():
    import torch

    from occam.audit.train import _fold_confidence_temperature
    from occam.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (1, 8, 8), 10)
    x = torch.rand(300, 1, 8, 8)
    with torch.no_grad():
        logits = model(x) * 8  # a confident model
    before = float(logits.softmax(1).max(1).values.mean())
    t = _fold_confidence_temperature(model, logits, target_conf=0.5)
    with torch.no_grad():
        after = model(x)
    assert t > 1 and before > 0.5
    # the folded head gives logits / T, whose mean top probability is the target (8× the raw head here)
    assert float((after * 8).softmax(1).max(1).values.mean()) == pytest.approx(0.5, abs=1e-3)
    assert torch.allclose(after * 8, logits / t, atol=1e-4)


def test_zoo_of_wider_mlps(tmp_path):
    import onnx

    with pytest.raises(OccamError, match="only mlp takes widths.*in `archs`"):
        ZooConfig(archs=("lenet5:64",)).validate()
    with pytest.raises(OccamError, match="bad MLP widths"):
        ZooConfig(archs=("mlp:0",)).validate()
    cfg = ZooConfig(**{**CFG, "models": 4, "archs": ("mlp:24",), "match_accuracy": False})
    make_zoo(cfg, tmp_path / "zoo", workers=1, allow_leaks=True, progress=False, leak_check_enabled=False)
    key = _key(tmp_path / "zoo")["models"]
    assert key and {v["arch"] for v in key.values()} == {"mlp:24"}
    for name in key:
        graph = onnx.load(str(tmp_path / "zoo" / "public" / "models" / f"{name}.onnx")).graph
        shapes = {tuple(i.dims) for i in graph.initializer}
        assert (24, 64) in shapes and (10, 24) in shapes  # 8×8 digits → 24 hidden units → 10 classes


def test_make_zoo_options_come_from_zoo_config_and_errors_show_flags(tmp_path):
    """The library names config fields; `occam audit make-zoo` reads its options from ZooConfig and shows flags."""
    import dataclasses

    from typer.testing import CliRunner

    from occam.cli import app

    with pytest.raises(OccamError, match="`models` must be at least 4"):
        ZooConfig(models=2).validate()
    runner = CliRunner()
    helptext = runner.invoke(app, ["audit", "make-zoo", "--help"], env={"COLUMNS": "300"}).output
    for f in dataclasses.fields(ZooConfig):
        if f.name not in ("archs", "attacks", "train_limit"):
            assert "--" + f.name.replace("_", "-") in helptext, f.name
            assert f.metadata["help"][:30] in helptext, f.name
    res = runner.invoke(app, ["audit", "make-zoo", "--out", str(tmp_path / "z"), "--task", "digits", "--models", "2"])
    assert res.exit_code != 0 and "--models must be at least 4" in str(res.exception or res.output)
    res = runner.invoke(app, ["audit", "make-zoo", "--out", str(tmp_path / "z"), "--task", "digits", "--archs", "lenet5:64"])
    assert "in --archs" in str(res.exception or res.output)
