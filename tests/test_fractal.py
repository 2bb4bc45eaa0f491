"""FractalDB: renderer, category search, instances, on-the-fly dataset, CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from occam.errors import OccamError
from occam.fractal.fractaldb import FractalConfig, make_fractaldb, render_category
from occam.fractal.ifs import (
    IFS,
    N_VARIANTS,
    WEIGHTS,
    accept,
    contractive_ifs,
    flip,
    instance_spec,
    random_ifs,
    render_instances,
    search_category,
    weight_variant,
)
from occam.fractal.render import (
    BURN_IN,
    choice_thresholds,
    filling_rate,
    hash_stream,
    render_batch,
)

# ---------------------------------------------------------------------------------------------
# renderer against an independent straightforward loop


def _reference_render(coefs, probs, seed, n_points, size, pad, patch, value):
    """Chaos game + rasterization written plainly in NumPy/Python, from the documented rules."""
    coefs = np.asarray(coefs, dtype=np.float32)
    total = n_points + BURN_IN
    draws = hash_stream(np.uint64(seed), total)
    v = (draws >> np.uint64(11)).astype(np.int64)
    cum = np.cumsum(np.asarray(probs, dtype=np.float64) / np.sum(probs))[:-1]
    thresholds = np.round(cum * 2.0**53).astype(np.int64)
    x = y = np.float32(0.0)
    pts = []
    for i in range(total):
        k = int(np.sum(v[i] >= thresholds))
        a, b, c, d, e, f = coefs[k]
        x, y = np.float32(a * x + b * y + e), np.float32(c * x + d * y + f)
        if i >= BURN_IN:
            pts.append((x, y))
    pts = np.array(pts, dtype=np.float32)
    lo, hi = pts.min(0), pts.max(0)
    img = np.zeros((size, size), dtype=np.uint8)
    span = size - 2 * pad - 1
    masks = hash_stream(np.uint64(seed) ^ np.uint64(0xD1B54A32D192ED03), n_points)
    for j, (px, py) in enumerate(pts):
        col = min(int((px - lo[0]) * np.float32(span / (hi[0] - lo[0]))), span) + pad
        row = size - 1 - pad - min(int((py - lo[1]) * np.float32(span / (hi[1] - lo[1]))), span)
        if not patch:
            img[row, col] = value
            continue
        bits = (int(masks[j - j % 4]) >> (16 * (j % 4))) & 0xFFFF
        pattern = (bits * 511 >> 16) + 1
        for cell in range(9):
            img[row - 1 + cell // 3, col - 1 + cell % 3] = value * ((pattern >> (8 - cell)) & 1)
    return img


@pytest.mark.parametrize("patch", [False, True])
def test_render_matches_reference_loop(patch):
    coefs = [[0.5, 0.0, 0.0, 0.5, 0.0, 0.0], [0.5, 0.1, -0.2, 0.4, 0.5, 0.5]]
    probs = [0.3, 0.7]
    out, kept = render_batch([coefs], [probs], np.array([7], dtype=np.uint64), size=16, n_points=60,
                             patch=patch, pad=2, intensity=200)
    ref = _reference_render(coefs, probs, 7, 60, 16, 2, patch, 200)
    assert kept[0] == 60
    assert out[0].sum() > 0
    # float32 FMA contraction may move a point across a pixel edge: allow at most one pixel
    assert np.count_nonzero(out[0] != ref) <= (9 if patch else 1)
    if not patch:
        assert np.count_nonzero(out[0]) == np.count_nonzero(ref)


def test_hand_computed_attractor_is_the_diagonal():
    # f1(x, y) = (x/2, y/2), f2(x, y) = (x/2 + 1/2, y/2 + 1/2): the attractor is the segment y = x.
    coefs = [[0.5, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0.5, 0.5]]
    out, _ = render_batch([coefs], [[1, 1]], np.array([1], dtype=np.uint64), size=12, n_points=4000,
                          patch=False, pad=1, intensity=255)
    expected = np.zeros((12, 12), dtype=np.uint8)
    for i in range(1, 11):
        expected[11 - i, i] = 255  # y points up: row = H-1-y
    np.testing.assert_array_equal(out[0], expected)


def test_map_choice_follows_probabilities():
    thr = choice_thresholds(np.array([1.0, 3.0]))
    v = (hash_stream(np.uint64(3), 40000) >> np.uint64(11)).astype(np.int64)
    share = np.mean(v >= thr[0])
    assert abs(share - 0.75) < 0.01


def test_same_seed_same_arrays_other_seed_differs():
    cfg = FractalConfig(categories=2, instances=8, size=48, points=3000, seed=5)
    a = render_category(cfg, 1)
    b = render_category(cfg, 1)
    c = render_category(FractalConfig(**{**cfg.to_json(), "seed": 6}), 1)
    assert a.shape == (8, 48, 48) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_colour_rendering_shape_and_hues():
    ifs = search_category(0, 0).ifs
    imgs = render_instances(ifs, [0], seed=0, category=0, size=40, n_points=2000, colour=True)
    assert imgs.shape == (1, 40, 40, 3)
    lit = imgs[0][imgs[0].any(-1)]
    assert len(np.unique(lit, axis=0)) > 10  # the hue cycles over points


def test_escaping_ifs_is_cut_short():
    coefs = [[1.5, 0, 0, 1.5, 0.1, 0.1], [1.2, 0, 0, 1.2, 0.2, 0.0]]
    _, kept = render_batch([coefs], [[1, 1]], np.array([0], dtype=np.uint64), size=32, n_points=5000)
    assert kept[0] < 5000


# ---------------------------------------------------------------------------------------------
# category search and instances


def test_filling_rate_rule_accepts_and_rejects():
    img = np.zeros((10, 10), dtype=np.uint8)
    img[:2] = 1  # 20 % of the canvas
    assert filling_rate(img) == pytest.approx(0.2)
    assert accept(filling_rate(img), 0.2)
    img[1, 0] = 0  # 19 %
    assert not accept(filling_rate(img), 0.2)
    # a degenerate IFS (a line) is rejected, the search's result is accepted
    line = IFS(np.array([[0.5, 0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0.5, 0]]), np.array([0.5, 0.5]))
    line_img, _ = render_batch([line.coefs], [line.probs], np.array([0], dtype=np.uint64), size=64,
                               n_points=20000, patch=False, pad=1)
    assert not accept(filling_rate(line_img[0]))
    res = search_category(3, 4, size=64, n_points=20000)
    assert res.fill >= 0.2 and res.tries >= 1
    assert 2 <= res.ifs.n_maps <= 7 and np.all(np.abs(res.ifs.coefs) <= 1)
    img2, _ = render_batch([res.ifs.coefs], [res.ifs.probs], np.array([0], dtype=np.uint64), size=64,
                           n_points=20000, patch=False, pad=1)
    assert filling_rate(img2[0]) > 0.1


def test_random_ifs_probabilities_are_proportional_to_det():
    ifs = random_ifs(np.random.default_rng(0))
    det = np.abs(ifs.coefs[:, 0] * ifs.coefs[:, 3] - ifs.coefs[:, 1] * ifs.coefs[:, 2])
    np.testing.assert_allclose(ifs.probs, det / det.sum())


def test_contractive_sampler_is_contractive():
    rng = np.random.default_rng(1)
    for _ in range(20):
        ifs = contractive_ifs(rng)
        n = ifs.n_maps
        sv = [np.linalg.svd(c[:4].reshape(2, 2), compute_uv=False) for c in ifs.coefs]
        assert all(s[0] <= 1 + 1e-9 for s in sv)
        alpha = sum(s[0] + 2 * s[1] for s in sv)
        assert 0.5 * (5 + n) - 1e-9 <= alpha <= 0.5 * (6 + n) + 1e-9


def test_weight_variants_scale_one_parameter():
    ifs = random_ifs(np.random.default_rng(2))
    assert weight_variant(ifs, 0) is ifs
    for v in range(1, N_VARIANTS):
        param, j = divmod(v - 1, len(WEIGHTS))
        var = weight_variant(ifs, v)
        np.testing.assert_allclose(var.coefs[:, param], ifs.coefs[:, param] * WEIGHTS[j])
        others = [p for p in range(6) if p != param]
        np.testing.assert_array_equal(var.coefs[:, others], ifs.coefs[:, others])
        np.testing.assert_array_equal(var.probs, ifs.probs)
    with pytest.raises(ValueError):
        weight_variant(ifs, N_VARIANTS)


def test_flips_and_instance_layout():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(flip(img, 1), img[::-1])
    np.testing.assert_array_equal(flip(img, 2), img[:, ::-1])
    np.testing.assert_array_equal(flip(img, 3), img[::-1, ::-1])
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(flip(rgb, 2), rgb[:, ::-1])
    assert instance_spec(0) == (0, 0, 0)
    assert instance_spec(7) == (3, 1, 0)
    assert instance_spec(100) == (0, 0, 1)
    # instances 0..3 are the four flips of one rendering
    ifs = search_category(0, 1).ifs
    imgs = render_instances(ifs, range(4), seed=0, category=1, size=32, n_points=2000)
    for k in range(1, 4):
        np.testing.assert_array_equal(imgs[k], flip(imgs[0], k))
    assert not np.array_equal(imgs[0], imgs[1])


# ---------------------------------------------------------------------------------------------
# on-the-fly dataset


def test_dataset_in_dataloader_with_workers(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from occam.fractal.dataset import FractalDataset, worker_init

    monkeypatch.setenv("OCCAM_CACHE", str(tmp_path / "cache"))
    cfg = FractalConfig(categories=3, instances=10, size=28, points=1500, patch=False, intensity=255)
    ds = FractalDataset(cfg)
    assert len(ds) == 30 and ds.input_shape == (1, 28, 28)
    x5, y5 = ds[5]
    x25, y25 = ds[25]
    assert x5.shape == (1, 28, 28) and x5.dtype == torch.float32 and y5 == 0 and y25 == 2
    assert 0.0 <= float(x5.min()) and float(x5.max()) == 1.0
    assert any(Path(tmp_path / "cache" / "fractal" / "ifs").iterdir())  # codes cached
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False, worker_init_fn=worker_init)
    xs, ys = zip(*loader, strict=True)
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    assert x_all.shape == (30, 1, 28, 28)
    assert y_all.tolist() == [i // 10 for i in range(30)]
    torch.testing.assert_close(x_all[5], x5)
    torch.testing.assert_close(x_all[25], x25)
    # a second pass (new worker processes, other batching) gives the same images
    again = torch.cat([b[0] for b in DataLoader(ds, batch_size=7, num_workers=2)])
    torch.testing.assert_close(again, x_all)


# ---------------------------------------------------------------------------------------------
# CLI


def _cli_app():
    """``occam.cli.app``; while other parts of the CLI are still missing, a Typer app holding ours."""
    import typer

    try:
        from occam.cli import app

        return app
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            "occam_cli_fractal_standalone", Path(__file__).parents[1] / "src/occam/cli/fractal.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = typer.Typer()
        app.callback()(lambda: None)
        module.register(app)
        return app


def test_cli_make_resume_then_show(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    runner = CliRunner()
    out = tmp_path / "fdb"
    args = ["fractal", "make", "--categories", "3", "--instances", "8", "--size", "32", "--points", "2000",
            "--out", str(out), "--workers", "1", "--quiet", "--png"]
    res = runner.invoke(_cli_app(), args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and sorted(manifest["shards"]) == ["0", "1", "2"]
    shard = np.load(out / "shard_00001.npy")
    assert shard.shape == (8, 32, 32) and shard.dtype == np.uint8
    assert (out / "png" / "00002" / "00007.png").exists()
    np.testing.assert_array_equal(shard, render_category(FractalConfig.from_json(manifest["config"]), 1))
    # resume: a deleted shard is redone, the others are skipped (their files stay untouched)
    (out / "shard_00001.npy").unlink()
    before = os.stat(out / "shard_00000.npy").st_mtime_ns
    res = runner.invoke(_cli_app(), args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert os.stat(out / "shard_00000.npy").st_mtime_ns == before
    np.testing.assert_array_equal(np.load(out / "shard_00001.npy"), shard)
    # other settings in the same directory: a clear error
    res = runner.invoke(_cli_app(), [a if a != "2000" else "3000" for a in args])
    assert isinstance(res.exception, OccamError) and "other settings" in res.exception.problem
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(_cli_app(), ["fractal", "show", str(out), "--out", str(sheet), "--cols", "4",
                                     "--thumb", "24"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    w, h = Image.open(sheet).size
    assert (w, h) == (4 * 26 + 2, 3 * 26 + 2)


@pytest.mark.parametrize("flag,value,needle", [("--categories", "-1", "--categories"),
                                               ("--instances", "0", "--instances"),
                                               ("--points", "-5", "--points")])
def test_cli_rejects_bad_counts(tmp_path, flag, value, needle):
    from typer.testing import CliRunner

    args = ["fractal", "make", "--categories", "2", "--instances", "2", "--size", "32", "--points", "100",
            "--out", str(tmp_path / "x"), "--quiet"]
    args[args.index(flag) + 1] = value
    res = CliRunner().invoke(_cli_app(), args)
    assert isinstance(res.exception, OccamError)
    assert needle in res.exception.problem and res.exception.fix
    assert not (tmp_path / "x").exists()


def test_make_reports_unwritable_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not bind, use a file as parent
            target = tmp_path / "file"
            target.write_text("")
            target = target / "sub"
        else:
            target = ro / "sub"
        with pytest.raises(OccamError) as err:
            make_fractaldb(FractalConfig(categories=1, instances=1, size=32, points=10), target, progress=False)
        assert "cannot write" in err.value.problem and "`out`" in err.value.fix  # the library names its argument
    finally:
        ro.chmod(0o700)


def test_pretrain_checkpoint_loads_into_task_model(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from occam.fractal.pretrain import PretrainConfig, load_matching, pretrain
    from occam.models import build_model

    monkeypatch.setenv("OCCAM_CACHE", str(tmp_path / "cache"))
    cfg = PretrainConfig(arch="lenet5", input_shape=(1, 28, 28), categories=4, instances=16, points=500,
                         epochs=1.0, batch_size=16)
    _, info = pretrain(cfg, tmp_path / "f.pt")
    ckpt = torch.load(tmp_path / "f.pt", weights_only=False)
    assert ckpt["arch"] == "lenet5" and ckpt["num_classes"] == 4 and tuple(ckpt["input_shape"]) == (1, 28, 28)
    assert info["steps"] == 4
    model = build_model("lenet5", (1, 28, 28), 10)
    loaded, skipped = load_matching(model, ckpt["state_dict"])
    assert skipped == ["head.bias", "head.weight"] and loaded > 4
    torch.testing.assert_close(model.conv1.weight, ckpt["state_dict"]["conv1.weight"])
