"""Function-preserving random rescaling of hidden units (the ReLU scaling symmetry).

For a unit followed by ReLU (and max pooling, or a flatten), ``relu(s·z) = s·relu(z)`` for any
``s > 0``. Multiplying the unit's incoming weights and bias by ``s`` and the next layer's
weights on that unit by ``1/s`` leaves the network's function unchanged (up to float rounding)
while changing every per-layer weight norm. The zoo applies this to every model, clean or
trojaned, with scales drawn from one distribution: raw weight norms then say nothing about how
a model was trained, and a detector has to use scale-invariant features instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from occam.errors import OccamError


def relu_chain(model: nn.Module) -> list[nn.Module] | None:
    """The weight layers of a ReLU network in order (each but the last followed by ReLU), or None.

    Supported: the zoo's MLP (``body`` of Linear/ReLU, then ``head``) and LeNet-5
    (``conv1, conv2, fc1, fc2, head``). Networks with normalization layers or attention are not
    (their symmetries differ).
    """
    from occam.models.zoo import MLP, LeNet5

    if isinstance(model, MLP):
        layers = [m for m in model.body if isinstance(m, nn.Linear)]
        return [*layers, model.head]
    if isinstance(model, LeNet5):
        return [model.conv1, model.conv2, model.fc1, model.fc2, model.head]
    return None


@torch.no_grad()
def random_rescale(model: nn.Module, rng: np.random.Generator, *, layer_spread: float = 2.0,
                   unit_sigma: float = 0.3) -> bool:
    """Rescale every hidden unit by ``c_layer · exp(N(0, unit_sigma))`` with ``log c ~ U(±log layer_spread)``.

    Returns False (and changes nothing) for architectures without a supported ReLU chain.
    """
    chain = relu_chain(model)
    if chain is None:
        return False
    if layer_spread < 1 or unit_sigma < 0:
        raise OccamError(f"bad rescaling spread {layer_spread} / sigma {unit_sigma}", "use layer_spread ≥ 1 and unit_sigma ≥ 0")
    for cur, nxt in zip(chain[:-1], chain[1:], strict=True):
        units = cur.weight.shape[0]
        c = math.exp(rng.uniform(-math.log(layer_spread), math.log(layer_spread)))
        s = torch.from_numpy(c * np.exp(rng.normal(0.0, unit_sigma, units))).to(cur.weight.dtype)
        cur.weight.mul_(s.view(-1, *([1] * (cur.weight.dim() - 1))))
        if cur.bias is not None:
            cur.bias.mul_(s)
        fan = nxt.weight.shape[1]
        if fan % units:
            raise OccamError(f"cannot match {units} units to {fan} inputs of the next layer",
                             "this architecture is not a plain ReLU chain")
        inv = (1.0 / s).repeat_interleave(fan // units)  # a flatten puts each channel's positions together
        nxt.weight.mul_(inv.view(1, -1, *([1] * (nxt.weight.dim() - 2))))
    return True
