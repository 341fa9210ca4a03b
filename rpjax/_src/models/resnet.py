"""ResNets in Flax NNX: Cohen et al.'s CIFAR-10 ResNet-110 and the ImageNet ResNet-50.

The architectures are those of Cohen, Rosenfeld and Kolter's randomized-smoothing code
(`archs/cifar_resnet.py`, torchvision's `resnet50`), with their normalization layer as the
first operation: the Gaussian noise is added to pixels in [0, 1] and the network normalizes
the noisy image (`(x - mean) / std` per channel) itself.

Batch norm runs in inference mode (running statistics) unless the module is switched to
training with `model.train()`, so in the default mode each row of a batch is computed on its
own; rpjax's counts (identical alone or in any batch) rely on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

# Per-channel pixel statistics of Cohen et al.'s `datasets.py` (RGB, pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_KERNEL_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")  # He, as torch


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch's symmetric padding `k // 2` (XLA's SAME pads stride-2 layers asymmetrically)."""
    return ((k // 2, k // 2), (k // 2, k // 2))


def _conv(cin: int, cout: int, k: int, stride: int, dtype: Any, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(cin, cout, (k, k), strides=stride, padding=_pad(k), use_bias=False,
                    kernel_init=_KERNEL_INIT, dtype=dtype, rngs=rngs)


def _bn(c: int, dtype: Any, rngs: nnx.Rngs, *, zero: bool = False) -> nnx.BatchNorm:
    # torch's momentum 0.1 is flax's 0.9; inference mode (running statistics) by default
    return nnx.BatchNorm(c, use_running_average=True, momentum=0.9, epsilon=1e-5, dtype=dtype,
                         scale_init=nnx.initializers.zeros if zero else nnx.initializers.ones,
                         rngs=rngs)


class _Downsample(nnx.Module):
    """The projection shortcut: 1x1 convolution with stride, then batch norm."""

    def __init__(self, cin: int, cout: int, stride: int, dtype: Any, rngs: nnx.Rngs):
        self.conv = _conv(cin, cout, 1, stride, dtype, rngs)
        self.bn = _bn(cout, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.bn(self.conv(x))


class BasicBlock(nnx.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016; CIFAR ResNets)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, *, dtype: Any = None,
                 zero_init_residual: bool = False, rngs: nnx.Rngs):
        self.conv1 = _conv(cin, width, 3, stride, dtype, rngs)
        self.bn1 = _bn(width, dtype, rngs)
        self.conv2 = _conv(width, width, 3, 1, dtype, rngs)
        self.bn2 = _bn(width, dtype, rngs, zero=zero_init_residual)
        self.downsample = (_Downsample(cin, width, stride, dtype, rngs)
                           if stride != 1 or cin != width else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return jax.nn.relu(out + shortcut)


class Bottleneck(nnx.Module):
    """1x1 reduce, 3x3 (with the stride, torchvision's "v1.5"), 1x1 expand by 4, residual."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, *, dtype: Any = None,
                 zero_init_residual: bool = False, rngs: nnx.Rngs):
        cout = width * self.expansion
        self.conv1 = _conv(cin, width, 1, 1, dtype, rngs)
        self.bn1 = _bn(width, dtype, rngs)
        self.conv2 = _conv(width, width, 3, stride, dtype, rngs)
        self.bn2 = _bn(width, dtype, rngs)
        self.conv3 = _conv(width, cout, 1, 1, dtype, rngs)
        self.bn3 = _bn(cout, dtype, rngs, zero=zero_init_residual)
        self.downsample = (_Downsample(cin, cout, stride, dtype, rngs)
                           if stride != 1 or cin != cout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out = jax.nn.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return jax.nn.relu(out + shortcut)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nnx.Module):
    """A residual network with Cohen et al.'s input normalization as its first operation.

    Args:
      num_classes: number of output logits.
      block: "basic" (two 3x3 convolutions) or "bottleneck" (1x1, 3x3, 1x1, 4x wider out).
      stage_blocks: residual blocks per stage, e.g. (18, 18, 18) or (3, 4, 6, 3).
      widths: the (inner) width of each stage's blocks; stage i > 0 starts with stride 2.
      stem: "cifar" (3x3 convolution to `stem_width`, stride 1) or "imagenet" (7x7, stride
        2, then 3x3 max pool with stride 2).
      stem_width: output channels of the stem convolution.
      mean, std: per-channel statistics; the network computes `(x - mean) / std` first.
      in_channels: channels of the input images.
      dtype: computation dtype of the layers (None: float32 for float32 inputs; parameters
        are float32 either way).
      zero_init_residual: start each block's last batch-norm scale at 0, so that each block
        starts as its shortcut followed by ReLU (Goyal et al. 2017); the work per forward
        pass is the same.
      rngs: NNX random streams.

    Call: `[b, H, W, in_channels]` float (pixels in [0, 1]) -> `[b, num_classes]` logits.
    Batch norm uses its running statistics (inference) until `model.train()`, so each row
    of the output depends on its own input only.
    """

    def __init__(self, num_classes: int, *, block: str, stage_blocks: Sequence[int],
                 widths: Sequence[int], stem: str, stem_width: int,
                 mean: Sequence[float], std: Sequence[float], in_channels: int = 3,
                 dtype: Any = None, zero_init_residual: bool = False, rngs: nnx.Rngs):
        if block not in _BLOCKS:
            raise ValueError(f"block must be 'basic' or 'bottleneck', got block={block!r}.")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got stem={stem!r}.")
        if len(stage_blocks) != len(widths) or not stage_blocks:
            raise ValueError("stage_blocks and widths must be non-empty and of equal length, "
                             f"got {tuple(stage_blocks)} and {tuple(widths)}.")
        if any(int(b) < 1 for b in stage_blocks) or any(int(w) < 1 for w in widths):
            raise ValueError(f"stage_blocks and widths must be >= 1, got {tuple(stage_blocks)} "
                             f"and {tuple(widths)}.")
        if len(mean) != in_channels or len(std) != in_channels or min(std) <= 0:
            raise ValueError(f"mean and std need in_channels={in_channels} entries, std > 0; "
                             f"got mean={tuple(mean)}, std={tuple(std)}.")
        self.mean = nnx.Variable(jnp.asarray(mean, jnp.float32))
        self.std = nnx.Variable(jnp.asarray(std, jnp.float32))
        self.stem_kind = stem
        k, stride = (3, 1) if stem == "cifar" else (7, 2)
        self.stem_conv = _conv(in_channels, stem_width, k, stride, dtype, rngs)
        self.stem_bn = _bn(stem_width, dtype, rngs)
        cls = _BLOCKS[block]
        blocks = []
        cin = stem_width
        for i, (count, width) in enumerate(zip(stage_blocks, widths, strict=True)):
            for j in range(int(count)):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(cls(cin, int(width), stride, dtype=dtype,
                                  zero_init_residual=zero_init_residual, rngs=rngs))
                cin = int(width) * cls.expansion
        self.blocks = nnx.List(blocks)
        self.fc = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        h = (x - self.mean[...]) / self.std[...]
        h = jax.nn.relu(self.stem_bn(self.stem_conv(h)))
        if self.stem_kind == "imagenet":
            h = nnx.max_pool(h, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for blk in self.blocks:
            h = blk(h)
        h = h.mean(axis=(1, 2))  # global average pool
        return self.fc(h).astype(jnp.float32)


def cifar_resnet(depth: int = 110, *, num_classes: int = 10, width: int = 16,
                 in_channels: int = 3, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, dtype: Any = None,
                 zero_init_residual: bool = False, rngs: nnx.Rngs) -> ResNet:
    """Cohen et al.'s `cifar_resnet110` family: basic blocks, depth `6k + 2`.

    Three stages of k = (depth - 2) / 6 basic blocks with widths `width`, `2 width`, `4 width`
    (16/32/64 by default), a 3x3 stem, global average pooling and a linear layer; the CIFAR-10
    normalization first. `depth=110` is ResNet-110 (1.7M parameters); `depth=8, width=4` a
    tiny one for tests.

    Args:
      depth: 6k + 2 for k >= 1 (8, 14, 20, ..., 110).
      num_classes, in_channels, mean, std, dtype, zero_init_residual, rngs: as in `ResNet`.
      width: channels of the first stage.

    Returns:
      A `ResNet` mapping `[b, 32, 32, 3]` pixels in [0, 1] to `[b, num_classes]` logits
      (any image side works; the pooling is global).
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6k + 2 with k >= 1 (8, 14, ..., 110), got {depth!r}.")
    k = (depth - 2) // 6
    return ResNet(num_classes, block="basic", stage_blocks=(k, k, k),
                  widths=(width, 2 * width, 4 * width), stem="cifar", stem_width=width,
                  mean=mean, std=std, in_channels=in_channels, dtype=dtype,
                  zero_init_residual=zero_init_residual, rngs=rngs)


def imagenet_resnet(layers: Sequence[int] = (3, 4, 6, 3), *, num_classes: int = 1000,
                    width: int = 64, in_channels: int = 3,
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    dtype: Any = None, zero_init_residual: bool = False,
                    rngs: nnx.Rngs) -> ResNet:
    """torchvision's bottleneck ResNet (Cohen et al.'s ImageNet base model is `resnet50`).

    Stages of `layers` bottleneck blocks with inner widths `width * 2^i` (outputs 4x that:
    256, 512, 1024, 2048 by default), a 7x7 stride-2 stem and 3x3 stride-2 max pool, global
    average pooling, a linear layer; the ImageNet normalization first. The defaults are
    ResNet-50 (25.6M parameters); `layers=(1, 1), width=4` a tiny one for tests.

    Args:
      layers: bottleneck blocks per stage.
      width: inner width of the first stage.
      num_classes, in_channels, mean, std, dtype, zero_init_residual, rngs: as in `ResNet`.

    Returns:
      A `ResNet` mapping `[b, 224, 224, 3]` pixels in [0, 1] to `[b, num_classes]` logits.
    """
    return ResNet(num_classes, block="bottleneck", stage_blocks=tuple(layers),
                  widths=tuple(width * 2**i for i in range(len(layers))), stem="imagenet",
                  stem_width=width, mean=mean, std=std, in_channels=in_channels, dtype=dtype,
                  zero_init_residual=zero_init_residual, rngs=rngs)
