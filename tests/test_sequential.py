"""Sequential certification: the on-device scheduler and `certify` with `DecideAt` / `RadiusBudget`.

- the scheduler's counts are those of the fixed-n kernel over the same samples (bit-identical),
  whatever the lanes, slots, input order or devices (1 vs 4 simulated, in a subprocess);
- through the whole pipeline, on the linear model whose smoothed classifier is known in closed
  form, wrong certificates stay within alpha for both questions, and a naive bound fails the
  same check;
- the samples used adapt: easy inputs stop early, `forward_passes` accounts for every sample.
"""

from __future__ import annotations

import textwrap
import warnings

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import rpjax
from rpjax._src import confseq as _confseq
from rpjax._src import sequential as _sequential

from _models import (
    linear_apply,
    linear_truth,
    points_at_distances,
    random_linear,
    run_on_four_devices,
)

_D = 4
_W, _B = random_linear(_D, seed=21)


def _points_at_distances(dist, seed):
    return points_at_distances((_W, _B), dist, seed)


def _truth(xs):
    return linear_truth((_W, _B), xs)


def _simple_rule(n_max, width=3.0, start=10):
    """Stop when S leaves m/2 +- width sqrt(m) (from m = start on)."""
    m = np.arange(n_max + 1)
    hi = np.ceil(m / 2 + width * np.sqrt(m)).astype(np.int32)
    lo = np.floor(m / 2 - width * np.sqrt(m)).astype(np.int32)
    hi[:start], lo[:start] = m[:start] + 1, -1
    return _sequential.StopRule.thresholds(lo, hi)


_XS = _points_at_distances(np.random.default_rng(3).uniform(-2, 2, 29), seed=4)
_RULE = _simple_rule(3000)
_WATCHED = np.ones(29, np.int32)


def _run(**kw):
    """The scheduler on the module's inputs; `chunk_size`, `slots`, `progress` go to Placement."""
    placement = rpjax.Placement(chunk_size=kw.pop("chunk_size", None),
                                batch_size=kw.pop("slots", None),
                                progress=kw.pop("progress", False))
    return _sequential.sequential_counts(linear_apply, (_W, _B), kw.pop("xs", _XS), 7,
                                         kw.pop("watched", _WATCHED), kw.pop("rule", _RULE),
                                         num_classes=2, config=rpjax.SmoothingConfig(sigma=1.0),
                                         placement=placement, **kw)


class TestScheduler:
    @pytest.mark.slow
    def test_counts_equal_the_fixed_n_kernel_over_the_same_samples(self):
        out = _run(chunk_size=64, slots=5)
        assert (out.n < 3000).any() and (out.n > 10).all()  # inputs stopped at different times
        stops = np.unique(out.n)
        for n in stops[np.linspace(0, stops.size - 1, 4).astype(int)]:  # 4 compiles, not 29
            rows = np.flatnonzero(out.n == n)
            ref = rpjax.sample_counts(linear_apply, (_W, _B), _XS[rows], 7, num_classes=2, ids=rows,
                                      config=rpjax.SmoothingConfig(sigma=1.0, n=int(n)))
            chex.assert_trees_all_equal(np.asarray(ref), out.counts[rows])
        chex.assert_trees_all_equal(out.counts.sum(axis=1) + out.invalid, out.n)

    @pytest.mark.slow
    def test_a_rule_that_never_stops_early_is_sample_counts(self):
        out = _run(rule=_sequential.StopRule.fixed(777), chunk_size=100)
        ref = rpjax.sample_counts(linear_apply, (_W, _B), _XS, 7, num_classes=2,
                                  config=rpjax.SmoothingConfig(sigma=1.0, n=777))
        chex.assert_trees_all_equal(out.counts, np.asarray(ref))
        assert (out.n == 777).all()

    # (64, 29): more slots than lane groups (4 of 16), capped; (160, 3): blocks of 3, 3, 4 groups
    @pytest.mark.parametrize("chunk_size,slots", [pytest.param(None, None, marks=pytest.mark.slow),
                                                  (7, 3), (300, 29), (33, 1),
                                                  (64, 29), (160, 3)])
    def test_results_do_not_depend_on_lanes_or_slots(self, chunk_size, slots):
        ref = _run(chunk_size=64, slots=5)
        out = _run(chunk_size=chunk_size, slots=slots)
        chex.assert_trees_all_equal((out.counts, out.n), (ref.counts, ref.n))

    def test_results_do_not_depend_on_input_order(self):
        ref = _run(chunk_size=64, slots=5)
        perm = np.random.default_rng(0).permutation(29)
        out = _run(xs=_XS[perm], ids=perm, chunk_size=50, slots=4)
        chex.assert_trees_all_equal((out.counts, out.n), (ref.counts[perm], ref.n[perm]))

    def test_forward_passes_count_every_evaluated_sample(self):
        out = _run(chunk_size=64, slots=5)
        assert out.forward_passes == out.steps * 64
        assert out.forward_passes >= out.n.sum()
        # the pool stays busy: the lanes a slot is given but does not use are few
        assert out.forward_passes <= out.n.sum() + 29 * 64 + out.steps * 5

    def test_progress_bar_gives_the_same_result(self):
        ref = _run(chunk_size=64, slots=5)
        out = _run(chunk_size=64, slots=5, progress="testing")
        chex.assert_trees_all_equal((out.counts, out.n), (ref.counts, ref.n))

    def test_bad_inputs(self):
        with pytest.raises(ValueError, match="watched"):
            _run(watched=np.ones(3, np.int32))
        with pytest.raises(ValueError, match="watched"):
            _run(watched=np.full(29, 2, np.int32))
        with pytest.raises(TypeError, match="rule"):
            _run(rule=(1, 2, 3, 4))
        with pytest.raises(ValueError, match="same length"):
            z = np.zeros(5, np.int32)
            _run(rule=_sequential.StopRule(z, z, z, z[:4]))
        with pytest.raises(ValueError, match="batch_size"):
            _run(slots=0)


_DEVICES_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    import rpjax
    from rpjax._src import sequential as _sequential
    from test_sequential import _XS, _WATCHED, _RULE, _W, _B
    from _models import linear_apply
    assert len(jax.devices()) == 4, jax.devices()
    out = {{}}
    for label, devices in (("one", jax.devices()[:1]), ("four", jax.devices())):
        r = _sequential.sequential_counts(
            linear_apply, (_W, _B), _XS, 7, _WATCHED, _RULE, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=1.0),
            placement=rpjax.Placement(chunk_size=36, batch_size=5, devices=devices))
        cert = rpjax.certify(linear_apply, (_W, _B), _XS, 7, num_classes=2,
                             config=rpjax.SmoothingConfig(sigma=1.0, n=2000, alpha=1e-3),
                             rule=rpjax.DecideAt(0.5),
                             placement=rpjax.Placement(devices=devices, chunk_size=40))
        out[label] = dict(counts=r.counts.tolist(), n=r.n.tolist(), cert_n=cert.n.tolist(),
                          radius=cert.radius.tolist(), decision=cert.decision.tolist())
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_one_vs_four_devices():
    out = run_on_four_devices(_DEVICES_SCRIPT)
    assert out["one"] == out["four"]
    ref = _run(chunk_size=36, slots=5)  # and this single-device process agrees
    assert out["one"]["counts"] == ref.counts.tolist() and out["one"]["n"] == ref.n.tolist()


class TestCertifySequential:
    """The whole pipeline on the linear model (exact smoothed classifier and radius)."""

    SIGMA, ALPHA, N_MAX, COUNT = 0.5, 0.05, 4000, 2000

    def _inputs(self):
        rng = np.random.default_rng(17)
        # true p_A from about 0.5 to 0.999, both sides of the plane: hard and easy inputs
        dist = rng.uniform(0.0, 1.6, self.COUNT) * rng.choice([-1, 1], self.COUNT)
        return _points_at_distances(dist * self.SIGMA, seed=18)

    def _ok(self, wrong):
        p = sps.binomtest(int(wrong.sum()), wrong.size, self.ALPHA, alternative="greater").pvalue
        return p > 1e-3

    @pytest.mark.slow
    @pytest.mark.parametrize("radius", [None, 0.25])
    def test_wrong_certificates_within_alpha(self, radius):
        xs = self._inputs()
        cert = rpjax.certify(
            linear_apply, (_W, _B), xs, 1, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=self.SIGMA, n=self.N_MAX, n0=30, alpha=self.ALPHA),
            rule=rpjax.DecideAt(radius) if radius else rpjax.RadiusBudget(5e-5))
        label, dist = _truth(xs)
        released = cert.label != rpjax.ABSTAIN
        wrong = released & ((cert.label != label) | (cert.radius > dist * (1 + 1e-6)))
        assert self._ok(wrong), wrong.mean()
        assert cert.n.mean() < 0.5 * self.N_MAX  # and inputs did stop early
        if radius is None:
            assert released.mean() > 0.7  # not passed by abstaining
        else:
            # DecideAt answers one question: a label exactly where certified at r, radius r
            at_r = cert.decision == 1
            np.testing.assert_array_equal(released, at_r)
            assert (cert.radius[at_r] == radius).all() and (cert.radius[~at_r] == 0).all()
            assert released[dist > 2 * radius].mean() > 0.9  # not passed by abstaining
            # "not certified at r" (the futility stop) is wrong at most at rate futility (alpha)
            gave_up = cert.decision == 0
            assert (cert.pa_upper[gave_up] < 1).all() and (cert.pa_upper[~gave_up] == 1).all()
            assert self._ok(gave_up & (label == cert.selection_counts.argmax(1))
                            & (dist > radius))
            undecided = cert.decision == -1
            assert (cert.n[undecided] == self.N_MAX).all()

    @pytest.mark.slow
    def test_a_futility_level_gives_up_sooner_and_keeps_every_certificate(self):
        """DecideAt(r, futility=0.3): fewer passes; certificates at r still wrong at most at
        rate alpha; giving up on a robust input at most at rate futility."""
        xs, r = self._inputs(), 0.25
        config = rpjax.SmoothingConfig(sigma=self.SIGMA, n=self.N_MAX, n0=30, alpha=self.ALPHA)
        same = rpjax.certify(linear_apply, (_W, _B), xs, 2, num_classes=2, config=config,
                             rule=rpjax.DecideAt(r))
        loose = rpjax.certify(linear_apply, (_W, _B), xs, 2, num_classes=2, config=config,
                              rule=rpjax.DecideAt(r, futility=0.3))
        assert loose.forward_passes < same.forward_passes
        label, dist = _truth(xs)
        at_r = loose.decision == 1
        assert self._ok(at_r & ((loose.label != label) | (dist < r)))
        robust = (dist > r) & (loose.selection_counts.argmax(1) == label)
        gave_up = robust & ~at_r & (loose.n < self.N_MAX)
        assert sps.binomtest(int(gave_up.sum()), int(robust.sum()), 0.3,
                             alternative="greater").pvalue > 1e-3

    @pytest.mark.slow
    def test_adversarial_stopping_through_the_scheduler(self):
        """The scheduler stops each input the first time the fixed-n Clopper-Pearson bound
        excludes the true p_A (an attacker's rule): that bound is then wrong far more often
        than alpha, while the anytime bound at the same stopping times stays within alpha."""
        count, n_max, alpha = 2000, 2000, self.ALPHA
        xs = _points_at_distances(np.full(count, 0.25 * self.SIGMA), seed=6)
        p_true = float(sps.norm.cdf(0.25))
        m = np.arange(n_max + 1)
        # smallest S with clopper_pearson_lower(S, m, alpha) > p_true, i.e. P(Bin(m, p) >= S)
        # < alpha
        hi = (sps.binom.isf(alpha, m, p_true) + 1).astype(np.int32)
        hi[0] = 1
        rule = _sequential.StopRule.thresholds(np.full(n_max + 1, -1, np.int32), hi)
        out = _sequential.sequential_counts(linear_apply, (_W, _B), xs, 9, np.ones(count, np.int32),
                                            rule, num_classes=2,
                                            config=rpjax.SmoothingConfig(sigma=self.SIGMA))
        s = out.counts[:, 1]
        naive = rpjax.stats.clopper_pearson_lower(s, out.n, alpha)
        assert not self._ok(naive > p_true), (naive > p_true).mean()
        anytime = _confseq.mixture_bound(s, out.n, alpha)
        assert self._ok(anytime > p_true), (anytime > p_true).mean()
        # what DecideAt certifies at p* = p_true (every certificate wrong), a prior centred on
        # a typical selection count, read at the attacker's stopping times
        a, b = _confseq.selection_prior(round(100 * p_true), 100)
        reject, _ = _confseq.beta_decision_table(p_true, float(a), float(b), alpha, n_max)
        reported = s >= reject[out.n]
        assert self._ok(reported), reported.mean()

    @pytest.mark.slow
    def test_decision_uses_far_fewer_samples_than_fixed_n(self):
        xs = _points_at_distances(np.linspace(-3, 3, 40) * self.SIGMA, seed=5)
        seq = rpjax.certify(linear_apply, (_W, _B), xs, 2, num_classes=2,
                            config=rpjax.SmoothingConfig(sigma=self.SIGMA, n=20_000, alpha=1e-3),
                            rule=rpjax.DecideAt(0.25))
        fixed = rpjax.certify(linear_apply, (_W, _B), xs, 2, num_classes=2,
                              config=rpjax.SmoothingConfig(sigma=self.SIGMA, n=20_000, alpha=1e-3))
        assert type(seq) is rpjax.Certificates
        assert seq.forward_passes < 0.2 * 40 * (100 + 20_000)
        assert seq.forward_passes >= seq.n.sum() + 40 * 100
        fixed_at_r = (fixed.radius >= 0.25).mean()
        assert abs((seq.decision == 1).mean() - fixed_at_r) <= 0.1
        chex.assert_trees_all_equal(seq.selection_counts, fixed.selection_counts)

    @pytest.mark.slow
    def test_fixed_is_the_default_and_unchanged(self):
        cfg = rpjax.SmoothingConfig(sigma=0.5, n=500, alpha=1e-3)
        a = rpjax.certify(linear_apply, (_W, _B), _XS, 3, num_classes=2, config=cfg)
        b = rpjax.certify(linear_apply, (_W, _B), _XS, 3, num_classes=2, config=cfg,
                          rule=rpjax.Fixed())
        assert type(a) is rpjax.Certificates
        chex.assert_trees_all_equal(tuple(a), tuple(b))

    @pytest.mark.parametrize("rule", [rpjax.DecideAt(0.3), rpjax.RadiusBudget(1e-5)])
    def test_the_batch_size_of_a_sequential_rule_is_its_slots(self, rule):
        """`Placement(batch_size=)` is the inputs under test at once: speed only."""
        cfg = rpjax.SmoothingConfig(sigma=0.5, n=600, alpha=1e-3)
        a = rpjax.certify(linear_apply, (_W, _B), _XS, 3, num_classes=2, config=cfg, rule=rule)
        b = rpjax.certify(linear_apply, (_W, _B), _XS, 3, num_classes=2, config=cfg, rule=rule,
                          placement=rpjax.Placement(batch_size=3, chunk_size=48))
        chex.assert_trees_all_equal(tuple(a)[:-1], tuple(b)[:-1])

    @pytest.mark.slow
    def test_nan_logits_abstain_with_a_warning(self):
        def nan_fn(p, x):
            return jnp.where(x[:, :1] > 0, jnp.nan, linear_apply(p, x))

        xs = np.array([[50.0, 0, 0, 0], [-50.0, 0, 0, 0]], np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cert = rpjax.certify(nan_fn, (_W, _B), xs, 0, num_classes=2,
                                 config=rpjax.SmoothingConfig(sigma=0.5, n=500, alpha=1e-3),
                                 rule=rpjax.RadiusBudget())
        assert any(issubclass(w.category, RuntimeWarning) for w in caught)
        assert cert.label[0] == rpjax.ABSTAIN and cert.decision[0] == -1


def test_scheduler_lanes_are_a_multiple_of_the_devices():
    assert _sequential.resolve_lanes(10, 5, 4) == 12
    assert _sequential.resolve_lanes(None, 11, 1) == 65536  # 2**20 // 11, down to a power of 2
    assert _sequential.resolve_lanes(None, 1, 1) == 65536  # the cap
    assert _sequential.resolve_lanes(None, 64, 1) == 16384  # a tiny input: 2**20 values
    assert _sequential.resolve_lanes(None, 65, 1) == 2048  # 2**18 // 65
    assert _sequential.resolve_lanes(None, 100, 1) == 2048  # groups of 16, not odd lanes
    assert _sequential.resolve_lanes(None, 11, 1, batch=256) == 8192  # a small block: less waste
    assert _sequential.resolve_lanes(None, 11, 1, batch=268) == 16384  # 32 per input, up
    assert _sequential.resolve_lanes(None, 11, 1, batch=2048) == 65536


def test_lane_groups_divide_each_devices_lanes():
    for lanes, devices, g in [(2048, 1, 16), (2048, 4, 16), (40, 4, 2), (36, 4, 1), (300, 1, 4)]:
        assert _sequential.group_size(lanes, devices) == g
        assert (lanes // devices) % g == 0
    assert _sequential.max_slots(64, 1) == 4 and _sequential.max_slots(7, 1) == 7
    with pytest.raises(ValueError, match="chunk_size"):
        _run(chunk_size=2**23 + 1)


def test_decide_at_tests_each_input_at_r_plus_its_rounding_margin():
    """`DecideAt(r)` runs the test at `pa_for_radius(r + m')`, m' the input's rounding radius
    rounded up to a power of two and to >= 2^-12 sigma (0 stays 0), so a certificate at the
    tested p* leaves a radius >= r after the rounding reduction, and float32-sized margins
    share one p*."""
    from rpjax._src import certify as _certify

    sigma, r = 0.5, 0.25
    margin = np.array([0.0, 1e-9, 1e-7, 3e-3, 0.3])
    p_star = _certify._tested_p_star(r, margin, sigma, rpjax.GAUSSIAN)
    assert p_star[0] == _certify.pa_for_radius(r, sigma)
    assert p_star[1] == p_star[2] == _certify.pa_for_radius(r + 2.0**-12 * sigma, sigma)
    for p, m in zip(p_star, margin, strict=True):
        assert p >= _certify.pa_for_radius(r + m, sigma)
        radius = float(rpjax.GAUSSIAN.radius_from_pa(p, sigma)) - m
        assert radius >= r - 1e-12
    assert p_star[3] == _certify.pa_for_radius(r + 2.0**-8, sigma)  # 3e-3 -> 2^-8


def test_decide_at_on_half_precision_inputs_certifies_beyond_the_rounding():
    """End to end with float16 inputs: every certificate's tested p* reaches r plus the
    input's rounding radius, which is not negligible in float16."""
    from rpjax._src import certify as _certify
    from rpjax._src import smoothing as _smoothing

    sigma, r = 0.5, 0.25
    xs = _points_at_distances(np.linspace(0.5, 2.0, 12) * sigma, seed=3).astype(np.float16)
    cert = rpjax.certify(linear_apply, (_W, _B), xs, 4, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=sigma, n=4000, alpha=1e-3),
                         rule=rpjax.DecideAt(r))
    delta = _smoothing.rounding_radius(jnp.asarray(xs), sigma, (jnp.float16,))
    at_r = cert.decision == 1
    assert at_r.sum() >= 6 and delta.min() > 1e-4
    reach = rpjax.GAUSSIAN.radius_from_pa(cert.pa_lower[at_r], sigma) - delta[at_r]
    assert (reach >= r).all()
    assert (cert.pa_lower[at_r] > _certify.pa_for_radius(r, sigma)).all()
