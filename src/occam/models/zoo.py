"""The model zoo: small classifiers that export to one ONNX file.

Every model takes float32 pixels in [0, 1] shaped ``[N, *input_shape]`` and returns logits
``[N, classes]``. Normalization lives inside the model (two stored numbers). Models work on
images ``(C, H, W)`` and on 1-D signals ``(L,)`` (MNIST-1D), using 1-D convolutions there.

Each model's last layer is ``self.head``, so recipes can calibrate or replace it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std with scalar constants; 1-D inputs get a channel axis."""

    def __init__(self, input_shape: tuple[int, ...], mean: float = 0.5, std: float = 0.25):
        super().__init__()
        self.one_d = len(input_shape) == 1
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("inv_std", torch.tensor(1.0 / std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_d:
            x = x.unsqueeze(1)
        return (x - self.mean) * self.inv_std


def _dims(input_shape: tuple[int, ...]) -> tuple[int, int, tuple[int, ...]]:
    """(spatial rank, channels, spatial size) of a task input."""
    if len(input_shape) == 1:
        return 1, 1, (input_shape[0],)
    return len(input_shape) - 1, input_shape[0], tuple(input_shape[1:])


def _conv(rank: int, *args, **kwargs) -> nn.Module:
    return (nn.Conv1d if rank == 1 else nn.Conv2d)(*args, **kwargs)


def _bn(rank: int, c: int) -> nn.Module:
    return (nn.BatchNorm1d if rank == 1 else nn.BatchNorm2d)(c)


def _pool(rank: int, x: torch.Tensor, k: int = 2) -> torch.Tensor:
    return F.max_pool1d(x, k) if rank == 1 else F.max_pool2d(x, k)


class ChannelAffine(nn.Module):
    """y = x * scale + shift per channel (what an eval-mode BatchNorm becomes when it cannot fold into a conv)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, rank: int):
        super().__init__()
        shape = (1, -1) + (1,) * rank
        self.scale = nn.Parameter(scale.detach().reshape(shape).clone())
        self.shift = nn.Parameter(shift.detach().reshape(shape).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class MLP(nn.Module):
    """Flatten → [Linear → ReLU] × len(hidden) → Linear."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int | tuple[int, ...] = (64,)):
        super().__init__()
        hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        self.norm = Normalize(input_shape)
        layers: list[nn.Module] = []
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x).flatten(1)
        return self.head(self.body(x))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling: conv(6,5) → pool → conv(16,5) → pool → 120 → 84 → classes.

    On 28×28 inputs it has 61,706 parameters. Small inputs (8×8 digits) get padded convolutions so
    the feature map never vanishes.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, c1: int = 6, c2: int = 16,
                 f1: int = 120, f2: int = 84):
        super().__init__()
        rank, cin, size = _dims(input_shape)
        self.rank = rank
        self.norm = Normalize(input_shape)
        pad2 = 0 if min(size) >= 16 else 2
        self.conv1 = _conv(rank, cin, c1, 5, padding=2)
        self.conv2 = _conv(rank, c1, c2, 5, padding=pad2)
        s = [((d // 2) + 2 * pad2 - 4) // 2 for d in size]
        self.fc1 = nn.Linear(c2 * math.prod(s), f1)
        self.fc2 = nn.Linear(f1, f2)
        self.head = nn.Linear(f2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = _pool(self.rank, F.relu(self.conv1(x)))
        x = _pool(self.rank, F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.head(x)


class SeparableBlock(nn.Module):
    """Depthwise k×k → pointwise 1×1 → BatchNorm → ReLU.

    With ``norms > 1`` the block is meant to be *shared*: it keeps one BatchNorm per use
    (``forward(x, use=i)``), because one set of running statistics cannot serve activations
    from different depths. At export each BatchNorm becomes a per-channel scale and shift.
    """

    def __init__(self, rank: int, cin: int, cout: int, k: int = 3, norms: int = 1):
        super().__init__()
        self.dw = _conv(rank, cin, cin, k, padding=k // 2, groups=cin, bias=False)
        self.pw = _conv(rank, cin, cout, 1, bias=False)
        if norms == 1:
            self.bn = _bn(rank, cout)
        else:
            self.bns = nn.ModuleList(_bn(rank, cout) for _ in range(norms))

    def forward(self, x: torch.Tensor, use: int = 0) -> torch.Tensor:
        y = self.pw(self.dw(x))
        norm = self.bn if hasattr(self, "bn") else self.bns[use]
        return F.relu(norm(y))


class SepCNN(nn.Module):
    """A tiny separable-conv CNN in the spirit of the 1,936-parameter MNIST model.

    stem conv 3×3 → BN → ReLU → pool, a separable block widening to ``width``, one separable
    block *shared* ``shared_repeats`` times (weight sharing is free under the nnz rule),
    pooling between stages, global average pooling, and a linear head.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, stem: int = 16, width: int = 32,
                 shared_repeats: int = 3, k: int = 3):
        super().__init__()
        rank, cin, size = _dims(input_shape)
        self.rank = rank
        self.norm = Normalize(input_shape)
        self.stem = _conv(rank, cin, stem, k, padding=k // 2, bias=False)
        self.stem_bn = _bn(rank, stem)
        self.expand = SeparableBlock(rank, stem, width, k)
        self.shared = SeparableBlock(rank, width, width, k, norms=shared_repeats)
        self.shared_repeats = shared_repeats
        # pool after the stem and after each use of the shared block while the map is large enough
        n_pools, m = 0, min(size)
        while m >= 6 and n_pools < 1 + shared_repeats:
            m //= 2
            n_pools += 1
        self.n_pools = n_pools
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        x = F.relu(self.stem_bn(self.stem(x)))
        pools = self.n_pools
        if pools > 0:
            x, pools = _pool(self.rank, x), pools - 1
        x = self.expand(x)
        for use in range(self.shared_repeats):
            x = self.shared(x, use)
            if pools > 0:
                x, pools = _pool(self.rank, x), pools - 1
        x = x.mean(dim=tuple(range(2, x.dim())))
        return self.head(x)


class Attention(nn.Module):
    """Multi-head self-attention written with matmul and softmax (exports to plain ONNX ops)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        h = self.heads
        qkv = self.qkv(x).reshape(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // h)), dim=-1)
        out = (att @ v).transpose(1, 2).reshape(n, t, d)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.att = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.att(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyViT(nn.Module):
    """A tiny Vision Transformer: patch embedding, learned positions, pre-norm blocks, mean pooling."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, patch: int | None = None, dim: int = 32,
                 depth: int = 2, heads: int = 2, mlp_ratio: int = 2):
        super().__init__()
        rank, cin, size = _dims(input_shape)
        if patch is None:
            patch = 4 if rank == 1 else (7 if min(size) % 7 == 0 else (4 if min(size) % 4 == 0 else 2))
        if any(s % patch for s in size):
            raise ValueError(f"patch size {patch} must divide the input size {size}")
        self.rank = rank
        self.norm = Normalize(input_shape)
        self.embed = _conv(rank, cin, dim, patch, stride=patch)
        tokens = math.prod(s // patch for s in size)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.norm(x)).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x).mean(dim=1))


ARCHS: dict[str, type[nn.Module]] = {"mlp": MLP, "lenet5": LeNet5, "sepcnn": SepCNN, "vit": TinyViT}
