"""Private datasets: every source format read and checked; bad files get clear errors; sanitizing helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occam.arena import datasets
from occam.arena.sanitize import csv_cell, team_key, team_name
from occam.errors import DataError, OccamError
from occam.tasks.formats import write_idx


def _data(n: int = 12, shape: tuple[int, ...] = (1, 8, 8), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), rng.integers(0, 10, size=n)


def test_npz_idx_and_png_folder_give_the_same_arrays(tmp_path: Path) -> None:
    from PIL import Image

    x, y = _data()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    write_idx(tmp_path / "imgs-idx3-ubyte.gz", x[:, 0])
    write_idx(tmp_path / "labels-idx1-ubyte", y.astype(np.uint8))
    folder = tmp_path / "png"
    folder.mkdir()
    lines = ["filename,label"]
    for i, (img, lab) in enumerate(zip(x, y, strict=True)):
        Image.fromarray(img[0]).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{lab}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")

    for got in (datasets.read_dataset(tmp_path / "d.npz"),
                datasets.read_dataset(tmp_path / "imgs-idx3-ubyte.gz", tmp_path / "labels-idx1-ubyte"),
                datasets.read_dataset(folder, tmp_path / "labels.csv")):
        np.testing.assert_array_equal(got[0], x)
        np.testing.assert_array_equal(got[1], y)
        assert got[0].dtype == np.uint8 and got[1].dtype == np.int64


def test_pack_round_trips_and_detects_corruption() -> None:
    x, y = _data(30)
    blob, man = datasets.pack("secret-1", x, y, num_classes=10)
    assert man.count == 30 and man.input_shape == (1, 8, 8) and sum(man.class_counts) == 30
    assert datasets.DatasetManifest.from_dict(man.to_dict()) == man
    x2, y2 = datasets.unpack(blob, man)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(DataError, match="SHA-256"):
        datasets.unpack(bytes(bad), man)


def test_shape_and_class_checks_against_the_task() -> None:
    x, y = _data()
    _, man = datasets.pack("d", x, y, num_classes=10)
    datasets.check_against(man, (1, 8, 8), 10, "digits")
    with pytest.raises(DataError, match=r"shape \[1, 8, 8\].*takes \[1, 28, 28\]"):
        datasets.check_against(man, (1, 28, 28), 10, "fashion-mnist")
    with pytest.raises(DataError, match="12 classes|10 classes"):
        datasets.check_against(man, (1, 8, 8), 3, "three")


@pytest.mark.parametrize("make, match", [
    (lambda p: np.savez(p / "a.npz", images=np.zeros((3, 4)), wrong=np.zeros(3)), "not images and labels"),
    (lambda p: np.savez(p / "a.npz", x=np.zeros((3, 4), np.uint8), y=np.zeros(2, int)), "do not match"),
    (lambda p: np.savez(p / "a.npz", x=np.full((3, 4), 300), y=np.zeros(3, int)), "outside 0..255"),
    (lambda p: np.savez(p / "a.npz", x=np.zeros((3, 4), np.uint8), y=np.array([0, 1, 12])), "outside 0..9"),
    (lambda p: np.savez(p / "a.npz", x=np.zeros((3, 4), np.uint8), y=np.array([0.5, 1, 2])), "whole-number"),
    (lambda p: (p / "a.npz").write_bytes(b"not a zip"), "cannot read"),
])
def test_bad_files_get_clear_errors(tmp_path: Path, make, match: str) -> None:
    make(tmp_path)
    with pytest.raises(DataError, match=match):
        datasets.read_dataset(tmp_path / "a.npz", num_classes=10)


def test_png_labels_file_problems(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "l.csv").write_text("filename,label\na.png,cat\n")
    with pytest.raises(DataError, match="not a whole number"):
        datasets.read_dataset(tmp_path / "imgs", tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text("../../etc/passwd,1\n")
    with pytest.raises(DataError, match="outside"):
        datasets.read_dataset(tmp_path / "imgs", tmp_path / "l.csv")
    with pytest.raises(DataError, match="needs a labels file"):
        datasets.read_dataset(tmp_path / "imgs")
    with pytest.raises(DataError, match="not allowed"):
        datasets.pack("Bad Name!", *_data())


def test_team_names_cannot_impersonate() -> None:
    assert team_name("  Blue Herons ") == "Blue Herons"
    assert team_key("Blue  Herons") == team_key("blue herons") == team_key("ＢＬＵＥ herons")  # full-width letters
    assert team_key("Straße") == team_key("STRASSE")
    for bad in ("evil\u202egnp", "zero\u200bwidth", "bell\x07", "tab\tname", "", "x" * 65):
        with pytest.raises(OccamError):
            team_name(bad)


def test_csv_cells_cannot_run_formulas() -> None:
    assert csv_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert [csv_cell(s) for s in ("+1", "-2", "@a", "\tx")] == ["'+1", "'-2", "'@a", "'\tx"]
    assert csv_cell("team-a") == "team-a"
    assert csv_cell(-0.5) == -0.5


def test_generated_task_draws_fresh_test_sets_from_a_seed() -> None:
    from occam.tasks import get_task

    task = get_task("mnist1d")
    x, y = task.generate_test(12345, 500)
    x_again, y_again = task.generate_test(12345, 500)
    x_other, _ = task.generate_test(6789, 500)
    xt, _ = task.load("test")
    assert x.shape == (500, *task.input_shape) and x.dtype == np.uint8 and np.bincount(y).tolist() == [50] * 10
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    assert (x_other == x).mean() < 0.1  # another seed, other images
    assert not any((xt == row).all(axis=1).any() for row in x[:50])  # none of the public test images
    assert abs(float(x.mean()) - float(xt.mean())) < 2.0  # drawn the same way as the public set
    assert get_task("digits").generate_test is None
