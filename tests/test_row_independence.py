"""`rpjax.certify`'s check that the base model computes each row of a batch on its own.

The certificate assumes the votes are i.i.d. draws of `f(x + eps)` for one fixed function `f`
of one row. A model that reads its batch (batch statistics, normalising by the batch mean) or
closes over a random key (dropout masks that depend on the batch's shape and a row's
position) breaks that silently: its counts change with `chunk_size` or with the other inputs.
`certify` probes 8 noisy rows in two batchings and two batch sizes once per model signature
and raises `rpjax.RowDependenceError`; `Placement(check_rows=False)` skips the probe.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rpjax
from rpjax import models
from rpjax._src import smoothing

from _models import linear_apply, random_linear

_PARAMS = random_linear(3, seed=0)
_XS = np.array([[2.0, 0.5, -1.0], [-1.5, 0.0, 0.3], [0.2, -0.4, 0.9]], np.float32)
_CONFIG = rpjax.SmoothingConfig(sigma=0.5, n0=20, n=200)
_DROPOUT_KEY = jax.random.key(123)


def _dropout_closed_over(params, x):
    """Dropout (rate 1/2) with a key closed over in apply_fn: the mask is a function of the
    batch's shape and of each row's position in it, not of the row."""
    mask = jax.random.bernoulli(_DROPOUT_KEY, 0.5, x.shape)
    return linear_apply(params, jnp.where(mask, 2.0 * x, 0.0))


def _batch_mean_normalised(params, x):
    """Class 1 iff x_0 is more than 1/4 above the batch's mean of x_0 (params unused)."""
    del params
    z = x[:, 0] - jnp.mean(x[:, 0]) - 0.25
    return jnp.stack([-z, z], axis=-1)


def _certify(apply_fn, params, xs, *, rule=None, check_rows=True, n=200):
    config = rpjax.SmoothingConfig(sigma=0.5, n0=20, n=n)
    return rpjax.certify(apply_fn, params, xs, 0, num_classes=2, config=config, rule=rule,
                         placement=rpjax.Placement(check_rows=check_rows))


@pytest.fixture
def probe_calls(monkeypatch):
    """Counts the probe's evaluations, with the memory of passed signatures emptied."""
    calls = []
    original = smoothing._selection_plan  # called once by each evaluation of the probe

    def counted(plan):
        calls.append(plan)
        return original(plan)

    smoothing._ROWS_CHECKED.clear()
    monkeypatch.setattr(smoothing, "_selection_plan", counted)
    yield calls
    smoothing._ROWS_CHECKED.clear()


def test_the_error_is_a_named_value_error():
    assert issubclass(rpjax.RowDependenceError, ValueError)
    assert "RowDependenceError" in rpjax.__all__


def test_dropout_from_a_closed_over_key_changes_counts_with_chunk_size_and_is_refused():
    # the symptom: with the check off, the counts depend on how the samples are chunked
    counts = [np.asarray(rpjax.sample_counts(
        _dropout_closed_over, _PARAMS, _XS, 0, num_classes=2, config=_CONFIG,
        placement=rpjax.Placement(chunk_size=chunk))) for chunk in (50, 100)]
    assert not np.array_equal(counts[0], counts[1])
    # certify refuses it, with the fix in the message, for the fixed and a sequential rule
    for rule in (None, rpjax.DecideAt(0.1)):
        with pytest.raises(rpjax.RowDependenceError,
                           match=r"does not compute each row.*inference mode.*check_rows=False"):
            _certify(_dropout_closed_over, _PARAMS, _XS, rule=rule)
    with pytest.raises(rpjax.RowDependenceError, match="in order and in reverse order"):
        _certify(_dropout_closed_over, _PARAMS, _XS[:1])  # one input: its own probe batch


def test_batch_mean_normalisation_labels_one_input_differently_alone_and_is_refused():
    x = np.array([[0.0, 0.0, 0.0]], np.float32)
    others = np.full((4, 3), -10.0, np.float32)
    batch = np.concatenate([x, others])
    # the symptom: alone, x is near its own mean (class 0); with 4 inputs far below it, x is
    # far above the batch's mean (class 1)
    alone = _certify(_batch_mean_normalised, _PARAMS, x, check_rows=False, n=1000)
    together = _certify(_batch_mean_normalised, _PARAMS, batch, check_rows=False, n=1000)
    assert alone.label[0] == 0 and together.label[0] == 1
    for xs in (x, batch):
        with pytest.raises(rpjax.RowDependenceError, match="no batch statistics|batch's mean"):
            _certify(_batch_mean_normalised, _PARAMS, xs)


def test_an_ordinary_model_passes_and_gets_the_certificate_it_gets_without_the_check():
    checked = _certify(linear_apply, _PARAMS, _XS)
    unchecked = _certify(linear_apply, _PARAMS, _XS, check_rows=False)
    chex.assert_trees_all_equal(checked, unchecked)
    assert (checked.label != rpjax.ABSTAIN).any()


def test_the_probe_runs_once_per_model_signature(probe_calls):
    _certify(linear_apply, _PARAMS, _XS)
    _certify(linear_apply, _PARAMS, _XS[:2])  # another batch of the same signature
    _certify(linear_apply, _PARAMS, _XS, rule=rpjax.RadiusBudget())
    assert len(probe_calls) == 1
    _certify(linear_apply, random_linear(3, seed=1), _XS)  # other values, same shapes
    assert len(probe_calls) == 1
    wide = (jnp.ones(4, jnp.float32), jnp.float32(0.0))  # another parameter shape
    _certify(linear_apply, wide, np.ones((2, 4), np.float32))
    _certify(linear_apply, _PARAMS, _XS.astype(np.float16))  # another input dtype
    assert len(probe_calls) == 3


def test_the_opt_out_skips_the_probe(probe_calls):
    out = _certify(_dropout_closed_over, _PARAMS, _XS, check_rows=False)
    assert probe_calls == []
    assert out.label.shape == (3,)
    assert rpjax.Placement().check_rows is True


def test_a_failed_probe_is_not_remembered(probe_calls):
    for _ in range(2):
        with pytest.raises(rpjax.RowDependenceError):
            _certify(_dropout_closed_over, _PARAMS, _XS)
    assert len(probe_calls) == 2


class _Net(nnx.Module):
    """Dense, batch normalisation, dropout, dense: row-independent only in eval mode."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(3, 16, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.drop = nnx.Dropout(0.3, rngs=rngs)
        self.dense2 = nnx.Linear(16, 2, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dense2(self.drop(jax.nn.relu(self.norm(self.dense1(x)))))


def _batch_norm_in_training_mode(params, x):
    """Dense, batch normalisation with the batch's own mean and variance, ReLU, dense."""
    w1, w2 = params
    h = x @ w1
    h = (h - h.mean(axis=0)) / jnp.sqrt(h.var(axis=0) + 1e-5)
    return jax.nn.relu(h) @ w2


def test_batch_normalisation_with_batch_statistics_is_refused():
    rng = np.random.default_rng(0)
    params = tuple(jnp.asarray(rng.normal(size=shape), jnp.float32)
                   for shape in ((3, 16), (16, 2)))
    with pytest.raises(rpjax.RowDependenceError):
        rpjax.certify(_batch_norm_in_training_mode, params, _XS, 0, num_classes=2,
                      config=_CONFIG)


def test_a_flax_model_with_batch_norm_and_dropout_in_eval_mode_passes():
    model = _Net(nnx.Rngs(0))
    model.eval()  # running averages, no dropout: each row on its own
    apply_fn, state = models.as_apply_fn(model)
    out = rpjax.certify(apply_fn, state, _XS, 0, num_classes=2, config=_CONFIG)
    assert out.label.shape == (3,)
    np.testing.assert_array_equal(out.counts.sum(axis=1), 200)


def _fresh_linear(params, x):  # a model no other test compiles
    return linear_apply(params, x) * 2.0


def _fresh_linear_too(params, x):  # another model no other test compiles
    return linear_apply(params, x) * 3.0


def test_the_probe_compiles_nothing_of_its_own_for_two_inputs_or_more(probe_calls):
    programs = smoothing._sharded_counts._cache_size()
    probe_programs = smoothing._probe_batch._cache_size()
    _certify(_fresh_linear, _PARAMS, _XS)
    assert len(probe_calls) == 1
    # the selection and the estimation programs, as without the probe; no probe batch
    assert smoothing._sharded_counts._cache_size() == programs + 2
    # a sequential rule: the selection program only (the scheduler is another program)
    _certify(_fresh_linear_too, _PARAMS, _XS, rule=rpjax.DecideAt(0.1))
    assert len(probe_calls) == 2
    assert smoothing._sharded_counts._cache_size() == programs + 3
    assert smoothing._probe_batch._cache_size() == probe_programs


@pytest.mark.parametrize(("apply_fn", "xs", "dependent"), [
    pytest.param(_dropout_closed_over, _XS[:1], True, id="dropout-one-input"),
    pytest.param(_dropout_closed_over, _XS, True, id="dropout-three-inputs"),
    pytest.param(_batch_mean_normalised, _XS[:1], True, id="batch-mean-one-input"),
    pytest.param(_batch_mean_normalised, _XS, True, id="batch-mean-three-inputs"),
    pytest.param(linear_apply, _XS[:1], False, id="linear-one-input"),
    pytest.param(linear_apply, _XS, False, id="linear-three-inputs"),
])
def test_the_probe_decides_the_same_for_every_key(apply_fn, xs, dependent):
    """The probe's noise comes from the key: over 20 keys it refuses every dependent model
    and passes every independent one (no false alarm)."""
    plan = smoothing._plan.resolve(_CONFIG, num_classes=2)
    refused = 0
    for key in range(20):
        prepared = smoothing.prepare(apply_fn, _PARAMS, xs, key, None, plan)
        smoothing._ROWS_CHECKED.clear()
        try:
            smoothing.check_rows(apply_fn, _PARAMS, prepared, plan)
        except rpjax.RowDependenceError:
            refused += 1
    smoothing._ROWS_CHECKED.clear()
    assert refused == (20 if dependent else 0)
