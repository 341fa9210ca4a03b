"""On-disk cache of trained parameters (orbax), keyed by the training configuration and
verified by a checksum recorded at save time."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from typing import Any

import jax

from rpjax._src import durable


def config_key(tag: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serializable configuration."""
    blob = json.dumps(tag, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def default_cache_dir() -> str:
    """`$RPJAX_CACHE`, else `~/.cache/rpjax`."""
    return os.environ.get("RPJAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rpjax"))


def _recorded_hash(sidecar: str) -> str | None:
    """The checkpoint hash recorded in a cache entry's `.json` sidecar (None: none readable)."""
    try:
        with open(sidecar, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    digest = record.get("tree_sha256") if isinstance(record, dict) else None
    return digest if isinstance(digest, str) else None


def load_or_train(
    cache_dir: str | None,
    tag: dict[str, Any],
    template: Any,
    train: Callable[[], Any],
) -> tuple[Any, bool]:
    """Restores parameters cached under `tag`, or trains and caches them.

    A cache entry is the orbax checkpoint directory `CACHE/<name>-<key>` and its sidecar
    `CACHE/<name>-<key>.json`, which holds `tag` and `tree_sha256`, the SHA-256 of the
    checkpoint's files (`rpjax._src.durable.tree_sha256`). The sidecar is written atomically
    only after the checkpoint is complete, and the entry is restored only if the checkpoint's
    files still hash to the recorded value: an entry whose hash is missing (an interrupted
    save, an entry from before hashes were recorded) or differs (a changed or corrupted
    file), or that fails to restore, is reported with a `UserWarning` naming its path and
    retrained, and the new parameters replace it.

    Args:
      cache_dir: directory of the cache; None disables caching.
      tag: the full training configuration (everything that changes the parameters).
      template: a pytree with the parameters' structure, shapes and dtypes (e.g. the untrained
        model's state), used to restore.
      train: `train() -> params`, called on a cache miss.

    Returns:
      `(params, from_cache)`.
    """
    if cache_dir is None:
        return train(), False
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.path.join(cache_dir, f"{tag.get('name', 'model')}-{config_key(tag)}"))
    sidecar = path + ".json"
    checkpointer = ocp.StandardCheckpointer()
    if os.path.isdir(path):
        recorded = _recorded_hash(sidecar)
        if recorded is None:
            problem = "has no recorded checksum"
        elif durable.tree_sha256(path) != recorded:
            problem = "does not match its recorded checksum (changed or corrupted)"
        else:
            try:
                abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                        template)
                return checkpointer.restore(path, abstract), True
            except Exception as err:  # noqa: BLE001 - an entry that cannot restore is retrained
                problem = f"cannot be restored ({type(err).__name__})"
        warnings.warn(f"trained-model cache entry {path} {problem}; retraining it.",
                      UserWarning, stacklevel=2)
    params = train()
    os.makedirs(cache_dir, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(sidecar)  # no stale hash may vouch for the checkpoint being rewritten
    checkpointer.save(path, params, force=True)
    checkpointer.wait_until_finished()
    record = {"tag": tag, "tree_sha256": durable.tree_sha256(path)}
    durable.atomic_write(sidecar, json.dumps(record, indent=2, sort_keys=True, default=str))
    return params, False
