"""The typed plan: SmoothingConfig, the rules, Placement, and what `resolve` accepts."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

import rpjax
from rpjax._src import plan as _plan
from rpjax._src.privacy.release import ReleaseConfig
from tests._models import linear_apply, random_linear

_PARAMS = random_linear(3, 0)
_XS = (np.random.default_rng(0).normal(size=(6, 3)) * 0.3).astype(np.float32)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sigma=-1.0), ValueError, "sigma must be finite and > 0"),
    (dict(sigma=float("nan")), ValueError, "sigma must be finite"),
    (dict(sigma="0.5"), TypeError, "sigma must be a real number"),
    (dict(sigma=0.5, n=0), ValueError, "n must be an integer >= 1"),
    (dict(sigma=0.5, n=2**30 + 1), ValueError, "n must be <= 2\\*\\*30"),
    (dict(sigma=0.5, n0=2**31), ValueError, "n0 must be <= 2\\*\\*30"),
    (dict(sigma=0.5, n=10.0), TypeError, "n must be an integer"),
    (dict(sigma=0.5, alpha=1.0), ValueError, "alpha must lie in the open interval"),
    (dict(sigma=0.5, distribution="gaussian"), TypeError, "distribution must be"),
    (dict(sigma=0.5, common_noise=1), TypeError, "common_noise must be a bool"),
    (dict(sigma=0.5, chunk_size=8), TypeError, "chunk_size"),
])
def test_smoothing_config_refuses_bad_settings(kwargs, error, match):
    with pytest.raises(error, match=match):
        rpjax.SmoothingConfig(**kwargs)


def test_smoothing_config_is_keyword_only_canonical_and_serializes():
    with pytest.raises(TypeError):
        rpjax.SmoothingConfig(0.5)  # keyword-only
    cfg = rpjax.SmoothingConfig(sigma=np.float32(0.5), n=np.int64(1000))
    assert type(cfg.sigma) is float and type(cfg.n) is int
    assert cfg.to_dict() == {"sigma": 0.5, "n0": 100, "n": 1000, "alpha": 1e-3,
                             "distribution": "gaussian", "common_noise": False}


@pytest.mark.parametrize("make, error, match", [
    (lambda: rpjax.DecideAt(-0.1), ValueError, "radius must be finite and >= 0"),
    (lambda: rpjax.DecideAt(float("inf")), ValueError, "radius must be finite"),
    (lambda: rpjax.DecideAt(), TypeError, "radius"),
    (lambda: rpjax.DecideAt("1"), TypeError, "radius must be a real number"),
    (lambda: rpjax.DecideAt(0.1, futility=0.0), ValueError, "futility must lie in"),
    (lambda: rpjax.DecideAt(0.1, futility=1.0), ValueError, "futility must lie in"),
    (lambda: rpjax.RadiusBudget(-1e-7), ValueError, "price must be finite and >= 0"),
    (lambda: rpjax.RadiusBudget(float("nan")), ValueError, "price"),
    (lambda: rpjax.Fixed(3), TypeError, "positional argument"),
    (lambda: _plan.rule_from_dict({"rule": "sequential"}), ValueError, "rule must be one of"),
])
def test_rules_refuse_what_cannot_be_asked(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("rule", [rpjax.Fixed(), rpjax.DecideAt(0.25),
                                  rpjax.DecideAt(0.25, futility=0.05), rpjax.RadiusBudget(),
                                  rpjax.RadiusBudget(1e-6)])
def test_rules_round_trip_through_their_dicts(rule):
    assert _plan.rule_from_dict(rule.to_dict()) == rule
    hash(rule)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(devices="cpu"), TypeError, "devices must be a non-empty sequence"),
    (dict(devices=[]), TypeError, "devices must be a non-empty sequence"),
    (dict(chunk_size=0), ValueError, "chunk_size must be an integer >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (dict(progress=1), TypeError, "progress must be a bool or a str"),
])
def test_placement_refuses_bad_knobs(kwargs, error, match):
    with pytest.raises(error, match=match):
        rpjax.Placement(**kwargs)


def test_placement_refuses_a_device_listed_twice():
    d = jax.devices()[0]
    with pytest.raises(ValueError, match="devices must be distinct"):
        rpjax.Placement(devices=[d, d])


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(config=dict(sigma=0.5)), TypeError, "config must be a rpjax.SmoothingConfig"),
    (dict(rule="sequential"), TypeError, "rule must be rpjax.Fixed"),
    (dict(rule=rpjax.DecideAt), TypeError, "rule must be rpjax.Fixed"),
    (dict(placement=dict(batch_size=2)), TypeError, "placement must be a rpjax.Placement"),
    (dict(num_classes=1), ValueError, "num_classes must be an integer >= 2"),
    (dict(rule=rpjax.DecideAt(0.1), placement=rpjax.Placement(chunk_size=2**23 + 1)),
     ValueError, "chunk_size must be <= 2\\*\\*23 with a sequential rule"),
    (dict(sigma=0.5), TypeError, "unexpected keyword argument 'sigma'"),
    (dict(method="sequential"), TypeError, "unexpected keyword argument 'method'"),
])
def test_certify_refuses_a_plan_of_the_wrong_type(kwargs, error, match):
    args = dict(num_classes=2, config=rpjax.SmoothingConfig(sigma=0.5, n=100))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rpjax.certify(linear_apply, _PARAMS, _XS, 0, **args)


def test_certify_takes_at_most_nine_parameters():
    import inspect

    assert len(inspect.signature(rpjax.certify).parameters) == 9
    for fn in (rpjax.predict, rpjax.always_label, rpjax.sample_counts):
        assert len(inspect.signature(fn).parameters) == 8


@pytest.mark.parametrize("rule", [rpjax.Fixed(), rpjax.DecideAt(0.2), rpjax.RadiusBudget()])
def test_common_noise_is_the_noise_of_id_0_for_every_rule(rule):
    """With common noise each input's certificate is the one it gets alone with id 0."""
    cfg = rpjax.SmoothingConfig(sigma=0.5, n0=20, n=1024, alpha=1e-2)
    common = rpjax.certify(linear_apply, _PARAMS, _XS, 5, num_classes=2, rule=rule,
                           config=rpjax.SmoothingConfig(**{**cfg.to_dict(),
                                                           "distribution": rpjax.GAUSSIAN,
                                                           "common_noise": True}))
    for i in range(len(_XS)):
        alone = rpjax.certify(linear_apply, _PARAMS, _XS[i:i + 1], 5, num_classes=2, rule=rule,
                              config=cfg, ids=[0])
        for field in ("label", "radius", "pa_lower", "pa_upper", "counts", "n",
                      "selection_counts", "decision"):
            chex.assert_trees_all_equal(getattr(common, field)[i], getattr(alone, field)[0])


def test_common_noise_refuses_ids():
    cfg = rpjax.SmoothingConfig(sigma=0.5, n=100, common_noise=True)
    with pytest.raises(ValueError, match="ids must be None when common_noise=True"):
        rpjax.certify(linear_apply, _PARAMS, _XS, 0, num_classes=2, config=cfg, ids=range(6))


@pytest.mark.parametrize("smoothing, match", [
    (rpjax.SmoothingConfig(sigma=0.5, n=100, common_noise=True),
     "smoothing.common_noise must be False in a release"),
    (rpjax.SmoothingConfig(sigma=0.5, n=100, distribution=rpjax.GAUSSIAN._replace(name="g2")),
     "smoothing.distribution must be rpjax.GAUSSIAN in a release"),
])
def test_a_release_refuses_statistics_it_cannot_keep(smoothing, match):
    with pytest.raises(ValueError, match=match):
        ReleaseConfig(smoothing=smoothing, num_classes=2)


def test_a_release_config_needs_a_smoothing_config():
    with pytest.raises(TypeError, match="smoothing must be a rpjax.SmoothingConfig"):
        ReleaseConfig(smoothing=dict(sigma=0.5, n=100), num_classes=2)
    with pytest.raises(TypeError):
        ReleaseConfig(sigma=0.5, n=100, num_classes=2)  # the old keywords are gone
