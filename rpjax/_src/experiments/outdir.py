"""The output directory of `rpjax reproduce`: checked before any work, never silently mixed.

A run writes `OUT/.rpjax-run.json` (its settings, start time, and on success its end time)
before it starts, and its outputs are `OUT/report.md`, `OUT/summary.json` and `OUT/<experiment>/`.
A directory that holds any of the marker, `report.md` or `summary.json` holds a previous run.
A new run into a *finished* previous run adds its experiments to it (their folders, and a
report and summary that cover every experiment in the directory) as long as none of their
folders is there already; anything it would overwrite is refused, unless it is asked to
overwrite, in which case the previous run's outputs (those names only) are removed first.
Anything else in `OUT`, in particular the trained-model cache `OUT/cache/`, is left alone, so a
directory holding only a cache is a fresh destination. This module is light (no JAX): the CLI
calls `check` before its imports.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

from rpjax._src import durable

MARKER = ".rpjax-run.json"
"""The file a run writes into its output directory before any other."""

RUN_FILES = (MARKER, "report.md", "summary.json")
"""Top-level files whose presence shows a previous run."""

PARTS = ".rpjax-report.json"
"""Each experiment's report section and verdict, kept so that a later run can add to the
report."""


def previous_run(out: str | os.PathLike) -> str | None:
    """The first of `RUN_FILES` present in `out` (None: `out` holds no previous run)."""
    for name in RUN_FILES:
        if os.path.lexists(os.path.join(out, name)):
            return name
    return None


def check(out: str | os.PathLike, cache_dir: str | os.PathLike | None, *, overwrite: bool,
          names: tuple[str, str, str] = ("out", "cache_dir", "overwrite=True"),
          experiments: Sequence[str] | None = None) -> bool:
    """Checks the destinations of a run before any work, leaving no trace.

    Args:
      out: the output directory; cache_dir: the trained-model cache (None: no cache).
      overwrite: whether a previous run in `out` may be replaced.
      names: how the messages name the output option, the cache option and the way to
        overwrite (the CLI passes `("--out", "--cache-dir", "--overwrite")`).
      experiments: the experiments the run will write (their folders); given, a finished
        previous run that holds none of them is added to.

    Returns:
      True when the run adds `experiments` to a finished previous run in `out`.

    Raises:
      ValueError naming the option: `out` or `cache_dir` is a file, or cannot be created or
      written; `out` holds a previous run that the run would overwrite (an experiment's
      folder, or an unfinished run) and `overwrite` is false.
    """
    out_name, cache_name, overwrite_name = names
    durable.check_output_dir(out_name, out, create=False)
    if cache_dir is not None:
        durable.check_output_dir(cache_name, cache_dir, create=False)
    found = None if overwrite else previous_run(out)
    if found is None:
        return False
    state = _state(os.path.join(out, MARKER))
    clash = [e for e in experiments or () if os.path.lexists(os.path.join(out, e))]
    addable = (experiments is not None and state == "a finished run" and not clash
               and os.path.isfile(os.path.join(out, PARTS))
               and os.path.isfile(os.path.join(out, "summary.json")))
    if addable:
        return True
    what = ", ".join(f"{e}/" for e in clash) if clash else found
    raise ValueError(f"{out_name} {out} already holds {state} ({what}); pass "
                     f"{overwrite_name} to replace its outputs, or another {out_name}.")


def _state(marker: str) -> str:
    try:
        with open(marker, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return "a run"
    if not isinstance(record, dict) or "finished" not in record:
        return "a run"
    return "a finished run" if record["finished"] else "an unfinished run"


def begin(out: str | os.PathLike, settings: dict[str, Any], *, experiments: Sequence[str],
          overwrite: bool) -> None:
    """Starts a run in `out` (after `check`): with `overwrite`, removes a previous run's
    outputs (`RUN_FILES` and the folders named in `experiments`), then writes the marker."""
    out = os.fspath(out)
    if overwrite:
        for name in (*RUN_FILES, PARTS):
            path = os.path.join(out, name)
            if os.path.isfile(path) or os.path.islink(path):
                os.remove(path)
        for name in experiments:
            path = os.path.join(out, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
    os.makedirs(out, exist_ok=True)
    _write_marker(out, {**settings, "started": _now(), "finished": None})


def finish(out: str | os.PathLike) -> None:
    """Marks the run in `out` as finished (its report and summary are written)."""
    marker = os.path.join(os.fspath(out), MARKER)
    with open(marker, encoding="utf-8") as f:
        record = json.load(f)
    _write_marker(os.fspath(out), {**record, "finished": _now()})


def _write_marker(out: str, record: dict[str, Any]) -> None:
    durable.atomic_write(os.path.join(out, MARKER),
                         json.dumps(record, indent=2, default=str) + "\n")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
