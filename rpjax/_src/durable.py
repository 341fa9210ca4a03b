"""Durable files: atomic writes, destination checks and content hashes.

Every file rpjax writes goes through `atomic_write` or `atomic_path`: the bytes go to a
temporary file in the destination's directory, are flushed and fsynced, and the temporary file
is renamed over the destination (`os.replace`, atomic on POSIX), after which the directory is
fsynced. A reader, or a run interrupted at any point (SIGINT, SIGTERM, kill -9, power loss on a
journaling file system), sees either the previous complete file or the new complete file, never
a part of one. Nothing here knows about the engine; it is the one file-writing layer that every
other layer may use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator


def fsync_dir(path: str | os.PathLike) -> None:
    """fsyncs a directory, so that a rename or a new file in it survives a crash."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a file system without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask (read from /proc where it can be, so no thread sees it changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - systems without /proc
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _new_file_mode(path: str) -> int:
    """The permission bits `open(path, "w")` would leave: the existing file's, else 0o666 less
    the umask (a temporary file is created 0o600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on a clean exit it replaces `path` atomically.

    The temporary file sits in `path`'s directory (so the rename never crosses file systems)
    and keeps `path`'s suffix (so e.g. matplotlib infers the format). The new file gets the
    permission bits `open(path, "w")` would give it (an existing file's, else 0o666 less the
    umask). If the block raises, the temporary file is removed and `path` is untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    suffix = os.path.splitext(base)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.chmod(tmp, _new_file_mode(path))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    fsync_dir(directory)


def atomic_write(path: str | os.PathLike, data: str | bytes | Iterable[bytes]) -> None:
    """Writes `data` (text as UTF-8, bytes, or an iterable of byte chunks written one after
    the other, so a large file need not be in memory) to `path` atomically (module doc)."""
    if isinstance(data, str):
        data = [data.encode("utf-8")]
    elif isinstance(data, (bytes, bytearray, memoryview)):
        data = [bytes(data)]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for chunk in data:
            f.write(chunk)


def truncate_durably(path: str | os.PathLike, size: int) -> None:
    """Cuts `path` to its first `size` bytes and fsyncs it (a torn tail's removal)."""
    with open(path, "rb+") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def append_durably(path: str | os.PathLike, data: bytes) -> int:
    """Appends `data` to `path` and fsyncs it before returning; returns the new file size.

    An append is not atomic: a crash can leave a prefix of `data` at the end of the file. Its
    callers (the row files of `rpjax certify`) detect such a torn tail and discard it.
    """
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def _nearest_existing(path: str) -> str:
    """`path` or its nearest ancestor that exists."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _probe(directory: str) -> None:
    """Creates and removes a temporary file in `directory` (raises OSError if it cannot)."""
    fd, probe = tempfile.mkstemp(prefix=".rpjax-probe.", dir=directory)
    os.close(fd)
    os.remove(probe)


def check_output_dir(name: str, path: str | os.PathLike, *, create: bool = True) -> str:
    """Checks, before any work, that `path` is (or can be made) a writable directory.

    With `create` (the default) it creates `path` if missing and probes it with a temporary
    file. With `create=False` it leaves no trace: a missing `path` is checked through its
    nearest existing ancestor, which must be a writable directory (probed with a temporary file
    that is removed). Returns the absolute path.

    Raises:
      ValueError naming the option `name`: `path` (or its nearest existing ancestor) is a
      file, or it cannot be created or written.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name} must be a directory, but {path} is a file.")
    try:
        if create:
            os.makedirs(path, exist_ok=True)
            _probe(path)
        else:
            base = _nearest_existing(path)
            if not os.path.isdir(base):
                raise ValueError(f"{name}: cannot create {path}, since {base} is not a "
                                 f"directory.")
            _probe(base)
    except OSError as err:
        raise ValueError(f"{name}: cannot write in {path} ({err.strerror or err}).") from None
    return path


def check_output_file(name: str, path: str | os.PathLike, *, create: bool = True) -> str:
    """Checks, before any work, that a file can be written at `path`; returns it absolute.

    `create` is that of `check_output_dir` for `path`'s directory (False: leave no trace).

    Raises:
      ValueError naming the option `name`: `path` is a directory, or its directory cannot be
      created or written.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{name} must be a file path, but {path} is a directory.")
    check_output_dir(f"{name} (its directory)", os.path.dirname(path), create=create)
    return path


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file's bytes (hex), read in 4 MiB chunks (any size of file)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a directory tree: every file's relative path and bytes, in sorted order."""
    root = os.fspath(path)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(os.path.relpath(full, root).encode("utf-8") + b"\0")
            h.update(file_sha256(full).encode("ascii"))
    return h.hexdigest()
