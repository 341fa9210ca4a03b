"""Durable certification runs: `rpjax certify` and `rpjax summarize` as library functions.

The package is cut along what a run is made of: `data` (memory-mapped `.npy` / `.npz`),
`model` (the factory and the parameters' hash), `spec` (the `RunSpec` and `config.json`),
`blocks` (the lock, the part files, committed blocks), `running` and `summary`.

A run certifies every input of a data file (`.npy` or `.npz`, read through memory maps one
block at a time) with a user's model and writes, under its directory `RUN/`:

- `config.json`: everything that fixes the results (model spec and a hash of its parameters,
  the data file's SHA-256, sigma, n0, n, alpha, seed, method, block size, PRNG) plus the
  versions that ran it. It is written before the first block; a run whose configuration
  differs is refused, never mixed in.
- `parts/rows-PPPPP.jsonl`: one JSON row per input, process `P`'s blocks, appended one
  committed block at a time (written and fsynced before the block counts). Block `b` holds
  inputs `[b * block, (b + 1) * block)` in order; a block is committed when all of its rows
  are present and parse. A torn tail (a crash in the middle of an append) is detected on
  resume and cut off; its inputs are certified again.
- `parts/times-PPPPP.jsonl`: per block wall time and forward passes (throughput only; kept
  out of the rows so that the rows of a resumed run equal those of an uninterrupted one).
- `rows.jsonl` (all rows, sorted by index), `summary.json` and `certified_accuracy.png`,
  written atomically by process 0 at the end and rewritable from the parts (`summarize`).

Input `i`'s noise is keyed by `(seed, i)` (`certify(..., ids=...)`), so its row is the same
whatever the block it was certified in, the number of devices or processes, and however
often the run was interrupted and resumed.

Scale-out follows JAX's multi-controller model: after `jax.distributed.initialize`, every
process scans the committed blocks, takes every `process_count`-th block still to do, shards
its samples over its local devices and appends to its own part file; process 0 merges and
summarizes after a barrier.
"""

from rpjax._src.runs.blocks import WriteFailed, iter_rows, lock_run, part_path, scan_part, scan_run
from rpjax._src.runs.data import ArrayFile, DataChanged, check_data, file_identity, open_data
from rpjax._src.runs.model import load_model, model_classes, params_sha256
from rpjax._src.runs.running import certify_run
from rpjax._src.runs.spec import (
    FORMAT,
    IDENTITY,
    DataSpec,
    ModelSpec,
    Provenance,
    RunSpec,
    config_differences,
    make_config,
    prepare_run_dir,
    read_config,
)
from rpjax._src.runs.summary import columns, plot_summary, radius_grid, summarize, summary_of

__all__ = [
    "FORMAT", "IDENTITY", "ArrayFile", "DataChanged", "DataSpec", "ModelSpec", "Provenance",
    "RunSpec", "WriteFailed", "certify_run", "check_data", "columns", "config_differences",
    "file_identity", "iter_rows", "load_model", "lock_run", "make_config", "model_classes",
    "open_data", "params_sha256", "part_path", "plot_summary", "prepare_run_dir",
    "radius_grid", "read_config", "scan_part", "scan_run", "summarize", "summary_of",
]
