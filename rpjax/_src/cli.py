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
    from rpjax._src.experiments import certify_demo, common
    from rpjax._src.noise import MAX_ABS_UNIT_NOISE

    # before training: a sigma whose noise overflows float32 can certify nothing (the engine
    # checks again with the inputs' own magnitude)
    _validate.noise_fits("sigma", _validate.positive("sigma", args.sigma), 0.0, np.float32,
                         max_noise=MAX_ABS_UNIT_NOISE)

    config = certify_demo.DemoConfig(
        sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha, num_people=args.people,
        seed=args.seed, method=args.method, radius=args.radius, price=args.price)
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
        common.write_json(args.json, result)
        print(f"wrote {os.path.abspath(args.json)}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from rpjax._src.experiments import outdir  # light; `reproduce` imports the experiments

    if args.tiny + args.quick + args.full > 1:
        raise ValueError("give at most one of --tiny, --quick and --full.")
    cache = None if args.no_cache else (args.cache_dir or os.path.join(args.out, "cache"))
    # before the imports and any training: a bad destination or a previous run fails at once
    from rpjax._src.experiments import names

    outdir.check(args.out, cache, overwrite=args.overwrite,
                 names=("--out", "--cache-dir", "--overwrite"),
                 experiments=(names.EXPERIMENTS if args.experiment == "all" else
                              [args.experiment]))
    from rpjax._src.experiments import reproduce

    preset = ("tiny" if args.tiny else "quick" if args.quick else "full" if args.full
              else "default")
    summary = reproduce.reproduce([args.experiment], preset=preset, out=args.out,
                                  cache_dir=cache, augment=args.augment, prior=args.prior,
                                  progress=not args.no_progress, overwrite=args.overwrite)
    print(f"{summary['seconds']['total']:.1f} s in all; wrote "
          f"{os.path.join(args.out, 'report.md')} and {os.path.join(args.out, 'summary.json')}")
    return 0


# `rpjax certify`'s settings: the library's names, and the flags that set them
CERTIFY_SETTINGS = ("model", "data", "sigma", "checkpoint", "inputs_key", "labels_key",
                    "num_classes", "n0", "n", "alpha", "seed", "method", "radius", "price",
                    "common_noise", "block")


def certify_defaults() -> dict[str, object]:
    """The defaults of `rpjax certify`, read from the dataclasses that hold them
    (`SmoothingConfig`: n0, n, alpha; `RunSpec`: seed, block; the rule: `Fixed()`)."""
    import dataclasses

    from rpjax._src.plan import SmoothingConfig
    from rpjax._src.runs import RunSpec

    smoothing = {f.name: f.default for f in dataclasses.fields(SmoothingConfig)}
    spec = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    out: dict[str, object] = dict.fromkeys(CERTIFY_SETTINGS)
    out.update(n0=smoothing["n0"], n=smoothing["n"], alpha=smoothing["alpha"],
               common_noise=smoothing["common_noise"], seed=spec["seed"], block=spec["block"],
               method="cohen")
    return out


def _price_default() -> float:
    import dataclasses

    from rpjax._src.plan import RadiusBudget

    return next(f.default for f in dataclasses.fields(RadiusBudget) if f.name == "price")


def _rule(method: object, radius: object, price: object):
    """The rule the flags ask for: --method cohen (Fixed), --method sequential with --radius
    (DecideAt) or with --price / neither (RadiusBudget)."""
    from rpjax._src.plan import DecideAt, Fixed, RadiusBudget

    if method not in ("cohen", "sequential"):
        raise ValueError(f"--method must be one of ('cohen', 'sequential'), got {method!r}.")
    if method == "cohen":
        if radius is not None or price is not None:
            raise ValueError("--radius and --price are options of --method sequential.")
        return Fixed()
    if radius is not None and price is not None:
        raise ValueError("give --radius (decision at a radius) or --price (radius with a "
                         "budget), not both.")
    if radius is not None:
        return DecideAt(radius)
    return RadiusBudget() if price is None else RadiusBudget(price)


def _flag_error(err: Exception, values: dict[str, object]) -> Exception:
    """`err`, in the library's words, said with the flag of the setting it names: a message
    that starts with the setting and the value given (`data d.npz: no such file`) names the
    flag in place of the setting (`--data d.npz: no such file`); one that starts with the
    setting alone gets the flag in front (`--seed: seed must ...`). `values`: the settings
    given, by name."""
    import re

    text = str(err)
    m = re.match(r"(\w+)\b", text)
    if not m or m.group(1) not in CERTIFY_SETTINGS + ("num_classes", "out", "people"):
        return err
    word = m.group(1)
    flag = "--" + word.replace("_", "-")
    value = values.get(word)
    if value is not None and text.startswith(f"{word} {value}"):
        return type(err)(flag + text[len(word):])
    return type(err)(f"{flag}: {text}")


def _certify_settings(args: argparse.Namespace) -> dict[str, object]:
    from rpjax._src import runs

    given = {k: getattr(args, k) for k in CERTIFY_SETTINGS if getattr(args, k) is not None}
    if args.resume:
        old = runs.read_config(args.out).to_json()
        settings = {k: old.get(k) for k in CERTIFY_SETTINGS} | given
    else:
        settings = certify_defaults() | given
        missing = [f"--{k}" for k in ("model", "data", "sigma") if settings[k] is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} required (or --resume with an existing "
                             "--out).")
    try:
        settings["rule"] = _rule(settings.pop("method"), settings.pop("radius"),
                                 settings.pop("price"))
    except (ValueError, TypeError) as err:
        raise _flag_error(err, settings) from None
    return settings


def _distributed(args: argparse.Namespace) -> None:
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(v is None for v in explicit):
        return
    import jax

    if any(v is None for v in explicit) and any(v is not None for v in explicit):
        raise ValueError("give all of --coordinator, --num-processes and --process-id, or "
                         "none (--distributed alone has jax.distributed.initialize() detect "
                         "them on TPU pods, Slurm and Open MPI).")
    jax.distributed.initialize(coordinator_address=args.coordinator,
                               num_processes=args.num_processes, process_id=args.process_id)


def _certify(args: argparse.Namespace) -> int:
    from rpjax._src import durable

    if args.resume and not os.path.isfile(os.path.join(args.out, "config.json")):
        raise ValueError(f"--resume: no rpjax certify run in {args.out} (no config.json).")
    # before any import of the model or data; creates nothing (a failure leaves no run)
    durable.check_output_dir("--out", args.out, create=False)
    return _certify_in(args)


def _certify_in(args: argparse.Namespace) -> int:
    import signal

    _distributed(args)
    import jax

    from rpjax._src import runs

    settings = _certify_settings(args)
    try:
        config, apply_fn, params, inputs, labels = runs.make_config(**settings)
    except (ValueError, TypeError) as err:
        raise _flag_error(err, settings) from None
    devices = jax.local_devices()
    if args.devices is not None:
        if not 1 <= args.devices <= len(devices):
            raise ValueError(f"--devices must be in [1, {len(devices)}] (local devices), got "
                             f"{args.devices}.")
        devices = devices[:args.devices]

    stop = []

    def terminated(signum, frame):  # SIGTERM: finish the block in flight, then stop
        if stop:  # a second SIGTERM: stop now (committed blocks are kept either way)
            os._exit(128 + signum)
        stop.append(signum)

    signal.signal(signal.SIGTERM, terminated)
    quiet = jax.process_index() != 0
    summary = runs.certify_run(
        config, args.out, apply_fn, params, inputs, labels, devices=devices,
        batch_size=args.batch_size, chunk_size=args.chunk_size,
        progress=not args.no_progress, should_stop=lambda: bool(stop),
        log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))
    if summary is not None:
        _print_summary(args.out, summary)
    return 0


def _print_summary(run_dir: str, summary: dict) -> None:
    key = "certified_accuracy" if summary["labels"] else "certified_fraction"
    print(f"\n{run_dir}: {summary['inputs']} of {summary['num_inputs']} inputs"
          f"{'' if summary['complete'] else ' (partial)'}; sigma {summary['sigma']:g}, "
          f"n0 {summary['n0']}, n {summary['n']:,}, alpha {summary['alpha']:g}, "
          f"{summary['method']}")
    if summary.get("question"):
        print(summary["question"])
    decided = summary["method"] == "sequential" and summary["radius"] is not None
    print(f"{summary['measure']} {'at r' if decided else 'by radius'}:")
    print("  " + "  ".join(f"{p['radius']:.3g}:{p['fraction']:.3f}" for p in summary[key]))
    if summary["inputs"]:
        t = summary["throughput"]
        acr = summary["average_certified_radius"]
        print(("" if acr is None else f"average certified radius {acr:.4g}, ")
              + f"abstain rate {summary['abstain_rate']:.3f}, samples per input "
              f"{summary['samples']['per_input_mean']:,.0f}")
        if t["seconds"]:
            print(f"{t['inputs_per_second']:.3g} inputs/s, "
                  f"{t['forward_passes_per_second']:.3g} forward passes/s per process"
                  + (f"; {t['job_forward_passes_per_second']:.3g} forward passes/s over "
                     f"{t['processes']} processes" if t["processes"] > 1 else ""))
    print(f"wrote {os.path.join(run_dir, 'rows.jsonl')}, summary.json, certified_accuracy.png")


def _shifts(values: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values or []:
        name, sep, amount = v.partition("=")
        try:
            out[name] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"--shift must be NAME=AMOUNT (raw units), got {v!r}.")
    return out


def _audit(args: argparse.Namespace) -> int:
    from rpjax._src import durable

    # before any import of the model or data; creates nothing (a failure leaves no --out)
    durable.check_output_dir("--out", args.out, create=False)
    from rpjax._src.runs import audit as _run_audit

    settings = _run_audit.settings_of(
        sigmas=args.sigma, ns=args.n, n0=args.n0, alpha=args.alpha, mode=args.mode,
        ks=args.k, max_advantage=args.max_advantage, attack_people=args.attack_people,
        attack_queries=args.attack_queries, attack_grid=args.attack_grid,
        attacker_samples=args.attacker_samples, num_points=args.grid_points,
        refine_steps=args.refine_steps)
    settings["shifts"] = _shifts(args.shift)
    try:
        prepared = _run_audit.prepare(model=args.model, data=args.data,
                                      sensitive=args.sensitive, out=args.out,
                                      checkpoint=args.checkpoint, people=args.people,
                                      seed=args.seed, settings=settings)
    except (ValueError, TypeError) as err:
        raise _flag_error(err, {"model": args.model, "data": args.data,
                                "checkpoint": args.checkpoint, "seed": args.seed,
                                "people": args.people}) from None
    paths = _run_audit.run(prepared, args.out, progress=not args.no_progress)
    print(f"rpjax audit: {prepared['record']['people']} people, attributes "
          f"{', '.join(prepared['sensitive'])}; wrote {paths['report']}, {paths['summary']} "
          f"and {len(paths) - 2} plots")
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from rpjax._src import runs

    try:
        summary = runs.summarize(args.run)
    except (ValueError, TypeError) as err:  # the runs layer names the run "out": here RUN
        text = str(err)
        raise type(err)(text[4:] if text.startswith("out ") else text) from None
    _print_summary(args.run, summary)
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the `rpjax` command (kept importable for docs and tests).

    `command`: build only that subcommand's arguments (the others get their one-line help),
    so that `rpjax --help` (command "") does not import JAX for the defaults `certify` and
    `certify-demo` state; None builds them all."""
    from rpjax._src.experiments import names  # the registry's names; imports nothing

    def wanted(name: str) -> bool:
        return command is None or command == name

    parser = argparse.ArgumentParser(
        prog="rpjax",
        description="Robust Privacy certification engine (randomized smoothing in JAX).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "certify-demo", help="train a small insurance MLP and certify test people",
        description="Train a small MLP on the bundled insurance data and certify test people.")
    demo.set_defaults(func=_certify_demo)
    if wanted("certify-demo"):
        _demo_arguments(demo)

    rep = sub.add_parser(
        "reproduce", help="run the paper's experiments on the bundled data",
        description="Run the paper's experiments on the bundled data; write OUT/report.md, "
                    "OUT/summary.json, and each experiment's JSON, CSV, Markdown and plots "
                    "under OUT/<experiment>/, each file atomically. An OUT holding a finished "
                    "run is added to (its report and summary then cover every experiment in "
                    "it) unless that would overwrite something, which is refused unless "
                    "--overwrite is given.")
    rep.add_argument("experiment", nargs="?", default="all",
                     choices=["all", *names.EXPERIMENTS],
                     help="which experiment (default: all; frontier reuses inversion's sweep "
                          "when run together, else runs it first)")
    rep.add_argument("--tiny", action="store_true",
                     help="seconds per experiment, to test the pipeline (its numbers mean "
                          "nothing)")
    rep.add_argument("--quick", action="store_true",
                     help="small settings (minutes per experiment on 2 CPU cores)")
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

    cert = sub.add_parser(
        "certify", help="certify every input of a data file with your model (resumable)",
        description="Certify every input of a .npy/.npz file with a model from a factory. "
                    "Rows are committed to OUT/ in fsynced blocks; rerunning the command (or "
                    "--resume) continues an interrupted run; a different configuration is "
                    "refused. Under jax.distributed every process takes its share of blocks.")
    cert.set_defaults(func=_certify)
    if wanted("certify"):
        _certify_arguments(cert)

    aud = sub.add_parser(
        "audit", help="audit what a release of your model reveals about sensitive attributes",
        description="Audit a model over a data file (.npz with x, optional y, the feature "
                    "names 'columns', optional 'offset' / 'scale' (raw = offset + scale * x) "
                    "and 'low' / 'high' sweep ranges): for each --sensitive column (continuous) "
                    "or one-hot group NAME=* (categorical), the attribute intervals or "
                    "category sets of the base model and of the smoothed releases, the "
                    "leakage bound and the budget, and the attackers against the hardened "
                    "release. Writes OUT/report.md, OUT/summary.json and plots; finished "
                    "sections are kept in OUT/parts, so rerunning the same command continues "
                    "an interrupted audit.")
    aud.add_argument("--model", required=True, help="MODULE:FACTORY (or path/to/file.py:"
                     "FACTORY), as for rpjax certify")
    aud.add_argument("--checkpoint", help="restore the parameters from this orbax directory")
    aud.add_argument("--data", required=True, help="the .npz data file")
    aud.add_argument("--sensitive", action="append", required=True, metavar="COLUMN",
                     help="a column (continuous) or a one-hot group NAME (columns NAME=VALUE); "
                          "repeat for several")
    aud.add_argument("--sigma", type=float, action="append",
                     help="noise std in input units (repeat; default 0.25, 0.5, 1)")
    aud.add_argument("--n", type=int, action="append", help="samples per answer (repeat)")
    aud.add_argument("--n0", type=int, help="selection samples")
    aud.add_argument("--alpha", type=float, help="failure probability")
    aud.add_argument("--mode", choices=["predict", "certify", "always_label"],
                     help="the hardened release's mode (default predict)")
    aud.add_argument("--k", type=int, action="append", help="answers of a k-answer bound "
                     "(repeat)")
    aud.add_argument("--max-advantage", type=float, help="the budget's cap on the advantage "
                     "bound")
    aud.add_argument("--shift", action="append", metavar="NAME=AMOUNT",
                     help="the leakage bound's move of a continuous attribute, raw units "
                          "(default: one scale unit)")
    aud.add_argument("--people", type=int, default=100, help="audit the first P rows "
                     "(default 100)")
    aud.add_argument("--grid-points", type=int, default=51, help="sweep points (default 51)")
    aud.add_argument("--refine-steps", type=int, default=10,
                     help="bisection steps per interval end (default 10)")
    aud.add_argument("--attack-people", type=int, help="people attacked (0: no attackers)")
    aud.add_argument("--attack-queries", type=int, action="append",
                     help="the attackers' query counts (repeat)")
    aud.add_argument("--attack-grid", type=int, help="the attacker's grid points")
    aud.add_argument("--attacker-samples", type=int,
                     help="the attacker's Monte Carlo samples per candidate")
    aud.add_argument("--seed", type=int, default=0, help="the noise key is fold_in(key(SEED), "
                     "1), as in rpjax reproduce (default 0)")
    aud.add_argument("--out", required=True, help="the output directory")
    aud.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    aud.set_defaults(func=_audit)

    summ = sub.add_parser(
        "summarize", help="rewrite a certify run's rows.jsonl, summary.json and plot",
        description="Rewrite RUN/rows.jsonl, RUN/summary.json and RUN/certified_accuracy.png "
                    "from the committed rows of a certify run (complete or not).")
    summ.add_argument("run", help="the run directory")
    summ.set_defaults(func=_summarize)
    return parser


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
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
    demo.add_argument("--price", type=float, default=None,
                      help="sequential, no --radius: the expected radius (units of sigma) an "
                           "estimation sample must add to be spent; each person's n is "
                           f"planned from its selection votes (default {_price_default()})")
    demo.add_argument("--json", default=None, help="also write the result to this JSON file")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _certify_arguments(cert: argparse.ArgumentParser) -> None:
    cert.add_argument("--model", help="MODULE:FACTORY (or path/to/file.py:FACTORY); the "
                      "factory, called with no arguments, returns (apply_fn, params) or a "
                      "flax.nnx.Module (settings such as a weights path: read them in the "
                      "factory, e.g. from an environment variable)")
    cert.add_argument("--checkpoint", help="restore the parameters from this orbax "
                      "StandardCheckpointer directory: the tree of the factory's params "
                      "(for an nnx.Module, nnx.split(module)[1]), same structure, shapes "
                      "and dtypes")
    cert.add_argument("--data", help=".npy (inputs) or .npz (inputs and optional labels), "
                      "memory-mapped")
    cert.add_argument("--inputs-key", help="the inputs' array in a .npz (default: its only "
                      "array, else the first of x, inputs, images, data)")
    cert.add_argument("--labels-key", help="the labels' array in a .npz (default: the first "
                      "of y, labels, targets present, else none)")
    cert.add_argument("--sigma", type=float, help="noise std, in the inputs' units")
    d = certify_defaults()  # the dataclasses' defaults, stated once
    cert.add_argument("--n0", type=int, help=f"selection samples (default {d['n0']})")
    cert.add_argument("--n", type=int, help="estimation samples, n_max with --method "
                      f"sequential (default {d['n']})")
    cert.add_argument("--alpha", type=float, help=f"failure probability (default {d['alpha']})")
    cert.add_argument("--num-classes", type=int, help="classes (default: the model's logits)")
    cert.add_argument("--seed", type=int, help="PRNG seed of the noise, an integer in "
                      "[0, 2**64) kept at full width, the key of rpjax.certify(key=SEED) "
                      f"(default {d['seed']})")
    cert.add_argument("--method", choices=["cohen", "sequential"],
                      help="cohen: n samples per input (default); sequential: stop each input "
                           "once decided")
    cert.add_argument("--radius", type=float, help="sequential: decide robustness at this "
                      "radius (default: the largest radius, with a budget)")
    cert.add_argument("--price", type=float, help="sequential, no --radius: the expected "
                      "radius (units of sigma) an estimation sample must add to be spent "
                      f"(default {_price_default()})")
    cert.add_argument("--common-noise", action="store_const", const=True, default=None,
                      help="the same noise draws for every input")
    cert.add_argument("--block", type=int, help="inputs per committed block: the most a crash "
                      f"can lose, and how often the bar moves (default {d['block']})")
    cert.add_argument("--batch-size", type=int, help="inputs per device step (speed only)")
    cert.add_argument("--chunk-size", type=int, help="samples per device step (speed only)")
    cert.add_argument("--devices", type=int, help="local devices to use (default all)")
    cert.add_argument("--out", required=True, help="the run directory")
    cert.add_argument("--resume", action="store_true",
                      help="continue the run in --out; settings not given come from its "
                           "config.json (an existing run is continued without it too)")
    cert.add_argument("--distributed", action="store_true",
                      help="jax.distributed.initialize() with its auto-detection (TPU pods, "
                           "Slurm, Open MPI)")
    cert.add_argument("--coordinator", help="multi-process: coordinator HOST:PORT")
    cert.add_argument("--num-processes", type=int, help="multi-process: number of processes")
    cert.add_argument("--process-id", type=int, help="multi-process: this process's index")
    cert.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rpjax` console script. A closed standard output (`rpjax ... |
    head`) ends it quietly with status 0, as other Unix tools."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull so that the flush at exit does not raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError) as err:
        if args.func is _certify:  # the runs layer speaks in settings' names
            err = _flag_error(err, vars(args))
        print(f"rpjax: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rpjax: interrupted; committed work is kept (rerun the same command to resume).",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
