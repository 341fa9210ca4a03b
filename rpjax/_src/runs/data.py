"""The data of a run: `.npy` / `.npz` read through memory maps, one range at a time."""

from __future__ import annotations

import os
import struct
import zipfile
from typing import Any, NamedTuple

import numpy as np

INPUT_KEYS = ("x", "inputs", "images", "data")
LABEL_KEYS = ("y", "labels", "targets")


class ArrayFile(NamedTuple):
    """One array of a data file, read lazily.

    Attributes:
      path: the file.
      name: the array's name (`x` for a `.npy`, the member name for a `.npz`).
      shape, dtype: the array's.
      offset: byte offset of the array's data in `path`; -1 when the array could not be
        memory-mapped (a compressed `.npz` member) and lives in `loaded`.
      fortran: stored in Fortran order.
      loaded: the array itself when `offset == -1`, else None.
    """

    path: str
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    fortran: bool
    loaded: np.ndarray | None = None
    identity: tuple[int, int, int, int] | None = None  # (device, inode, size, mtime_ns)

    def check_unchanged(self) -> None:
        """Raises ValueError naming `--data` if the file was replaced or rewritten since it was
        opened (its device, inode, size or modification time changed)."""
        if self.identity is not None and file_identity(self.path) != self.identity:
            raise DataChanged(
                f"data {self.path}: the file was rewritten or replaced during the run; "
                "refusing to mix its old and new contents (the committed blocks are kept; "
                "rerun with the new file in a new --out, or restore the old one and rerun).")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows `[start, stop)` as an in-memory array (the map is opened and closed here, so
        resident memory stays bounded by one range whatever the file's size)."""
        if self.loaded is not None:
            return np.array(self.loaded[start:stop])
        mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                       shape=self.shape, order="F" if self.fortran else "C")
        try:
            return np.array(mm[start:stop])
        finally:
            del mm


class DataChanged(ValueError):
    """The data file changed while a run was reading it."""


def file_identity(path: str) -> tuple[int, int, int, int]:
    """`(device, inode, size, mtime_ns)` of `path`: cheap to check before every block."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _open_npy(path: str, name: str, offset: int = 0) -> ArrayFile:
    with open(path, "rb") as f:
        f.seek(offset)
        shape, fortran, dtype = _npy_header(f)
        start = f.tell()
    if dtype.hasobject:
        raise ValueError(f"data {path}: array '{name}' holds Python objects; save it as a "
                         "numeric array.")
    return ArrayFile(path, name, tuple(int(s) for s in shape), dtype, start, bool(fortran))


def _open_npz_member(path: str, zf: zipfile.ZipFile, name: str) -> ArrayFile:
    info = zf.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:  # np.savez_compressed: cannot be mapped
        with np.load(path) as z:
            arr = z[name]
        return ArrayFile(path, name, arr.shape, arr.dtype, -1, False, arr)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"data {path}: not a valid .npz (bad zip header).")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
    return _open_npy(path, name, info.header_offset + 30 + name_len + extra_len)


def open_data(path: str, inputs_key: str | None = None,
              labels_key: str | None = None) -> tuple[ArrayFile, ArrayFile | None]:
    """Opens a data file for streaming: `(inputs, labels or None)`.

    Args:
      path: a `.npy` (inputs only) or `.npz` file. An `.npz` saved with `np.savez` is
        memory-mapped; one saved with `np.savez_compressed` is decompressed into memory.
      inputs_key: the inputs' name in an `.npz` (default: the only array, else the first of
        `x`, `inputs`, `images`, `data`).
      labels_key: the labels' name in an `.npz` (default: the first of `y`, `labels`,
        `targets` present, else no labels).

    Raises:
      ValueError naming `--data` (or the key option): a missing or unreadable file, an
        unknown key.
    """
    if not os.path.isfile(path):
        raise ValueError(f"data {path}: no such file.")
    try:
        ident = file_identity(path)
        inputs, labels = _open_data(path, inputs_key, labels_key)
        return (inputs._replace(identity=ident),
                None if labels is None else labels._replace(identity=ident))
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"data {path}: cannot read it as .npy or .npz ({err}).") from None
    except ValueError as err:
        if str(err).startswith(("data ", "inputs_key ", "labels_key ")):
            raise
        raise ValueError(f"data {path}: cannot read it as .npy or .npz ({err}).") from None


def _open_data(path: str, inputs_key: str | None,
               labels_key: str | None) -> tuple[ArrayFile, ArrayFile | None]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if inputs_key is None:
                found = [k for k in INPUT_KEYS if k in names]
                if len(names) == 1:
                    inputs_key = names[0]
                elif found:
                    inputs_key = found[0]
                else:
                    raise ValueError(
                        f"data {path}: which array holds the inputs? It has {names}; "
                        "pass --inputs-key.")
            if inputs_key not in names:
                raise ValueError(f"inputs_key {inputs_key!r} is not in {path} "
                                 f"(it has {names}).")
            if labels_key is None:
                labels_key = next((k for k in LABEL_KEYS if k in names), None)
            elif labels_key not in names:
                raise ValueError(f"labels_key {labels_key!r} is not in {path} "
                                 f"(it has {names}).")
            inputs = _open_npz_member(path, zf, inputs_key)
            labels = None if labels_key is None else _open_npz_member(path, zf, labels_key)
            return inputs, labels
    if labels_key is not None:
        raise ValueError(f"labels_key {labels_key!r}: {path} is a .npy, which holds "
                         "inputs only; save inputs and labels together with np.savez.")
    return _open_npy(path, "x"), None


def check_data(inputs: ArrayFile, labels: ArrayFile | None, num_classes: int, *,
               chunk: int = 4096) -> float:
    """Checks the data before a run starts, streaming it `chunk` rows at a time.

    Returns:
      The largest `|x|` of the inputs (for the noise's overflow check).

    Raises:
      TypeError / ValueError naming `--data`: inputs that are not a floating array of rank
      >= 2 with at least one row; any NaN or infinite entry, or one beyond float32's range
      (the engine computes in float32; the first offending indices named); labels that are
      not integers of shape `[N]` or fall outside `[0, num_classes)`.
    """
    where = f"data {inputs.path}"
    if not np.issubdtype(inputs.dtype, np.floating):
        raise TypeError(f"{where}: inputs '{inputs.name}' must be floating point, got dtype "
                        f"{inputs.dtype} (scale integer images to floats first).")
    if len(inputs.shape) < 2 or inputs.shape[0] < 1:
        raise ValueError(f"{where}: inputs '{inputs.name}' must have shape [N, *input_shape] "
                         f"with N >= 1 and rank >= 2, got shape {inputs.shape}.")
    num = inputs.shape[0]
    largest = float(np.finfo(np.float32).max)
    max_abs = 0.0
    for start in range(0, num, chunk):
        block = inputs.read(start, min(start + chunk, num))
        flat = block.reshape(block.shape[0], -1)
        ok = np.isfinite(flat).all(axis=1)
        if not ok.all():
            bad = start + np.flatnonzero(~ok)
            raise ValueError(f"{where}: inputs '{inputs.name}' are not finite (NaN or inf) at "
                             f"index {', '.join(map(str, bad[:5].tolist()))}"
                             f"{' and more' if bad.size > 5 else ''}.")
        mags = np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(flat.shape[0])
        over = mags > largest
        if over.any():
            bad = start + np.flatnonzero(over)
            raise ValueError(f"{where}: inputs '{inputs.name}' exceed float32's largest finite "
                             f"value {largest:.3g} (the engine computes in float32) at index "
                             f"{', '.join(map(str, bad[:5].tolist()))}"
                             f"{' and more' if bad.size > 5 else ''}.")
        if mags.size:
            max_abs = max(max_abs, float(mags.max()))
    if labels is None:
        return max_abs
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{where}: labels '{labels.name}' must be integers, got dtype "
                        f"{labels.dtype}.")
    if labels.shape != (num,):
        raise ValueError(f"{where}: labels '{labels.name}' must have shape [{num}] (one per "
                         f"input), got {labels.shape}.")
    y = labels.read(0, num)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(f"{where}: labels '{labels.name}' must lie in [0, {num_classes}), "
                         f"got {int(y[bad[0]])} at index {int(bad[0])}"
                         f"{f' ({bad.size} out of range)' if bad.size > 1 else ''}.")
    return max_abs
