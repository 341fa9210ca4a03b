"""On-disk cache of trained parameters (orbax), keyed by the training configuration."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import jax


def config_key(tag: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serializable configuration."""
    blob = json.dumps(tag, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def default_cache_dir() -> str:
    """`$RPJAX_CACHE`, else `~/.cache/rpjax`."""
    return os.environ.get("RPJAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rpjax"))


def load_or_train(
    cache_dir: str | None,
    tag: dict[str, Any],
    template: Any,
    train: Callable[[], Any],
) -> tuple[Any, bool]:
    """Restores parameters cached under `tag`, or trains and caches them.

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
    checkpointer = ocp.StandardCheckpointer()
    if os.path.isdir(path):
        try:
            abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), template)
            return checkpointer.restore(path, abstract), True
        except Exception:  # noqa: BLE001 - a stale or partial cache entry is retrained
            pass
    params = train()
    os.makedirs(cache_dir, exist_ok=True)
    checkpointer.save(path, params, force=True)
    checkpointer.wait_until_finished()
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump(tag, f, indent=2, sort_keys=True, default=str)
    return params, False
