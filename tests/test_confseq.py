"""Anytime-valid bounds: soundness under an adversarial stopping rule, by simulation.

For each procedure, 10^4 runs on Bernoulli(p) streams with known p (including p just above
and below a decision threshold); the attacker stops the first time the bound crosses the
truth (else at the last look), so a run is wrong if the bound ever excludes p. The rate of
wrong runs must be consistent with <= alpha by a one-sided binomial test. A fixed-n bound
applied at every look fails the same test, which shows the test has the power to fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from rpjax import stats
from rpjax._src import confseq

RUNS = 10_000
ALPHA = 0.05
CHUNKS = np.array([20, 20, 40, 80, 160, 320, 640, 1280])  # a geometric schedule, 2,560 in all


def _streams(p: float, seed: int, chunks=CHUNKS) -> np.ndarray:
    """[RUNS, T] successes per chunk of Bernoulli(p) samples."""
    return np.random.default_rng(seed).binomial(chunks, p, size=(RUNS, chunks.size))


def _consistent_with_alpha(wrong: int) -> bool:
    return scipy.stats.binomtest(wrong, RUNS, ALPHA, alternative="greater").pvalue > 1e-3


_SLOW = pytest.mark.slow  # about 2 s each; p = 0.5 stays in the fast set


@pytest.mark.parametrize("p", [0.5] + [pytest.param(p, marks=_SLOW) for p in (0.03, 0.49, 0.51,
                                                                             0.97)])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_betting_bound_holds_at_every_look(p, side):
    k = _streams(p, seed=int(p * 1000) + (side == "upper"))
    bound = confseq.betting_bound(k, CHUNKS, ALPHA, side=side)
    wrong = (bound > p).any(axis=1) if side == "lower" else (bound < p).any(axis=1)
    assert _consistent_with_alpha(int(wrong.sum())), wrong.mean()
    assert np.all(np.diff(bound, axis=1) >= 0 if side == "lower" else np.diff(bound, axis=1) <= 0)


@pytest.mark.parametrize("p", [0.5, pytest.param(0.03, marks=_SLOW),
                               pytest.param(0.97, marks=_SLOW)])
def test_staged_clopper_pearson_holds_at_every_look(p):
    k = np.cumsum(_streams(p, seed=7), axis=1)
    n = np.cumsum(CHUNKS)
    lower = confseq.staged_clopper_pearson(k, n, ALPHA)
    upper = confseq.staged_clopper_pearson(k, n, ALPHA, side="upper")
    assert _consistent_with_alpha(int((lower > p).any(axis=1).sum()))
    assert _consistent_with_alpha(int((upper < p).any(axis=1).sum()))


def test_a_fixed_n_bound_at_every_look_fails_the_same_test():
    """Peeking with a fixed-n Clopper-Pearson bound: the simulation catches it."""
    p = 0.5
    k = np.cumsum(_streams(p, seed=11), axis=1)
    naive = stats.clopper_pearson_lower(k, np.cumsum(CHUNKS), ALPHA)
    assert not _consistent_with_alpha(int((naive > p).any(axis=1).sum()))


@pytest.mark.parametrize("p", [0.75, 0.74, 0.7])
def test_sequential_test_rejects_a_true_null_at_most_alpha(p):
    """H0: p <= p* = 0.75, at p* itself and below it."""
    looks = np.cumsum(CHUNKS)
    table = confseq.sequential_test_table(0.75, ALPHA, looks)
    s = np.cumsum(_streams(p, seed=int(p * 100)), axis=1)
    rejected = (s >= table).any(axis=1)
    assert _consistent_with_alpha(int(rejected.sum())), rejected.mean()


def test_sequential_test_spends_alpha_exactly_at_the_boundary():
    """The exact rejection probability at p*, by enumeration of a short schedule, is <= alpha
    and spends most of it; and above p* the test rejects often."""
    looks = np.array([5, 10, 20])
    p_star, alpha = 0.6, 0.1
    table = confseq.sequential_test_table(p_star, alpha, looks)
    paths = (np.arange(2**20)[:, None] >> np.arange(20)) & 1  # every sequence of 20 samples
    weight = np.where(paths == 1, p_star, 1 - p_star).prod(axis=1)
    s = np.cumsum(paths, axis=1)[:, looks - 1]
    exact = weight[(s >= table).any(axis=1)].sum()
    assert exact <= alpha and exact > 0.5 * alpha, exact
    power = (np.cumsum(_streams(0.9, seed=3), axis=1) >= confseq.sequential_test_table(
        0.6, ALPHA, np.cumsum(CHUNKS))).any(axis=1).mean()
    assert power > 0.99


def test_betting_bound_converges_to_p():
    k = _streams(0.9, seed=5, chunks=np.full(20, 1000))[:50]
    lower = confseq.betting_bound(k, np.full(20, 1000), 1e-3)
    upper = confseq.betting_bound(k, np.full(20, 1000), 1e-3, side="upper")
    assert np.all(lower[:, -1] > 0.87) and np.all(upper[:, -1] < 0.93)
    assert np.all(lower <= upper)


@pytest.mark.parametrize("call, error", [
    (lambda: confseq.betting_bound([[3]], [2], 0.05), ValueError),
    (lambda: confseq.betting_bound([[1.0]], [2], 0.05), TypeError),
    (lambda: confseq.betting_bound([[1]], [2], 1.5), ValueError),
    (lambda: confseq.betting_bound([[1]], [2], 0.05, side="both"), ValueError),
    (lambda: confseq.sequential_test_table(0.5, 0.05, [10, 5]), ValueError),
    (lambda: confseq.sequential_test_table(1.0, 0.05, [10]), ValueError),
])
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()


# --- the mixture confidence sequence and the tables built on it, checked at every sample count --

N_SEQ = 2000  # samples per stream of the per-sample checks


def _cumulative(p: float, seed: int, n: int = N_SEQ, runs: int = RUNS) -> np.ndarray:
    """[runs, n] int64 cumulative successes of Bernoulli(p) samples, one column per count."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.random((runs, n)) < p, axis=1)


def _at_every_count(k: np.ndarray, bound) -> np.ndarray:
    """`bound(k_flat, m_flat)` at every entry of `k [runs, n]` (column j is m = j + 1),
    evaluated once per distinct (k, m)."""
    m = np.arange(1, k.shape[1] + 1)
    k_min, k_max = k.min(axis=0), k.max(axis=0)
    size = k_max - k_min + 1
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    offset = np.arange(size.sum()) - np.repeat(start, size)
    values = bound(np.repeat(k_min, size) + offset, np.repeat(m, size))
    return values[start + (k - k_min)]


@pytest.mark.parametrize("p, n", [(0.5, 1000), pytest.param(0.03, N_SEQ, marks=_SLOW),
                                  pytest.param(0.97, N_SEQ, marks=_SLOW)])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_mixture_bound_holds_at_every_sample_count(p, n, side):
    k = _cumulative(p, seed=int(p * 1000) + 17 * (side == "upper"), n=n)
    bound = _at_every_count(k, lambda kk, mm: confseq.mixture_bound(kk, mm, ALPHA, side=side))
    wrong = (bound > p).any(axis=1) if side == "lower" else (bound < p).any(axis=1)
    assert _consistent_with_alpha(int(wrong.sum())), wrong.mean()
    assert wrong.sum() > 0  # the attacker does win sometimes: the check is not vacuous


def test_a_fixed_n_bound_at_every_sample_count_fails_the_same_test():
    p = 0.5
    k = _cumulative(p, seed=23, n=1000)
    naive = _at_every_count(k, lambda kk, mm: stats.clopper_pearson_lower(kk, mm, ALPHA))
    assert not _consistent_with_alpha(int((naive > p).any(axis=1).sum()))


def _mixture_by_quadrature(k: int, m: int, p: float) -> float:
    """E_{q ~ U(p, 1)}[(q/p)^k ((1-q)/(1-p))^(m-k)] by numerical integration."""
    def ratio(q):
        return np.exp(k * np.log(q / p) + (m - k) * np.log((1 - q) / (1 - p)))
    return scipy.integrate.quad(ratio, p, 1, epsabs=0, epsrel=1e-12, limit=200)[0] / (1 - p)


def test_mixture_bound_is_the_end_of_the_rejected_interval():
    """The closed form (by quadrature here) at the bound and just above it; the rejected set
    {p : M_p >= 1/alpha} is the interval (0, L], over a grid of p on all of (0, 1)."""

    log_threshold = np.log(1 / ALPHA)
    for m in (1, 2, 7, 40, 300, 5000):
        for k in sorted({0, 1, m // 3, m // 2, (9 * m) // 10, m - 1, m}):
            lower = float(confseq.mixture_bound(k, m, ALPHA))
            assert 0.0 <= lower <= k / (m + 1)
            grid = np.linspace(0.0, 1.0, 4001)[1:-1]
            rejected = confseq._log_mixture(float(k), float(m), grid) >= log_threshold
            assert np.array_equal(rejected, grid <= lower) or np.all(
                rejected == (grid <= lower) | (np.abs(grid - lower) < 1e-9)), (k, m)
            if 0 < k and m <= 300:
                if lower > 0:
                    assert _mixture_by_quadrature(k, m, lower) >= (1 - 1e-7) / ALPHA, (k, m)
                above = lower + 1e-7 * max(lower, 1e-3)
                assert _mixture_by_quadrature(k, m, above) < 1 / ALPHA, (k, m)


def test_mixture_bound_is_monotone_and_symmetric():
    m = np.arange(1, 200)[:, None]
    k = np.minimum(np.arange(200)[None, :], m)
    lower = confseq.mixture_bound(k, m, ALPHA)
    upper = confseq.mixture_bound(k, m, ALPHA, side="upper")
    assert np.all(np.diff(lower, axis=1) >= 0)  # non-decreasing in the successes
    same_k = (k[1:] == k[:-1])  # (k, m + 1) against (k, m): a failure never raises it
    assert np.all(lower[1:][same_k] <= lower[:-1][same_k] + 1e-12)
    np.testing.assert_allclose(upper, 1 - confseq.mixture_bound(m - k, m, ALPHA), atol=0)
    assert np.all(lower < upper)


@pytest.mark.parametrize("p_star, p", [(0.75, 0.75), pytest.param(0.75, 0.74, marks=_SLOW),
                                       pytest.param(0.75, 0.76, marks=_SLOW),
                                       pytest.param(0.3, 0.3, marks=_SLOW),
                                       pytest.param(0.3, 0.29, marks=_SLOW),
                                       pytest.param(0.3, 0.31, marks=_SLOW)])
def test_decision_table_errs_at_most_alpha(p_star, p):
    """A wrong answer ever (certified while p <= p*, or "<" while p >= p*), at any count."""
    reject, accept = confseq.decision_table(p_star, ALPHA, N_SEQ)
    s = _cumulative(p, seed=int(p * 1000) + int(p_star * 10))
    if p <= p_star:
        certified = (s >= reject[1:]).any(axis=1)
        assert _consistent_with_alpha(int(certified.sum())), certified.mean()
    if p >= p_star:
        below = (s <= accept[1:]).any(axis=1)
        assert _consistent_with_alpha(int(below.sum())), below.mean()


def test_decision_table_has_power_far_from_the_threshold():
    reject, accept = confseq.decision_table(0.75, ALPHA, N_SEQ)
    for p, table, decided in ((0.9, reject, lambda s, t: s >= t),
                              (0.6, accept, lambda s, t: s <= t)):
        s = _cumulative(p, seed=31, runs=1000)
        hit = decided(s, table[1:])
        assert hit.any(axis=1).mean() > 0.99
        assert np.median(np.argmax(hit, axis=1) + 1) < N_SEQ / 4


def test_decision_table_is_the_mixture_test():
    """S >= reject[m] iff the lower mixture test rejects p*, which gives mixture_bound >= p*;
    S <= accept[m] iff the upper bound is <= p*; at every S of every m <= 300, and near the
    thresholds up to m = n_max."""

    p_star, n_max = 0.75, 5000
    reject, accept = confseq.decision_table(p_star, ALPHA, n_max)
    assert reject.dtype == accept.dtype == np.int32 and reject.shape == (n_max + 1,)
    assert reject[0] == 1 and accept[0] == -1
    assert set(np.diff(reject)) <= {0, 1} and set(np.diff(accept)) <= {0, 1}
    assert np.all(accept < reject)
    small = np.arange(1, 301)[:, None]
    big = np.arange(301, n_max + 1, 37)[:, None]
    for m, s in ((small, np.minimum(np.arange(301)[None, :], small)),
                 (big, np.clip(reject[big] + np.arange(-3, 3)[None, :], 0, big)),
                 (big, np.clip(accept[big] + np.arange(-3, 3)[None, :], 0, big))):
        m = np.broadcast_to(m, s.shape)
        certify = s >= reject[m]
        np.testing.assert_array_equal(
            certify, confseq._mixture_rejects(s, m, p_star, np.log(1 / ALPHA)))
        lower = confseq.mixture_bound(s, m, ALPHA)
        assert np.all(lower[certify] >= p_star - 1e-12)
        assert np.all(lower[~certify] <= p_star + 1e-12)
        below = s <= accept[m]
        upper = confseq.mixture_bound(s, m, ALPHA, side="upper")
        assert np.all(upper[below] <= p_star + 1e-12)
        assert np.all(upper[~below] >= p_star - 1e-12)
    with pytest.raises(ValueError):
        reject[0] = 2  # read-only: the cached table cannot be corrupted


def _budget_stop(s: np.ndarray, m: int, hopeless, band_lo, band_hi) -> np.ndarray:
    return (s <= hopeless[m]) | ((band_lo[m] <= s) & (s <= band_hi[m]))


@pytest.mark.parametrize("n_max, tolerance", [
    (600, 0.1), pytest.param(N_SEQ, 0.02, marks=_SLOW), pytest.param(N_SEQ, 0.2, marks=_SLOW)])
def test_budget_table_is_the_rule_at_every_s(n_max, tolerance):
    """Brute force: the rule evaluated at every S of every default look."""

    tables = confseq.budget_table(ALPHA, n_max, tolerance)
    for table in tables:
        assert table.dtype == np.int32 and table.shape == (n_max + 1,)
    hopeless, band_lo, band_hi = tables
    default = [64]
    while default[-1] < n_max:
        default.append(max(default[-1] + 1, round(default[-1] * 1.05)))
    default = [m for m in default if m < n_max] + [n_max]
    bands = 0
    for m in default:
        s = np.arange(m + 1)
        upper = confseq.mixture_bound(s, m, ALPHA, side="upper")
        lower = confseq.mixture_bound(s, m, ALPHA)
        assert np.array_equal(s <= hopeless[m], upper <= 0.5) or np.all(
            np.abs(upper[(s <= hopeless[m]) != (upper <= 0.5)] - 0.5) < 1e-12)
        k_end = s * (n_max / m)
        now = scipy.stats.norm.ppf(lower)
        # the lower bound at a real number of successes: the same closed form
        end = scipy.stats.norm.ppf(confseq._mixture_lower(k_end, float(n_max), ALPHA))
        band = (now > 0) & (now >= (1 - tolerance) * end)
        np.testing.assert_array_equal((band_lo[m] <= s) & (s <= band_hi[m]), band, err_msg=m)
        bands += band.any() and m < n_max
    not_looks = np.setdiff1d(np.arange(n_max + 1), default)
    assert np.all(hopeless[not_looks] == -1) and np.all(band_hi[not_looks] == -1)
    assert np.all(band_lo[not_looks] == not_looks + 1)
    assert bands > 0  # the band is not empty everywhere: the comparison is not vacuous


@pytest.mark.parametrize("p", [0.9, pytest.param(0.7, marks=_SLOW),
                               pytest.param(0.45, marks=_SLOW)])
def test_the_bound_at_the_budget_rules_stopping_time_holds(p):
    """Stop by the budget rule (else at n_max), report the lower bound there."""
    n_max = N_SEQ
    hopeless, band_lo, band_hi = confseq.budget_table(ALPHA, n_max, 0.1)
    s = _cumulative(p, seed=int(p * 1000) + 41)
    looks = np.flatnonzero((hopeless >= 0) | (band_lo <= band_hi))
    stop = np.full(RUNS, n_max)
    for m in looks[::-1]:  # the first look that stops, per run
        stop = np.where(_budget_stop(s[:, m - 1], m, hopeless, band_lo, band_hi), m, stop)
    lower = confseq.mixture_bound(s[np.arange(RUNS), stop - 1], stop, ALPHA)
    assert _consistent_with_alpha(int((lower > p).sum()))
    assert np.mean(stop < n_max) > 0.5  # the rule does stop early: the check is not vacuous


def test_tables_are_cached():
    assert confseq.decision_table(0.6, 0.01, 300)[0] is confseq.decision_table(0.6, 0.01, 300)[0]
    assert confseq.budget_table(0.01, 300, 0.1)[1] is confseq.budget_table(0.01, 300, 0.1)[1]


@pytest.mark.parametrize("call, error, name", [
    (lambda: confseq.mixture_bound(3, 2, 0.05), ValueError, "k"),
    (lambda: confseq.mixture_bound(-1, 2, 0.05), ValueError, "k"),
    (lambda: confseq.mixture_bound(0, 0, 0.05), ValueError, "m"),
    (lambda: confseq.mixture_bound(1.0, 2, 0.05), TypeError, "k"),
    (lambda: confseq.mixture_bound(1, np.array([2.0]), 0.05), TypeError, "m"),
    (lambda: confseq.mixture_bound(1, 2, 0.0), ValueError, "alpha"),
    (lambda: confseq.mixture_bound(1, 2, 0.05, side="both"), ValueError, "side"),
    (lambda: confseq.mixture_bound([1, 2], [2, 3, 4], 0.05), ValueError, "k and m"),
    (lambda: confseq.decision_table(1.0, 0.05, 10), ValueError, "p_star"),
    (lambda: confseq.decision_table(0.5, 1.0, 10), ValueError, "alpha"),
    (lambda: confseq.decision_table(0.5, 0.05, 0), ValueError, "n_max"),
    (lambda: confseq.decision_table(0.5, 0.05, 10.0), TypeError, "n_max"),
    (lambda: confseq.budget_table(0.05, 100, 1.0), ValueError, "tolerance"),
    (lambda: confseq.budget_table(0.05, 100, 0.1, looks=[50, 40]), ValueError, "looks"),
    (lambda: confseq.budget_table(0.05, 100, 0.1, looks=[50, 101]), ValueError, "looks"),
    (lambda: confseq.budget_table(0.05, 100, 0.1, looks=[5.0]), TypeError, "looks"),
    (lambda: confseq.budget_table(0.05, 100, 0.1, radius_from_pa=3), TypeError, "radius_from_pa"),
])
def test_bad_arguments_name_the_parameter(call, error, name):
    with pytest.raises(error, match=name):
        call()


# --- the staged budget rule (certify_sequential's radius with a budget) ---------------------


@pytest.mark.parametrize("tolerance", [0.05, 0.3])
def test_staged_budget_table_is_the_rule_at_every_s(tolerance):
    """Brute force: at every look and every S the tables stop exactly where the rule holds."""
    n_max = 2000
    looks = confseq.staged_looks(n_max)
    assert looks[-1] == n_max and looks.size == 6 and (np.diff(looks) > 0).all()
    hopeless, band_lo, band_hi = confseq.staged_budget_table(ALPHA, n_max, tolerance)
    level = ALPHA / looks.size
    for m in looks[:-1]:
        s = np.arange(m + 1)
        upper = stats.clopper_pearson_upper(s, m, level)
        lower = stats.clopper_pearson_lower(s, m, level)
        now = np.where(lower > 0.5, scipy.stats.norm.ppf(lower), 0.0)
        k_end = s * n_max / m
        end_pa = np.where(k_end > 0, scipy.stats.beta.ppf(level, np.maximum(k_end, 1e-300),
                                                          n_max - k_end + 1), 0.0)
        end = scipy.stats.norm.ppf(end_pa)
        rule = (upper <= 0.5) | ((now > 0) & (now >= (1 - tolerance) * end))
        table = (s <= hopeless[m]) | ((s >= band_lo[m]) & (s <= band_hi[m]))
        np.testing.assert_array_equal(table, rule, err_msg=f"look {m}")
    between = np.setdiff1d(np.arange(n_max + 1), looks)
    assert (hopeless[between] == -1).all() and (band_lo[between] > band_hi[between]).all()


@pytest.mark.parametrize("p", [0.9, pytest.param(0.6, marks=_SLOW), pytest.param(0.999,
                                                                               marks=_SLOW)])
def test_staged_budget_rule_reports_a_sound_bound(p):
    """Run the staged rule on 10^4 streams; the bound at the look where each stopped
    (Clopper-Pearson at alpha / J) exceeds p at most at rate alpha."""
    n_max, tolerance = 4000, 0.1
    looks = confseq.staged_looks(n_max)
    hopeless, band_lo, band_hi = confseq.staged_budget_table(ALPHA, n_max, tolerance)
    rng = np.random.default_rng(int(p * 1000))
    s = np.cumsum(rng.binomial(np.diff(np.concatenate([[0], looks])), p,
                               size=(RUNS, looks.size)), axis=1)
    stop = (s <= hopeless[looks]) | ((s >= band_lo[looks]) & (s <= band_hi[looks]))
    stop[:, -1] = True
    first = stop.argmax(axis=1)
    s_stop, m_stop = s[np.arange(RUNS), first], looks[first]
    bound = stats.clopper_pearson_lower(s_stop, m_stop, ALPHA / looks.size)
    assert _consistent_with_alpha(int((bound > p).sum()))
    if p == 0.9:
        assert (first < looks.size - 1).mean() > 0.5  # the rule does stop early


def test_staged_budget_table_bad_inputs():
    with pytest.raises(ValueError, match="looks"):
        confseq.staged_budget_table(0.05, 100, 0.1, looks=[50, 90])
    with pytest.raises(ValueError, match="tolerance"):
        confseq.staged_budget_table(0.05, 100, 1.5)
    with pytest.raises(ValueError, match="n_max"):
        confseq.staged_looks(0)


# --- the selection-informed test: exact crossing probabilities ---------------------------------


def _crossing_probability(p: float, n_max: int, *, above=None, below=None) -> float:
    """The exact probability that a Bernoulli(p) walk ever has `S_m >= above[m]` (or
    `S_m <= below[m]`) for some 1 <= m <= n_max: dynamic programming over the surviving mass
    of each S (float64; the worst stopping rule stops exactly there)."""
    alive = np.zeros(n_max + 2)
    alive[0] = 1.0
    crossed = 0.0
    s = np.arange(n_max + 2)
    for m in range(1, n_max + 1):
        alive = alive * (1.0 - p) + np.concatenate([[0.0], alive[:-1]]) * p
        hit = np.zeros(n_max + 2, bool)
        if above is not None:
            hit |= s >= above[m]
        if below is not None:
            hit |= s <= below[m]
        crossed += alive[hit].sum()
        alive[hit] = 0.0
    return crossed


_PRIORS = [(100, 100), (100, 97), (100, 85), (100, 60)]  # (n0, k0): sure, likely, unsure, weak


@pytest.mark.parametrize("p_star", [0.6, 0.9, 0.99])
@pytest.mark.parametrize(("n0", "k0"), _PRIORS)
def test_beta_decision_table_certifies_wrongly_at_most_alpha_exactly(p_star, n0, k0):
    """At pA = p* (the worst pA <= p*: the walk only climbs more slowly below it), the exact
    probability of ever reaching the certify threshold, at alpha = 1e-3 and n_max = 2000, with
    the prior of every kind of selection count (the prior is fixed before the estimation
    samples, so the bound holds given it)."""
    alpha, n_max = 1e-3, 2000
    a, b = confseq.selection_prior(k0, n0)
    reject, accept = confseq.beta_decision_table(p_star, float(a), float(b), alpha, n_max,
                                                 futility=0.01)
    wrong = _crossing_probability(p_star, n_max, above=reject)
    assert wrong <= alpha, (wrong, alpha)
    lower = _crossing_probability(p_star * 0.995, n_max, above=reject)
    assert lower <= wrong + 1e-12  # a smaller pA errs less
    gave_up = _crossing_probability(p_star, n_max, below=accept)
    assert gave_up <= 0.01, gave_up
    print(f"p*={p_star} k0={k0}: P(certify | pA = p*) = {wrong / alpha:.2f} alpha, "
          f"P(give up | pA = p*) = {gave_up / 0.01:.2f} futility")


def test_truncated_mixture_agrees_with_numerical_integration():
    """`log T_p(S, m)` (closed form with incomplete beta functions) against scipy's quadrature
    of `E[(q/p)^S ((1-q)/(1-p))^(m-S) | q > p]` under `Beta(a, b)`."""
    import scipy.integrate
    import scipy.stats

    for s, m, p, a, b in [(30, 40, 0.6, 60.5, 40.5), (9, 10, 0.9, 97.5, 3.5),
                          (180, 200, 0.84, 85.5, 15.5), (5, 20, 0.3, 20.5, 80.5)]:
        def integrand(q, s=s, m=m, p=p, a=a, b=b):
            return np.exp(s * np.log(q / p) + (m - s) * np.log((1 - q) / (1 - p))
                          + scipy.stats.beta.logpdf(q, a, b))
        mass = scipy.stats.beta.sf(p, a, b)
        want = np.log(scipy.integrate.quad(integrand, p, 1.0, epsabs=0, epsrel=1e-12,
                                           limit=200)[0] / mass)
        got = confseq._log_truncated_mixture(s, m, p, a, b)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("n0", "k0"), _PRIORS)
def test_truncated_thresholds_are_the_first_rejecting_count(n0, k0):
    """The galloping search returns, at every m, the smallest S whose statistic reaches
    1/alpha (checked against every S), and never certifies later than the unrestricted
    mixture (restricting the prior only removes terms that are < 1 there)."""
    alpha, n_max = 1e-3, 400
    a, b = (float(v) for v in confseq.selection_prior(k0, n0))
    for p in (0.6, 0.9):
        got = confseq._truncated_reject_thresholds(p, a, b, alpha, n_max)
        for m in range(1, n_max + 1):
            s = np.arange(m + 1)
            rej = confseq._log_truncated_mixture(s, m, p, a, b) >= np.log(1 / alpha)
            assert got[m] == (s[rej][0] if rej.any() else m + 1), m
        plain = confseq._beta_reject_thresholds(p, a, b, alpha, n_max)
        assert np.all(got[1:] <= plain[1:])


def test_the_exact_crossing_test_fails_a_table_that_certifies_too_early():
    """Negative control of the dynamic programming check: the same table two successes
    earlier errs far more often than alpha at pA = p*."""
    alpha, n_max, p_star = 1e-3, 2000, 0.9
    a, b = (float(v) for v in confseq.selection_prior(97, 100))
    reject, _ = confseq.beta_decision_table(p_star, a, b, alpha, n_max)
    assert _crossing_probability(p_star, n_max, above=reject) <= alpha
    assert _crossing_probability(p_star, n_max, above=reject - 2) > 2 * alpha


def test_selection_prior_is_a_fixed_function_of_the_selection_count():
    a, b = confseq.selection_prior(np.arange(101), 100)
    assert np.all(a + b == 101.0) and np.all(np.diff(a) >= 0)
    assert len(np.unique(a)) <= 20  # few tables per batch
    assert (a[100], b[100]) == (100.5, 0.5) and (a[99], b[99]) == (99.5, 1.5)


def test_planned_sample_sizes_are_a_function_of_the_selection_votes_on_the_grid():
    grid = confseq.allocation_grid(100_000)
    assert grid[0] == 64 and grid[-1] == 100_000 and np.all(np.diff(grid) > 0)
    k0 = np.array([100, 100, 97, 85, 60, 50, 50, 30])
    n = confseq.planned_sample_sizes(k0, 100, 100_000, 1e-3, 2.5e-7)
    assert n.dtype == np.int64 and np.isin(n, grid).all()
    assert n[0] == n[1] and n[5] == n[6]  # the same votes, the same plan
    assert n[7] == grid[0]  # a top class at 30% (three or more classes): nothing to buy
    assert n[3] > n[5] > n[7]  # the likelier a certificate, the more samples
    free = confseq.planned_sample_sizes(k0, 100, 100_000, 1e-3, 0.0)
    assert (free[k0 > 60] == 100_000).all()  # a free sample is always worth it
    dear = confseq.planned_sample_sizes(k0, 100, 100_000, 1e-3, 1e-5)
    assert np.all(dear <= n) and np.all(n <= free)  # the dearer, the fewer


def test_planned_sample_sizes_maximize_the_expected_radius_net_of_its_price():
    """Against an independent computation: the radius of scipy's Clopper-Pearson (beta.ppf)
    at the rate of each posterior quantile, averaged; the chosen n is its argmax net of price."""
    k0, n0, alpha, price = 93, 100, 1e-3, 3e-7
    grid = confseq.allocation_grid(20_000)
    q = scipy.stats.beta.ppf((np.arange(32) + 0.5) / 32, k0 + 0.5, n0 - k0 + 0.5)
    k = np.floor(q[:, None] * grid[None, :])
    lower = np.where(k > 0, scipy.stats.beta.ppf(alpha, k, grid[None, :] - k + 1), 0.0)
    radius = np.where(lower > 0.5, scipy.stats.norm.ppf(lower), 0.0).mean(axis=0)
    want = grid[np.argmax(radius - price * grid)]
    assert confseq.planned_sample_sizes(np.array([k0]), n0, 20_000, alpha, price)[0] == want


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(price=-1.0), "price"), (dict(price=float("nan")), "price"),
    (dict(alpha=0.0), "alpha"), (dict(n0=0), "n0"), (dict(k0=np.array([101])), "k0")])
def test_planned_sample_sizes_bad_arguments(kwargs, name):
    args = dict(k0=np.array([90]), n0=100, n_max=1000, alpha=1e-3, price=1e-6) | kwargs
    with pytest.raises(ValueError, match=name):
        confseq.planned_sample_sizes(**args)
