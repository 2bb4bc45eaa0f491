"""One activation cache per opened model: every value of the graph on one validation set, by value name.

The vocabulary follows TransformerLens: a *hook point* is a value name (an ONNX value name such as
``relu_2``); :meth:`ActivationCache.run_with_cache` returns the logits and the cache;
:meth:`ActivationCache.run_with_hooks` reruns the network with some values replaced
(``hooks={name: fn}``, each ``fn(value) -> new value``), recomputing only what lies downstream.

Every view and the weight editor read the same :class:`ActivationCache` (``LensModel.cache``), so
every figure is computed on the same ``n`` validation examples, and after a weight edit (which the
editor applies to the cached values in place) the overview shows the editor's numbers.
No web imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["ActivationCache", "Hook"]

Hook = Callable[[torch.Tensor], torch.Tensor]


class ActivationCache:
    """The values of ``module`` (an :class:`~occam.interp.OnnxModule`) on inputs ``x`` (labels ``y``).

    ``values()`` computes them once (a full forward pass) and keeps them until :meth:`invalidate`;
    ``version`` increases whenever they change (a recomputation, or an in-place update announced
    with :meth:`touch`), so derived results can be keyed on it.
    """

    def __init__(self, module: Any, x: torch.Tensor, y: torch.Tensor):
        if len(x) != len(y):
            raise ValueError(f"the validation set has {len(x)} inputs but {len(y)} labels")
        self.module = module
        self.x = x
        self.y = y
        self.version = 0
        self._values: dict[str, torch.Tensor] | None = None

    @property
    def n(self) -> int:
        """How many validation examples every view uses."""
        return int(len(self.y))

    @property
    def names(self) -> list[str]:
        """Every hook point (value name), in graph order."""
        return [self.module.input_name] + [o for nd in self.module.nodes for o in nd.outputs]

    # ---- the cached values -------------------------------------------------------------------
    @torch.no_grad()
    def values(self) -> dict[str, torch.Tensor]:
        """``{value name: tensor [n, ...]}`` for the current weights (computed on first use)."""
        if self._values is None:
            self.refresh()
        assert self._values is not None
        return self._values

    @torch.no_grad()
    def refresh(self) -> dict[str, torch.Tensor]:
        """Recompute every value with a full forward pass (no two values share memory, so in-place edits are safe)."""
        env = self.module.run(self.x)
        seen: set[int] = set()
        for k, v in env.items():
            if id(v) in seen or v._base is not None or v is self.x:
                env[k] = v.clone()
            seen.add(id(env[k]))
        self._values = env
        self.version += 1
        return env

    def __getitem__(self, name: str) -> torch.Tensor:
        env = self.values()
        if name not in env:
            raise KeyError(f"no value {name!r} in this model's activation cache")
        return env[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values()

    def logits(self) -> torch.Tensor:
        return self.values()[self.module.output_name]

    def invalidate(self) -> None:
        """Forget the values (the weights changed); the next read recomputes them."""
        self._values = None
        self.version += 1

    def touch(self) -> None:
        """The values were updated in place (the weight editor's incremental recomputation)."""
        self.version += 1

    # ---- TransformerLens-style entry points ----------------------------------------------------
    @torch.no_grad()
    def run_with_cache(self, x: torch.Tensor | None = None,
                       names: Iterable[str] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits, cache) on ``x`` (default: the validation set, served from the cache).

        ``names`` keeps only those values (plus the output) when running on other inputs.
        """
        if x is None:
            env = self.values()
            if names is not None:
                env = {n: env[n] for n in names}
            return self.logits(), env
        keep = None if names is None else set(names)
        env = self.module.run(x, keep=keep)
        return env[self.module.output_name], env if keep is None else {n: env[n] for n in keep}

    @torch.no_grad()
    def run_with_hooks(self, hooks: dict[str, Hook], x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every value with ``hooks[name](value)`` in place of ``value``: on the validation set only the
        values downstream of the hooked ones are recomputed (the cache itself is left unchanged)."""
        if x is not None:
            return self.module.run(x, overrides=hooks)
        env = self.values()
        patched = dict(env)
        for name, fn in hooks.items():
            if name not in env:
                raise KeyError(f"no value {name!r} to hook in this model")
            patched[name] = fn(env[name])
        return self.module.rerun(patched, set(hooks))
