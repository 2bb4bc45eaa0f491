"""The fractal configs (FractalDB generation, pre-training, the experiment), declared once.

A light module (no NumPy kernels, no PyTorch): the CLI builds ``occam fractal make`` and
``occam fractal pretrain``'s options from these fields (type, default, help text). Errors name
fields in backticks (```categories```); the CLI shows them as flags.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from occam.errors import OccamError

Sampler = Literal["search", "contractive"]
SAMPLERS: tuple[str, ...] = get_args(Sampler)


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class FractalConfig:
    categories: int = field(default=1000, metadata=_help("Number of fractal categories (classes)."))
    instances: int = field(default=1000, metadata=_help("Images per category (flips × weight variants × renders)."))
    size: int = field(default=362, metadata=_help("Image side in pixels."))
    points: int = field(default=200_000, metadata=_help("Chaos-game points per image."))
    seed: int = field(default=0, metadata=_help("Seed: the same seed and settings give the same arrays."))
    patch: bool = field(default=True, metadata=_help("Draw a random 3×3 patch at every point."))
    colour: bool = field(default=False, metadata=_help("Colour (hue cycling) or grayscale images."))
    sampler: Sampler = field(default="search", metadata=_help(
        "search (FractalDB's filling-rate search) or contractive (Anderson & Farrell's sampler)."))
    threshold: float = field(default=0.2, metadata=_help("Minimum filling rate of a category's attractor."))
    search_size: int = 256
    search_points: int = 100_000
    pad: int | None = None
    intensity: int = 127

    def validate(self) -> FractalConfig:
        """Self, or an OccamError that names the bad value."""
        checks = [
            (self.categories >= 1, f"`categories` must be at least 1 (got {self.categories})", "categories", 1),
            (self.instances >= 1, f"`instances` must be at least 1 (got {self.instances})", "instances", 1),
            (self.points >= 1, f"`points` must be at least 1 (got {self.points})", "points", 1),
            (self.size >= 8, f"`size` must be at least 8 pixels (got {self.size})", "size", 8),
            (self.sampler in SAMPLERS, f"`sampler` must be one of {', '.join(SAMPLERS)} (got {self.sampler!r})",
             "sampler", SAMPLERS[0]),
            (0.0 < self.threshold < 1.0, f"`threshold` must be between 0 and 1 (got {self.threshold})", "threshold", 0.2),
            (1 <= self.intensity <= 255, f"`intensity` must be 1..255 (got {self.intensity})", "intensity", 127),
            (self.search_size >= 16, f"`search_size` must be at least 16 (got {self.search_size})", "search_size", 256),
            (self.search_points >= 1, f"`search_points` must be positive (got {self.search_points})", "search_points",
             100_000),
        ]
        for ok, problem, name, example in checks:
            if not ok:
                raise OccamError(problem, f"set `{name}` to a valid value, e.g. {example!r}")
        from occam.fractal.render import check_geometry

        try:
            check_geometry(self.size, self.effective_pad, self.patch)
        except ValueError as exc:
            raise OccamError(str(exc), "use a larger `size` or a smaller `pad`") from None
        return self

    @property
    def effective_pad(self) -> int:
        from occam.fractal.render import default_pad

        return default_pad(self.size, self.patch) if self.pad is None else self.pad

    @property
    def image_shape(self) -> tuple[int, ...]:
        return (self.size, self.size, 3) if self.colour else (self.size, self.size)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FractalConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class PretrainConfig:
    arch: str = field(default="lenet5", metadata=_help("Zoo architecture: mlp, lenet5, sepcnn, vit."))
    input_shape: tuple[int, ...] = (1, 28, 28)
    arch_kwargs: dict = field(default_factory=dict)
    categories: int = field(default=64, metadata=_help("Fractal categories (classes of the pre-training task)."))
    instances: int = field(default=200, metadata=_help("Instances per category."))
    points: int = field(default=3000, metadata=_help("Points per image (at 28×28, a few thousand fill the shape)."))
    patch: bool = field(default=False, metadata=_help("3×3 patch rendering."))
    sampler: Sampler = field(default="search", metadata=_help("search or contractive."))
    epochs: float = field(default=2.0, metadata=_help("Passes over categories × instances."))
    batch_size: int = field(default=128, metadata=_help("Images per optimizer step."))
    lr: float | None = field(default=None, metadata=_help("Peak learning rate (default per architecture)."))
    seed: int = field(default=0, metadata=_help("Random seed."))
    workers: int = field(default=0, metadata=_help("DataLoader worker processes rendering on the fly."))
    threads: int | None = field(default=None, metadata=_help("PyTorch threads (default: PyTorch's)."))

    def fractal_config(self) -> FractalConfig:
        if len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3) or self.input_shape[1] != self.input_shape[2]:
            raise OccamError(f"fractal pre-training needs square images with 1 or 3 channels, got {self.input_shape}",
                             "choose an image task (e.g. fashion-mnist or cifar10)")
        return FractalConfig(categories=self.categories, instances=self.instances, size=self.input_shape[1],
                             points=self.points, seed=self.seed, patch=self.patch, colour=self.input_shape[0] == 3,
                             sampler=self.sampler, intensity=255).validate()

    @property
    def steps(self) -> int:
        return max(1, round(self.epochs * math.ceil(self.categories * self.instances / self.batch_size)))



@dataclass
class ExperimentConfig:
    tasks: tuple[str, ...] = ("fashion-mnist",)
    sizes: tuple[int, ...] = (100, 500, 1000)
    seeds: tuple[int, ...] = (0, 1, 2)
    arch: str = "lenet5"
    finetune_steps: int = field(default=300, metadata=_help(
        "Fine-tuning steps (scratch+ adds the pre-training steps)."))
    batch_size: int = 64
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    test_limit: int | None = None


