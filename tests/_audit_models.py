"""Models and data files for the `rpjax audit` command-line tests (tests/test_audit_cli.py).

The data: 5 columns `age` (raw = 40 + 10 x), `bmi` (raw = 30 + 5 x), `g=a`, `g=b`, `g=c` (a
one-hot group); the model: a two-class linear one on them.
"""

import os

import jax.numpy as jnp
import numpy as np

COLUMNS = ("age", "bmi", "g=a", "g=b", "g=c")
OFFSET = np.array([40.0, 30.0, 0.0, 0.0, 0.0])
SCALE = np.array([10.0, 5.0, 1.0, 1.0, 1.0])


def linear_apply(params, x):
    """Two-class linear classifier: class 1 iff w.x + b > 0."""
    w, b = params
    z = x @ w + b
    return jnp.stack([-z, z], axis=-1)


def linear():
    """`(apply_fn, params)`: keyed on bmi and on the group."""
    return linear_apply, (jnp.asarray([0.3, 1.0, -1.0, 0.0, 1.0], jnp.float32),
                          jnp.float32(0.1))


def slow_apply(params, x):
    """`linear_apply`, sleeping RPJAX_TEST_SLEEP seconds per call (a run a test can kill)."""
    import jax

    pause = float(os.environ.get("RPJAX_TEST_SLEEP", "0"))

    def sleep(v):
        import time

        time.sleep(pause)
        return v

    x = jax.pure_callback(sleep, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
    return linear_apply(params, x)


def slow():
    """The linear model, slowed down."""
    return slow_apply, linear()[1]


def data(path, num=8, *, seed=0, kind="good"):
    """Writes an audit data file; `kind` breaks it: "nan", "not_one_hot", "constant",
    "single_group" (a group of one column), "no_columns"."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, 5)).astype(np.float32)
    x[:, 2:] = 0.0
    x[np.arange(num), 2 + np.arange(num) % 3] = 1.0
    y = (x @ np.array([0.3, 1.0, -1.0, 0.0, 1.0]) + 0.1 > 0).astype(np.int64)
    columns = np.array(COLUMNS)
    if kind == "nan":
        x[5, 1] = np.nan
    elif kind == "not_one_hot":
        x[3, 2:] = [1.0, 1.0, 0.0]
    elif kind == "constant":
        x[:, 0] = 0.5
    elif kind == "single_group":
        columns = np.array(["age", "bmi", "g=a", "h", "k"])
    arrays = dict(x=x, y=y, columns=columns, offset=OFFSET, scale=SCALE)
    if kind == "no_columns":
        del arrays["columns"]
    np.savez(path, **arrays)
