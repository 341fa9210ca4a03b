"""Model factories for `rpjax certify` tests (`--model tests/_run_models.py:NAME`)."""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

DIM = 6
CLASSES = 3


def _weights():
    rng = np.random.default_rng(7)
    return (jnp.asarray(rng.normal(size=(DIM, CLASSES)), jnp.float32),
            jnp.asarray(rng.normal(size=CLASSES), jnp.float32))


def linear_apply(params, x):
    """Three-class linear logits x @ W + b, x `[b, DIM]`."""
    w, b = params
    return x.reshape(x.shape[0], -1) @ w + b


def linear():
    """`(apply_fn, params)` of a fixed three-class linear model on `[DIM]` inputs."""
    return linear_apply, _weights()


def _sleep(x):
    time.sleep(float(os.environ.get("RPJAX_TEST_SLEEP", "0.02")))
    return np.zeros((), np.float32)


def slow_apply(params, x):
    """`linear_apply` that sleeps RPJAX_TEST_SLEEP seconds per call (so a test can kill a run
    between two committed blocks)."""
    pause = jax.pure_callback(_sleep, jax.ShapeDtypeStruct((), jnp.float32), x[0, 0])
    return linear_apply(params, x) + pause


def slow():
    """The linear model, slowed down."""
    return slow_apply, _weights()


class Linear(nnx.Module):
    """The same model as an NNX module."""

    def __init__(self):
        w, b = _weights()
        self.w = nnx.Param(w)
        self.b = nnx.Param(b)

    def __call__(self, x):
        return x.reshape(x.shape[0], -1) @ self.w[...] + self.b[...]


def module():
    """An NNX module factory."""
    return Linear()


def wrong():
    """Returns neither (apply_fn, params) nor a module."""
    return 42


def raises():
    """A factory that fails."""
    raise RuntimeError("weights not found")


def other_shape():
    """Logits for inputs of 5 features: does not fit the `[DIM]` data."""
    w = jnp.ones((5, CLASSES), jnp.float32)
    return (lambda p, x: x @ p), w


def data(path, num, *, seed=0, labels=True, dim=DIM):
    """Writes `num` inputs (and labels of the model's own argmax, mostly) as an .npz."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, dim)).astype(np.float32)
    arrays = {"x": x}
    if labels:
        w, b = _weights()
        arrays["y"] = np.asarray(np.argmax(x @ np.asarray(w) + np.asarray(b), axis=1),
                                 np.int64)
    np.savez(path, **arrays)
    return path


def bad_data(path, kind):
    """Writes 8 inputs as an .npz with one defect: "nan" (a NaN at index 5), "rank" (1-D
    inputs), "labels" (label 7 of 3 classes at index 3), "f64" (a float64 value beyond
    float32's range at index 6); "good": none."""
    x = np.random.default_rng(0).normal(size=(8, DIM)).astype(np.float32)
    y = np.zeros(8, np.int64)
    if kind == "nan":
        x[5, 2] = np.nan
    if kind == "rank":
        x = x[:, 0]
    if kind == "labels":
        y[3] = 7
    if kind == "f64":
        x = x.astype(np.float64)
        x[6, 1] = 1e39  # finite in float64, inf in float32 (the engine's dtype)
    np.savez(path, x=x, y=y)
    return path


def wide():
    """A two-class linear model on 512 features (the memory test's data)."""
    w = jnp.asarray(np.linspace(-1, 1, 512), jnp.float32)
    return (lambda p, x: jnp.stack([x @ p, -(x @ p)], axis=-1)), w


def exit0():
    """A factory that calls sys.exit(0) (a script's habit)."""
    raise SystemExit(0)


def exit3():
    """A factory that exits with status 3."""
    raise SystemExit(3)


def interrupt():
    """A factory that raises KeyboardInterrupt."""
    raise KeyboardInterrupt


class _Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, params, x):
        return linear_apply(params, x)


def unhashable():
    """A callable apply_fn that cannot key the compiled program."""
    return _Unhashable(), _weights()


def rewrites_now():
    """A factory that rewrites the data file RPJAX_TEST_DATA (8 other inputs) while the run
    is being set up."""
    data(os.environ["RPJAX_TEST_DATA"], 8, seed=99)
    return linear()


def _rewrite_once(x):
    done = os.environ["RPJAX_TEST_DATA"] + ".rewritten"
    if os.path.exists(os.environ["RPJAX_TEST_PART"]) and not os.path.exists(done):
        open(done, "w").close()
        data(os.environ["RPJAX_TEST_DATA"], 30, seed=99)
    return np.zeros((), np.float32)


def rewrites_later_apply(params, x):
    """`linear_apply` that rewrites RPJAX_TEST_DATA (30 other inputs) once the part file
    RPJAX_TEST_PART exists: the data file changes after the first block was committed."""
    pause = jax.pure_callback(_rewrite_once, jax.ShapeDtypeStruct((), jnp.float32), x[0, 0])
    return linear_apply(params, x) + pause


def rewrites_later():
    """The linear model, rewriting the data file during the run's second block."""
    return rewrites_later_apply, _weights()


def _wait_for_go(x):
    go = os.environ["RPJAX_TEST_GO"]
    deadline = time.time() + 120
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.02)
    return np.zeros((), np.float32)


def waits_apply(params, x):
    """`linear_apply` that waits (once per call) until the file RPJAX_TEST_GO exists."""
    pause = jax.pure_callback(_wait_for_go, jax.ShapeDtypeStruct((), jnp.float32), x[0, 0])
    return linear_apply(params, x) + pause


def waits():
    """The linear model, held until RPJAX_TEST_GO exists (a run that stays in flight)."""
    return waits_apply, _weights()


def _exits_when_traced(params, x):
    raise SystemExit(4)


def apply_exits():
    """An apply_fn that calls sys.exit(4) when applied."""
    return _exits_when_traced, _weights()
