"""Counts are identical on 1 and 4 (simulated) devices."""

import textwrap

import numpy as np
import pytest

import rpjax

from _models import linear_apply, random_linear, run_on_four_devices

_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, {tests!r})
    import rpjax
    from rpjax._src import plan, smoothing
    from _models import linear_apply, random_linear, run_on_four_devices
    assert len(jax.devices()) == 4, jax.devices()
    params = random_linear(3, seed=0)
    xs = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    out = {{}}
    for label, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
        c = rpjax.sample_counts(linear_apply, params, xs, 5, num_classes=2,
                                config=rpjax.SmoothingConfig(sigma=0.7, n=1003),
                                placement=rpjax.Placement(chunk_size=64, devices=devices))
        cert = rpjax.certify(linear_apply, params, xs, 5, num_classes=2,
                             config=rpjax.SmoothingConfig(sigma=0.7, n=1003, alpha=1e-3),
                             placement=rpjax.Placement(devices=devices))
        common = rpjax.sample_counts(
            linear_apply, params, xs, 5, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=0.7, n=1003, common_noise=True),
            placement=rpjax.Placement(chunk_size=64, devices=devices))
        # a model with NaN logits where x[:, 0] > 0: the NaN samples are counted on every
        # device and summed across devices with the votes
        nan_fn = lambda p, x: jnp.where(x[:, :1] > 0, jnp.nan, linear_apply(p, x))
        sides = np.array([[50.0, 0, 0], [-50.0, 0, 0], [0.0, 0, 0]], np.float32)
        p = plan.resolve(rpjax.SmoothingConfig(sigma=0.7, n=1003), num_classes=2,
                         placement=rpjax.Placement(chunk_size=64, devices=devices))
        prep = smoothing.prepare(nan_fn, params, sides, 5, None, p)
        _, invalid = smoothing.count(nan_fn, params, prep.xs, prep.key_pairs(), p.n, p)
        out[label] = dict(counts=np.asarray(c).tolist(), radius=cert.radius.tolist(),
                          label=cert.label.tolist(), common=np.asarray(common).tolist(),
                          invalid=np.asarray(invalid).tolist())
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_one_vs_four_devices():
    out = run_on_four_devices(_SCRIPT)
    assert out["one"] == out["four"]
    invalid = out["four"]["invalid"]
    assert invalid[0] == 1003 and invalid[1] == 0 and 0 < invalid[2] < 1003, invalid
    # and the same as this (single-device) process computes
    params = random_linear(3, seed=0)
    xs = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    here = rpjax.sample_counts(linear_apply, params, xs, 5, num_classes=2,
                               config=rpjax.SmoothingConfig(sigma=0.7, n=1003),
                               placement=rpjax.Placement(chunk_size=1000))
    np.testing.assert_array_equal(np.asarray(here), np.array(out["four"]["counts"]))
    np.testing.assert_array_equal(np.asarray(here).sum(axis=1), 1003)
    common = rpjax.sample_counts(linear_apply, params, xs, 5, num_classes=2,
                                 config=rpjax.SmoothingConfig(sigma=0.7, n=1003, common_noise=True),
                                 placement=rpjax.Placement(chunk_size=1000))
    np.testing.assert_array_equal(np.asarray(common), np.array(out["four"]["common"]))
