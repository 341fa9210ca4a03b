"""Every bad input at the public boundary, in one table: each raises the named error, or warns
and abstains, through the API and (where it applies) the CLI.

A row is `(name, trigger, expect)`: `trigger()` makes the call; `expect` is `Raises(type,
regex)`, `WarnsAbstains(warning, regex, abstain)` (the call warns, and `abstain(result)` is
the boolean mask of inputs that must be `ABSTAIN`; the rest must not), `Holds(check)` (the
call returns something `check` must accept) or `Exits(regex)` for a CLI call (non-zero return,
one-line message on stderr). `RUN_ROWS` are `rpjax certify` runs refused before anything is
written: each exits 2 with one line on stderr and leaves no run directory (the refusals that
need a run in progress, a second writer, a full disk, a data file rewritten between blocks, are
in tests/test_runs.py). `AUDIT_ROWS` are `rpjax audit` runs refused the same way: one line,
exit 2, no `--out` (the kill -9 / resume test is tests/test_audit_cli.py). The data loaders' table (bad CSV rows, BOMs, absurd values,
undecodable bytes, image layouts) is `tests/test_bad_inputs_data.py`.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rpjax
from rpjax import privacy, stats
from rpjax._src import cli
from rpjax._src import stats as _stats
from rpjax._src.privacy import leakage
from rpjax.privacy import Budget, ReleaseConfig, RobustPrivacyRelease

import _audit_models as audit_models
import _run_models as run_models
from _models import linear_apply, plan, random_linear

_PARAMS = random_linear(3, seed=0)
_XS = np.ones((4, 3), np.float32)
_GOOD = dict(sigma=0.5, n=100, alpha=1e-3, num_classes=2)


class Raises(NamedTuple):
    error: type[Exception]
    pattern: str


class WarnsAbstains(NamedTuple):
    warning: type[Warning]
    pattern: str
    abstain: Callable[[Any], np.ndarray]  # result -> [B] bool, inputs that must abstain


class Holds(NamedTuple):
    check: Callable[[Any], bool]


class Exits(NamedTuple):
    pattern: str


# The rows name each setting as a keyword; `plan` builds the SmoothingConfig / Placement it
# belongs to (so a bad value is refused where the library checks it: by the dataclass).
def _certify(xs=_XS, key=0, apply_fn=linear_apply, params=_PARAMS, **kw):
    return rpjax.certify(apply_fn, params, xs, key, **plan(**{**_GOOD, **kw}))


def _predict(xs=_XS, key=0, apply_fn=linear_apply, params=_PARAMS, **kw):
    return rpjax.predict(apply_fn, params, xs, key, **plan(**{**_GOOD, **kw}))


def _always(xs=_XS, key=0, apply_fn=linear_apply, params=_PARAMS, **kw):
    return rpjax.always_label(apply_fn, params, xs, key, **plan(**{**_GOOD, **kw}))


def _counts(xs=_XS, key=0, apply_fn=linear_apply, params=_PARAMS, **kw):
    return rpjax.sample_counts(apply_fn, params, xs, key, **plan(**{**_GOOD, **kw}))


def _one_logit(params, x):  # sigmoid style: a single score column
    return linear_apply(params, x)[:, 1:]


def _constant_shape(params, x):  # ignores the batch size
    del x
    return jnp.zeros((2, 2)) + params[1]


def _three_logits(params, x):
    return jnp.concatenate([linear_apply(params, x), x[:, :1]], axis=-1)


def _nan_logits(params, x):
    return linear_apply(params, x) * jnp.nan


def _nan_where_positive(params, x):
    """NaN logits wherever x[:, 0] > 0: an input far on that side gives only NaN samples."""
    logits = linear_apply(params, x)
    return jnp.where(x[:, :1] > 0, jnp.nan, logits)


def _inf_logits(params, x):
    return jnp.full((x.shape[0], 2), jnp.inf) + 0 * linear_apply(params, x)


def _log_probs_with_minus_inf(params, x):
    """A legitimate log-probability output: class 0 impossible (-inf), class 1 certain."""
    del params
    return jnp.stack([jnp.full(x.shape[:1], -jnp.inf), jnp.zeros(x.shape[:1])], axis=-1)


def _all_minus_inf(params, x):
    """Every class impossible: logits that decide nothing (argmax would say class 0)."""
    return jnp.full((x.shape[0], 2), -jnp.inf) + 0 * linear_apply(params, x)


def _tied_where_positive(params, x):
    """Three equal logits wherever x[:, 0] > 0 (no decision), the linear model's otherwise."""
    logits = jnp.concatenate([linear_apply(params, x), jnp.full(x.shape[:1] + (1,), -1e9)], -1)
    return jnp.where(x[:, :1] > 0, 0.0, logits)


def _two_of_three_tied(params, x):
    """Classes 1 and 2 tied above class 0: a decision (the lowest tied index, as argmax)."""
    return jnp.stack([jnp.full(x.shape[:1], -1.0), jnp.zeros(x.shape[:1]),
                      jnp.zeros(x.shape[:1])], axis=-1) + 0 * linear_apply(params, x)[:, :1]


def _tied_where_second_positive(params, x):
    """Two equal logits wherever x[:, 1] > 0 (about half the noisy samples of x = 0), class 1
    otherwise: ties among decided samples."""
    del params
    tie = x[:, 1:2] > 0
    return jnp.where(tie, 0.0, jnp.concatenate([jnp.full_like(x[:, :1], -1.0),
                                                jnp.ones_like(x[:, :1])], axis=-1))


_ORIGIN = np.zeros((2, 3), np.float32)


def _sequential_equals_fixed(apply_fn, xs=_ORIGIN, num_classes=2):
    """The scheduler (never stopping before n) casts votes, invalid samples and ties as the
    fixed-n kernel does: the same counts and invalid counts."""
    from rpjax._src import sequential, smoothing

    config = rpjax.SmoothingConfig(sigma=0.5, n=100)
    plan_ = smoothing._plan.resolve(config, num_classes=num_classes)
    prepared = smoothing.prepare(apply_fn, _PARAMS, xs, 0, None, plan_)
    counts, invalid = smoothing.count(apply_fn, _PARAMS, prepared.xs, prepared.key_pairs(), 100,
                                      plan_)
    seq = sequential.run(apply_fn, _PARAMS, prepared.xs, prepared.key_pairs(),
                         np.zeros(len(xs), np.int32), sequential.StopRule.fixed(100), plan_)
    return (np.array_equal(seq.counts, np.asarray(counts))
            and np.array_equal(seq.invalid, np.asarray(invalid)))


class _Unhashable:
    __hash__ = None  # e.g. a dataclass with eq=True and mutable state

    def __call__(self, params, x):
        return linear_apply(params, x)


_SIDES = np.array([[50.0, 0, 0], [-50.0, 0, 0]], np.float32)  # x[:, 0] far positive / negative
_FIRST_ONLY = lambda result: np.array([True, False])  # noqa: E731
_ALL = lambda result: np.ones(len(result.label), bool)  # noqa: E731
_NONE = lambda result: np.zeros(len(result.label), bool)  # noqa: E731

_CPU = jax.devices("cpu")[0]
_RELEASE_CONFIG = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=0.5, n=100), num_classes=2)


def _release(**kw):
    """A deployed release (default budget: one answer per subject) with a fresh ledger."""
    ledger = os.path.join(tempfile.mkdtemp(prefix="rpjax-bad-inputs-"), "ledger.sqlite")
    return RobustPrivacyRelease(linear_apply, _PARAMS, _RELEASE_CONFIG, ledger=ledger, **kw)


def _traced_at(state):
    traced = RobustPrivacyRelease(linear_apply, _PARAMS, _RELEASE_CONFIG,
                                  budget=Budget.unlimited()).traced()
    return traced(_XS, state)


def _noise_differs_from_seed_0(key):
    ref = np.asarray(_counts(key=0, n=1000))
    return not np.array_equal(np.asarray(_counts(key=key, n=1000)), ref)


API_ROWS = [
    # inputs
    ("xs_nan", lambda: _certify(xs=np.array([[1.0, np.nan, 0.0]] * 2, np.float32)),
     Raises(ValueError, "xs.*non-finite")),
    ("xs_inf", lambda: _certify(xs=np.array([[np.inf, 0.0, 0.0]], np.float32)),
     Raises(ValueError, "xs.*non-finite")),
    ("xs_nan_on_device", lambda: _predict(xs=jnp.array([[0, 0, 0], [0, jnp.nan, 0]])),
     Raises(ValueError, r"xs.*batch indices \[1\]")),
    ("xs_empty", lambda: _certify(xs=np.zeros((0, 3), np.float32)),
     Raises(ValueError, "xs.*empty")),
    ("xs_integer", lambda: _certify(xs=np.ones((2, 3), np.int32)),
     Raises(TypeError, "xs.*floating")),
    ("xs_scalar", lambda: _certify(xs=np.float32(1.0)), Raises(ValueError, "xs")),
    ("xs_rank", lambda: _certify(xs=np.ones((2, 3, 1), np.float32)), Raises(ValueError, "xs")),
    ("xs_width", lambda: _certify(xs=np.ones((2, 5), np.float32)), Raises(ValueError, "xs.*shape")),
    ("xs_string", lambda: _certify(xs="abc"), Raises(TypeError, "xs")),
    # sample sizes
    ("n_float", lambda: _certify(n=100.0), Raises(TypeError, "n must be an integer")),
    ("n_negative", lambda: _certify(n=-5), Raises(ValueError, "n must be an integer >= 1")),
    ("n_zero", lambda: _certify(n=0), Raises(ValueError, "n must")),
    ("n_huge", lambda: _certify(n=2**31), Raises(ValueError, "n must be <= 2")),
    ("n_bool", lambda: _certify(n=True), Raises(TypeError, "n must be an integer")),
    ("n0_float", lambda: _certify(n0=1.5), Raises(TypeError, "n0 must be an integer")),
    ("n0_negative", lambda: _certify(n0=-1), Raises(ValueError, "n0")),
    ("n_too_small_certify", lambda: _certify(xs=_SIDES, n=5),
     WarnsAbstains(stats.SampleSizeWarning, "cannot certify anything", _ALL)),
    ("n_too_small_predict", lambda: _predict(xs=_SIDES, n=5),
     WarnsAbstains(stats.SampleSizeWarning, "can never pass", _ALL)),
    # sigma
    ("sigma_zero", lambda: _certify(sigma=0.0), Raises(ValueError, "sigma")),
    ("sigma_negative", lambda: _certify(sigma=-2.0), Raises(ValueError, r"sigma=-2\.0")),
    ("sigma_nan", lambda: _certify(sigma=float("nan")), Raises(ValueError, "sigma")),
    ("sigma_string", lambda: _certify(sigma="0.5"), Raises(TypeError, "sigma")),
    ("sigma_overflows_float32", lambda: _certify(sigma=1e39),
     Raises(ValueError, "sigma=1e.39 is too large for inputs of dtype float32")),
    ("sigma_overflows_float32_near_max", lambda: _counts(sigma=1e38),
     Raises(ValueError, "sigma.*too large")),
    ("sigma_overflows_float16", lambda: _predict(xs=_XS.astype(np.float16), sigma=7e4),
     Raises(ValueError, "sigma.*too large for inputs of dtype float16")),
    ("sigma_plus_inputs_overflow_float16",
     lambda: _always(xs=np.full((1, 3), 6e4, np.float16), sigma=1000.0),
     Raises(ValueError, "sigma.*max \\|xs\\| is 6e\\+04")),
    ("sigma_rounds_away_float16", lambda: _certify(xs=_XS.astype(np.float16), sigma=1e-6),
     Raises(ValueError, "sigma.*smallest normal")),
    ("alpha_zero", lambda: _certify(alpha=0.0), Raises(ValueError, "alpha")),
    ("alpha_one", lambda: _certify(alpha=1.0), Raises(ValueError, "alpha")),
    ("alpha_big", lambda: _predict(alpha=2.0), Raises(ValueError, "alpha")),
    # classes and model output
    ("num_classes_one", lambda: _certify(num_classes=1), Raises(ValueError, "num_classes")),
    ("num_classes_float", lambda: _certify(num_classes=2.0), Raises(TypeError, "num_classes")),
    ("num_classes_below_model", lambda: _certify(apply_fn=_three_logits),
     Raises(ValueError, "num_classes=2 is smaller.*3 logits")),
    ("model_returns_vector", lambda: _certify(apply_fn=lambda p, x: x.sum(axis=1)),
     Raises(ValueError, r"logits of shape \[b, num_classes\]")),
    ("model_one_logit", lambda: _certify(apply_fn=_one_logit),
     Raises(ValueError, "apply_fn returns 1 logit.*always class 0")),
    ("model_constant_shape", lambda: _predict(apply_fn=_constant_shape),
     Raises(ValueError, r"batch of 3 inputs.*returned shape \(2, 2\)")),
    ("apply_fn_not_callable", lambda: _certify(apply_fn=3), Raises(TypeError, "apply_fn")),
    ("apply_fn_unhashable", lambda: _certify(apply_fn=_Unhashable()),
     Raises(TypeError, "apply_fn must be hashable.*functools.partial")),
    # non-finite logits: warn and abstain (certify, predict, always_label); refuse (counts)
    ("logits_nan_certify", lambda: _certify(xs=_SIDES, apply_fn=_nan_logits),
     WarnsAbstains(RuntimeWarning, r"apply_fn returned invalid logits \(NaN.*abstain", _ALL)),
    ("logits_nan_predict", lambda: _predict(xs=_SIDES, apply_fn=_nan_logits),
     WarnsAbstains(RuntimeWarning, r"apply_fn returned invalid logits \(NaN", _ALL)),
    ("logits_nan_always_label", lambda: _always(xs=_SIDES, apply_fn=_nan_logits),
     WarnsAbstains(RuntimeWarning, r"apply_fn returned invalid logits \(NaN", _ALL)),
    ("logits_nan_on_one_input", lambda: _certify(xs=_SIDES, apply_fn=_nan_where_positive),
     WarnsAbstains(RuntimeWarning, r"batch indices \[0\]", _FIRST_ONLY)),
    ("logits_inf_certify", lambda: _certify(xs=_SIDES, apply_fn=_inf_logits),
     WarnsAbstains(RuntimeWarning, r"NaN or \+inf", _ALL)),
    ("logits_nan_sample_counts", lambda: _counts(apply_fn=_nan_logits),
     Raises(ValueError, r"apply_fn returned invalid logits \(NaN or \+inf.* on 100 of n=100")),
    ("logits_minus_inf_is_a_value", lambda: _certify(xs=_SIDES, apply_fn=_log_probs_with_minus_inf),
     Holds(lambda c: np.array_equal(c.label, [1, 1]) and (c.radius > 0).all())),
    # logits that decide nothing (every class at the maximum: all -inf, or all equal) are
    # invalid samples too: warn and abstain, through every rule and mode; refuse (counts)
    ("logits_all_minus_inf_certify", lambda: _certify(xs=_SIDES, apply_fn=_all_minus_inf),
     WarnsAbstains(RuntimeWarning, r"invalid logits.*no decision.*on 200 of n=200.*abstain",
                   _ALL)),
    ("logits_all_minus_inf_decide_at",
     lambda: _certify(xs=_SIDES, apply_fn=_all_minus_inf, rule=rpjax.DecideAt(0.1)),
     WarnsAbstains(RuntimeWarning, r"certify: apply_fn returned invalid logits", _ALL)),
    ("logits_all_minus_inf_radius_budget",
     lambda: _certify(xs=_SIDES, apply_fn=_all_minus_inf, rule=rpjax.RadiusBudget()),
     WarnsAbstains(RuntimeWarning, r"certify: apply_fn returned invalid logits", _ALL)),
    ("logits_all_minus_inf_predict", lambda: _predict(xs=_SIDES, apply_fn=_all_minus_inf),
     WarnsAbstains(RuntimeWarning, r"predict: apply_fn returned invalid logits", _ALL)),
    ("logits_all_minus_inf_always_label", lambda: _always(xs=_SIDES, apply_fn=_all_minus_inf),
     WarnsAbstains(RuntimeWarning, r"always_label: apply_fn returned invalid logits", _ALL)),
    ("logits_all_minus_inf_sample_counts", lambda: _counts(apply_fn=_all_minus_inf),
     Raises(ValueError, r"invalid logits.*no decision.* on 100 of n=100")),
    ("logits_all_equal_on_one_input_certify",
     lambda: _certify(xs=_SIDES, apply_fn=_tied_where_positive, num_classes=3),
     WarnsAbstains(RuntimeWarning, r"batch indices \[0\]", _FIRST_ONLY)),
    ("logits_all_equal_on_one_input_decide_at",
     lambda: _certify(xs=_SIDES, apply_fn=_tied_where_positive, num_classes=3,
                      rule=rpjax.DecideAt(0.1)),
     WarnsAbstains(RuntimeWarning, r"batch indices \[0\]", _FIRST_ONLY)),
    ("logits_all_equal_predict", lambda: _predict(xs=_SIDES, apply_fn=_tied_where_positive,
                                                  num_classes=3),
     WarnsAbstains(RuntimeWarning, r"batch indices \[0\]", _FIRST_ONLY)),
    ("logits_all_equal_always_label",
     lambda: _always(xs=_SIDES, apply_fn=_tied_where_positive, num_classes=3),
     WarnsAbstains(RuntimeWarning, r"batch indices \[0\]", _FIRST_ONLY)),
    ("logits_tied_in_some_samples_vote_for_class_0",  # as argmax: no abstention, no warning
     lambda: _always(xs=_ORIGIN, apply_fn=_tied_where_second_positive),
     Holds(lambda p: (p.label != rpjax.ABSTAIN).all() and (p.counts.sum(axis=1) == 100).all()
           and (p.counts[:, 0] > 20).all() and (p.counts[:, 1] > 20).all())),
    ("logits_tied_in_some_samples_sequential_equals_fixed",
     lambda: _sequential_equals_fixed(_tied_where_second_positive), Holds(bool)),
    ("logits_tied_in_every_sample_sequential_equals_fixed",
     lambda: _sequential_equals_fixed(_tied_where_positive, xs=_SIDES, num_classes=3),
     Holds(bool)),
    ("logits_partial_tie_is_a_vote",  # classes 1 and 2 tied above class 0: a vote for 1
     lambda: _always(xs=_SIDES, apply_fn=_two_of_three_tied, num_classes=3),
     Holds(lambda p: np.array_equal(p.label, [1, 1])
           and np.array_equal(p.counts, [[0, 100, 0]] * 2))),
    # keys, ids, devices
    ("key_string", lambda: _certify(key="seed"), Raises(TypeError, "key")),
    ("key_float", lambda: _certify(key=1.5), Raises(TypeError, "key")),
    ("key_negative", lambda: _certify(key=-1), Raises(ValueError, r"key.*\[0, 2\*\*64\)")),
    ("key_too_wide", lambda: _certify(key=2**64), Raises(ValueError, "key")),
    ("key_wider_than_32_bits", lambda: _noise_differs_from_seed_0(2**32),
     Holds(bool)),  # not cut to 32 bits: seed 2**32 does not get seed 0's noise
    ("ids_shape", lambda: _certify(ids=[0, 1]), Raises(ValueError, "ids")),
    ("ids_negative", lambda: _certify(ids=[0, 1, 2, -3]), Raises(ValueError, "ids")),
    ("ids_float", lambda: _certify(ids=[0.0, 1.0, 2.0, 3.0]), Raises(TypeError, "ids")),
    ("ids_with_common_noise", lambda: _always(ids=[0, 1, 2, 3], common_noise=True),
     Raises(ValueError, "ids must be None when common_noise")),
    ("common_noise_not_bool", lambda: _predict(common_noise=1), Raises(TypeError, "common_noise")),
    ("devices_strings", lambda: _certify(devices=["cpu"]), Raises(TypeError, "devices")),
    ("devices_empty", lambda: _predict(devices=[]), Raises(TypeError, "devices")),
    ("devices_duplicate", lambda: _certify(devices=[_CPU, _CPU]),
     Raises(ValueError, "devices must be distinct")),
    ("chunk_size_zero", lambda: _certify(chunk_size=0), Raises(ValueError, "chunk_size")),
    ("batch_size_zero", lambda: _always(batch_size=0), Raises(ValueError, "batch_size")),
    ("progress_not_bool", lambda: _counts(progress=3), Raises(TypeError, "progress")),
    ("check_rows_not_bool", lambda: _certify(check_rows=1), Raises(TypeError, "check_rows")),
    ("distribution_wrong", lambda: _certify(distribution="gaussian"),
     Raises(TypeError, "distribution")),
    # one typed plan: SmoothingConfig, a rule, Placement
    ("keywords_instead_of_config", lambda: rpjax.certify(
        linear_apply, _PARAMS, _XS, 0, num_classes=2, sigma=0.5,
        config=rpjax.SmoothingConfig(sigma=0.5)),
     Raises(TypeError, "unexpected keyword argument 'sigma'")),
    ("config_wrong_type", lambda: rpjax.predict(linear_apply, _PARAMS, _XS, 0, num_classes=2,
                                                config={"sigma": 0.5}),
     Raises(TypeError, "config must be a rpjax.SmoothingConfig")),
    ("no_config", lambda: rpjax.always_label(linear_apply, _PARAMS, _XS, 0, num_classes=2),
     Raises(TypeError, "config")),
    ("config_bad_alpha", lambda: rpjax.SmoothingConfig(sigma=0.5, alpha=1.5),
     Raises(ValueError, "alpha")),
    ("rule_wrong_type", lambda: _certify(rule="sequential"),
     Raises(TypeError, "rule must be rpjax.Fixed")),
    ("rule_radius_negative", lambda: rpjax.DecideAt(-1.0),
     Raises(ValueError, "radius must be finite and >= 0")),
    ("rule_price_negative", lambda: rpjax.RadiusBudget(-1.0),
     Raises(ValueError, "price must be finite and >= 0")),
    ("placement_wrong_type", lambda: _certify(placement={"batch_size": 2}),
     Raises(TypeError, "placement must be a rpjax.Placement")),
    ("lanes_too_many", lambda: _certify(rule=rpjax.DecideAt(0.1), chunk_size=2**23 + 1),
     Raises(ValueError, "chunk_size must be <= 2\\*\\*23")),
    # statistics
    ("max_radius_n_nan", lambda: stats.max_radius(float("nan"), 1e-3, 1.0),
     Raises(ValueError, "n must be finite")),
    ("max_radius_n_inf", lambda: stats.max_radius(np.inf, 1e-3, 1.0), Raises(ValueError, "n")),
    ("max_radius_n_zero", lambda: stats.max_radius(0, 1e-3, 1.0), Raises(ValueError, "n")),
    ("max_radius_alpha_nan", lambda: stats.max_radius(100, float("nan"), 1.0),
     Raises(ValueError, "alpha")),
    ("max_radius_sigma_nan", lambda: stats.max_radius(100, 1e-3, float("nan")),
     Raises(ValueError, "sigma")),
    ("clopper_pearson_k_nan", lambda: stats.clopper_pearson_lower(float("nan"), 10, 0.01),
     Raises(ValueError, "k must be finite")),
    ("clopper_pearson_n_nan", lambda: stats.clopper_pearson_upper(3, float("nan"), 0.01),
     Raises(ValueError, "n must be finite")),
    ("clopper_pearson_k_above_n", lambda: stats.clopper_pearson_lower(11, 10, 0.01),
     Raises(ValueError, "k must satisfy")),
    ("binomial_p_nan", lambda: stats.binomial_test_pvalue(3, 10, float("nan")),
     Raises(ValueError, "p must")),
    ("certified_radius_pa_nan", lambda: stats.certified_radius(float("nan"), 1.0),
     Raises(ValueError, "pa_lower")),
    ("certified_radius_sigma_nan", lambda: stats.certified_radius(0.9, float("nan")),
     Raises(ValueError, "sigma")),
    ("min_samples_overflow", lambda: stats.min_samples(1e-3, radius=1e6, sigma=1e-6),
     Raises(ValueError, "radius=1000000.0 at sigma=1e-06.*needs more than")),
    ("min_samples_far_tail", lambda: stats.min_samples(1e-3, radius=40.0, sigma=1.0),
     Raises(ValueError, "radius=40.0 at sigma=1.0")),
    ("min_samples_radius_nan", lambda: stats.min_samples(1e-3, radius=float("nan")),
     Raises(ValueError, "radius")),
    # the deployed release (rpjax.privacy.RobustPrivacyRelease)
    ("release_subject_none", lambda: _release().query(_XS[:1], [None]),
     Raises(TypeError, "subjects must be a str or an int")),
    ("release_subject_nan", lambda: _release().querier(float("nan")),
     Raises(TypeError, "subject must be a str or an int.*got float")),
    ("release_subject_float", lambda: _release().query(_XS[:1], [1.0]),
     Raises(TypeError, "subjects must be a str or an int.*got float")),
    ("release_subject_bool", lambda: _release().querier(True),
     Raises(TypeError, "subject must be a str or an int, got a bool")),
    ("release_budget_without_cap", lambda: Budget(), Raises(ValueError, r"Budget\(\) has no cap")),
    ("release_budget_without_ledger",
     lambda: RobustPrivacyRelease(linear_apply, _PARAMS, _RELEASE_CONFIG),
     Raises(ValueError, "ledger is required")),
    ("release_ledger_in_memory", lambda: RobustPrivacyRelease(
        linear_apply, _PARAMS, _RELEASE_CONFIG, ledger=":memory:"),
     Raises(ValueError, "ledger must be the path of a file")),
    ("release_sigma_overflows_float32",
     lambda: ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=1e39, n=100), num_classes=2),
     Raises(ValueError, "sigma=1e.39 is too large for inputs of dtype float32")),
    ("release_sigma_plus_inputs_overflow", lambda: RobustPrivacyRelease(
        linear_apply, _PARAMS, ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=1e37, n=100),
                                             num_classes=2),
        budget=Budget.unlimited()).query(np.full((1, 3), 3e38, np.float32)),
     Raises(ValueError, "sigma.*max \\|xs\\| is 3e\\+38")),
    ("release_traced_state_int32", lambda: _traced_at(jnp.zeros(2, jnp.int32)),
     Raises(TypeError, "state must have dtype uint32")),
    ("release_traced_state_shape", lambda: _traced_at(jnp.zeros(3, jnp.uint32)),
     Raises(ValueError, r"state must have shape \[2\]")),
    ("release_pickle", lambda: pickle.dumps(_release()),
     Raises(TypeError, "cannot be pickled.*its secret and its ledger connection.*ledger path")),
    ("check_sample_size_radius_nan",
     lambda: _stats.check_sample_size(1000, 1e-3, sigma=1.0, radius=float("nan")),
     Raises(ValueError, "radius")),
]

_SLOW_ROWS = {"logits_inf_certify", "n_too_small_certify"}  # >= 1.8 s on 2 cores

CLI_ROWS = [
    ("cli_sigma_overflow", ["certify-demo", "--sigma", "1e39", "--no-progress"],
     Exits("sigma=1e.39 is too large")),
    ("cli_sigma_negative", ["certify-demo", "--sigma", "-1", "--no-progress"],
     Exits("sigma must be finite and > 0")),
    ("cli_sigma_nan", ["certify-demo", "--sigma", "nan", "--no-progress"], Exits("sigma")),
    ("cli_alpha", ["certify-demo", "--alpha", "1.5", "--no-progress"], Exits("alpha")),
    ("cli_n", ["certify-demo", "--n", "0", "--no-progress"], Exits("n must be an integer >= 1")),
    ("cli_people", ["certify-demo", "--people", "0", "--no-progress"], Exits("num_people")),
    ("cli_radius_needs_sequential", ["certify-demo", "--radius", "0.5", "--no-progress"],
     Exits("options of method='sequential'")),
    ("cli_price_range", ["certify-demo", "--method", "sequential", "--price", "-1",
                         "--no-progress"], Exits("price")),
    ("cli_radius_negative", ["certify-demo", "--method", "sequential", "--radius", "-1",
                             "--no-progress"], Exits("radius must be finite and >= 0")),
    ("cli_quick_and_full", ["reproduce", "rap", "--quick", "--full"],
     Exits("at most one of --tiny, --quick and --full")),
    # destinations, checked before any work (tests/test_durable.py: with timings, previous runs)
    ("cli_out_is_a_file", ["reproduce", "rap", "--out", os.devnull],
     Exits("--out must be a directory, but .* is a file")),
    ("cli_out_under_a_file", ["reproduce", "rap", "--out", os.path.join(os.devnull, "run")],
     Exits("--out: cannot create .*, since .* is not a directory")),
    ("cli_cache_dir_is_a_file", ["reproduce", "rap", "--cache-dir", os.devnull],
     Exits("--cache-dir must be a directory")),
    ("cli_json_is_a_directory", ["certify-demo", "--json", os.curdir, "--no-progress"],
     Exits("--json must be a file path, but .* is a directory")),
    ("cli_json_under_a_file", ["certify-demo", "--json", os.path.join(os.devnull, "r.json")],
     Exits(r"--json \(its directory\) must be a directory")),
]

# the privacy functions: each validates and terminates (issue "A release whose budget holds")
_LB = dict(sigma=1.0, n=100, alpha=1e-3)


def _fast(fn, seconds=5.0):
    """`fn()` wrapped to record that it returned within `seconds` (a hang is a failure)."""
    def run():
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0 < seconds
    return run


PRIVACY_ROWS = [
    ("outcome_probabilities_p1_above_one",
     lambda: privacy.outcome_probabilities("predict", 1.5, n=100, alpha=1e-3),
     Raises(ValueError, "p1 must lie in")),
    ("outcome_probabilities_p1_negative",
     lambda: privacy.outcome_probabilities("predict", -0.1, n=100, alpha=1e-3),
     Raises(ValueError, "p1 must lie in")),
    ("outcome_probabilities_p1_nan",
     lambda: privacy.outcome_probabilities("always_label", float("nan"), n=100),
     Raises(ValueError, "p1 must lie in")),
    ("binomial_tv_negative_m", lambda: leakage.binomial_tv(-3, 0.2, 0.4),
     Raises(ValueError, "m must be an integer >= 0")),
    ("binomial_tv_p_above_one", lambda: leakage.binomial_tv(10, 1.5, 0.4),
     Raises(ValueError, "p must lie in")),
    ("binomial_tv_q_nan", lambda: leakage.binomial_tv(10, 0.5, float("nan")),
     Raises(ValueError, "q must lie in")),
    ("composed_advantage_bc_above_one", lambda: leakage.composed_advantage(0.1, 1.5, 3),
     Raises(ValueError, "per_answer_bc must lie in")),
    ("composed_advantage_negative_tv", lambda: leakage.composed_advantage(-0.5, None, 3),
     Raises(ValueError, "per_answer_tv must lie in")),
    ("composed_advantage_negative_k", lambda: leakage.composed_advantage(0.1, None, -1),
     Raises(ValueError, "k must be")),
    ("advantage_bound_huge_delta_is_one_at_once",
     _fast(lambda: privacy.advantage_bound("predict", delta=1e5, k=3, **_LB)),
     Holds(lambda r: r[0].advantage == 1.0 and r[1])),
    ("advantage_bound_tiny_delta_is_fast",
     _fast(lambda: privacy.advantage_bound("predict", delta=1e-7, k=10, **_LB)),
     Holds(lambda r: 0 < r[0].advantage < 1e-5 and r[1])),
    ("advantage_bound_huge_k_is_fast",
     _fast(lambda: privacy.advantage_bound("always_label", sigma=1.0, delta=0.01, n=100,
                                           k=10**12)),
     Holds(lambda r: r[0].advantage > 0.999 and r[1])),
    ("advantage_bound_cell_width_too_fine",
     lambda: privacy.advantage_bound("predict", delta=0.1, cell_width=1e-9, **_LB),
     Raises(ValueError, "cell_width=1e-09 makes a grid of")),
    ("advantage_bound_failure_probability", lambda: privacy.advantage_bound(
        "predict", delta=0.1, failure_probability=1.5, **_LB),
     Raises(ValueError, "failure_probability must lie in")),
    ("advantage_bound_adaptive_with_interval", lambda: privacy.advantage_bound(
        "predict", delta=0.1, adaptive=True, p1_interval=(0.2, 0.3), **_LB),
     Raises(ValueError, "p1_interval does not apply with adaptive=True")),
    ("p1_interval_count_above_n", lambda: leakage.p1_interval_from_counts(11, 10, 0.05),
     Raises(ValueError, "count_1 must be <= n")),
]


_RUN_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_run_models.py")
_EXIT_MODULE = os.path.join(os.path.dirname(_RUN_MODELS), "_run_models_exit.py")

# (name, --model (FILE: tests/_run_models.py, EXIT: a module that exits when imported), data
# (run_models.bad_data kind, or "missing"), extra flags, the one line's pattern)
RUN_ROWS = [
    ("run_module_missing", "nosuchmodule_xyz:make", "good", (), r"--model nosuchmodule_xyz:make: cannot import"),
    ("run_model_without_colon", "linear_no_colon", "good", (), r"--model: model must be MODULE:FACTORY"),
    ("run_factory_missing", "FILE:missing", "good", (), r"has no callable 'missing'"),
    ("run_factory_returns_int", "FILE:wrong", "good", (), r"must return \(apply_fn, params\) or a flax.nnx.Module, got int"),
    ("run_factory_raises", "FILE:raises", "good", (), r"the factory raised RuntimeError: weights not found"),
    ("run_model_wrong_input_shape", "FILE:other_shape", "good", (), r"cannot be applied to the data's inputs of shape \[b, 6\]"),
    ("run_factory_exits_0", "FILE:exit0", "good", (), r"the model factory .*:exit0 raised SystemExit\(0\)"),
    ("run_factory_exits_3", "FILE:exit3", "good", (), r"the model factory .*:exit3 raised SystemExit\(3\)"),
    ("run_factory_interrupted", "FILE:interrupt", "good", (), r"the model factory .*:interrupt raised KeyboardInterrupt\(\)"),
    ("run_module_exits_on_import", "EXIT:make", "good", (), r"importing .*_run_models_exit.py raised SystemExit\(0\)"),
    ("run_apply_fn_unhashable", "FILE:unhashable", "good", (), r"--model .*apply_fn must be hashable"),
    ("run_apply_fn_exits", "FILE:apply_exits", "good", (), r"the model's apply_fn raised SystemExit\(4\)"),
    ("run_data_missing", "FILE:linear", "missing", (), r"--data .*: no such file"),
    ("run_data_nan", "FILE:linear", "nan", (), r"not finite \(NaN or inf\) at index 5"),
    ("run_data_rank_1", "FILE:linear", "rank", (), r"must have shape \[N, \*input_shape\].*rank >= 2"),
    ("run_data_label_out_of_range", "FILE:linear", "labels", (), r"labels 'y' must lie in \[0, 3\), got 7 at index 3"),
    ("run_data_f64_beyond_float32", "FILE:linear", "f64", (), r"exceed float32's largest finite value .* at index 6"),
    ("run_data_rewritten_during_setup", "FILE:rewrites_now", "good", (), r"--data .*rewritten or replaced"),
    ("run_n_2_31", "FILE:linear", "good", ("--n", str(2**31)), r"--n: n must be <= 2\*\*30"),
    ("run_seed_2_64", "FILE:linear", "good", ("--seed", str(2**64)), r"--seed: seed as an int seed must lie in \[0, 2\*\*64\)"),
    ("run_seed_negative", "FILE:linear", "good", ("--seed", "-1"), r"--seed: seed must be an integer >= 0, got seed=-1"),
    ("run_sigma_zero", "FILE:linear", "good", ("--sigma", "0"), r"--sigma: sigma must be"),
    ("run_alpha_one", "FILE:linear", "good", ("--alpha", "1"), r"--alpha: alpha must lie in"),
]


def _check(trigger, expect):
    if isinstance(expect, Raises):
        with pytest.raises(expect.error, match=expect.pattern):
            trigger()
    elif isinstance(expect, WarnsAbstains):
        with pytest.warns(expect.warning, match=expect.pattern):
            result = trigger()
        must = np.asarray(expect.abstain(result))
        np.testing.assert_array_equal(result.label == rpjax.ABSTAIN, must)
    elif isinstance(expect, Holds):
        assert expect.check(trigger())
    else:
        raise AssertionError(f"unknown expectation {expect!r}")


@pytest.mark.parametrize(("trigger", "expect"),
                         [pytest.param(t, e, id=name,
                                       marks=[pytest.mark.slow] if name in _SLOW_ROWS else [])
                          for name, t, e in API_ROWS])
def test_bad_input(trigger, expect):
    _check(trigger, expect)


@pytest.mark.parametrize(("argv", "expect"),
                         [pytest.param(a, e, id=name) for name, a, e in CLI_ROWS])
def test_bad_cli_input(argv, expect, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("rpjax: error: ") and err.count("\n") == 1, err
    assert re.search(expect.pattern, err), err


@pytest.mark.parametrize(("trigger", "expect"),
                         [pytest.param(t, e, id=name) for name, t, e in PRIVACY_ROWS])
def test_bad_privacy_input(trigger, expect):
    _check(trigger, expect)


@pytest.mark.parametrize(("model", "data", "extra", "pattern"),
                         [pytest.param(*row[1:], id=row[0]) for row in RUN_ROWS])
def test_bad_run_input(tmp_path, capsys, monkeypatch, model, data, extra, pattern):
    """One line on stderr, exit 2, and nothing written: no run directory a resume could trust."""
    path = tmp_path / "in.npz"
    if data != "missing":
        run_models.bad_data(path, data)
    monkeypatch.setenv("RPJAX_TEST_DATA", str(path))  # what FILE:rewrites_now rewrites
    out = tmp_path / "run"
    model = model.replace("FILE", _RUN_MODELS).replace("EXIT", _EXIT_MODULE)
    argv = ["certify", "--model", model, "--data", str(path), "--sigma", "0.5", "--n", "400",
            "--n0", "20", "--block", "4", "--out", str(out), "--no-progress", *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rpjax: error: "), err
    assert re.search(pattern, err), err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ([] if data == "missing" else ["in.npz"])


def test_rows_are_named_uniquely():
    names = [row[0] for row in API_ROWS + CLI_ROWS + PRIVACY_ROWS + RUN_ROWS]
    assert len(names) == len(set(names))


def test_every_engine_entry_point_checks_sigma_overflow():
    for fn in (rpjax.certify, rpjax.predict, rpjax.always_label, rpjax.sample_counts):
        kw = dict(sigma=1e39, n=100, num_classes=2)
        if fn in (rpjax.certify, rpjax.predict):
            kw["alpha"] = 1e-3
        with pytest.raises(ValueError, match="sigma.*too large"):
            fn(linear_apply, _PARAMS, _XS, 0, **plan(**kw))


_AUDIT_MODELS = os.path.join(os.path.dirname(_RUN_MODELS), "_audit_models.py")

AUDIT_ROWS = [
    ("audit_unknown_column", "FILE:linear", "good", ("--sensitive", "weight"), r"--sensitive weight: no column 'weight' and no one-hot group weight=\* in .*in.npz \(columns: age, bmi, g=a"),
    ("audit_not_one_hot", "FILE:linear", "not_one_hot", ("--sensitive", "g"), r"--sensitive g: the columns g=\* of .*in.npz are not one-hot .* at row 3: \[1.0, 1.0, 0.0\]"),
    ("audit_constant_attribute", "FILE:linear", "constant", ("--sensitive", "age"), r"--sensitive age: column 'age' is constant \(45 in every audited row of .*\) and the file gives no sweep range"),
    ("audit_nan", "FILE:linear", "nan", ("--sensitive", "bmi"), r"--data .*in.npz: inputs 'x' are not finite \(NaN or inf\) at index 5"),
    ("audit_group_of_one", "FILE:linear", "single_group", ("--sensitive", "g"), r"--sensitive g: the group g=\* has one column \('g=a'\); a one-hot group needs two or more"),
    ("audit_no_columns", "FILE:linear", "no_columns", ("--sensitive", "bmi"), r"--data .*in.npz: no 'columns' array"),
    ("audit_sigma_zero", "FILE:linear", "good", ("--sensitive", "bmi", "--sigma", "0"), r"--sigma: sigmas must be"),
    ("audit_bad_shift", "FILE:linear", "good", ("--sensitive", "bmi", "--shift", "bmi"), r"--shift must be NAME=AMOUNT \(raw units\), got 'bmi'"),
    ("audit_shift_of_a_group", "FILE:linear", "good", ("--sensitive", "g", "--shift", "g=1"), r"--shift g: not a continuous attribute"),
    ("audit_people_zero", "FILE:linear", "good", ("--sensitive", "bmi", "--people", "0"), r"--people: people must be an integer >= 1"),
    ("audit_module_missing", "nosuchmodule_xyz:make", "good", ("--sensitive", "bmi"), r"--model nosuchmodule_xyz:make: cannot import"),
    ("audit_data_missing", "FILE:linear", "missing", ("--sensitive", "bmi"), r"--data .*: no such file"),
]


@pytest.mark.parametrize(("model", "data", "extra", "pattern"),
                         [pytest.param(*row[1:], id=row[0]) for row in AUDIT_ROWS])
def test_bad_audit_input(tmp_path, capsys, model, data, extra, pattern):
    """One line on stderr, exit 2, and nothing written (no --out)."""
    path = tmp_path / "in.npz"
    if data != "missing":
        audit_models.data(path, kind=data)
    out = tmp_path / "audit"
    model = model.replace("FILE", _AUDIT_MODELS)
    argv = ["audit", "--model", model, "--data", str(path), "--n", "100", "--n0", "20",
            "--out", str(out), "--no-progress", *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rpjax: error: "), err
    assert re.search(pattern, err), err
    assert not out.exists()
