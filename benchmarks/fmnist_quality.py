"""Quality on Fashion-MNIST at λ = 10: the built-in recipe's curve vs LeNet-5 pruned with torch.nn.utils.prune.

Recipe: the ``headline`` preset (occam.training.presets; ``occam train fashion-mnist --preset headline``):
separable-conv CNN with gradual LAMP pruning to a target nnz, temperature calibration, each model trained
for --minutes on all cores (60 epochs at most).
Baseline: dense LeNet-5 trained for --minutes, then pruned one-shot with
``torch.nn.utils.prune.global_unstructured(..., L1Unstructured)`` to the same nnz and fine-tuned briefly.
Both are exported to ONNX and scored on the 10,000 test images by ``occam.scoring.score_model``.

    python benchmarks/fmnist_quality.py            # the full curve (about 25 minutes on 2 cores)
    python benchmarks/fmnist_quality.py --quick    # a smoke run (about 3 minutes)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from occam.models import count_nonzero, export_onnx
from occam.scoring import score_model
from occam.tasks import get_task
from occam.training import TrainConfig, train
from occam.training.augment import augment
from occam.training.presets import preset_config

LAM = 10.0


def lenet_torch_prune(target: int, dense: torch.nn.Module, finetune_steps: int, seed: int = 0) -> torch.nn.Module:
    """One-shot global magnitude pruning of a trained LeNet-5 with torch.nn.utils.prune, then a short fine-tune."""
    import copy

    model = copy.deepcopy(dense)
    params = [(m, "weight") for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    n_weights = sum(m.weight.numel() for m, _ in params)
    overhead = count_nonzero(model) - sum(int((m.weight != 0).sum()) for m, _ in params)
    amount = max(0, n_weights - (target - overhead - 8))
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=int(amount))
    task = get_task("fashion-mnist")
    x, y = (torch.from_numpy(a) for a in task.load("train"))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(finetune_steps):
        idx = torch.randint(0, len(x), (128,), generator=g)
        xb = augment(x[idx].float() / 255, task.augment, g)
        loss = F.cross_entropy(model(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m, name in params:
        prune.remove(m, name)
        with torch.no_grad():
            m.weight.add_(0.0)  # turn -0.0 left by the mask product into +0.0
    return model.eval()


def recipe_config(target: int, minutes: float = 5.0) -> TrainConfig:
    """The recipe at ``target`` non-zeros: the ``headline`` preset (its own target is 1,500), wider above 3,000."""
    width = 32 if target <= 3000 else 48
    return preset_config("headline", target_nnz=target, minutes=minutes, arch_kwargs={"stem": 16, "width": width})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="training budget per recipe model")
    ap.add_argument("--targets", default=None)
    args = ap.parse_args()
    targets = [int(t) for t in (args.targets or ("2000" if args.quick else "1500,3000,6000")).split(",")]
    minutes = args.minutes or (0.5 if args.quick else 5.0)
    task = get_task("fashion-mnist")
    out = Path(tempfile.mkdtemp(prefix="occam-fmnist-"))
    rows = []
    t0 = time.perf_counter()
    dense = train(TrainConfig(task=task.name, arch="lenet5", epochs=30, minutes=minutes, calibrate=False))
    dense_path = export_onnx(dense.model, task.input_shape, out / "lenet-dense.onnx")
    d = score_model(dense_path, task, lam=LAM)
    print(f"BENCH fmnist_lenet5_dense_test_score {d.score:.4f} score (acc {d.accuracy:.4f})")
    print(f"BENCH fmnist_lenet5_dense_nnz {d.nnz} count")
    for target in targets:
        train(recipe_config(target, minutes), out / f"sepcnn-{target}.onnx")
        s = score_model(out / f"sepcnn-{target}.onnx", task, lam=LAM)
        steps = max(100, int(0.15 * dense.card["steps"]))
        base = lenet_torch_prune(s.nnz, dense.model, steps)
        bpath = export_onnx(base, task.input_shape, out / f"lenet-prune-{target}.onnx")
        b = score_model(bpath, task, lam=LAM)
        rows.append((target, s, b))
        print(f"BENCH fmnist_recipe_test_score_nnz{target} {s.score:.4f} score (nnz {s.nnz}, acc {s.accuracy:.4f})")
        print(f"BENCH fmnist_torchprune_lenet_test_score_nnz{target} {b.score:.4f} score (nnz {b.nnz}, acc {b.accuracy:.4f})")
    best = min(rows, key=lambda r: r[1].score)
    print(f"BENCH fmnist_best_recipe_test_score {best[1].score:.4f} score (nnz {best[1].nnz}, {minutes:g} min training)")
    print(f"BENCH fmnist_recipe_minus_torchprune_at_best {best[1].score - best[2].score:+.4f} score")
    print(f"BENCH fmnist_quality_wall {(time.perf_counter() - t0) / 60:.1f} min")
    assert math.isfinite(best[1].score)


if __name__ == "__main__":
    main()
