"""What the deployed release's durable ledger costs: queries per second with and without it.

The model is the insurance task's MLP architecture (`rpjax.models.TabularMLP(11, 2,
hidden=(32, 32))`, the RAP experiment's), randomly initialised (`nnx.Rngs(0)`; training changes
the weights, not the cost of a forward pass), on standard-normal inputs (the task's
standardized features). The release: PREDICT, n = 1000, sigma = 1, fresh noise, one input
per query, through a bound querier (`release.querier(subject)`), as a deployment would be
asked. Releases timed:

- `none`: `Budget.unlimited()` and no ledger (the measurement release; counter nonces);
- `full_one` / `normal_one`: a ledger on disk (`durability="full"` / `"normal"`), every
  query about one subject (`Budget(max_answers=10**9)`);
- `full_distinct` / `normal_distinct`: a ledger on disk, every query about a new subject
  (`Budget(max_answers=1)`; the full run asks 10^4 subjects).

The releases are timed in interleaved blocks of `--block` queries (none, full_one, ...,
none, full_one, ...), so that a shared machine's load falls on all of them alike; a
release's seconds per query is the median over its blocks. The ledger's overhead is
reported two ways: (1) `overhead_fraction`, `(s_per_query(ledger) - s_per_query(none)) /
s_per_query(none)`, the end-to-end difference (on a shared machine the blocks' spread is
larger than the difference: read it with `block_s_per_query`); (2)
`ledger_in_release_fraction_of_query`, the seconds each query of the ledgered release spent
in its ledger calls (reserve + answered, timed inside the release, fsync included), mean over
the queries, over `s_per_query(none)` (goal: < 0.10). The ledger's cost alone (the same two
transactions in a loop, no model) is also timed. Each
release answers a warm-up query first (compile), not timed. Every timed query's label is
checked to be a label (-1, 0 or 1) and every ledgered release's count of answers is checked
against the ledger file, so the benchmark cannot time a release that answers nothing.

Examples:
  python benchmarks/bench_ledger.py --quick
  python benchmarks/bench_ledger.py --json /tmp/ledger.json
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from flax import nnx

import rpjax
import rpjax.experiments
from rpjax.models import TabularMLP, as_apply_fn
from rpjax.privacy import Budget, ReleaseConfig, RobustPrivacyRelease, Secret

DEFAULT_JSON = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "bench_ledger.json")
FULL = {"queries": 10_000, "block": 500, "ledger_only": 5_000}
QUICK = {"queries": 300, "block": 100, "ledger_only": 300}
RELEASES = ("none", "full_one", "full_distinct", "normal_one", "normal_distinct")
GOAL = 0.10


def make_release(name: str, folder: str, config: ReleaseConfig, secret: Secret):
    """`(release, subject_of(i))` for release `name` (ledger files under `folder`)."""
    apply_fn, params = as_apply_fn(TabularMLP(11, 2, hidden=(32, 32), rngs=nnx.Rngs(0)))
    if name == "none":
        rel = RobustPrivacyRelease(apply_fn, params, config, budget=Budget.unlimited(),
                                   secret=secret)
        return rel, None
    durability, subjects = name.split("_")
    budget = Budget(max_answers=10**9 if subjects == "one" else 1)
    rel = RobustPrivacyRelease(apply_fn, params, config, budget=budget, secret=secret,
                               ledger=os.path.join(folder, f"{name}.sqlite"),
                               durability=durability)
    return rel, os.path.join(folder, f"{name}.sqlite")


def _time_ledger_calls(release: RobustPrivacyRelease) -> list[float]:
    """Wraps the release's ledger calls (reserve, answered) with a timer; returns the list
    that collects each query's seconds in them (appended on `answered`)."""
    book, spent = release._book, []
    reserve, answered = book.reserve, book.answered
    started: list[float] = []

    def timed_reserve(*a, **k):
        t0 = time.perf_counter()
        out = reserve(*a, **k)
        started.append(time.perf_counter() - t0)
        return out

    def timed_answered(*a, **k):
        t0 = time.perf_counter()
        answered(*a, **k)
        spent.append(started.pop() + time.perf_counter() - t0)

    book.reserve, book.answered = timed_reserve, timed_answered
    return spent


def time_ledger_alone(folder: str, durability: str, distinct: bool, queries: int,
                      config: ReleaseConfig, secret: Secret) -> float:
    """Mean seconds of one reserve + answered pair of transactions (no model), on the ledger
    of a fresh release (its private `_book`, reached only by this benchmark)."""
    apply_fn, params = as_apply_fn(TabularMLP(11, 2, hidden=(32, 32), rngs=nnx.Rngs(0)))
    rel = RobustPrivacyRelease(
        apply_fn, params, config, budget=Budget(max_answers=10**9), secret=secret,
        ledger=os.path.join(folder, f"alone_{durability}_{distinct}.sqlite"),
        durability=durability)
    book = rel._book
    t0 = time.perf_counter()
    for i in range(queries):
        key = f"i:{i}" if distinct else "s:one"
        nonces = book.reserve([key], 10**9, config.alpha)
        book.answered(nonces)
    return (time.perf_counter() - t0) / queries


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"small run: {QUICK['queries']} queries per release")
    p.add_argument("--queries", type=int, default=None,
                   help=f"queries per release (default {FULL['queries']}, quick "
                        f"{QUICK['queries']})")
    p.add_argument("--block", type=int, default=None, help="queries per interleaved block")
    p.add_argument("--ledger-dir", default=None,
                   help="where the ledger files go (default: a temporary folder on disk)")
    p.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON results")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = QUICK if args.quick else FULL
    queries = preset["queries"] if args.queries is None else args.queries
    block = min(queries, preset["block"] if args.block is None else args.block)
    if queries < 1 or block < 1:
        raise SystemExit(f"--queries and --block must be >= 1 (got {queries}, {block})")
    folder = args.ledger_dir or tempfile.mkdtemp(prefix="rpjax-bench-ledger-")
    os.makedirs(folder, exist_ok=True)
    config = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=1.0, n=1000),
                           num_classes=2, mode="predict", noise="fresh")
    secret = Secret.generate()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((queries, 1, 11)).astype(np.float32)
    print(f"rpjax {rpjax.__version__}; {os.cpu_count()} CPU(s); {queries} one-input queries "
          f"per release in blocks of {block}; ledgers in {folder}", flush=True)

    releases = {name: make_release(name, folder, config, secret) for name in RELEASES}
    askers: dict[str, Any] = {}
    in_release: dict[str, list[float]] = {}
    for name, (rel, _) in releases.items():
        warm = rel.querier("warm-up")
        warm(xs[0])  # compile, untimed
        if name != "none":
            in_release[name] = _time_ledger_calls(rel)
        if name.endswith("_one") or name == "none":
            one = rel.querier("one")
            askers[name] = lambda i, one=one: one(xs[i])
        else:
            askers[name] = lambda i, rel=rel: rel.querier(i)(xs[i])
    blocks: dict[str, list[float]] = {name: [] for name in RELEASES}
    done = 0
    t_all = time.perf_counter()
    while done < queries:
        size = min(block, queries - done)
        for name in RELEASES:
            ask = askers[name]
            t0 = time.perf_counter()
            for i in range(done, done + size):
                label = int(ask(i)[0])
                if label not in (-1, 0, 1):
                    raise AssertionError(f"{name}: label {label}")
            blocks[name].append((time.perf_counter() - t0) / size)
        done += size
        print(f"  {done}/{queries} queries per release", flush=True)

    results: dict[str, Any] = {}
    base = statistics.median(blocks["none"])
    for name in RELEASES:
        s = statistics.median(blocks[name])
        rec: dict[str, Any] = {"s_per_query": s, "queries_per_s": 1.0 / s,
                               "block_s_per_query": blocks[name]}
        path = releases[name][1]
        if path is not None:
            with sqlite3.connect(path) as conn:
                answered = conn.execute(
                    "SELECT COUNT(*) FROM answers WHERE state = 'answered'").fetchone()[0]
            if answered != queries + 1:  # + the warm-up
                raise AssertionError(f"{name}: {answered} answers in the ledger")
            rec["overhead_fraction"] = (s - base) / base
            rec["ledger_answers_checked"] = int(answered)
            t = np.asarray(in_release[name])
            if t.size != queries:
                raise AssertionError(f"{name}: {t.size} timed ledger calls")
            rec["ledger_in_release_s_per_query"] = {
                "mean": float(t.mean()), "median": float(np.median(t)),
                "p99": float(np.quantile(t, 0.99)), "max": float(t.max())}
            rec["ledger_in_release_fraction_of_query"] = float(t.mean()) / base
        results[name] = rec
    alone = {f"{d}_{'distinct' if distinct else 'one'}":
             time_ledger_alone(folder, d, distinct, preset["ledger_only"], config, secret)
             for d in ("full", "normal") for distinct in (False, True)}
    out = {
        "config": {"queries": queries, "block": block, "quick": args.quick, "n": config.n,
                   "sigma": config.sigma, "mode": config.mode, "noise": config.noise,
                   "model": "TabularMLP(11, 2, hidden=(32, 32)), random init (nnx.Rngs(0))",
                   "inputs": "standard normal, one input per query",
                   "ledger_dir": folder, "goal_overhead_fraction": GOAL,
                   "cpu_count": os.cpu_count(),
                   "argv": list(sys.argv[1:] if argv is None else argv)},
        "versions": rpjax.experiments.versions(),
        "results": results,
        "ledger_alone_s_per_query": alone,
        "ledger_alone_fraction_of_query": {k: v / base for k, v in alone.items()},
        "total_wall_s": time.perf_counter() - t_all,
    }
    rpjax.experiments.write_json(args.json, out)
    print()
    print(f"{'release':<16} {'ms/query':>9} {'queries/s':>10} {'e2e diff':>9} "
          f"{'ledger ms (mean/p99)':>21} {'ledger/query':>13}")
    for name, rec in results.items():
        over = rec.get("overhead_fraction")
        if over is None:
            print(f"{name:<16} {rec['s_per_query'] * 1e3:>9.3f} {rec['queries_per_s']:>10.1f}")
            continue
        led = rec["ledger_in_release_s_per_query"]
        frac = rec["ledger_in_release_fraction_of_query"]
        verdict = "PASS" if frac < GOAL else "FAIL"
        print(f"{name:<16} {rec['s_per_query'] * 1e3:>9.3f} {rec['queries_per_s']:>10.1f} "
              f"{over:>+9.1%} {led['mean'] * 1e3:>10.3f}/{led['p99'] * 1e3:<10.3f} "
              f"{frac:>8.1%} {verdict}")
    print("ledger alone (reserve + answered), ms/query and fraction of a `none` query: "
          + ", ".join(f"{k} {v * 1e3:.3f} ({v / base:.1%})" for k, v in alone.items()))
    print(f"\nwrote {args.json} (total {out['total_wall_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
