"""`rpjax.privacy.audit` and the audit's real data sets (`rpjax.data.load_tabular`).

The audit is checked on linear models, whose smoothed classifier is known exactly: for
f(x) = [w.x + b > 0] under N(0, sigma^2 I), g = f and p_A(x) = Phi(|w.x + b| / (sigma ||w||)),
so the preimage of a sweep over one coordinate is the side of the hyperplane the person is on,
and the set of categories compatible with the label is {c : sign(z + w_c - w_t) = sign(z)}.
"""

from __future__ import annotations

import socket

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from rpjax import stats
from rpjax.data import TABULAR_DATASETS, load_tabular
from rpjax.privacy import (
    AttributeSweep,
    AuditConfig,
    Budget,
    CategoricalAttribute,
    ReleaseConfig,
    advantage_bound,
    audit,
)

from _models import linear_apply

SIGMA, N, N0, ALPHA = 0.5, 4000, 100, 1e-3


def _people(num=8, seed=0):
    """Inputs [num, 5]: column 0 continuous (raw = 1 + 2 x), columns 2..4 a one-hot group."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, 5)).astype(np.float32)
    x[:, 0] = np.clip(x[:, 0], -2.0, 2.0)
    cats = np.arange(num) % 3
    x[:, 2:] = 0.0
    x[np.arange(num), 2 + cats] = 1.0
    return x, cats


SWEEP = AttributeSweep(index=0, offset=1.0, scale=2.0, low=-9.0, high=11.0, num_points=21,
                       refine_steps=10)
GROUP = CategoricalAttribute(columns=(2, 3, 4), categories=("a", "b", "c"))
TOL = (SWEEP.high - SWEEP.low) / (SWEEP.num_points - 1) / 2 ** SWEEP.refine_steps


def _config(**kw):
    base = dict(sigmas=(SIGMA,), ns=(N,), n0=N0, alpha=ALPHA, ks=(1, 10),
                attack_people=0)
    return AuditConfig(**{**base, **kw})


def _analytic_interval(w, b, x, sweep):
    """The side of the hyperplane, in raw units of the sweep, for each person: [P, 2]."""
    w = np.asarray(w, np.float64)
    z = x.astype(np.float64) @ w + float(b)
    rest = z - w[sweep.index] * x[:, sweep.index]
    cross = sweep.offset + sweep.scale * (-rest / w[sweep.index])  # raw value where z = 0
    upward = (z > 0) == (w[sweep.index] > 0)  # label kept for larger values
    lo = np.where(upward, np.maximum(cross, sweep.low), sweep.low)
    hi = np.where(upward, sweep.high, np.minimum(cross, sweep.high))
    return np.stack([lo, hi], 1), z


def test_linear_continuous_intervals_and_radii_are_the_analytic_ones():
    w = jnp.asarray([1.0, 0.5, 0.0, 0.8, -0.6], jnp.float32)
    b = jnp.float32(0.1)
    x, _ = _people()
    res = audit(linear_apply, (w, b), x, sensitive={"a": SWEEP}, config=_config(), key=3)
    truth, z = _analytic_interval(w, b, x, SWEEP)
    base = res.attributes["a"]["base"]["people"]
    # f: the preimage is the side of the hyperplane, to the bisection's resolution
    np.testing.assert_allclose(np.asarray(base["preimage"]), truth, atol=TOL * 1.01)
    smoothed = res.attributes["a"]["smoothed"][0]["people"]
    pre, ne = np.asarray(smoothed["preimage"]), np.asarray(smoothed["not_excluded"])
    ape = np.asarray(smoothed["ape"])
    norm = float(np.linalg.norm(np.asarray(w, np.float64)))
    far = np.abs(z) / (SIGMA * norm) > 1.0  # released, not abstained, with certainty
    assert far.sum() >= 4
    label = np.asarray(smoothed["label"])
    np.testing.assert_array_equal(label[far], (z[far] > 0).astype(int))
    # g = f: its Monte Carlo preimage lies inside the analytic one (abstentions near the plane)
    # and its not-excluded interval covers it; APE contains the preimage
    assert np.all(pre[far, 0] >= truth[far, 0] - TOL) and np.all(pre[far, 1] <= truth[far, 1] + TOL)
    assert np.all(ne[far, 0] <= truth[far, 0] + TOL) and np.all(ne[far, 1] >= truth[far, 1] - TOL)
    assert np.all(ape[:, 0] <= pre[:, 0]) and np.all(ape[:, 1] >= pre[:, 1])
    # radii: sound (at most the distance to the plane) and within the Clopper-Pearson slack
    # of a count at its 1e-6 quantile
    radius = np.asarray(smoothed["radius_raw"]) / SWEEP.scale
    dist = np.abs(z) / norm
    assert np.all(radius <= dist + 1e-6)
    pa = sps.norm.cdf(dist[far] / SIGMA)
    k_low = sps.binom.ppf(1e-6, N, pa)
    low = SIGMA * sps.norm.ppf(stats.clopper_pearson_lower(k_low, N, ALPHA))
    assert np.all(radius[far] >= np.maximum(low, 0.0) - 1e-9)


def _analytic_categories(w, b, x, cats, columns):
    w = np.asarray(w, np.float64)
    z = x.astype(np.float64) @ w + float(b)
    wc = w[list(columns)]
    moved = z[:, None] + wc[None, :] - wc[cats][:, None]
    return (moved > 0) == (z > 0)[:, None], z


def test_linear_categorical_sets_are_the_analytic_ones():
    w = jnp.asarray([0.3, 0.2, -1.5, 0.0, 1.5], jnp.float32)
    b = jnp.float32(0.0)
    x, cats = _people(12)
    res = audit(linear_apply, (w, b), x, sensitive={"g": GROUP}, config=_config(), key=5)
    truth, z = _analytic_categories(w, b, x, cats, GROUP.columns)
    base = res.attributes["g"]["base"]
    np.testing.assert_array_equal(np.asarray(base["people"]["compatible"], bool), truth)
    np.testing.assert_array_equal(base["people"]["category"], cats)
    assert base["share_hidden"] == pytest.approx(truth.all(axis=1).mean())
    sm = res.attributes["g"]["smoothed"][0]
    comp = np.asarray(sm["people"]["compatible"], bool)
    ne = np.asarray(sm["people"]["not_excluded"], bool)
    label = np.asarray(sm["people"]["label"])
    released = label != -1
    # g = f: a category whose Monte Carlo label equals the released one is analytically
    # compatible; every analytically compatible one is at least not excluded
    assert np.all(~comp[released] | truth[released])
    assert np.all(ne[released] | ~truth[released])
    # the certificate: a radius beyond the one-hot distance means every category is compatible
    covered = np.asarray(sm["people"]["radius_covers_change"])
    assert np.all(truth[covered].all(axis=1))
    dist = np.abs(z) / float(np.linalg.norm(np.asarray(w, np.float64)))
    assert np.all(np.asarray(sm["people"]["radius"]) <= dist + 1e-6)


def test_ignored_category_is_hidden_and_keyed_one_is_not():
    x, cats = _people(12, seed=1)
    ignore = (jnp.asarray([1.0, -0.5, 0.0, 0.0, 0.0], jnp.float32), jnp.float32(0.2))
    keyed = (jnp.asarray([0.1, 0.0, -3.0, 0.0, 3.0], jnp.float32), jnp.float32(0.0))
    cfg = _config(sigmas=(0.25, 1.0), ns=(1000,), attack_people=6, attack_queries=(1, 10),
                  attacker_samples=500)
    hidden = audit(linear_apply, ignore, x, sensitive={"g": GROUP}, config=cfg, key=1)
    shown = audit(linear_apply, keyed, x, sensitive={"g": GROUP}, config=cfg, key=1)
    h, s = hidden.attributes["g"], shown.attributes["g"]
    assert h["base"]["share_hidden"] == 1.0
    # the same noise for every category of a person (common random numbers) and a model that
    # ignores the group: the same Monte Carlo label, abstentions included, for every category
    assert all(r["share_hidden"] == 1.0 for r in h["smoothed"])
    assert s["base"]["share_hidden"] < 1.0 and s["base"]["share_singled_out"] > 0
    assert all(r["share_hidden"] < 1.0 for r in s["smoothed"])
    # the attackers learn nothing of an ignored category: no better than the majority guess
    for sec in h["attacks"]:
        assert all(r["accuracy"] <= sec["majority_baseline_attacked"] + 1e-12
                   for r in sec["rows"])
    # ... and the undefended model's one label gives the keyed category away to some
    base_rows = [r for sec in s["attacks"] for r in sec["rows"] if r["attacker"] == "base"]
    assert max(r["accuracy"] for r in base_rows) > 1 / 3


def test_leakage_section_is_the_bound_and_the_budget():
    x, _ = _people(4)
    w = (jnp.asarray([1.0, 0.5, 0.0, 0.8, -0.6], jnp.float32), jnp.float32(0.1))
    cfg = _config(sigmas=(0.5, 1.0), ns=(200,), ks=(1, 10, 100), shifts={"a": 0.5},
                  max_advantage=0.3)
    res = audit(linear_apply, w, x, sensitive={"a": SWEEP, "g": GROUP}, config=cfg, key=0)
    for name, delta in (("a", 0.5 / SWEEP.scale), ("g", GROUP.change_distance)):
        sec = res.attributes[name]["leakage"]
        assert sec["delta_input_units"] == pytest.approx(delta)
        for row in sec["rows"]:
            bounds = [row["bound_by_k"][str(k)] for k in cfg.ks]
            assert bounds == sorted(bounds)
            want = advantage_bound("predict", sigma=row["sigma"], delta=delta, n=200,
                                   alpha=ALPHA, n0=N0, k=10, adaptive=True).advantage
            assert row["bound_by_k"]["10"] == want
            rc = ReleaseConfig(smoothing=cfg.smoothing(row["sigma"], 200), num_classes=2)
            allowed = Budget(max_advantage=0.3, delta=delta).answers_allowed(rc)
            assert row["answers_allowed"] == allowed
    # more noise protects more: at least as many answers at the larger sigma
    rows = res.attributes["a"]["leakage"]["rows"]
    assert rows[1]["answers_allowed"] >= rows[0]["answers_allowed"]


def test_continuous_attackers_and_resume_from_a_checkpoint():
    x, _ = _people(6)
    w = (jnp.asarray([1.0, 0.5, 0.0, 0.8, -0.6], jnp.float32), jnp.float32(0.1))
    cfg = _config(ns=(300,), attack_people=3, attack_queries=(1, 5), attacker_samples=400,
                  attack_grid=21)
    store: dict = {}
    full = audit(linear_apply, w, x, sensitive={"a": SWEEP, "g": GROUP}, config=cfg, key=2,
                 checkpoint=store, labels=np.zeros(6, np.int64))
    names = {r["attacker"] for sec in full.attributes["a"]["attacks"] for r in sec["rows"]}
    assert names == {"base", "radius", "repeat", "near_duplicate", "abstention"}
    for sec in full.attributes["a"]["attacks"]:
        for r in sec["rows"]:
            assert 0 <= r["median_error_raw"] <= SWEEP.high - SWEEP.low
    # an interrupted audit: half the sections done; the rest are computed, the result equal
    partial = dict(list(store.items())[: len(store) // 2])
    resumed = audit(linear_apply, w, x, sensitive={"a": SWEEP, "g": GROUP}, config=cfg, key=2,
                    checkpoint=partial, labels=np.zeros(6, np.int64))
    assert resumed.summary() == full.summary()
    assert set(partial) == set(store)


@pytest.mark.parametrize("sensitive, pattern", [
    ({"g": CategoricalAttribute(columns=(0, 1))}, r"sensitive\['g'\]: .*not one-hot .*at row 0"),
    ({"a": AttributeSweep(index=0, low=5.0, high=6.0)}, r"sensitive\['a'\]: .*must lie in the "
     r"sweep range"),
    ({"a": AttributeSweep(index=9)}, r"sensitive\['a'\]: index 9 is not a column"),
])
def test_bad_attributes_are_refused(sensitive, pattern):
    x, _ = _people(3)
    w = (jnp.ones(5, jnp.float32), jnp.float32(0.0))
    with pytest.raises(ValueError, match=pattern):
        audit(linear_apply, w, x, sensitive=sensitive, config=_config(), key=0)


def test_nan_inputs_are_refused():
    x, _ = _people(3)
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"x must be finite \(NaN or inf at row 1\)"):
        audit(linear_apply, (jnp.ones(5), jnp.float32(0)), x, sensitive={"g": GROUP},
              config=_config(), key=0)


@pytest.mark.parametrize("name", TABULAR_DATASETS)
def test_tabular_data_sets_load_offline(name, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    data = load_tabular(name)
    n, d = data.x.shape
    assert n >= 400 and data.y.shape == (n,) and set(np.unique(data.y)) == {0, 1}
    assert len(data.features) == d and np.isfinite(data.x).all()
    assert len(data.sensitive) >= 3
    kinds = {s.kind for s in data.sensitive}
    assert kinds == {"continuous", "categorical"}
    for s in data.sensitive:
        attr = data.attribute(s.name)
        values = data.values(s.name)
        if s.kind == "continuous":
            assert isinstance(attr, AttributeSweep) and attr.scale > 0
            # (values decoded from float32 inputs: within float32 rounding of the range)
            assert attr.low - 1e-4 <= values.min() and values.max() <= attr.high + 1e-4
            # raw units: the scale converts one input unit to the column's std
            assert attr.scale == pytest.approx(values.std(), rel=1e-5)
        else:
            assert isinstance(attr, CategoricalAttribute)
            np.testing.assert_array_equal(attr.decode(data.x), values)
            assert len(np.unique(values)) >= 2
            assert all(data.features[c].startswith(f"{s.name}=") for c in s.columns)
    assert len(data.sha256) == 64


def test_load_tabular_refuses_unknown_names():
    with pytest.raises(ValueError, match=r"name must be one of"):
        load_tabular("iris")
    with pytest.raises(TypeError, match=r"name must be a str"):
        load_tabular(3)


def test_the_docs_example_runs():
    import os
    import re

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                        "audit.md")
    blocks = re.findall(r"```python\n(.*?)```", open(path, encoding="utf-8").read(), flags=re.S)
    assert blocks
    scope: dict = {}
    for code in blocks:
        exec(compile(code, "docs/audit.md", "exec"), scope)  # noqa: S102
    assert 0.0 <= scope["result"].attributes["group"]["base"]["share_hidden"] <= 1.0


def test_a_three_class_model_gets_intervals_and_sets_and_says_what_is_not_covered():
    def three(params, x):
        return x[:, :3] @ params

    x, cats = _people(5)
    res = audit(three, jnp.eye(3, dtype=jnp.float32), x,
                sensitive={"a": SWEEP, "g": GROUP}, config=_config(ns=(200,), attack_people=4),
                key=0)
    assert res.config["num_classes"] == 3 and "two-class" in res.config["not_covered"]
    for name in ("a", "g"):
        rec = res.attributes[name]
        assert "leakage" not in rec and rec["attacks"] == [] and len(rec["smoothed"]) == 1
    # f = argmax of (x0, x1, x2): the group's columns 2.. move only logit 2
    base = res.attributes["g"]["base"]["people"]
    label = np.argmax(x[:, :3], axis=1)
    np.testing.assert_array_equal(base["label"], label)
