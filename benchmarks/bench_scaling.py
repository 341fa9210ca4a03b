"""Scaling of `rpjax certify` over simulated devices and processes on one CPU (issue 15).

Every configuration is a fresh `rpjax certify` run of the same model (`scaling_model.py:mlp`,
a fixed-seed 64 -> 512 -> 512 -> 10 MLP) on the same synthetic .npz, each in its own
subprocess(es), so process start, imports, `jax.distributed` and compilation are paid the same
way by all:

| key | processes | devices per process | how |
|---|---|---|---|
| `p1_d1` | 1 | 1 | the baseline |
| `p1_d2` | 1 | 2 | `XLA_FLAGS=--xla_force_host_platform_device_count=2`, `--devices 2` |
| `p1_d4` | 1 | 4 | the same with 4 |
| `p2_d1` | 2 | 1 | `jax.distributed` on 127.0.0.1 (`--coordinator/--num-processes/--process-id`) |
| `p2_d2` | 2 | 2 | both |

The configurations run in rounds (3 by default): each round runs every configuration once, the
baseline first, and each run is compared with its own round's baseline, so the shared machine's
load drifting over minutes cancels within a round; a configuration's numbers are the medians
over rounds of its per-round rates and ratios (each run is in the JSON too).

All of them share the machine's CPU cores (2 here), so ideal scaling is flat: a ratio of 1 to
the baseline. Measured per configuration:

- steady-state throughput, from the run's `parts/times-*.jsonl` (per committed block: seconds
  of certification, forward passes), leaving out the first block of each process (it pays
  compilation): `aggregate_fwd_per_s` = the steady forward passes of all processes / the
  largest steady seconds of any process (the processes run at the same time, so this is the
  rate at which the job as a whole got through them, counted against its slowest process);
  also `sum_of_process_rates` (each process's steady passes / its own steady seconds, summed)
  and, robust to bursts of load from other work on a shared machine, `median_block_rate` (each
  process's median over its steady blocks of forward passes / seconds, summed) and
  `median_ratio` (that / the baseline's);
- end to end: all forward passes of the run (inputs x (n0 + n)) / wall seconds from launching
  the subprocess(es) to the last one's exit (`e2e_fwd_per_s`);
- `ratio` = `aggregate_fwd_per_s` / the round's baseline's, `overhead` = 1 - ratio (the cost of
  splitting; negative when the split ran faster), and `e2e_ratio` / `e2e_overhead` the same
  end to end;
- `rows_equal_baseline`: the run's `rows.jsonl` is byte for byte the baseline's (the rows do
  not depend on how the work was split), for every run.

Examples:
  python benchmarks/bench_scaling.py --quick --json /tmp/scaling.json  # CI smoke run (~70 s)
  python benchmarks/bench_scaling.py          # full run -> benchmarks/results/bench_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import rpjax.experiments

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.join(HERE, "scaling_model.py")
DEFAULT_JSON = os.path.join(HERE, "results", "bench_scaling.json")
BASELINE = "p1_d1"
# key -> (processes, devices per process)
CONFIGS: dict[str, tuple[int, int]] = {
    "p1_d1": (1, 1), "p1_d2": (1, 2), "p1_d4": (1, 4), "p2_d1": (2, 1), "p2_d2": (2, 2)}
# full: 3 rounds; 96 inputs in 8 blocks of 12 (4 per process with 2 processes), n = 1e4
FULL = {"inputs": 96, "block": 12, "n": 10_000, "n0": 100, "rounds": 3}
# quick: 1 round; 16 inputs in 8 blocks of 2 (4 per process with 2 processes), n = 400
QUICK = {"inputs": 16, "block": 2, "n": 400, "n0": 20, "rounds": 1}
SIGMA, ALPHA, SEED = 0.5, 1e-3, 0
TIMEOUT_S = 900
ROUNDS = ("each round runs every configuration once, the baseline first; a run's ratios are "
          "to its round's baseline, and a configuration's ratio is the median over rounds of "
          "its per-round ratios (so slow drift of the shared machine's load cancels within a "
          "round); rows are compared with the first baseline run's")
THROUGHPUT = ("steady state: per process, its blocks after its first (which pays compilation); "
              "aggregate_fwd_per_s = sum over processes of steady forward passes / max over "
              "processes of steady seconds (block seconds = certification of the block, "
              "excluding reading its inputs and writing its rows); sum_of_process_rates = sum "
              "over processes of steady passes / steady seconds. End to end: inputs x (n0 + n) "
              "/ wall seconds from launch to the last process's exit (process start, imports, "
              "jax.distributed, compilation, merge, summary and plot included). ratio = "
              "aggregate_fwd_per_s / the baseline's; overhead = 1 - ratio. Robust to bursts of "
              "load from other work: median_block_rate = sum over processes of the median over "
              "its steady blocks of forward passes / seconds; median_ratio = median_block_rate "
              "/ the baseline's.")


def rpjax_command() -> str:
    """The installed `rpjax` console script (next to this Python, else on PATH)."""
    path = os.path.join(os.path.dirname(sys.executable), "rpjax")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    found = shutil.which("rpjax")
    if found is None:
        raise RuntimeError("no `rpjax` console script next to sys.executable or on PATH "
                           "(pip install -e .)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
    """The subprocess environment: CPU only, `devices` simulated host devices, and this
    checkout's `rpjax` first on the path (the console script imports whatever is installed)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return env


def run_config(key: str, processes: int, devices: int, *, data: str, out: str,
               scale: dict[str, int], workdir: str) -> dict[str, Any]:
    """Launches one configuration's `rpjax certify` process(es), waits, returns its timings."""
    argv = [rpjax_command(), "certify", "--model", f"{MODEL}:mlp", "--data", data,
            "--sigma", str(SIGMA), "--n0", str(scale["n0"]), "--n", str(scale["n"]),
            "--alpha", str(ALPHA), "--seed", str(SEED), "--block", str(scale["block"]),
            "--devices", str(devices), "--out", out, "--no-progress"]
    if processes > 1:
        port = _free_port()
        launches = [argv + ["--coordinator", f"127.0.0.1:{port}", "--num-processes",
                            str(processes), "--process-id", str(k)] for k in range(processes)]
    else:
        launches = [argv]
    logs = [open(os.path.join(workdir, f"{key}-{k}.log"), "w+b") for k in range(processes)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=_env(devices), stdout=log, stderr=subprocess.STDOUT)
             for cmd, log in zip(launches, logs, strict=True)]
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.perf_counter() - t0
    for k, (code, log) in enumerate(zip(codes, logs, strict=True)):
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
        if code != 0:
            raise RuntimeError(f"{key}: process {k} exited with {code}:\n{text[-3000:]}")
    per_process = []
    for k in range(processes):
        with open(os.path.join(out, "parts", f"times-{k:05d}.jsonl"), encoding="utf-8") as f:
            times = [json.loads(line) for line in f]  # in the order the blocks ran
        if not times or any(t["devices"] != devices for t in times):
            raise RuntimeError(f"{key}: process {k} timed {times!r}, expected blocks on "
                               f"{devices} devices")
        steady = times[1:]
        s_sec = sum(t["seconds"] for t in steady)
        s_fwd = sum(t["forward_passes"] for t in steady)
        per_process.append({
            "blocks": [t["block"] for t in times], "first_block_s": times[0]["seconds"],
            "steady_blocks": len(steady), "steady_s": s_sec, "steady_forward_passes": s_fwd,
            "steady_fwd_per_s": s_fwd / s_sec if s_sec > 0 else None,
            "median_block_fwd_per_s": (float(np.median(
                [t["forward_passes"] / t["seconds"] for t in steady])) if steady else None),
            "block_s": [t["seconds"] for t in times]})
    if any(p["steady_blocks"] == 0 for p in per_process):
        raise RuntimeError(f"{key}: a process certified a single block; no steady state "
                           "(more inputs or a smaller block)")
    fwd_total = scale["inputs"] * (scale["n0"] + scale["n"])
    steady_fwd = sum(p["steady_forward_passes"] for p in per_process)
    steady_s = max(p["steady_s"] for p in per_process)
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    return {"processes": processes, "devices_per_process": devices,
            "wall_s": wall, "e2e_fwd_per_s": fwd_total / wall, "forward_passes": fwd_total,
            "steady_forward_passes": steady_fwd, "steady_s_max": steady_s,
            "aggregate_fwd_per_s": steady_fwd / steady_s,
            "sum_of_process_rates": sum(p["steady_fwd_per_s"] for p in per_process),
            "median_block_rate": sum(p["median_block_fwd_per_s"] for p in per_process),
            "per_process": per_process,
            "summary_complete": summary["complete"],
            "load_average_before": list(load_before), "load_average_after":
                list(os.getloadavg())}


def _rows_bytes(run_dir: str) -> bytes:
    with open(os.path.join(run_dir, "rows.jsonl"), "rb") as f:
        return f.read()


RATIOS = ("ratio", "median_ratio", "e2e_ratio")


def print_table(result: dict[str, Any]) -> None:
    """The table of configurations against the baseline (medians over rounds)."""
    print(f"\n{'config':7s} {'proc':>4s} {'dev':>3s} {'steady fwd/s':>13s} {'ratio':>6s} "
          f"{'overhead':>8s} {'median-block ratio':>18s} {'wall s':>7s} {'e2e ratio':>9s} "
          f"{'rows equal':>10s}  ratio per round")
    for key, r in result["configs"].items():
        rounds = " ".join(f"{x['ratio']:.3f}" for x in r["runs"])
        print(f"{key:7s} {r['processes']:4d} {r['devices_per_process']:3d} "
              f"{r['aggregate_fwd_per_s']:13.4g} {r['ratio']:6.3f} {r['overhead']:+8.3f} "
              f"{r['median_ratio']:18.3f} {r['wall_s']:7.1f} {r['e2e_ratio']:9.3f} "
              f"{str(r['rows_equal_baseline']):>10s}  {rounds}")
    base = result["configs"][result["config"]["baseline"]]["runs"]
    rates = [x["aggregate_fwd_per_s"] for x in base]
    print(f"baseline steady fwd/s per round: {', '.join(f'{x:.4g}' for x in rates)} "
          f"(max / min {max(rates) / min(rates):.3f}: the machine's drift)")
    print(f"rows identical across all configurations: {result['rows_all_equal']}")
    sys.stdout.flush()


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A configuration's numbers over rounds: medians of each round's rates and ratios."""
    out: dict[str, Any] = {
        k: float(np.median([r[k] for r in runs]))
        for k in ("aggregate_fwd_per_s", "median_block_rate", "e2e_fwd_per_s", "wall_s",
                  *RATIOS)}
    out["overhead"] = 1.0 - out["ratio"]
    out["e2e_overhead"] = 1.0 - out["e2e_ratio"]
    out["rows_equal_baseline"] = all(r["rows_equal_baseline"] for r in runs)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['inputs']} inputs, n = {QUICK['n']}, one round (CI smoke run)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma list of {', '.join(CONFIGS)} ({BASELINE} is always run, first "
                        "in each round)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds of all configurations (default {FULL['rounds']}; quick "
                        f"{QUICK['rounds']})")
    p.add_argument("--json", default=DEFAULT_JSON, help="where to write the JSON results")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    for k in keys:
        if k not in CONFIGS:
            p.error(f"--configs: unknown configuration {k!r}; choose from {', '.join(CONFIGS)}")
    keys = [BASELINE] + [k for k in keys if k != BASELINE]
    scale = QUICK if args.quick else FULL
    rounds = args.rounds if args.rounds is not None else scale["rounds"]
    if rounds < 1:
        p.error(f"--rounds must be >= 1, got {rounds}")
    result: dict[str, Any] = {
        "config": {"quick": args.quick, **scale, "rounds": rounds, "sigma": SIGMA,
                   "alpha": ALPHA, "seed": SEED,
                   "model": "benchmarks/scaling_model.py:mlp (64 -> 512 -> 512 -> 10, ReLU)",
                   "configs": {k: {"processes": CONFIGS[k][0],
                                   "devices_per_process": CONFIGS[k][1]} for k in keys},
                   "baseline": BASELINE, "throughput": THROUGHPUT, "rounds_note": ROUNDS,
                   "command": "rpjax certify (console script, one subprocess per process)"},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.machine(),
                    "note": "all configurations share these cores; the machine is shared with "
                            "other work (load averages recorded per run)"},
        "versions": rpjax.experiments.versions(),
        "configs": {k: {"processes": CONFIGS[k][0], "devices_per_process": CONFIGS[k][1],
                        "runs": []} for k in keys},
    }
    with tempfile.TemporaryDirectory(prefix="rpjax-scaling-") as tmp:
        sys.path.insert(0, HERE)
        import scaling_model

        data = scaling_model.write_data(os.path.join(tmp, "data.npz"), scale["inputs"])
        baseline_rows = b""
        for rnd in range(rounds):
            base: dict[str, Any] = {}
            for key in keys:
                processes, devices = CONFIGS[key]
                print(f"[round {rnd}, {key}] {processes} process(es) x {devices} device(s) ...",
                      flush=True)
                out = os.path.join(tmp, f"{key}-{rnd}")
                rec = run_config(key, processes, devices, data=data, out=out, scale=scale,
                                 workdir=tmp)
                rows = _rows_bytes(out)
                shutil.rmtree(out)
                if not baseline_rows:
                    baseline_rows = rows
                base = base or rec  # this round's baseline (run first)
                rec["round"] = rnd
                rec["ratio"] = rec["aggregate_fwd_per_s"] / base["aggregate_fwd_per_s"]
                rec["median_ratio"] = rec["median_block_rate"] / base["median_block_rate"]
                rec["e2e_ratio"] = rec["e2e_fwd_per_s"] / base["e2e_fwd_per_s"]
                rec["rows_equal_baseline"] = rows == baseline_rows
                rec["rows"] = rows.count(b"\n")
                entry = result["configs"][key]
                entry["runs"].append(rec)
                entry.update(_aggregate(entry["runs"]))
                print(f"[round {rnd}, {key}] steady {rec['aggregate_fwd_per_s']:.4g} fwd/s "
                      f"(ratio {rec['ratio']:.3f}), wall {rec['wall_s']:.1f} s, rows equal "
                      f"{rec['rows_equal_baseline']}", flush=True)
                result["rows_all_equal"] = all(
                    r["rows_equal_baseline"] for c in result["configs"].values()
                    for r in c["runs"])
                rpjax.experiments.write_json(args.json, result)
    print_table(result)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
