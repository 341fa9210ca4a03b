"""Rows and committed blocks: the lock, the part files, scanning and encoding."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from rpjax._src.runs.spec import LOCK_PREFIX, RunSpec


def lock_run(run_dir: str, process: int) -> int:
    """Takes `RUN/lock-PPPPP` (`flock`, exclusive, non-blocking) for process `process`; returns
    the open descriptor, which holds the lock until closed (or the process ends).

    Raises:
      ValueError naming `--out`: another `rpjax certify` (the same process index) is writing
        to `run_dir`.
    """
    path = os.path.join(run_dir, f"{LOCK_PREFIX}{process:05d}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(f"out {run_dir}: cannot create the lock file {path} "
                         f"({err.strerror or err}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"out {run_dir}: another rpjax certify is writing to this run "
                         f"(it holds {path}); wait for it to finish, or use another "
                         "out.") from None
    return fd


class WriteFailed(ValueError):
    """Writing the run failed (disk full, file-size limit, I/O error)."""


def part_path(run_dir: str, process: int, kind: str = "rows") -> str:
    """`RUN/parts/{kind}-{process:05d}.jsonl`."""
    return os.path.join(run_dir, "parts", f"{kind}-{process:05d}.jsonl")


class Scan(NamedTuple):
    """What a part file holds: its committed blocks and where the committed part ends."""

    blocks: dict[int, tuple[int, int]]  # block -> (first byte, end byte) of its rows
    committed_bytes: int  # the file's committed prefix; anything after it is torn
    size: int  # the file's size when scanned


def scan_part(path: str, config: RunSpec) -> Scan:
    """Finds a part file's committed blocks, reading it one line at a time.

    A block counts when every row of its range is present, in order, each line complete
    (newline-terminated) and valid JSON. Scanning stops at the first line that breaks this
    (a torn append leaves such a tail); what follows is not committed.
    """
    blocks: dict[int, tuple[int, int]] = {}
    if not os.path.isfile(path):
        return Scan(blocks, 0, 0)
    committed = pos = first = 0
    expected = -1  # index of the next row of the current block; -1 between blocks
    current = -1
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for line in f:
            if not line.endswith(b"\n"):
                break  # a line without its newline: torn
            try:
                row = json.loads(line)
                b, i = int(row["block"]), int(row["index"])
            except (ValueError, KeyError, TypeError):
                break
            if expected < 0:
                if not 0 <= b < config.num_blocks or b in blocks:
                    break
                current, first, expected = b, pos, config.block_range(b)[0]
            if b != current or i != expected:
                break
            pos += len(line)
            expected += 1
            if expected == config.block_range(current)[1]:
                blocks[current] = (first, pos)
                committed, expected = pos, -1
    return Scan(blocks, committed, size)


def _read_range(path: str, first: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(first)
        return f.read(end - first)


def scan_run(run_dir: str, config: RunSpec) -> dict[int, tuple[str, int, int]]:
    """Every committed block of the run: `{block: (part file, first byte, end byte)}`.

    Raises:
      ValueError: two part files hold the same block with different rows (a run that was
        mixed; it should never happen).
    """
    blocks: dict[int, tuple[str, int, int]] = {}
    parts = os.path.join(run_dir, "parts")
    names = sorted(os.listdir(parts)) if os.path.isdir(parts) else []
    for name in names:
        if not (name.startswith("rows-") and name.endswith(".jsonl")):
            continue
        path = os.path.join(parts, name)
        for b, (first, end) in scan_part(path, config).blocks.items():
            if b in blocks and _read_range(*blocks[b]) != _read_range(path, first, end):
                raise ValueError(f"out {run_dir}: block {b} is held twice with different "
                                 "rows; the run is corrupt.")
            blocks[b] = (path, first, end)
    return blocks


def iter_rows(blocks: dict[int, tuple[str, int, int]]) -> Iterator[dict[str, Any]]:
    """The rows of `blocks` (from `scan_run`) in index order, one block in memory at a time."""
    for b in sorted(blocks):
        for line in _read_range(*blocks[b]).splitlines():
            yield json.loads(line)


def _rows(config: RunSpec, block: int, cert: Any, labels: np.ndarray | None
          ) -> list[dict[str, Any]]:
    start, stop = config.block_range(block)
    top = cert.selection_counts.argmax(axis=1)
    rows = []
    for j, i in enumerate(range(start, stop)):
        counts = cert.counts[j]
        nz = np.flatnonzero(counts)
        y = None if labels is None else int(labels[j])
        pred = int(cert.label[j])
        row: dict[str, Any] = {
            "index": i, "block": block, "label": y, "predict": pred,
            "correct": None if y is None else pred == y,
            "radius": float(cert.radius[j]), "pa_lower": float(cert.pa_lower[j]),
            "top": int(top[j]), "count": int(counts[top[j]]), "n": int(cert.n[j]),
            "counts": [[int(c), int(counts[c])] for c in nz],
        }
        if config.method == "sequential":
            row["pa_upper"] = float(cert.pa_upper[j])
            row["decision"] = int(cert.decision[j])
        rows.append(row)
    return rows


def _encode(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode("utf-8")
