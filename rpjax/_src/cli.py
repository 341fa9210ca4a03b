"""The `rpjax` command line: parses arguments and dispatches to library functions."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _certify_demo(args: argparse.Namespace) -> int:
    from rpjax._src import durable

    if args.json:  # before the imports and the training: a bad destination fails at once
        durable.check_output_file("--json", args.json, create=False)
    import numpy as np

    from rpjax._src import validate as _validate
    from rpjax._src.experiments import certify_demo, report
    from rpjax._src.noise import MAX_ABS_UNIT_NOISE

    # before training: a sigma whose noise overflows float32 can certify nothing (the engine
    # checks again with the inputs' own magnitude)
    _validate.noise_fits("sigma", _validate.positive("sigma", args.sigma), 0.0, np.float32,
                         max_noise=MAX_ABS_UNIT_NOISE)

    config = certify_demo.DemoConfig(
        sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha, num_people=args.people,
        seed=args.seed, method=args.method, radius=args.radius, tolerance=args.tolerance)
    result = certify_demo.run(config, progress=not args.no_progress)
    cfg = result["config"]
    print(f"\nrpjax certify-demo: insurance MLP (recommend iff BMI >= {cfg['threshold']}), "
          f"base test accuracy {result['base_test_accuracy']:.3f}")
    print(f"sigma={cfg['sigma']} (standardized units), n0={cfg['n0']}, n={cfg['n']}, "
          f"alpha={cfg['alpha']}; largest certifiable radius at this n: "
          f"{result['max_radius_std']:.3f} std\n")
    print(certify_demo.format_table(result))
    abstain = sum(r["abstain"] for r in result["rows"])
    fixed = len(result["rows"]) * (cfg["n0"] + cfg["n"])
    print(f"\n{abstain}/{len(result['rows'])} abstained; {result['forward_passes']:,} base "
          f"forward passes ({fixed / result['forward_passes']:.1f}x fewer than fixed-n "
          f"n0 + n = {cfg['n0'] + cfg['n']:,} per person); {result['seconds']:.1f} s in all.")
    if args.json:
        report.write_json(args.json, result)
        print(f"wrote {os.path.abspath(args.json)}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from rpjax._src.experiments import outdir  # light; `reproduce` imports the experiments

    if args.quick and args.full:
        raise ValueError("give at most one of --quick and --full.")
    cache = None if args.no_cache else (args.cache_dir or os.path.join(args.out, "cache"))
    # before the imports and any training: a bad destination or a previous run fails at once
    outdir.check(args.out, cache, overwrite=args.overwrite,
                 names=("--out", "--cache-dir", "--overwrite"))
    from rpjax._src.experiments import reproduce

    preset = "quick" if args.quick else "full" if args.full else "default"
    summary = reproduce.reproduce([args.experiment], preset=preset, out=args.out,
                                  cache_dir=cache, augment=args.augment, prior=args.prior,
                                  progress=not args.no_progress, overwrite=args.overwrite)
    print(f"{summary['seconds']['total']:.1f} s in all; wrote "
          f"{os.path.join(args.out, 'report.md')} and {os.path.join(args.out, 'summary.json')}")
    return 0


# = rpjax._src.experiments.reproduce.EXPERIMENTS (tests/test_durable.py checks), written out so
# that parsing, and failing on bad arguments, does not import the experiments (about 1 s)
_REPRODUCE_EXPERIMENTS = ("rap", "attacks", "inversion", "frontier", "distillation")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `rpjax` command (kept importable for docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="rpjax",
        description="Robust Privacy certification engine (randomized smoothing in JAX).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "certify-demo", help="train a small insurance MLP and certify test people",
        description="Train a small MLP on the bundled insurance data and certify test people.")
    demo.add_argument("--sigma", type=float, default=0.5,
                      help="noise std in standardized feature units (default 0.5)")
    demo.add_argument("--n0", type=int, default=100, help="selection samples (default 100)")
    demo.add_argument("--n", type=int, default=10_000, help="estimation samples (default 1e4)")
    demo.add_argument("--alpha", type=float, default=1e-3, help="failure probability")
    demo.add_argument("--people", type=int, default=16, help="test people to certify")
    demo.add_argument("--seed", type=int, default=0, help="seed of split, model and noise")
    demo.add_argument("--method", choices=["cohen", "sequential"], default="cohen",
                      help="cohen: n samples per person (default); sequential: each person "
                           "stops as soon as decided, --n is the most it may use")
    demo.add_argument("--radius", type=float, default=None,
                      help="sequential: decide robustness at this radius (std units); "
                           "default: the largest radius, with a budget")
    demo.add_argument("--tolerance", type=float, default=None,
                      help="sequential, no --radius: stop a person once its radius is within "
                           "this fraction of the one it would reach at n if its observed vote "
                           "rate held (default 0.02)")
    demo.add_argument("--json", default=None, help="also write the result to this JSON file")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(func=_certify_demo)

    rep = sub.add_parser(
        "reproduce", help="run the paper's experiments on the bundled data",
        description="Run the paper's experiments on the bundled data; write OUT/report.md, "
                    "OUT/summary.json, and each experiment's JSON, CSV, Markdown and plots "
                    "under OUT/<experiment>/, each file atomically. An OUT holding a previous "
                    "run is refused unless --overwrite is given.")
    rep.add_argument("experiment", nargs="?", default="all",
                     choices=["all", *_REPRODUCE_EXPERIMENTS],
                     help="which experiment (default: all; frontier reuses inversion's sweep "
                          "when run together, else runs it first)")
    rep.add_argument("--quick", action="store_true",
                     help="small settings (all: under 10 minutes on 2 CPU cores)")
    rep.add_argument("--full", action="store_true",
                     help="the paper's attack budget at 64x64 (for GPU hosts)")
    rep.add_argument("--out", default="rpjax-out", help="output directory (default rpjax-out)")
    rep.add_argument("--cache-dir", default=None,
                     help="trained-model cache (default OUT/cache)")
    rep.add_argument("--no-cache", action="store_true", help="always retrain")
    rep.add_argument("--overwrite", action="store_true",
                     help="replace a previous run in OUT (its report, summary and experiment "
                          "folders; the cache is kept)")
    rep.add_argument("--augment", action="store_true",
                     help="rap: smooth base models trained with Gaussian augmentation at each "
                          "sigma (default: smooth the undefended base model, as the paper); "
                          "inversion: also attack augmented targets in --quick (the default "
                          "and --full runs always do)")
    rep.add_argument("--prior", choices=["pca", "vae"], default="pca",
                     help="inversion: the attacker's generator prior (default pca)")
    rep.add_argument("--no-progress", action="store_true", help="hide progress bars")
    rep.set_defaults(func=_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rpjax` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError) as err:
        print(f"rpjax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
