"""Throughput of the certification engine: noisy forward passes per second of `sample_counts`.

For each model (a tabular MLP on 11 features, a small CNN on 64x64x1 images) and each chunk
size, the script times one first call (trace + compile + one run) and then `--reps` steady-state
calls, each with a fresh integer seed, blocking on the result. It reports the median
steady-state time, the throughput `n * B / median` in noisy forward passes per second, and the
compile time, estimated as the first call's wall time minus the median steady-state time.

Every call's counts are checked to sum to `n` per input, so the benchmark cannot silently time
a program that does nothing useful.

Examples:
  python benchmarks/bench_engine.py --quick
  python benchmarks/bench_engine.py
  python benchmarks/bench_engine.py --models mlp --chunk-sizes 512,2048,4096,auto
  python benchmarks/bench_engine.py --models cnn --n 10000 --json /tmp/cnn.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

import rpjax
import rpjax.experiments
from rpjax.models import FaceCNN, TabularMLP, as_apply_fn

DEFAULT_JSON = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "bench_engine.json"
)
FULL = {"n": 100_000, "batch": 32, "reps": 3}
QUICK = {"n": 2_000, "batch": 4, "reps": 2}
MODELS = ("mlp", "cnn")


def make_model(name: str, batch: int, data_seed: int) -> tuple[Callable, Any, np.ndarray, int]:
    """Returns `(apply_fn, params, xs, num_classes)` for benchmark model `name`."""
    rng = np.random.default_rng(data_seed)
    if name == "mlp":
        apply_fn, params = as_apply_fn(TabularMLP(11, 2, rngs=nnx.Rngs(0)))
        xs = rng.standard_normal((batch, 11)).astype(np.float32)
        return apply_fn, params, xs, 2
    if name == "cnn":
        apply_fn, params = as_apply_fn(FaceCNN(20, rngs=nnx.Rngs(0)))
        xs = rng.uniform(0.0, 1.0, (batch, 64, 64, 1)).astype(np.float32)
        return apply_fn, params, xs, 20
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}.")


def effective_chunk(apply_fn, params, xs: np.ndarray, num_classes: int, *,
                    chunk_size: int | None, n: int) -> int:
    """Noisy copies per input per step that `sample_counts` will use.

    Asks the engine (`rpjax.counting_program`) so the table shows what "auto"
    resolved to.
    """
    return rpjax.counting_program(
        apply_fn, params, xs, num_classes=num_classes, config=rpjax.SmoothingConfig(sigma=0.5, n=n),
        placement=rpjax.Placement(chunk_size=chunk_size)).chunk


def timed_counts(apply_fn, params, xs, seed, *, sigma, n, num_classes, chunk_size) -> float:
    """Wall seconds of one blocking `sample_counts` call; checks each count row sums to n."""
    start = time.perf_counter()
    counts = rpjax.sample_counts(apply_fn, params, xs, seed, num_classes=num_classes,
                                 config=rpjax.SmoothingConfig(sigma=sigma, n=n),
                                 placement=rpjax.Placement(chunk_size=chunk_size))
    counts = jax.block_until_ready(counts)
    elapsed = time.perf_counter() - start
    sums = np.asarray(counts).sum(axis=1)
    if counts.shape != (xs.shape[0], num_classes) or not np.all(sums == n):
        raise AssertionError(
            f"sample_counts returned shape {counts.shape} with row sums {sums.tolist()}; "
            f"expected shape {(xs.shape[0], num_classes)} with every row summing to n={n}."
        )
    return elapsed


def bench_one(apply_fn, params, xs, num_classes, *, chunk_size, n, reps, sigma) -> dict:
    """Times one (model, chunk size) configuration; returns its JSON record."""
    jax.clear_caches()  # every configuration pays its own compile, even if a chunk repeats
    kwargs = {"sigma": sigma, "n": n, "num_classes": num_classes, "chunk_size": chunk_size}
    first_s = timed_counts(apply_fn, params, xs, 0, **kwargs)
    times = [timed_counts(apply_fn, params, xs, rep + 1, **kwargs) for rep in range(reps)]
    median = statistics.median(times)
    batch = xs.shape[0]
    return {
        "chunk_size": "auto" if chunk_size is None else chunk_size,
        "effective_chunk": effective_chunk(apply_fn, params, xs, num_classes,
                                           chunk_size=chunk_size, n=n),
        "n": n,
        "batch": batch,
        "first_call_s": first_s,
        "compile_s": max(0.0, first_s - median),
        "median_s": median,
        "fwd_per_s": n * batch / median,
        "times_s": times,
    }


def parse_chunks(text: str) -> list[int | None]:
    """'256,1024,auto' -> [256, 1024, None]."""
    out: list[int | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item in ("auto", "none"):
            out.append(None)
            continue
        try:
            value = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"chunk sizes must be positive integers or 'auto', got {item!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"chunk sizes must be >= 1, got {value}")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("no chunk size given")
    return out


def parse_models(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"models must be a comma list of {', '.join(MODELS)}, got {text!r}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Engine throughput (noisy forward passes/s) of rpjax.sample_counts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"noisy samples per input (default {FULL['n']}; {QUICK['n']} with --quick)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"inputs B per call (default {FULL['batch']}; {QUICK['batch']} with --quick)",
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"steady-state repetitions (default {FULL['reps']}; {QUICK['reps']} with --quick)",
    )
    chunks = p.add_mutually_exclusive_group()
    chunks.add_argument(
        "--chunk-size",
        dest="chunk_sizes",
        type=parse_chunks,
        default=[None],
        help="one chunk size (noisy copies per input per step) or 'auto'",
    )
    chunks.add_argument(
        "--chunk-sizes",
        dest="chunk_sizes",
        type=parse_chunks,
        help="comma list to sweep, e.g. 256,1024,auto",
    )
    p.add_argument(
        "--models", type=parse_models, default=list(MODELS), help="comma list of models: mlp, cnn"
    )
    p.add_argument("--sigma", type=float, default=0.5, help="noise standard deviation")
    p.add_argument("--data-seed", type=int, default=0, help="numpy seed of the random inputs")
    p.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON results")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"small smoke run for CI (n={QUICK['n']}, B={QUICK['batch']}, "
        f"reps={QUICK['reps']}); explicit --n/--batch/--reps still win",
    )
    return p


def format_table(results: dict[str, list[dict]]) -> str:
    headers = ("model", "chunk", "eff.chunk", "n", "B", "median s", "fwd/s", "compile s")
    rows = []
    for model, records in results.items():
        for r in records:
            eff = "?" if r["effective_chunk"] is None else str(r["effective_chunk"])
            rows.append(
                (
                    model,
                    str(r["chunk_size"]),
                    eff,
                    str(r["n"]),
                    str(r["batch"]),
                    f"{r['median_s']:.4f}",
                    f"{r['fwd_per_s']:.4g}",
                    f"{r['compile_s']:.2f}",
                )
            )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = QUICK if args.quick else FULL
    n = preset["n"] if args.n is None else args.n
    batch = preset["batch"] if args.batch is None else args.batch
    reps = preset["reps"] if args.reps is None else args.reps
    if n < 1 or batch < 1 or reps < 1:
        raise SystemExit(f"--n, --batch and --reps must be >= 1 (got {n}, {batch}, {reps})")

    config = {
        "n": n,
        "batch": batch,
        "reps": reps,
        "sigma": args.sigma,
        "chunk_sizes": ["auto" if c is None else c for c in args.chunk_sizes],
        "models": args.models,
        "data_seed": args.data_seed,
        "quick": args.quick,
        "timing": "first call = trace+compile+run (seed 0); reps with seeds 1..reps; "
        "compile_s = first_call_s - median_s; fwd_per_s = n*batch/median_s",
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "argv": list(sys.argv[1:] if argv is None else argv),
    }
    out: dict[str, Any] = {
        "config": config,
        "versions": rpjax.experiments.versions(),
        "results": {m: [] for m in args.models},
    }
    print(
        f"rpjax {rpjax.__version__} on {jax.default_backend()} "
        f"({len(jax.local_devices())} device(s)); n={n} B={batch} reps={reps}",
        flush=True,
    )
    total_start = time.perf_counter()
    for model in args.models:
        apply_fn, params, xs, num_classes = make_model(model, batch, args.data_seed)
        for chunk in args.chunk_sizes:
            label = "auto" if chunk is None else chunk
            print(f"  {model} chunk={label} ...", end=" ", flush=True)
            record = bench_one(
                apply_fn,
                params,
                xs,
                num_classes,
                chunk_size=chunk,
                n=n,
                reps=reps,
                sigma=args.sigma,
            )
            out["results"][model].append(record)
            print(
                f"median {record['median_s']:.4f}s, {record['fwd_per_s']:.4g} fwd/s, "
                f"compile {record['compile_s']:.2f}s",
                flush=True,
            )
            rpjax.experiments.write_json(args.json, out)  # partial results survive an interrupt
    out["config"]["total_wall_s"] = time.perf_counter() - total_start
    rpjax.experiments.write_json(args.json, out)
    print()
    print(format_table(out["results"]))
    print(f"\nwrote {args.json} (total {out['config']['total_wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
