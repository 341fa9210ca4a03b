"""Attribute-privacy intervals (rpjax._src.privacy.rap) and the insurance experiment."""


import jax.numpy as jnp
import numpy as np
import pytest

import rpjax
from rpjax._src.data import insurance
from rpjax._src.experiments import rap as rap_exp
from rpjax._src.experiments.context import Context
from rpjax._src.experiments.rap import report as rap_outputs
from rpjax._src.privacy import rap, rp

_DATA = insurance.load_insurance()
_T = 33.4
_T_STD = float(_DATA.standardize_bmi(_T))
_SWEEP = dict(index=_DATA.bmi_index, offset=float(_DATA.mean[_DATA.bmi_index]),
              scale=_DATA.bmi_std)


def threshold_apply(t_std, x):
    """f(x) = 1[bmi >= t] on standardized inputs (BMI is column 1)."""
    z = x[:, 1] - t_std
    return jnp.stack([-z, z], axis=-1)


def _people(k=12, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(_DATA.bmi), size=k, replace=False)
    return idx, _DATA.x[idx], _DATA.bmi[idx]


def test_base_interval_is_exactly_10_to_t_below_and_t_to_60_above():
    idx, x, bmi = _people(30)
    sweep = rap.AttributeSweep(**_SWEEP, num_points=51, refine_steps=20)
    iv = rap.attribute_intervals(rp.base_labels(threshold_apply, _T_STD), x, idx, bmi,
                                 sweep)
    below = bmi < _T
    assert below.any() and (~below).any()
    np.testing.assert_allclose(iv.preimage[below], np.tile([10.0, _T], (below.sum(), 1)),
                               atol=1e-4)
    np.testing.assert_allclose(iv.preimage[~below],
                               np.tile([_T, 60.0], ((~below).sum(), 1)), atol=1e-4)
    np.testing.assert_array_equal(iv.label, (bmi >= _T).astype(int))
    np.testing.assert_allclose(iv.ape, iv.preimage)  # the base model has no radius


@pytest.mark.parametrize("sigma", [pytest.param(0.5, marks=pytest.mark.slow), 1.0, 2.0])
def test_smoothed_radius_approaches_the_exact_one(sigma):
    """pA = Phi(|bmi - t| / sigma): the certified radius tends to |bmi - t| (std units)."""
    idx, x, bmi = _people(16, seed=1)
    exact = np.abs(_DATA.standardize_bmi(bmi) - _T_STD)
    gaps = []
    for n in (100, 1_000, 10_000, 100_000):
        cert = rpjax.certify(threshold_apply, _T_STD, x, 3, num_classes=2, ids=idx,
                             config=rpjax.SmoothingConfig(sigma=sigma, n=n, alpha=1e-3))
        released = cert.label >= 0
        assert np.all(cert.radius[released] <= exact[released] + 1e-6)
        gaps.append(float(np.mean(np.minimum(exact, 3.5 * sigma) - cert.radius)))
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < (0.06 * sigma)


@pytest.mark.slow
def test_lengths_stable_when_the_grid_changes():
    idx, x, bmi = _people(10, seed=2)
    release = rp.certified_labels(threshold_apply, _T_STD, 0, num_classes=2,
                                  config=rpjax.SmoothingConfig(sigma=1.0, n=2_000, alpha=1e-3))
    lengths = []
    for points in (26, 51, 101):
        sweep = rap.AttributeSweep(**_SWEEP, num_points=points, refine_steps=14)
        iv = rap.attribute_intervals(release, x, idx, bmi, sweep)
        lengths.append(np.stack([iv.length(r) for r in ("preimage", "not_excluded")]))
    np.testing.assert_allclose(lengths[0], lengths[1], atol=2e-3)
    np.testing.assert_allclose(lengths[1], lengths[2], atol=2e-3)
    assert not np.allclose(lengths[0][0], 23.4)  # smoothing changed something


def test_ape_union_by_hand():
    assert rap.ape_union([1.0, 2.0, 5.0], [0.6, 0.5, 1.0], 1.0) == (0.4, 2.5)
    assert rap.ape_union([1.0, 2.0, 5.0], [0.6, 0.5, 1.0], 4.5) == (4.0, 6.0)
    assert rap.ape_union([1.0, 2.0], [0.6, 0.5], 1.0, low=0.8) == (0.8, 2.5)
    with pytest.raises(ValueError, match="none of the segments"):
        rap.ape_union([1.0], [0.1], 3.0)
    with pytest.raises(ValueError, match="radii"):
        rap.ape_union([1.0], [-0.1], 1.0)


def test_ape_from_given_radii():
    """A release with a known constant radius widens the preimage by R * std each side."""
    radius = 0.5  # input (standardized) units

    def release(xs, ids):
        labels = (np.asarray(xs)[:, 1] >= _T_STD).astype(np.int64)
        return labels, np.full(len(xs), radius)

    idx, x, bmi = _people(8, seed=3)
    sweep = rap.AttributeSweep(**_SWEEP, num_points=101, refine_steps=16)
    iv = rap.attribute_intervals(release, x, idx, bmi, sweep)
    widen = radius * _DATA.bmi_std
    below = bmi < _T
    np.testing.assert_allclose(iv.ape_unclipped[below, 0], 10.0 - widen, atol=1e-3)
    np.testing.assert_allclose(iv.ape_unclipped[below, 1], _T + widen, atol=1e-3)
    np.testing.assert_allclose(iv.ape[below], np.tile([10.0, _T + widen], (below.sum(), 1)),
                               atol=1e-3)
    np.testing.assert_allclose(iv.ape[~below],
                               np.tile([_T - widen, 60.0], ((~below).sum(), 1)), atol=1e-3)


def test_bad_sweep():
    with pytest.raises(ValueError, match="low must be < high"):
        rap.AttributeSweep(index=1, low=60, high=10)
    with pytest.raises(ValueError, match="scale"):
        rap.AttributeSweep(index=1, scale=0.0)
    idx, x, bmi = _people(2)
    with pytest.raises(ValueError, match="sweep range"):
        rap.attribute_intervals(rp.base_labels(threshold_apply, _T_STD), x, idx,
                                np.array([5.0, 30.0]), rap.AttributeSweep(index=1))


@pytest.mark.slow
def test_default_base_model_median_interval_near_23_4():
    """The default configuration's base model: median interval within 1 BMI of 23.4."""
    result = rap_exp.run(rap_exp.RapConfig(sigmas=(1.0,), ns=(100,)), Context(progress=False))
    assert result.num_people == 268
    assert abs(result.base["median_interval_bmi"] - 23.4) < 1.0
    assert result.base["accuracy"] > 0.95
    weights = result.base["first_layer_abs_weight"]
    assert weights["bmi"] > 5 * max(v for k, v in weights.items() if k != "bmi")


@pytest.mark.slow
def test_augmented_base_model_option():
    config = rap_exp.RapConfig.quick(sigmas=(1.0,), ns=(100,), max_people=10, grid_points=11,
                                     refine_steps=2, train_steps=200, augment_at_sigma=True)
    result = rap_exp.run(config, Context(progress=False))
    record = result.rp["1.0"]
    assert record["base_model"] == "trained with Gaussian augmentation at sigma=1.0"
    assert result.config["augment_at_sigma"] is True
    # the typed per-person outcome: one trace per release, found by its settings
    people = result.people
    assert [(r.sigma, r.n) for r in people.releases] == [(None, None), (1.0, 100)]
    trace = people.release(1.0, 100)
    assert trace.name == "rp_sigma1.0_n100"
    assert trace.labels.shape == trace.radius.shape == (10,)
    assert np.all(trace.radius[trace.labels == rpjax.ABSTAIN] == 0)
    with pytest.raises(ValueError, match="sigma"):
        people.release(2.0, 100)
    # summary() is JSON-ready and holds the people nowhere
    summary = result.summary()
    assert summary["experiment"] == "rap" and summary["rp"] is result.rp
    assert "people" not in summary and not any(k.startswith("_") for k in summary)
    # the CSV has one row per (release, person), sigma and n from the trace, not its name
    rows = rap_outputs.csv_rows(result)
    assert len(rows) == 2 * 10
    assert {tuple(r[4:6]) for r in rows} == {("", ""), ("1.0", "100")}
    assert len(rows[0]) == len(rap_outputs.CSV_HEADER)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(values=[1.0], radii=[np.nan], point=1.0), "radii must be >= 0 \\(not NaN\\)"),
    (dict(values=[1.0, 2.0], radii=[0.5, -0.1], point=1.0), "radii must be >= 0"),
    (dict(values=[np.nan], radii=[0.5], point=1.0), "values must be finite"),
    (dict(values=[1.0, 2.0], radii=[0.5], point=1.0), "values and radii must be"),
    (dict(values=[], radii=[], point=1.0), "non-empty"),
    (dict(values=[1.0], radii=[0.5], point=np.nan), "point must be finite"),
    (dict(values=[1.0], radii=[0.5], point=1.0, low=2.0, high=0.0), "low <= high"),
    (dict(values=[1.0], radii=[0.5], point=1.0, low=np.nan), "low <= high"),
    (dict(values=[1.0], radii=[0.5], point=1.0, high=np.nan), "low <= high"),
])
def test_ape_union_refuses_bad_arguments_naming_them(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        rap.ape_union(**kwargs)


def _nan_radius_release(xs, ids):
    labels = (np.asarray(xs)[:, 1] >= _T_STD).astype(np.int64)
    return labels, np.full(len(xs), np.nan)


def _bad_intervals_call(case):
    idx, x, bmi = _people(3)
    sweep = rap.AttributeSweep(**_SWEEP, num_points=11, refine_steps=2)
    release = rp.base_labels(threshold_apply, _T_STD)
    args = dict(release=release, x=x, ids=idx, true_values=bmi, sweep=sweep)
    if case == "true_nan":
        args["true_values"] = np.array([bmi[0], np.nan, bmi[2]])
    elif case == "true_inf":
        args["true_values"] = np.array([bmi[0], np.inf, bmi[2]])
    elif case == "x_rank":
        args["x"] = x[0]
    elif case == "x_nan":
        args["x"] = np.where(np.arange(x.shape[1]) == 0, np.nan, x)
    elif case == "index_out_of_range":
        args["sweep"] = rap.AttributeSweep(index=x.shape[1], num_points=11)
    elif case == "ids_float":
        args["ids"] = idx.astype(np.float64)
    elif case == "ids_negative":
        args["ids"] = -1 - idx
    elif case == "release_not_callable":
        args["release"] = 3
    elif case == "release_nan_radii":
        args["release"] = _nan_radius_release
    elif case == "sweep_not_a_sweep":
        args["sweep"] = dict(index=1)
    return rap.attribute_intervals(**args)


@pytest.mark.parametrize(("case", "error", "pattern"), [
    ("true_nan", ValueError, r"true_values must be finite.*people \[1\]"),
    ("true_inf", ValueError, "true_values must be finite"),
    ("x_rank", ValueError, r"x must be a non-empty \[P, d\] array"),
    ("x_nan", ValueError, "x must be finite"),
    ("index_out_of_range", ValueError, "sweep.index=.* is not a column of x"),
    ("ids_float", ValueError, "ids must be non-negative integers"),
    ("ids_negative", ValueError, "ids must be non-negative integers"),
    ("release_not_callable", TypeError, "release must be callable"),
    ("release_nan_radii", ValueError, r"release must return radii >= 0 \(not NaN\)"),
    ("sweep_not_a_sweep", TypeError, "sweep must be a rpjax.privacy.AttributeSweep"),
])
def test_attribute_intervals_refuses_bad_arguments_naming_them(case, error, pattern):
    with pytest.raises(error, match=pattern):
        _bad_intervals_call(case)
