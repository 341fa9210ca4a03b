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
import scipy.stats

from rpjax import stats

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
    bound = stats.betting_bound(k, CHUNKS, ALPHA, side=side)
    wrong = (bound > p).any(axis=1) if side == "lower" else (bound < p).any(axis=1)
    assert _consistent_with_alpha(int(wrong.sum())), wrong.mean()
    assert np.all(np.diff(bound, axis=1) >= 0 if side == "lower" else np.diff(bound, axis=1) <= 0)


@pytest.mark.parametrize("p", [0.5, pytest.param(0.03, marks=_SLOW),
                               pytest.param(0.97, marks=_SLOW)])
def test_staged_clopper_pearson_holds_at_every_look(p):
    k = np.cumsum(_streams(p, seed=7), axis=1)
    n = np.cumsum(CHUNKS)
    lower = stats.staged_clopper_pearson(k, n, ALPHA)
    upper = stats.staged_clopper_pearson(k, n, ALPHA, side="upper")
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
    table = stats.sequential_test_table(0.75, ALPHA, looks)
    s = np.cumsum(_streams(p, seed=int(p * 100)), axis=1)
    rejected = (s >= table).any(axis=1)
    assert _consistent_with_alpha(int(rejected.sum())), rejected.mean()


def test_sequential_test_spends_alpha_exactly_at_the_boundary():
    """The exact rejection probability at p*, by enumeration of a short schedule, is <= alpha
    and spends most of it; and above p* the test rejects often."""
    looks = np.array([5, 10, 20])
    p_star, alpha = 0.6, 0.1
    table = stats.sequential_test_table(p_star, alpha, looks)
    paths = (np.arange(2**20)[:, None] >> np.arange(20)) & 1  # every sequence of 20 samples
    weight = np.where(paths == 1, p_star, 1 - p_star).prod(axis=1)
    s = np.cumsum(paths, axis=1)[:, looks - 1]
    exact = weight[(s >= table).any(axis=1)].sum()
    assert exact <= alpha and exact > 0.5 * alpha, exact
    power = (np.cumsum(_streams(0.9, seed=3), axis=1) >= stats.sequential_test_table(
        0.6, ALPHA, np.cumsum(CHUNKS))).any(axis=1).mean()
    assert power > 0.99


def test_betting_bound_converges_to_p():
    k = _streams(0.9, seed=5, chunks=np.full(20, 1000))[:50]
    lower = stats.betting_bound(k, np.full(20, 1000), 1e-3)
    upper = stats.betting_bound(k, np.full(20, 1000), 1e-3, side="upper")
    assert np.all(lower[:, -1] > 0.87) and np.all(upper[:, -1] < 0.93)
    assert np.all(lower <= upper)


@pytest.mark.parametrize("call, error", [
    (lambda: stats.betting_bound([[3]], [2], 0.05), ValueError),
    (lambda: stats.betting_bound([[1.0]], [2], 0.05), TypeError),
    (lambda: stats.betting_bound([[1]], [2], 1.5), ValueError),
    (lambda: stats.betting_bound([[1]], [2], 0.05, side="both"), ValueError),
    (lambda: stats.sequential_test_table(0.5, 0.05, [10, 5]), ValueError),
    (lambda: stats.sequential_test_table(1.0, 0.05, [10]), ValueError),
])
def test_bad_arguments(call, error):
    with pytest.raises(error):
        call()
