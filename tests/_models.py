"""Small analytic base classifiers shared by the tests."""

import jax.numpy as jnp
import numpy as np


def linear_apply(params, x):
    """Two-class linear classifier: class 1 iff w.x + b > 0. params = (w [d], b [])."""
    w, b = params
    z = x @ w + b
    return jnp.stack([-z, z], axis=-1)


def bucket_apply(edges, x):
    """Class k = number of `edges` below x[:, 0]: a histogram of the noise, one bin a class."""
    k = jnp.sum(x[:, :1] > edges[None, :], axis=1)
    return -jnp.abs(k[:, None] - jnp.arange(edges.shape[0] + 1)[None, :]).astype(jnp.float32)


def random_linear(d, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d).astype(np.float32)
    return jnp.asarray(w), jnp.float32(rng.normal())


def linear_first(params, x):
    """The affine part of `linear_apply`: z = w.x + b, `[b, 1]`."""
    w, b = params
    return (x @ w + b)[:, None]


def linear_rest(params, z):
    """The rest of `linear_apply`: logits (-z, z)."""
    del params
    return jnp.concatenate([-z, z], axis=-1)


def relu_first(params, x):
    """Not affine: ReLU(w.x + b). Must be rejected as an `AffineFirst.first`."""
    return jnp.maximum(linear_first(params, x), 0.0)


def points_at_distances(params, dist, seed):
    """Inputs at signed distance `dist` `[B]` from the hyperplane w.x + b = 0 of
    `params = (w, b)` (random directions within the plane, float32 `[B, d]`)."""
    w, b = np.asarray(params[0], np.float64), float(params[1])
    norm = np.linalg.norm(w)
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(dist.shape[0], w.shape[0]))
    base -= ((base @ w + b) / norm**2)[:, None] * w[None, :]  # project onto the plane
    return (base + dist[:, None] * (w / norm)[None, :]).astype(np.float32)


def linear_truth(params, xs):
    """The smoothed classifier of `linear_apply` exactly: its label (class 1 iff w.x + b > 0)
    and its certified radius |w.x + b| / ||w|| (for any sigma), `([B], [B])`."""
    w, b = np.asarray(params[0], np.float64), float(params[1])
    z = np.asarray(xs, np.float64) @ w + b
    return (z > 0).astype(int), np.abs(z) / np.linalg.norm(w)


def run_on_four_devices(script: str) -> dict:
    """Runs `script` (Python source; `{tests}` is replaced by this folder) in a subprocess with
    4 simulated CPU devices and returns the JSON object on its last stdout line."""
    import json
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", script.format(tests=tests)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def traced_release(apply_fn, params, mode, *, num_classes, secret=None, noise="fresh",
                   **smoothing):
    """A measurement release (`Budget.unlimited()`) of `mode` in its traceable form, the one
    way the library makes it: `RobustPrivacyRelease(...).traced()`; `smoothing` are the
    `SmoothingConfig` settings (sigma, n, n0, alpha)."""
    from rpjax import SmoothingConfig
    from rpjax.privacy import Budget, ReleaseConfig, RobustPrivacyRelease

    config = ReleaseConfig(smoothing=SmoothingConfig(**smoothing), num_classes=num_classes,
                           mode=mode, noise=noise)
    return RobustPrivacyRelease(apply_fn, params, config, budget=Budget.unlimited(),
                                secret=secret).traced()


_CONFIG_FIELDS = ("sigma", "n0", "n", "alpha", "distribution", "common_noise")
_PLACEMENT_FIELDS = ("devices", "chunk_size", "batch_size", "progress", "check_rows")


def plan(**kw):
    """Keyword settings split into the typed plan: `config=SmoothingConfig(...)`,
    `placement=Placement(...)` (when any placement knob is given) and the rest unchanged. For
    tests that build their settings as dicts."""
    import rpjax

    out = {k: v for k, v in kw.items() if k not in _CONFIG_FIELDS + _PLACEMENT_FIELDS}
    out["config"] = rpjax.SmoothingConfig(**{k: kw[k] for k in _CONFIG_FIELDS if k in kw})
    placement = {k: kw[k] for k in _PLACEMENT_FIELDS if k in kw}
    if placement:
        out["placement"] = rpjax.Placement(**placement)
    return out
