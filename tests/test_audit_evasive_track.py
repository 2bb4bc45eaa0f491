"""The evasive-trojan track (issue 20, item 5): settings, registration of clean references, the request-time check,
and the worker's scoring of a hand-made trojan (a weight edit of a tiny digits MLP that fires on a patch), with the
refusal of one below the attack-success threshold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from occam.arena.challenges import ChallengeSpec
from occam.arena.tracks import ChallengeInfo, get_track
from occam.audit.evasive import DETECTORS
from occam.audit.evasive_track import (
    EXAMPLE_TARGET,
    EXAMPLE_TRIGGER,
    evasive_check,
    plant_patch,
    write_example_references,
)
from occam.errors import ModelRejected, OccamError

DIGITS = (1, 8, 8)
OPTIONS = {"start_method": "spawn"}


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    """Six clean tiny digits MLPs (references) and a seventh (the starter), trained in about a second each."""
    root = tmp_path_factory.mktemp("evasive")
    write_example_references(root / "references")
    return root


def _table(root: Path, **kw) -> dict:
    return {"references": "references", "starter": "starter.onnx", "trigger": EXAMPLE_TRIGGER,
            "target": EXAMPLE_TARGET, "images": 360, "nc_steps": 60, "nc_images": 20, **kw}


def _register(root: Path, table: dict | None = None, **spec_kw) -> ChallengeInfo:
    track = get_track("evasive")
    settings = track.parse_settings(table or _table(root), source="ev.toml", base_dir=root)
    now = time.time()
    spec = ChallengeSpec(**{"id": "ev", "title": "Evade", "task": "digits", "lam": 30.0, "start_at": now - 60,
                            "end_at": now + 3600, "track": "evasive", "split_seed": 5, "public_fraction": 0.5,
                            "settings": settings, **spec_kw})
    stored = json.loads(json.dumps(track.register(spec)))  # as the database gives it back
    return ChallengeInfo(spec.id, "evasive", spec.task, spec.lam, spec.split_seed, spec.public_fraction, {}, stored)


@pytest.fixture(scope="module")
def info(refs) -> ChallengeInfo:
    return _register(refs)


def test_registration_measures_and_splits_the_references_and_keeps_them_private(info, refs):
    st = info.settings
    assert st["n_references"] == 6 and len(st["public_references"]) == 3 and len(st["private_references"]) == 3
    assert not set(st["public_references"]) & set(st["private_references"])
    assert set(st["reference_features"]) == {f"ref_{i:02d}.onnx" for i in range(6)}
    assert st["min_clean_accuracy"] == pytest.approx(st["reference_accuracy"] - 0.02, abs=1e-4)
    assert 0.85 < st["reference_accuracy"] <= 1.0
    track = get_track("evasive")
    public = json.dumps(track.public_challenge(info))
    assert "ref_0" not in public and str(refs) not in public and "reference_features" not in public
    assert json.loads(public)["evasive"]["target"] == EXAMPLE_TARGET
    files = track.public_files(info)
    assert [f.name for f in files] == ["starter.onnx"]  # the starter is served, no reference is


def test_the_track_scores_a_hand_made_trojan(info, refs):
    upload = plant_patch((refs / "starter.onnx").read_bytes(), EXAMPLE_TRIGGER, EXAMPLE_TARGET, DIGITS)
    assert evasive_check(upload, info).ok
    res = get_track("evasive").score(upload, info, OPTIONS)
    for half in ("public", "private"):
        m = res["metrics"][half]
        assert m["attack_success"] >= 0.9 and m["clean_accuracy"] >= info.settings["min_clean_accuracy"] - 0.05
        assert set(m["detectors"]) == set(DETECTORS) and m["references"] == 3
        assert all(0.0 <= v <= 1.0 for v in m["detectors"].values())
        assert m["detectability"] == max(m["detectors"].values())
        assert m["evasion"] == pytest.approx(1.0 - m["detectability"])
        assert m["best_detector"] in DETECTORS and m["detectors"][m["best_detector"]] == m["detectability"]
        assert res[f"{half}_score"] == m["evasion"] and res[f"{half}_ce"] == m["attack_success"]
    assert res["metrics"]["public"]["images"] + res["metrics"]["private"]["images"] == 360
    assert res["nnz"] > 0 and res["scorer_version"].startswith("evasive")


def test_a_trojan_below_the_attack_success_threshold_is_refused_with_the_figure(info, refs):
    weak = plant_patch((refs / "starter.onnx").read_bytes(), EXAMPLE_TRIGGER, EXAMPLE_TARGET, DIGITS, gain=6.0)
    assert evasive_check(weak, info).ok  # the request cannot know: the worker measures it
    with pytest.raises(ModelRejected, match=r"attack success is 0\.\d+, below the threshold 0\.900") as exc:
        get_track("evasive").score(weak, info, OPTIONS)
    assert "plant the trigger harder" in exc.value.fix


def test_the_request_check_refuses_another_architecture_and_junk(info):
    from occam.arena.tracks.sparse import linear_onnx

    out = evasive_check(linear_onnx(DIGITS, 10), info)
    assert not out.ok and "architecture" in out.reason and "starter" in out.fix
    junk = evasive_check(b"not an onnx file", info)
    assert not junk.ok and junk.reason


def test_settings_and_registration_errors_name_the_field(refs, tmp_path):
    track = get_track("evasive")
    with pytest.raises(OccamError, match="target") as exc:
        _register(refs, _table(refs, target=12))
    assert "class index" in exc.value.fix
    few = tmp_path / "few"
    few.mkdir()
    for i in range(2):
        (few / f"r{i}.onnx").write_bytes((refs / "references" / f"ref_{i:02d}.onnx").read_bytes())
    with pytest.raises(OccamError, match="holds 2 ONNX models; the track needs at least 6"):
        _register(refs, _table(refs, references=str(few)))
    with pytest.raises(OccamError, match="starter model is one of the references"):
        _register(refs, _table(refs, starter="references/ref_00.onnx"))
    with pytest.raises(OccamError, match="min_attack_success"):
        track.parse_settings(_table(refs, min_attack_success=2), base_dir=refs)
    with pytest.raises(OccamError, match=r"trigger must be a table whose attack"):
        track.parse_settings(_table(refs, trigger={"attack": "laser"}), base_dir=refs)

