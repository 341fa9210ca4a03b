"""Seconds per certified image for Cohen et al.'s base models, beside their logged times.

Cohen, Rosenfeld and Kolter certify each test image with n0 = 100 selection and n = 100,000
estimation samples, alpha = 0.001; their logs (`data/certify/...` in locuslab/smoothing, the
`time` column) give 15.4-17.0 s per image (16.9 s for most) for the CIFAR-10 ResNet-110 at
sigma = 0.25 and 149-151 s per image for the ImageNet ResNet-50. This script certifies K
random images (uniform pixels in [0, 1]) with random-weight Flax NNX versions of the same
architectures (`rpjax.models.cifar_resnet`, `rpjax.models.imagenet_resnet`: same layers and
parameter counts, the normalization layer first) through the public `rpjax.certify`, with the
same n0, n, alpha and sigma, and reports seconds per image and the speedup against the logs.
The work per image (n0 + n forward passes of the same network) does not depend on the weights,
so random weights time the same computation.

Timing: per model, one warm-up `certify` on the first `min(batch, K)` images (seed 1) compiles
the selection and estimation programs the timed call uses; then one timed `certify` of all K
images (seed 0). `s_per_image` = timed seconds / K; `fwd_per_s` = K (n0 + n) / timed seconds;
`compile_s` = warm-up seconds minus the warm-up images' share of the timed call;
`projected_s_per_image_at_full_n` = (100 + 100,000) / `fwd_per_s`, a linear projection for
runs at smaller n (it ignores fixed per-call costs). Every count row is checked to sum to n.
Float32 throughout by default: `--precision float32` (`jax.default_matmul_precision`) makes
XLA compute convolutions and matmuls in full float32 (JAX's default lets recent NVIDIA GPUs use
TensorFloat-32 for them); `tensorfloat32`, `bfloat16` or `default` (the backend's choice)
trade precision for speed, and the JSON records which was used.

`--quick` is a smoke run for CI on a CPU: n0 = 10, n = 64, 2 images, ResNet-8 (width 16) at
32x32 and a one-block-per-stage bottleneck ResNet (width 16) at 64x64. Its numbers are NOT
comparable with Cohen et al.'s (and the output says so); `comparable` is true in the JSON only
for the full architectures and image sizes at n0 = 100, n = 100,000 and float32 precision.

Examples:
  python benchmarks/bench_resnet.py --quick --json /tmp/resnet.json
  python benchmarks/bench_resnet.py --models resnet110 --images 4          # on a GPU host
  python benchmarks/bench_resnet.py --models resnet50 --images 2 --chunk 400
  bash benchmarks/gpu_run.sh                                                # the prepared run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

import rpjax
import rpjax.experiments
import rpjax.stats
from rpjax.models import as_apply_fn, cifar_resnet, imagenet_resnet

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "bench_resnet.json")
MODELS = ("resnet110", "resnet50")
FULL = {"n0": 100, "n": 100_000, "images": 4}
QUICK = {"n0": 10, "n": 64, "images": 2}
PRECISIONS = ("float32", "tensorfloat32", "bfloat16", "default")

# Per-image wall times in Cohen et al.'s certification logs (github.com/locuslab/smoothing,
# the `time` column; n0 = 100, n = 100,000, alpha = 0.001, batch 400, PyTorch on their GPU).
REFERENCE = {
    "resnet110": {
        "log": "data/certify/cifar10/resnet110/noise_0.25/test/sigma_0.25",
        "inputs_logged": 500, "low_s": 15.4, "high_s": 17.0, "typical_s": 16.9,
    },
    "resnet50": {
        "log": "data/certify/imagenet/resnet50/noise_0.25/test/sigma_0.25",
        "inputs_logged": 427, "low_s": 149.0, "high_s": 151.3, "typical_s": 150.0,
    },
}

# Architecture, input and default chunk (noisy copies of an input per compiled step) per
# model; the full chunks keep an H200 busy (2000 x 32x32 images, 400 x 224x224 images per
# step) within a few GB of activations. Quick: reduced depth and image size, automatic chunk.
SPECS = {
    "resnet110": {
        "full": {"build": lambda rngs: cifar_resnet(110, rngs=rngs),
                 "arch": "cifar_resnet(depth=110, width=16)", "image": (32, 32, 3),
                 "chunk": 2000},
        "quick": {"build": lambda rngs: cifar_resnet(8, rngs=rngs),
                  "arch": "cifar_resnet(depth=8, width=16)", "image": (32, 32, 3),
                  "chunk": None},
        "num_classes": 10,
    },
    "resnet50": {
        "full": {"build": lambda rngs: imagenet_resnet(rngs=rngs),
                 "arch": "imagenet_resnet(layers=(3, 4, 6, 3), width=64)",
                 "image": (224, 224, 3), "chunk": 400},
        "quick": {"build": lambda rngs: imagenet_resnet((1, 1, 1, 1), width=16, rngs=rngs),
                  "arch": "imagenet_resnet(layers=(1, 1, 1, 1), width=16)",
                  "image": (64, 64, 3), "chunk": None},
        "num_classes": 1000,
    },
}


def device_info() -> dict[str, Any]:
    """Backend, device kind and count of the devices `rpjax.certify` splits samples over."""
    devices = jax.local_devices()
    return {"backend": jax.default_backend(), "kind": devices[0].device_kind,
            "count": len(devices), "jax": jax.__version__}


def build(name: str, quick: bool, seed: int) -> tuple[Any, Any, dict, int]:
    """`(apply_fn, params, spec, parameter count)` of a random-weight model."""
    spec = SPECS[name]["quick" if quick else "full"]
    # RngBitGenerator keys: eager initialization compiles one sampler per parameter shape,
    # several times faster than with threefry keys (the weights only need to be random)
    model = spec["build"](nnx.Rngs(jax.random.key(seed, impl="unsafe_rbg")))
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    apply_fn, params = as_apply_fn(model)
    return apply_fn, params, spec, count


def timed_certify(apply_fn, params, xs, seed, *, kw) -> tuple[float, Any]:
    """Wall seconds of one `rpjax.certify` call (its results are host arrays) and the result."""
    start = time.perf_counter()
    cert = rpjax.certify(apply_fn, params, xs, seed, **kw)
    return time.perf_counter() - start, cert


def bench_model(name: str, *, quick: bool, n0: int, n: int, alpha: float, sigma: float,
                images: int, batch: int, chunk: int | None, precision: str,
                seed: int) -> dict[str, Any]:
    """Builds, warms up and times one model; returns its JSON record."""
    t0 = time.perf_counter()
    apply_fn, params, spec, n_params = build(name, quick, seed)
    build_s = time.perf_counter() - t0
    num_classes = SPECS[name]["num_classes"]
    chunk = spec["chunk"] if chunk is None else chunk
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0.0, 1.0, (images, *spec["image"])).astype(np.float32)
    kw = dict(num_classes=num_classes,
              config=rpjax.SmoothingConfig(sigma=sigma, n0=n0, n=n, alpha=alpha),
              placement=rpjax.Placement(chunk_size=chunk, batch_size=batch))
    warm = min(batch, images)
    with jax.default_matmul_precision(precision), warnings.catch_warnings():
        warnings.simplefilter("ignore", rpjax.stats.SampleSizeWarning)  # quick's small n
        warm_s, _ = timed_certify(apply_fn, params, xs[:warm], seed + 1, kw=kw)
        timed_s, cert = timed_certify(apply_fn, params, xs, seed, kw=kw)
    sums = np.asarray(cert.counts).sum(axis=1)
    if not np.all(sums == n) or not np.all(np.asarray(cert.selection_counts).sum(axis=1) == n0):
        raise AssertionError(f"{name}: count rows sum to {sums.tolist()}, expected n={n}.")
    s_per_image = timed_s / images
    ref = REFERENCE[name]
    comparable = (not quick and n0 == FULL["n0"] and n == FULL["n"] and precision == "float32")
    return {
        "model": name, "architecture": spec["arch"], "parameters": n_params,
        "image_shape": list(spec["image"]), "num_classes": num_classes,
        "images": images, "batch_size": batch, "chunk_size": "auto" if chunk is None else chunk,
        "n0": n0, "n": n, "alpha": alpha, "sigma": sigma, "precision": precision,
        "build_s": build_s, "warmup_s": warm_s, "warmup_images": warm,
        "compile_s": max(0.0, warm_s - warm * s_per_image), "timed_s": timed_s,
        "s_per_image": s_per_image, "fwd_per_s": images * (n0 + n) / timed_s,
        "abstain_rate": float(np.mean(np.asarray(cert.label) == rpjax.ABSTAIN)),
        "projected_s_per_image_at_full_n": (FULL["n0"] + FULL["n"]) * timed_s
        / (images * (n0 + n)),
        "reference": ref, "speedup_vs_reference": ref["typical_s"] / s_per_image,
        "comparable": comparable,
    }


def parse_models(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    if not names or any(m not in MODELS for m in names):
        raise argparse.ArgumentTypeError(
            f"models must be a comma list of {', '.join(MODELS)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", type=parse_models, default=list(MODELS),
                   help="comma list of resnet110, resnet50")
    p.add_argument("--n", type=int, default=None,
                   help=f"estimation samples (default {FULL['n']}; {QUICK['n']} with --quick)")
    p.add_argument("--n0", type=int, default=None,
                   help=f"selection samples (default {FULL['n0']}; {QUICK['n0']} with --quick)")
    p.add_argument("--images", type=int, default=None,
                   help=f"images K per model (default {FULL['images']}; {QUICK['images']} "
                   "with --quick)")
    p.add_argument("--batch", type=int, default=1,
                   help="images per compiled step (rpjax.certify's batch_size)")
    p.add_argument("--chunk", type=int, default=None,
                   help="noisy copies of an image per step (chunk_size; default per model: "
                   "2000 for resnet110, 400 for resnet50, automatic with --quick)")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability")
    p.add_argument("--sigma", type=float, default=0.25, help="noise std (pixels in [0, 1])")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="jax.default_matmul_precision for convolutions and matmuls")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, images and noise")
    p.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON results")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: tiny n, 2 images, reduced models (not comparable)")
    return p


def format_table(records: Sequence[dict]) -> str:
    headers = ("model", "arch", "K", "n", "s/image", "fwd/s", "compile s", "Cohen s/image",
               "speedup")
    rows = [(r["model"], r["architecture"], str(r["images"]), str(r["n"]),
             f"{r['s_per_image']:.4g}", f"{r['fwd_per_s']:.4g}", f"{r['compile_s']:.1f}",
             f"{r['reference']['typical_s']:g} ({r['reference']['low_s']:g}-"
             f"{r['reference']['high_s']:g})",
             f"{r['speedup_vs_reference']:.3g}x" if r["comparable"] else "n/c")
            for r in records]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = QUICK if args.quick else FULL
    n = preset["n"] if args.n is None else args.n
    n0 = preset["n0"] if args.n0 is None else args.n0
    images = preset["images"] if args.images is None else args.images
    for flag, value in (("--n", n), ("--n0", n0), ("--images", images), ("--batch", args.batch)):
        if value < 1:
            raise SystemExit(f"{flag} must be >= 1, got {value}")
    if args.chunk is not None and args.chunk < 1:
        raise SystemExit(f"--chunk must be >= 1, got {args.chunk}")
    dev = device_info()
    out: dict[str, Any] = {
        "config": {"n0": n0, "n": n, "alpha": args.alpha, "sigma": args.sigma,
                   "images": images, "batch": args.batch, "chunk": args.chunk,
                   "precision": args.precision, "models": args.models, "seed": args.seed,
                   "quick": args.quick, "cpu_count": os.cpu_count(),
                   "xla_flags": os.environ.get("XLA_FLAGS"),
                   "timing": "warm-up certify of min(batch, K) images (seed+1), then one timed "
                   "certify of K images (seed); s_per_image = timed_s / K; fwd_per_s = "
                   "K (n0 + n) / timed_s; compile_s = warmup_s - warmup_images * s_per_image",
                   "argv": list(sys.argv[1:] if argv is None else argv)},
        "device": dev,
        "versions": rpjax.experiments.versions(),
        "results": {},
    }
    print(f"rpjax {rpjax.__version__}, jax {dev['jax']} on {dev['backend']} "
          f"({dev['count']} x {dev['kind']}); n0={n0} n={n} K={images} batch={args.batch} "
          f"precision={args.precision}", flush=True)
    if args.quick:
        print("QUICK RUN: tiny n and reduced models; these numbers are NOT comparable with "
              "Cohen et al.'s logged seconds per image.", flush=True)
    total = time.perf_counter()
    for name in args.models:
        print(f"  {name} ...", end=" ", flush=True)
        rec = bench_model(name, quick=args.quick, n0=n0, n=n, alpha=args.alpha,
                          sigma=args.sigma, images=images, batch=args.batch, chunk=args.chunk,
                          precision=args.precision, seed=args.seed)
        out["results"][name] = rec
        print(f"{rec['s_per_image']:.4g} s/image, {rec['fwd_per_s']:.4g} fwd/s, compile "
              f"{rec['compile_s']:.1f} s", flush=True)
        rpjax.experiments.write_json(args.json, out)  # partial results survive an interrupt
    out["config"]["total_wall_s"] = time.perf_counter() - total
    rpjax.experiments.write_json(args.json, out)
    print()
    print(format_table(list(out["results"].values())))
    if not all(r["comparable"] for r in out["results"].values()):
        print("\nn/c = not comparable with Cohen et al.: that needs the full models at "
              f"n0={FULL['n0']}, n={FULL['n']} and --precision float32 (the JSON still holds "
              "speedup_vs_reference and projected_s_per_image_at_full_n, the seconds per image "
              "at the full n0 + n if the forward-pass rate stayed the same).")
    print(f"\nwrote {args.json} (total {out['config']['total_wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
