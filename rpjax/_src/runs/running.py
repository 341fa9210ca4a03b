"""Running: certify the blocks still to do, commit each one, then summarize."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from rpjax._src import durable
from rpjax._src import validate as _validate
from rpjax._src.certify import certify as _certify
from rpjax._src.plan import (
    Placement,
)
from rpjax._src.runs.blocks import (
    WriteFailed,
    _encode,
    _rows,
    lock_run,
    part_path,
    scan_part,
    scan_run,
)
from rpjax._src.runs.data import ArrayFile
from rpjax._src.runs.spec import RunSpec, prepare_run_dir
from rpjax._src.runs.summary import summarize


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def certify_run(config: RunSpec, run_dir: str, apply_fn: Callable, params: Any,
                inputs: ArrayFile, labels: ArrayFile | None, *,
                devices: Sequence[jax.Device] | None = None, batch_size: int | None = None,
                chunk_size: int | None = None, progress: bool = True,
                should_stop: Callable[[], bool] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Certifies every input of a run not yet committed, then (process 0) summarizes.

    Every process of a multi-controller job calls this with the same arguments; each takes
    every `jax.process_count()`-th block still to do, certifies it on its local devices
    (`devices`, default `jax.local_devices()`), appends its rows and fsyncs them. Process 0
    then merges all parts into `rows.jsonl` and writes `summary.json` and
    `certified_accuracy.png` (see `summarize`).

    Args:
      config: from `make_config` (or `read_config` for a resume).
      run_dir: the run directory (`--out`).
      apply_fn, params, inputs, labels: from `make_config`.
      devices: local devices to shard samples over.
      batch_size, chunk_size: see `rpjax.certify` (they change speed, never the rows).
      progress: a tqdm bar on process 0 (inputs/s, forward passes/s, ETA).
      should_stop: checked after each committed block; when it returns True the run stops there by
        raising KeyboardInterrupt (the CLI's graceful SIGTERM).
      log: where to print one-line status messages (default: nowhere).

    Returns:
      The summary on process 0, None on the others.
    """
    log = log or (lambda _msg: None)
    pid = jax.process_index()
    devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
    if pid == 0:  # refuse a foreign --out before creating the lock in it (the other
        # processes check after process 0 wrote config.json, as before)
        prepare_run_dir(run_dir, config, write=False)
    else:
        run_dir = durable.check_output_dir("out", run_dir)
    lock = lock_run(run_dir, pid)
    try:
        return _certify_locked(config, run_dir, apply_fn, params, inputs, labels,
                               devices=devices, batch_size=batch_size, chunk_size=chunk_size,
                               progress=progress, should_stop=should_stop, log=log)
    except OSError as err:
        raise WriteFailed(
            f"out {run_dir}: writing the run failed ({err.strerror or err}"
            f"{f': {err.filename}' if err.filename else ''}); the committed blocks are kept: "
            "free space (or raise the limit) and rerun the same command to resume.") from None
    finally:
        os.close(lock)


def _certify_locked(config: RunSpec, run_dir: str, apply_fn: Callable, params: Any,
                    inputs: ArrayFile, labels: ArrayFile | None, *,
                    devices: tuple[jax.Device, ...], batch_size: int | None,
                    chunk_size: int | None, progress: bool,
                    should_stop: Callable[[], bool] | None,
                    log: Callable[[str], None]) -> dict[str, Any] | None:
    pid, nproc = jax.process_index(), jax.process_count()
    if pid == 0:
        existed = prepare_run_dir(run_dir, config, write=True)
    _barrier("rpjax-config")
    if pid != 0:
        existed = prepare_run_dir(run_dir, config, write=False)
    os.makedirs(os.path.join(run_dir, "parts"), exist_ok=True)
    done = scan_run(run_dir, config)
    _barrier("rpjax-scan")
    own = part_path(run_dir, pid)
    scan = scan_part(own, config)
    if scan.size > scan.committed_bytes:  # a torn tail: cut it off before appending
        durable.truncate_durably(own, scan.committed_bytes)
        log(f"process {pid}: discarded a torn tail of {scan.size - scan.committed_bytes} "
            f"bytes in {own}")
    todo = [b for b in range(config.num_blocks) if b not in done]
    mine = todo[pid::nproc]
    if existed:
        log(f"resuming {run_dir}: {len(done)} of {config.num_blocks} blocks committed, "
            f"{len(todo)} to do" + (f" ({len(mine)} on process {pid})" if nproc > 1 else ""))
    key = _validate.key("seed", config.seed)  # as rpjax.certify(key=seed): all 64 bits
    bar = None
    if progress and pid == 0 and mine:
        from tqdm.auto import tqdm

        total = sum(config.block_range(b)[1] - config.block_range(b)[0] for b in mine)
        bar = tqdm(total=total, unit="input", desc="certify", dynamic_ncols=True)
    passes = 0
    t_all = time.perf_counter()
    try:
        for b in mine:
            start, stop = config.block_range(b)
            inputs.check_unchanged()
            xb = inputs.read(start, stop)
            yb = None if labels is None else labels.read(start, stop)
            t0 = time.perf_counter()
            if config.method == "sequential":
                placement = Placement(devices=devices)
            else:
                placement = Placement(devices=devices, batch_size=batch_size,
                                      chunk_size=chunk_size)
            cert = _certify(apply_fn, params, xb, key, num_classes=config.num_classes,
                            config=config.smoothing, rule=config.rule, placement=placement,
                            ids=None if config.common_noise else np.arange(start, stop))
            seconds = time.perf_counter() - t0
            fp = int(cert.forward_passes)
            inputs.check_unchanged()  # the rows' inputs were read from the file hashed
            durable.append_durably(own, _encode(_rows(config, b, cert, yb)))
            durable.append_durably(part_path(run_dir, pid, "times"), (json.dumps(
                {"block": b, "seconds": seconds, "forward_passes": fp, "process": pid,
                 "devices": len(devices)}) + "\n").encode())
            passes += fp
            if bar is not None:
                bar.update(stop - start)
                rate = passes / max(time.perf_counter() - t_all, 1e-9)
                bar.set_postfix_str(f"{rate:.3g} fwd/s", refresh=False)
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    _barrier("rpjax-done")
    if pid != 0:
        return None
    return summarize(run_dir)
