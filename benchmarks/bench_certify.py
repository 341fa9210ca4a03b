"""rpjax CERTIFY against a PyTorch reference of Cohen et al., side by side in one run.

For each model (the insurance MLP, the Olivetti target CNN, a CIFAR-shaped CNN with random
weights), each batch size B and each n, the script certifies B inputs with n0 = 100 selection
and n estimation samples, alternating rpjax (`rpjax.certify`, compiled once; the first call's
extra time is reported as compile time) and the reference (`reference_torch.certify_reference`:
one input at a time, batches of noisy copies, counts on the host), `--reps` times each, and
reports medians: base-model forward passes per second (B * (n0 + n) / seconds), seconds per
certified input, the ratio rpjax / reference, and rpjax's achieved FLOP rate (forward FLOPs
from XLA's cost analysis x forward passes per second) as a fraction of this machine's matmul
throughput, measured in the same run (float32 2048 x 2048 matmul, median of 5).
For B > 1, rpjax is also timed with `common_noise=True` (one noise stream for the whole batch;
the models are `AffineFirst`, so the first layer of the noise is computed once per sample):
the `*_common` keys; B * (n0 + n) noisy inputs are classified either way.

Both sides use the same weights (copied from the Flax parameters; `base_predictions_match`
is checked first) and the same inputs. Peak memory: for n in {1e4, 1e5, 1e6} the XLA buffer
assignment of the compiled counting program (arguments + outputs + temporaries) and, in a
fresh subprocess per n, the process's peak RSS for one `sample_counts` call on the MLP.

Examples:
  python benchmarks/bench_certify.py --quick --json /tmp/b.json
  python benchmarks/bench_certify.py                      # the full grid (about 30-40 min)
  python benchmarks/bench_certify.py --models mlp --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_torch  # noqa: E402

import rpjax  # noqa: E402
import rpjax.experiments  # noqa: E402
from rpjax.data import load_insurance  # noqa: E402
from rpjax.models import (  # noqa: E402
    FaceCNN,
    TabularMLP,
    TrainConfig,
    as_apply_fn,
    fit_classifier,
)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "bench_certify.json")
MODELS = ("mlp", "olivetti_cnn", "cifar_cnn")
SIGMA = {"mlp": 0.5, "olivetti_cnn": 0.1, "cifar_cnn": 0.25}
REF_BATCH = {"mlp": 1000, "olivetti_cnn": 400, "cifar_cnn": 400}  # Cohen et al. use 400
# the full grid; CNNs at B = 32, n = 1e5 would take ~10 minutes per call per side on 2 cores
FULL_GRID = {"mlp": [(1, 10_000), (32, 10_000), (1, 100_000), (32, 100_000)],
             "olivetti_cnn": [(1, 10_000), (32, 10_000), (1, 100_000)],
             "cifar_cnn": [(1, 10_000), (32, 10_000), (1, 100_000)]}
QUICK_GRID = {"mlp": [(4, 2_000)], "olivetti_cnn": [(2, 500)], "cifar_cnn": [(2, 500)]}
MEMORY_NS = (10_000, 100_000, 1_000_000)


def make_model(name: str, batch: int, *, trained: bool, seed: int = 0):
    """`(nnx model, inputs [B, ...] float32, num_classes)`; inputs are real data if trained."""
    rng = np.random.default_rng(seed)
    if name == "mlp":
        data = load_insurance()
        model = TabularMLP(data.x.shape[1], 2, rngs=nnx.Rngs(seed))
        if trained:
            res = fit_classifier(model, data.x, data.labels(), seed, TrainConfig(steps=500))
            nnx.update(model, res.params)
        xs = np.asarray(data.x[rng.choice(len(data.x), batch, replace=False)], np.float32)
        return model, xs, 2
    if name == "olivetti_cnn":
        cfg = rpjax.experiments.InversionConfig.quick(
            cache_dir=rpjax.experiments.default_cache_dir())
        model = FaceCNN(cfg.num_private, channels=cfg.target_channels, dense=cfg.target_dense,
                        image_size=cfg.image_size, rngs=nnx.Rngs(cfg.seed))
        if trained:
            ctx = rpjax.experiments.Context().faces(cfg.faces)
            nnx.update(model, ctx.target[1])
            xs = ctx.xte[rng.choice(len(ctx.xte), batch, replace=False)]
        else:
            xs = rng.uniform(0, 1, (batch, cfg.image_size, cfg.image_size, 1))
        return model, np.asarray(xs, np.float32), cfg.num_private
    if name == "cifar_cnn":
        model = FaceCNN(10, in_channels=3, channels=(32, 64, 128), dense=256, image_size=32,
                        rngs=nnx.Rngs(seed))
        xs = rng.uniform(0, 1, (batch, 32, 32, 3)).astype(np.float32)
        return model, xs, 10
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")


def matmul_flops_per_s(size: int = 2048, reps: int = 5) -> float:
    """Measured float32 matmul throughput of this machine (FLOP/s, median of `reps`)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * size**3 / statistics.median(times)


def forward_flops(apply_fn, params, x1: np.ndarray) -> float:
    """FLOPs of one forward pass (XLA cost analysis of a batch of 64, divided by 64)."""
    xb = jnp.broadcast_to(jnp.asarray(x1), (64, *x1.shape))
    cost = jax.jit(apply_fn).lower(params, xb).compile().cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    return float(cost["flops"]) / 64


SETTLE_S = 1.0  # idle time before every timed call (see bench_model)


def _rpjax_certify(apply_fn, params, xs, seed, *, sigma, n, num_classes, chunk_size,
                   common_noise=False):
    time.sleep(SETTLE_S)
    t = time.perf_counter()
    cert = rpjax.certify(
        apply_fn, params, xs, seed, num_classes=num_classes,
        config=rpjax.SmoothingConfig(sigma=sigma, n0=100, n=n, alpha=1e-3,
                                     common_noise=common_noise),
        placement=rpjax.Placement(chunk_size=chunk_size))
    return time.perf_counter() - t, cert


def bench_model(name: str, grid, *, reps: int, trained: bool, matmul: float,
                chunk_size: int | None) -> list[dict[str, Any]]:
    """Times every (B, n) of `grid` for one model, alternating the two implementations."""
    records = []
    for batch, n in grid:
        model, xs, num_classes = make_model(name, batch, trained=trained)
        apply_fn, params = as_apply_fn(model)
        module = reference_torch.from_flax(model)
        check = reference_torch.base_predictions_match(apply_fn, params, module, xs,
                                                       sigma=SIGMA[name], num_noisy=16)
        if not check["ok"]:
            raise AssertionError(f"{name}: torch and rpjax disagree on base predictions: "
                                 f"{check}")
        flops = forward_flops(apply_fn, params, xs[0])
        kw = dict(sigma=SIGMA[name], n=n, num_classes=num_classes, chunk_size=chunk_size)
        first, _ = _rpjax_certify(apply_fn, params, xs, 0, **kw)
        common = batch > 1  # with one input, common noise is the default computation
        if common:
            first_common, _ = _rpjax_certify(apply_fn, params, xs, 0, common_noise=True, **kw)
        ours, ref, ours_common = [], [], []
        agree, agree_common = [], []
        for rep in range(reps):
            t, cert = _rpjax_certify(apply_fn, params, xs, rep + 1, **kw)
            ours.append(t)
            # torch's OpenMP threads keep spinning for a while after a call and slowed the next
            # rpjax call by up to 25% in a probe: each side is timed after SETTLE_S idle
            time.sleep(SETTLE_S)
            r = reference_torch.certify_reference(module, xs, sigma=SIGMA[name], n0=100, n=n,
                                                  alpha=1e-3, batch_size=REF_BATCH[name],
                                                  seed=rep + 1)
            ref.append(r["seconds"])
            agree.append(float(np.mean(np.asarray(cert.label) == r["label"])))
            if common:
                t, cert = _rpjax_certify(apply_fn, params, xs, rep + 1, common_noise=True, **kw)
                ours_common.append(t)
                agree_common.append(float(np.mean(np.asarray(cert.label) == r["label"])))
        passes = batch * (100 + n)
        med, rmed = statistics.median(ours), statistics.median(ref)
        rec = {"B": batch, "n": n, "n0": 100, "sigma": SIGMA[name],
               "rpjax_s": med, "reference_s": rmed, "rpjax_times_s": ours,
               "reference_times_s": ref, "compile_s": max(0.0, first - med),
               "rpjax_fwd_per_s": passes / med, "reference_fwd_per_s": passes / rmed,
               "rpjax_s_per_input": med / batch, "reference_s_per_input": rmed / batch,
               "ratio": rmed / med, "flops_per_forward": flops,
               "flop_fraction": passes / med * flops / matmul,
               "reference_flop_fraction": passes / rmed * flops / matmul,
               "label_agreement": statistics.mean(agree),
               "max_logit_diff": max(check["max_abs_diff_clean"], check["max_abs_diff_noisy"]),
               "reference_batch": REF_BATCH[name], "chunk_size": chunk_size or "auto"}
        cmed = statistics.median(ours_common) if common else None
        rec.update({
            "rpjax_common_s": cmed, "rpjax_common_times_s": ours_common,
            "rpjax_common_fwd_per_s": passes / cmed if common else None,
            "ratio_common": rmed / cmed if common else None,
            "flop_fraction_common": passes / cmed * flops / matmul if common else None,
            "rpjax_common_s_per_input": cmed / batch if common else None,
            "compile_common_s": max(0.0, first_common - cmed) if common else None,
            "label_agreement_common": statistics.mean(agree_common) if common else None,
        })
        records.append(rec)
        extra = (f"  common noise {rec['rpjax_common_fwd_per_s']:10.4g}/s ratio "
                 f"{rec['ratio_common']:6.2f}" if common else "")
        print(f"{name:13s} B={batch:3d} n={n:7d}  rpjax {rec['rpjax_fwd_per_s']:10.4g}/s  "
              f"reference {rec['reference_fwd_per_s']:10.4g}/s  ratio {rec['ratio']:6.2f}  "
              f"FLOP fraction {rec['flop_fraction']:.3f}  compile {rec['compile_s']:.1f} s"
              + extra, flush=True)
    return records


_RSS_CHILD = """
import resource, sys, numpy as np, jax, rpjax
from flax import nnx
from rpjax.models import TabularMLP, as_apply_fn
apply_fn, params = as_apply_fn(TabularMLP(11, 2, rngs=nnx.Rngs(0)))
xs = np.random.default_rng(0).standard_normal((8, 11)).astype(np.float32)
rpjax.sample_counts(apply_fn, params, xs, 0, num_classes=2,
                    config=rpjax.SmoothingConfig(sigma=0.5, n=1000))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c = rpjax.sample_counts(apply_fn, params, xs, 1, num_classes=2,
                        config=rpjax.SmoothingConfig(sigma=0.5, n=int(sys.argv[1])))
assert int(np.asarray(c).sum()) == 8 * int(sys.argv[1])
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def memory(ns=MEMORY_NS) -> dict[str, Any]:
    """Peak memory vs n: XLA buffer sizes of the compiled program (MLP and CIFAR CNN, B = 8)
    and the peak RSS of a fresh process running one MLP call (KiB -> bytes)."""
    out: dict[str, Any] = {"ns": list(ns), "program_bytes": {}, "rss_bytes": []}
    for name in ("mlp", "cifar_cnn"):
        model, xs, num_classes = make_model(name, 8, trained=False)
        apply_fn, params = as_apply_fn(model)
        sizes = []
        for n in ns:
            lowered = rpjax.counting_program(apply_fn, params, xs, num_classes=num_classes,
                                       config=rpjax.SmoothingConfig(sigma=0.5, n=n)).lowered
            m = lowered.compile().memory_analysis()
            sizes.append(int(m.argument_size_in_bytes + m.output_size_in_bytes
                             + m.temp_size_in_bytes))
        out["program_bytes"][name] = sizes
    for n in ns:
        proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(n)], capture_output=True,
                              text=True, check=True)
        base, peak = map(int, proc.stdout.split())
        out["rss_bytes"].append(peak * 1024)
    for key, vals in [("mlp", out["program_bytes"]["mlp"]),
                      ("cifar_cnn", out["program_bytes"]["cifar_cnn"]),
                      ("rss", out["rss_bytes"])]:
        out[f"growth_{key}"] = vals[-1] / vals[0] - 1.0
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny grid, random weights, 1 rep (CI smoke run; no targets)")
    p.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    p.add_argument("--reps", type=int, default=None, help="repetitions (default 3; quick 1)")
    p.add_argument("--chunk-size", type=int, default=None, help="rpjax chunk size (default auto)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON results")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            p.error(f"--models: unknown model {m!r}; choose from {', '.join(MODELS)}")
    grid = QUICK_GRID if args.quick else FULL_GRID
    reps = args.reps or (1 if args.quick else 3)
    matmul = matmul_flops_per_s()
    print(f"matmul throughput: {matmul / 1e9:.1f} GFLOP/s (float32, 2048^2)", flush=True)
    result: dict[str, Any] = {
        "config": {"quick": args.quick, "reps": reps, "grid": {m: grid[m] for m in models},
                   "sigma": SIGMA, "reference_batch": REF_BATCH, "alpha": 1e-3, "n0": 100,
                   "chunk_size": args.chunk_size or "auto"},
        "machine": {"cpu_count": os.cpu_count(), "matmul_flops_per_s": matmul},
        "versions": {**rpjax.experiments.versions(), "torch": reference_torch.torch.__version__,
                     "torch_threads": reference_torch.torch.get_num_threads()},
    }
    for m in models:
        result[m] = bench_model(m, grid[m], reps=reps, trained=not args.quick, matmul=matmul,
                                chunk_size=args.chunk_size)
    if not args.no_memory:
        result["memory"] = memory((1_000, 10_000, 100_000) if args.quick else MEMORY_NS)
        mem = result["memory"]
        print(f"memory growth {mem['ns'][0]} -> {mem['ns'][-1]}: program "
              f"mlp {mem['growth_mlp']:+.1%}, cifar_cnn {mem['growth_cifar_cnn']:+.1%}; "
              f"process RSS {mem['growth_rss']:+.1%}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
