"""The model of a run: `PKG.MODULE:FACTORY` -> `(apply_fn, params)`, with its hash."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def _import_factory(spec: str) -> Callable[[], Any]:
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"model must be MODULE:FACTORY (e.g. mypkg.models:make or "
                         f"path/to/models.py:make), got {spec!r}.")
    module_name, attr = spec.split(":")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ValueError(f"model {spec}: no such file {module_name}.")
            name = "_rpjax_model_" + hashlib.sha256(
                os.path.abspath(module_name).encode()).hexdigest()[:12]
            loader = importlib.util.spec_from_file_location(name, module_name)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ValueError:
        raise
    except (SystemExit, KeyboardInterrupt) as err:  # not an exit or a Ctrl-C of rpjax's own
        raise ValueError(f"model {spec}: importing {module_name} raised {_exit_repr(err)}; "
                         "nothing was certified or written.") from None
    except Exception as err:  # noqa: BLE001 - any import failure is the user's to see
        raise ValueError(f"model {spec}: cannot import {module_name} "
                         f"({type(err).__name__}: {_first_line(err)}).") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model {spec}: {module_name} has no callable {attr!r}.")
    return factory


def _exit_repr(err: BaseException) -> str:
    """`SystemExit(0)`, `SystemExit('msg')`, `KeyboardInterrupt()`: what was raised."""
    if isinstance(err, SystemExit):
        return f"SystemExit({err.code!r})"
    return f"{type(err).__name__}()"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def params_sha256(params: Any) -> str:
    """A SHA-256 of a parameter pytree: every leaf's path, dtype, shape and bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def load_model(spec: str, checkpoint: str | None = None) -> tuple[Callable, Any]:
    """Builds the model of `--model MODULE:FACTORY` (and `--checkpoint DIR`).

    The factory is called with no arguments and returns `(apply_fn, params)` with
    `apply_fn(params, x) -> logits`, or a Flax NNX module (split with
    `rpjax.models.as_apply_fn`). With `checkpoint`, the parameters are restored from that
    orbax checkpoint, the factory's parameters giving the structure, shapes and dtypes.

    Raises:
      ValueError / TypeError naming `--model` or `--checkpoint`.
    """
    from flax import nnx

    from rpjax._src.models.functional import as_apply_fn

    factory = _import_factory(spec)
    try:
        made = factory()
    except (SystemExit, KeyboardInterrupt) as err:  # the user's code exiting, not rpjax
        raise ValueError(f"model {spec}: the model factory {spec} raised {_exit_repr(err)}; "
                         "nothing was certified or written.") from None
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"model {spec}: the factory raised {type(err).__name__}: "
                         f"{_first_line(err)}") from None
    if isinstance(made, nnx.Module):
        apply_fn, params = as_apply_fn(made)
    elif isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
        apply_fn, params = made
    else:
        raise TypeError(f"model {spec}: the factory must return (apply_fn, params) or a "
                        f"flax.nnx.Module, got {type(made).__name__}.")
    if checkpoint is not None:
        if not os.path.isdir(checkpoint):
            raise ValueError(f"checkpoint {checkpoint}: no such directory.")
        import orbax.checkpoint as ocp

        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(
            np.shape(a), a.dtype if hasattr(a, "dtype") else np.result_type(a)), params)
        try:
            params = ocp.StandardCheckpointer().restore(os.path.abspath(checkpoint), abstract)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"checkpoint {checkpoint}: cannot restore the factory's "
                             f"parameters from it ({_first_line(err)}).") from None
    return apply_fn, params


def model_classes(spec: str, apply_fn: Callable, params: Any, input_shape: Sequence[int],
                  dtype: np.dtype) -> int:
    """The number of logits the model gives on `[2, *input_shape]` inputs.

    Raises:
      ValueError naming `--model`: the model cannot be applied to the data's inputs, or does
      not return `[2, C]` logits with C >= 2.
    """
    x = jax.ShapeDtypeStruct((2, *input_shape), dtype)
    try:
        out = jax.eval_shape(apply_fn, params, x)
    except (SystemExit, KeyboardInterrupt) as err:  # the user's code exiting, not rpjax
        raise ValueError(f"model {spec}: the model's apply_fn raised {_exit_repr(err)} when "
                         "applied to the data's inputs; nothing was certified or "
                         "written.") from None
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"model {spec}: cannot be applied to the data's inputs of shape "
                         f"[b, {', '.join(map(str, input_shape))}] ({type(err).__name__}: "
                         f"{_first_line(err)}).") from None
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != 2 or shape[1] < 2:
        raise ValueError(f"model {spec}: on inputs of shape [2, "
                         f"{', '.join(map(str, input_shape))}] it returns "
                         f"{shape if shape is not None else type(out).__name__}, not logits "
                         "[2, C] with C >= 2.")
    return int(shape[1])
