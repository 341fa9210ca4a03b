"""A PyTorch (CPU) reference for CERTIFY and the rpjax base models, for benchmarks and checks.

This module is an optional benchmark reference, not part of `rpjax`: it needs PyTorch, which
is in the `bench` extra of `pyproject.toml` (`pip install -e '.[bench]'`, i.e. `torch==2.13.0`).

It holds three things:

- `TorchMLP` and `TorchCNN`: PyTorch modules with the same architectures as
  `rpjax.models.TabularMLP` and `rpjax.models.FaceCNN`, and `from_flax` (or
  `torch_mlp_from_flax` / `torch_cnn_from_flax`) to copy the weights of a Flax NNX model, or of
  the `params` returned by `rpjax.models.as_apply_fn`, so that both compute the same function.
  Flax's `nnx.Conv` works in NHWC with an HWIO kernel and `padding="SAME"`; with a 3x3 kernel
  and stride 2, XLA's SAME padding is asymmetric: total `max((out - 1) * 2 + 3 - in, 0)` with
  the smaller half *before*, i.e. 0 before / 1 after for an even size and 1 / 1 for an odd
  one, whereas PyTorch's `padding=1` would pad 1 / 1 always. `TorchCNN` pads explicitly with
  `F.pad` (computed from the actual input size), keeps the NCHW layout of PyTorch convolutions
  (kernels converted HWIO -> OIHW) and flattens in NHWC order before the dense layer, as Flax
  does.
- `certify_reference`: Cohen, Rosenfeld and Kolter's (2019) CERTIFY written the way their
  reference code runs it: one input at a time; `n0` selection samples, then `n` estimation
  samples, drawn `batch_size` noisy copies `x + sigma * torch.randn(...)` at a time (one
  seeded `torch.Generator`), a forward pass under `torch.inference_mode()`, the argmax, and
  counts accumulated on the host with `np.bincount`. The one-sided Clopper-Pearson bound is
  `scipy.stats.beta.ppf(alpha, k, n - k + 1)` (0 when k = 0); the input abstains (label -1,
  radius 0) if the bound is <= 1/2 (as `rpjax.certify` does; the original code abstains on
  `< 1/2`, which differs only on an exact tie), else the radius is
  `sigma * scipy.stats.norm.ppf(pa_lower)`. Thread count is left at PyTorch's default.
- `base_predictions_match`: feeds the same clean and noisy inputs to an rpjax
  `apply_fn(params, x)` and to a PyTorch module and reports how far their logits and argmax
  predictions are apart.

Inputs are always given in the rpjax layout (NumPy `[B, features]` for the MLP, `[B, H, W, C]`
for the CNN) and converted inside (`to_torch_input`).

Example:
  >>> from flax import nnx  # doctest: +SKIP
  >>> from rpjax.models import TabularMLP, as_apply_fn  # doctest: +SKIP
  >>> apply_fn, params = as_apply_fn(TabularMLP(11, 2, rngs=nnx.Rngs(0)))  # doctest: +SKIP
  >>> module = from_flax(params)  # doctest: +SKIP
  >>> out = certify_reference(module, xs, sigma=0.5, n0=100, n=10_000, alpha=1e-3,
  ...                         batch_size=1_000, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from scipy import stats as sps
from torch import nn

ABSTAIN = -1
"""Label returned when CERTIFY abstains (as `rpjax.ABSTAIN`)."""

__all__ = [
    "ABSTAIN",
    "TorchCNN",
    "TorchMLP",
    "base_predictions_match",
    "certify_reference",
    "clopper_pearson_lower",
    "from_flax",
    "same_pads",
    "torch_cnn_from_flax",
    "torch_logits",
    "torch_mlp_from_flax",
    "to_torch_input",
]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """XLA's `padding="SAME"` for one spatial axis: `(before, after)`.

    `out = ceil(size / stride)`, total padding `max((out - 1) * stride + kernel - size, 0)`,
    the smaller half before (`jax.lax.padtype_to_pads`). For a 3x3 kernel and stride 2 this is
    `(0, 1)` for an even `size` and `(1, 1)` for an odd one.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TorchMLP(nn.Module):
    """PyTorch twin of `rpjax.models.TabularMLP`: `Linear -> relu` per hidden layer, then a
    linear output layer.

    Args:
      in_features: number of input features.
      num_classes: number of output logits.
      hidden: widths of the hidden layers.

    Call: `[b, in_features]` float32 -> `[b, num_classes]` logits.
    """

    def __init__(self, in_features: int, num_classes: int, *, hidden: Sequence[int] = (32, 32)):
        super().__init__()
        widths = [in_features, *hidden]
        self.hidden = nn.ModuleList(
            [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.out = nn.Linear(widths[-1], num_classes)

    @property
    def num_classes(self) -> int:
        """Number of output logits."""
        return self.out.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


class TorchCNN(nn.Module):
    """PyTorch twin of `rpjax.models.FaceCNN`.

    3x3 stride-2 convolutions with Flax's asymmetric SAME padding (`same_pads`, applied with
    `F.pad` for the actual input size) and relu, a flatten in NHWC order (as Flax flattens its
    NHWC activations), a dense layer with relu and a linear output layer.

    Args:
      num_classes: number of output logits.
      in_channels: channels of the input images.
      channels: output channels of the convolutions.
      dense: width of the dense layer.
      image_size: height (= width) of the input images; it only sets the dense layer's input
        width `ceil-halved(image_size)^2 * channels[-1]`, as in `FaceCNN`.

    Call: `[b, C, H, W]` float32 (NCHW, PyTorch's layout; see `to_torch_input`) ->
    `[b, num_classes]` logits.
    """

    kernel_size = 3
    stride = 2

    def __init__(self, num_classes: int, *, in_channels: int = 1,
                 channels: Sequence[int] = (16, 32, 64), dense: int = 128,
                 image_size: int = 64):
        super().__init__()
        chans = [in_channels, *channels]
        self.convs = nn.ModuleList([
            nn.Conv2d(a, b, self.kernel_size, stride=self.stride, padding=0)
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        ])
        side = image_size
        for _ in channels:
            side = -(-side // self.stride)
        self.fc = nn.Linear(side * side * chans[-1], dense)
        self.out = nn.Linear(dense, num_classes)

    @property
    def num_classes(self) -> int:
        """Number of output logits."""
        return self.out.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features `[b, dense]` of an NCHW batch."""
        for conv in self.convs:
            top, bottom = same_pads(x.shape[2], self.kernel_size, self.stride)
            left, right = same_pads(x.shape[3], self.kernel_size, self.stride)
            x = F.relu(conv(F.pad(x, (left, right, top, bottom))))
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # flatten in NHWC order, like Flax
        return F.relu(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


# --------------------------------------------------------------------------------------------
# Weight transfer from Flax NNX
# --------------------------------------------------------------------------------------------


def _pure_params(model_or_state: Any) -> Mapping[Any, Any]:
    """Nested dict of NumPy arrays from an NNX module, an `nnx.State` or a pure dict."""
    if isinstance(model_or_state, nnx.Module):
        model_or_state = nnx.state(model_or_state, nnx.Param)
    if isinstance(model_or_state, nnx.State):
        model_or_state = nnx.to_pure_dict(model_or_state)
    if not isinstance(model_or_state, Mapping):
        raise TypeError(
            "expected a flax.nnx.Module, an nnx.State (the params of rpjax.models.as_apply_fn) "
            f"or a nested dict of arrays, got {type(model_or_state).__name__}."
        )
    return model_or_state


def _layers(group: Mapping[Any, Any]) -> list[Mapping[str, Any]]:
    """The entries of an `nnx.List` state (keys 0, 1, ...), in order."""
    return [group[k] for k in sorted(group, key=int)]


def _tensor(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True))


def _copy_linear(dst: nn.Linear, src: Mapping[str, Any]) -> None:
    kernel = np.asarray(src["kernel"])  # Flax: [in, out]; torch: [out, in]
    if kernel.shape != (dst.in_features, dst.out_features):
        raise ValueError(f"kernel shape {kernel.shape} does not fit {dst}.")
    dst.weight.copy_(_tensor(kernel.T))
    dst.bias.copy_(_tensor(src["bias"]))


def _copy_conv(dst: nn.Conv2d, src: Mapping[str, Any]) -> None:
    kernel = np.asarray(src["kernel"])  # Flax: HWIO; torch: OIHW
    if kernel.shape != (*dst.kernel_size, dst.in_channels, dst.out_channels):
        raise ValueError(f"kernel shape {kernel.shape} does not fit {dst}.")
    dst.weight.copy_(_tensor(kernel.transpose(3, 2, 0, 1)))
    dst.bias.copy_(_tensor(src["bias"]))


def torch_mlp_from_flax(model_or_state: Any) -> TorchMLP:
    """A `TorchMLP` (float32, eval mode) computing the same function as a `TabularMLP`.

    Args:
      model_or_state: the `rpjax.models.TabularMLP`, its `nnx.State` (the `params` of
        `rpjax.models.as_apply_fn`) or `nnx.to_pure_dict` of that state.

    Returns:
      The PyTorch module with the Flax weights copied (kernels transposed to `[out, in]`).
    """
    p = _pure_params(model_or_state)
    hidden = _layers(p["hidden"])
    in_features, num_classes = np.shape(p["out"]["kernel"])
    widths = [np.shape(h["kernel"])[1] for h in hidden]
    if hidden:
        in_features = np.shape(hidden[0]["kernel"])[0]
    module = TorchMLP(int(in_features), int(num_classes), hidden=[int(w) for w in widths])
    with torch.no_grad():
        for dst, src in zip(module.hidden, hidden, strict=True):
            _copy_linear(dst, src)
        _copy_linear(module.out, p["out"])
    return module.eval()


def torch_cnn_from_flax(model_or_state: Any) -> TorchCNN:
    """A `TorchCNN` (float32, eval mode) computing the same function as a `FaceCNN`.

    The input image size is not stored in a `FaceCNN`; the returned module takes any size
    whose repeated ceil-halving gives the same final side as the one it was built for (the
    same inputs the Flax model takes).

    Args:
      model_or_state: the `rpjax.models.FaceCNN`, its `nnx.State` (the `params` of
        `rpjax.models.as_apply_fn`) or `nnx.to_pure_dict` of that state.

    Returns:
      The PyTorch module with the Flax weights copied (conv kernels HWIO -> OIHW, dense
      kernels transposed).
    """
    p = _pure_params(model_or_state)
    convs = _layers(p["convs"])
    if not convs:
        raise ValueError("a FaceCNN state needs at least one convolution.")
    kh, kw, in_channels, _ = np.shape(convs[0]["kernel"])
    if (kh, kw) != (TorchCNN.kernel_size, TorchCNN.kernel_size):
        raise ValueError(f"expected 3x3 convolutions, got {kh}x{kw}.")
    channels = [int(np.shape(c["kernel"])[3]) for c in convs]
    fc_in, dense = np.shape(p["fc"]["kernel"])
    side = math.isqrt(int(fc_in) // channels[-1])
    if side * side * channels[-1] != fc_in:
        raise ValueError(f"dense input width {fc_in} is not side^2 * {channels[-1]}.")
    num_classes = int(np.shape(p["out"]["kernel"])[1])
    module = TorchCNN(num_classes, in_channels=int(in_channels), channels=channels,
                      dense=int(dense), image_size=side * TorchCNN.stride ** len(channels))
    with torch.no_grad():
        for dst, src in zip(module.convs, convs, strict=True):
            _copy_conv(dst, src)
        _copy_linear(module.fc, p["fc"])
        _copy_linear(module.out, p["out"])
    return module.eval()


def from_flax(model_or_state: Any) -> TorchMLP | TorchCNN:
    """The PyTorch twin of an rpjax model: `TorchMLP` for a `TabularMLP`, `TorchCNN` for a
    `FaceCNN` (told apart by the parameter names).

    Args:
      model_or_state: the Flax NNX model, its `nnx.State` (`as_apply_fn(model)[1]`) or the
        pure dict of that state.
    """
    p = _pure_params(model_or_state)
    if "convs" in p:
        return torch_cnn_from_flax(p)
    if "hidden" in p:
        return torch_mlp_from_flax(p)
    raise ValueError(f"not a TabularMLP or FaceCNN state (top-level keys {sorted(p)}).")


# --------------------------------------------------------------------------------------------
# Layout and forward helpers
# --------------------------------------------------------------------------------------------


def to_torch_input(module: nn.Module, xs: Any) -> torch.Tensor:
    """rpjax-layout inputs (NumPy/JAX) -> a float32 tensor in the layout `module` takes.

    `[B, H, W, C]` images become `[B, C, H, W]` for a `TorchCNN`; anything else is only
    converted to float32.
    """
    t = torch.from_numpy(np.array(xs, dtype=np.float32, copy=True))
    if isinstance(module, TorchCNN):
        if t.dim() != 4:
            raise ValueError(f"TorchCNN inputs must be [B, H, W, C], got shape {tuple(t.shape)}.")
        t = t.permute(0, 3, 1, 2).contiguous()
    return t


def torch_logits(module: nn.Module, xs: Any, *, batch_size: int = 4096) -> np.ndarray:
    """Logits `[B, num_classes]` (float32 NumPy) of `module` on rpjax-layout inputs."""
    x = to_torch_input(module, xs)
    with torch.inference_mode():
        out = [module(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def base_predictions_match(
    apply_fn: Callable[[Any, Any], Any],
    params: Any,
    module: nn.Module,
    xs: Any,
    *,
    sigma: float,
    num_noisy: int = 64,
    seed: int = 0,
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Compares the rpjax base model and its PyTorch twin on clean and noisy inputs.

    The noisy inputs are `num_noisy` copies of each input plus `sigma` times standard normal
    noise (NumPy, `seed`), drawn once and fed, identically, to both models.

    Args:
      apply_fn, params: the rpjax model (`rpjax.models.as_apply_fn(model)`).
      module: the PyTorch model (e.g. `from_flax(params)`).
      xs: `[B, *input_shape]` inputs in the rpjax layout.
      sigma: noise std for the noisy inputs.
      num_noisy: noisy copies per input.
      seed: NumPy seed of the noise.
      atol: logit tolerance, relative to the logit scale `max(1, max |logit|)`; sets `tol`.

    Returns:
      dict with, for `clean` and `noisy`: `max_abs_diff_*` (largest |logit difference|),
      `agreement_*` (fraction of equal argmax), `mismatches_*` (argmax disagreements) and
      `mismatches_beyond_tol_*` (disagreements where the rpjax top-two margin exceeds `tol`:
      real errors rather than near-ties); plus `logit_scale`, `tol`, `rel_diff` (the larger
      max difference over the logit scale), `n_clean`, `n_noisy` and `ok` (all differences
      <= `tol` and no disagreement beyond it).
    """
    xs = np.asarray(xs, np.float32)
    rng = np.random.default_rng(seed)
    noisy = np.repeat(xs, num_noisy, axis=0)
    noisy = (noisy + sigma * rng.standard_normal(noisy.shape)).astype(np.float32)
    out: dict[str, Any] = {}
    scale = 0.0
    results = {}
    for name, inputs in (("clean", xs), ("noisy", noisy)):
        ref = np.asarray(apply_fn(params, inputs), np.float32)
        got = torch_logits(module, inputs)
        if ref.shape != got.shape:
            raise ValueError(f"logit shapes differ: rpjax {ref.shape}, torch {got.shape}.")
        scale = max(scale, float(np.abs(ref).max()))
        results[name] = (ref, got)
    tol = atol * max(1.0, scale)
    worst = 0.0
    ok = True
    for name, (ref, got) in results.items():
        diff = float(np.abs(ref - got).max())
        top_ref, top_got = ref.argmax(1), got.argmax(1)
        srt = np.sort(ref, axis=1)
        margin = srt[:, -1] - srt[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
        wrong = top_ref != top_got
        beyond = int(np.sum(wrong & (margin > tol)))
        out[f"max_abs_diff_{name}"] = diff
        out[f"agreement_{name}"] = float(np.mean(~wrong))
        out[f"mismatches_{name}"] = int(wrong.sum())
        out[f"mismatches_beyond_tol_{name}"] = beyond
        out[f"n_{name}"] = int(ref.shape[0])
        worst = max(worst, diff)
        ok = ok and diff <= tol and beyond == 0
    out.update(logit_scale=scale, tol=tol, rel_diff=worst / max(1.0, scale), ok=ok)
    return out


# --------------------------------------------------------------------------------------------
# CERTIFY
# --------------------------------------------------------------------------------------------


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound: `beta.ppf(alpha, k, n - k + 1)`,
    0 when `k = 0` (equal to `statsmodels`' `proportion_confint(k, n, 2 * alpha, "beta")[0]`,
    which Cohen et al.'s code calls)."""
    if k == 0:
        return 0.0
    return float(sps.beta.ppf(alpha, k, n - k + 1))


def _sample_noise(module: nn.Module, x: torch.Tensor, num: int, batch_size: int, sigma: float,
                  num_classes: int, generator: torch.Generator) -> tuple[np.ndarray, int]:
    """Votes of `module` on `num` noisy copies of the single input `x`, `batch_size` at a
    time; returns `(counts, forward calls)`."""
    counts = np.zeros(num_classes, dtype=np.int64)
    calls = 0
    for _ in range(math.ceil(num / batch_size)):
        this_batch_size = min(batch_size, num)
        num -= this_batch_size
        batch = x.repeat((this_batch_size, *([1] * x.dim())))
        noise = torch.randn(batch.shape, generator=generator, dtype=batch.dtype) * sigma
        predictions = module(batch + noise).argmax(1)
        counts += np.bincount(predictions.numpy(), minlength=num_classes)[:num_classes]
        calls += 1
    return counts, calls


def certify_reference(
    model: nn.Module | nnx.Module,
    xs: Any,
    *,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    seed: int,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Cohen et al.'s CERTIFY as their PyTorch reference code runs it, one input at a time.

    For each input: `n0` selection samples pick `c = argmax counts0`; `n` fresh samples count
    `n_c`; `pa_lower = clopper_pearson_lower(n_c, n, alpha)`; abstain (-1, radius 0) if
    `pa_lower <= 1/2`, else radius `sigma * norm.ppf(pa_lower)`. Noise is
    `sigma * torch.randn` from one `torch.Generator` seeded with `seed` and shared by all
    inputs in order; votes are counted on the host with `np.bincount`.

    Args:
      model: a PyTorch module (e.g. `from_flax(...)`), or an rpjax Flax model, which is
        converted with `from_flax` first.
      xs: `[B, *input_shape]` inputs in the rpjax layout (`[B, H, W, C]` for a `TorchCNN`).
      sigma: noise std (> 0), in input units.
      n0: selection samples per input.
      n: estimation samples per input.
      alpha: failure probability of each certificate.
      batch_size: noisy copies per forward pass.
      seed: seed of the `torch.Generator`.
      num_classes: length of the count vectors (default: the module's `num_classes`).

    Returns:
      dict with `label` `[B]` int32 (-1 = abstain), `radius` `[B]` float64, `pa_lower` `[B]`
      float64, `counts` and `selection_counts` `[B, num_classes]` int64, `n`, `n0`,
      `seconds` (wall time of the whole loop), `seconds_per_input` `[B]`, `forward_passes`
      (noisy inputs classified, `B * (n0 + n)`), `forward_calls` (batches),
      `fwd_per_s`, `batch_size`, `num_threads` (PyTorch's, left at its default) and
      `torch_version`.
    """
    if isinstance(model, nnx.Module):
        model = from_flax(model)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got sigma={sigma!r}.")
    for name, value in (("n0", n0), ("n", n), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {name}={value!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got alpha={alpha!r}.")
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
        if num_classes is None:
            raise ValueError("num_classes is required for a module without `num_classes`.")
        num_classes = int(num_classes)
    model.eval()
    x_all = to_torch_input(model, xs)
    num_inputs = x_all.shape[0]
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(seed))

    label = np.full(num_inputs, ABSTAIN, np.int32)
    radius = np.zeros(num_inputs, np.float64)
    pa_lower = np.zeros(num_inputs, np.float64)
    counts = np.zeros((num_inputs, num_classes), np.int64)
    counts0 = np.zeros((num_inputs, num_classes), np.int64)
    per_input = np.zeros(num_inputs, np.float64)
    calls = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(num_inputs):
            t0 = time.perf_counter()
            x = x_all[i]
            counts0[i], c0 = _sample_noise(model, x, n0, batch_size, sigma, num_classes,
                                           generator)
            c_hat = int(counts0[i].argmax())
            counts[i], c1 = _sample_noise(model, x, n, batch_size, sigma, num_classes,
                                          generator)
            calls += c0 + c1
            pa_lower[i] = clopper_pearson_lower(int(counts[i, c_hat]), n, alpha)
            if pa_lower[i] > 0.5:
                label[i] = c_hat
                radius[i] = sigma * float(sps.norm.ppf(pa_lower[i]))
            per_input[i] = time.perf_counter() - t0
    seconds = time.perf_counter() - start
    passes = num_inputs * (n0 + n)
    return {
        "label": label,
        "radius": radius,
        "pa_lower": pa_lower,
        "counts": counts,
        "selection_counts": counts0,
        "n": n,
        "n0": n0,
        "seconds": seconds,
        "seconds_per_input": per_input,
        "forward_passes": passes,
        "forward_calls": calls,
        "fwd_per_s": passes / seconds if seconds > 0 else float("inf"),
        "batch_size": batch_size,
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
    }
