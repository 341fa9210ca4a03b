"""Bad input at the public boundary raises a named ValueError / TypeError."""

import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import rpjax
from rpjax.models import as_apply_fn

from _models import linear_apply, random_linear

_PARAMS = random_linear(3, seed=0)
_XS = np.ones((4, 3), np.float32)
_GOOD = dict(sigma=0.5, n=100, alpha=1e-3, num_classes=2)


def _certify(xs=_XS, key=0, apply_fn=linear_apply, **kw):
    return rpjax.certify(apply_fn, _PARAMS, xs, key, **{**_GOOD, **kw})


class BadInputTest(parameterized.TestCase):
    @parameterized.named_parameters(
        ("nan", dict(xs=np.array([[1.0, np.nan, 0.0]] * 2, np.float32)), ValueError,
         "xs.*non-finite"),
        ("inf", dict(xs=np.array([[np.inf, 0.0, 0.0]], np.float32)), ValueError, "xs.*non-finite"),
        ("empty", dict(xs=np.zeros((0, 3), np.float32)), ValueError, "xs.*empty"),
        ("integer_dtype", dict(xs=np.ones((2, 3), np.int32)), TypeError, "xs.*floating"),
        ("scalar", dict(xs=np.float32(1.0)), ValueError, "xs"),
        ("wrong_rank", dict(xs=np.ones((2, 3, 1), np.float32)), ValueError, "xs"),
        ("wrong_width", dict(xs=np.ones((2, 5), np.float32)), ValueError, "xs.*shape"),
        ("not_array", dict(xs="abc"), TypeError, "xs"),
        ("float_n", dict(n=100.0), TypeError, "n must be an integer"),
        ("negative_n", dict(n=-5), ValueError, "n must be an integer >= 1"),
        ("zero_n", dict(n=0), ValueError, "n must"),
        ("huge_n", dict(n=2**31), ValueError, "n must be <= 2"),
        ("bool_n", dict(n=True), TypeError, "n must be an integer"),
        ("float_n0", dict(n0=1.5), TypeError, "n0 must be an integer"),
        ("negative_n0", dict(n0=-1), ValueError, "n0"),
        ("zero_sigma", dict(sigma=0.0), ValueError, "sigma"),
        ("negative_sigma", dict(sigma=-1.0), ValueError, "sigma"),
        ("nan_sigma", dict(sigma=float("nan")), ValueError, "sigma"),
        ("string_sigma", dict(sigma="0.5"), TypeError, "sigma"),
        ("alpha_zero", dict(alpha=0.0), ValueError, "alpha"),
        ("alpha_one", dict(alpha=1.0), ValueError, "alpha"),
        ("alpha_big", dict(alpha=2.0), ValueError, "alpha"),
        ("one_class", dict(num_classes=1), ValueError, "num_classes"),
        ("float_classes", dict(num_classes=2.0), TypeError, "num_classes"),
        ("bad_chunk", dict(chunk_size=0), ValueError, "chunk_size"),
        ("bad_batch_size", dict(batch_size=0), ValueError, "batch_size"),
        ("bad_key_type", dict(key="seed"), TypeError, "key"),
        ("bad_key_float", dict(key=1.5), TypeError, "key"),
        ("ids_shape", dict(ids=[0, 1]), ValueError, "ids"),
        ("ids_negative", dict(ids=[0, 1, 2, -3]), ValueError, "ids"),
        ("ids_float", dict(ids=[0.0, 1.0, 2.0, 3.0]), TypeError, "ids"),
        ("devices", dict(devices=["cpu"]), TypeError, "devices"),
        ("apply_not_callable", dict(apply_fn=3), TypeError, "apply_fn"),
    )
    def test_certify_rejects(self, kwargs, error, pattern):
        with pytest.raises(error, match=pattern):
            _certify(**kwargs)

    def test_num_classes_smaller_than_model_output(self):
        def three_logits(params, x):
            return jnp.concatenate([linear_apply(params, x), x[:, :1]], axis=-1)

        with pytest.raises(ValueError, match="num_classes=2 is smaller.*3 logits"):
            _certify(apply_fn=three_logits)

    def test_model_must_return_logits_matrix(self):
        with pytest.raises(ValueError, match=r"logits of shape \[b, num_classes\]"):
            _certify(apply_fn=lambda p, x: x.sum(axis=1))

    def test_error_values_are_shown(self):
        with pytest.raises(ValueError, match=r"sigma=-2\.0"):
            _certify(sigma=-2.0)
        with pytest.raises(ValueError, match="batch indices \\[1\\]"):
            _certify(xs=np.array([[0, 0, 0], [0, np.nan, 0]], np.float32))

    @parameterized.parameters("predict", "sample_counts", "always_label")
    def test_other_entry_points_validate(self, name):
        fn = getattr(rpjax, name)
        kw = dict(sigma=0.5, n=100, num_classes=2)
        if name == "predict":
            kw["alpha"] = 1e-3
        with pytest.raises(ValueError, match="sigma"):
            fn(linear_apply, _PARAMS, _XS, 0, **{**kw, "sigma": 0.0})
        with pytest.raises(ValueError, match="xs"):
            fn(linear_apply, _PARAMS, np.zeros((0, 3), np.float32), 0, **kw)
        with pytest.raises(TypeError, match="n must be an integer"):
            fn(linear_apply, _PARAMS, _XS, 0, **{**kw, "n": 10.5})

    def test_as_apply_fn_needs_a_module(self):
        with pytest.raises(TypeError, match="model"):
            as_apply_fn(lambda x: x)
