"""The decision rules of the three modes, in one place: CERTIFY, PREDICT and always-label.

Each mode turns vote counts into a label or `ABSTAIN`, and this module is the only place that
says how, for every caller: `rpjax.certify` / `predict` / `always_label` (host statistics in
float64: `certify_statistics`, `predict_statistics`, `always_label_statistics`), the deployed
release's compiled graph (`decide`, with the integer thresholds `predict_threshold_table` and
`certify_threshold` that make the same decisions as the statistics), the release's audit record
(the host statistics again) and the leakage bound (`predict_thresholds`, `certify_threshold`:
the two-class outcome sets). The noise streams of one answer (`SELECTION`, `ESTIMATION`,
`PREDICTION`) are named here too.
"""

from __future__ import annotations

import enum

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _sps

from rpjax._src import stats
from rpjax._src import validate as _validate

ABSTAIN = -1
"""Label released when the smoothed classifier abstains."""

SELECTION, ESTIMATION, PREDICTION = 0, 1, 2
"""The noise streams of one answer: CERTIFY's n0 selection and n estimation samples, and the
n samples of PREDICT and always-label."""


class Mode(enum.StrEnum):
    """A decision rule. `Mode("predict")` works; members compare equal to their values."""

    PREDICT = "predict"  # the top class if the two-sided binomial test passes, else ABSTAIN
    ALWAYS_LABEL = "always_label"  # the Monte Carlo top class (no test, no certificate)
    CERTIFY = "certify"  # the selected class if its Clopper-Pearson bound exceeds 1/2


MODES = tuple(m.value for m in Mode)
"""The modes' names, in `Mode`'s order: ("predict", "always_label", "certify")."""


def mode(value, name: str = "mode") -> Mode:
    """`value` as a `Mode`; anything else is a ValueError naming `name` and the choices."""
    try:
        return Mode(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {MODES}, got {name}={value!r}.") from None


# ---------------------------------------------------------------- host statistics (float64)
def _top_two(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-counts, axis=1, kind="stable")  # ties: lower class index first
    top = order[:, 0]
    n_a = np.take_along_axis(counts, order[:, :1], axis=1)[:, 0]
    n_b = np.take_along_axis(counts, order[:, 1:2], axis=1)[:, 0]
    return top, n_a, n_b


def certify_statistics(selection: np.ndarray, counts: np.ndarray, n: int, alpha: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CERTIFY from counts: `(chosen [M], pa_lower [M] float64, certified [M] bool)`.

    `chosen` is the selection counts' top class (ties: lower index), `pa_lower` the one-sided
    (1 - alpha) Clopper-Pearson lower bound of its share of the n estimation votes, and the
    input is certified iff `pa_lower > 1/2` (iff its count is >= `certify_threshold`).
    """
    chosen = np.asarray(selection).argmax(axis=1)
    n_top = np.take_along_axis(np.asarray(counts), chosen[:, None], axis=1)[:, 0]
    pa_lower = stats.clopper_pearson_lower(n_top, n, alpha)
    return chosen, pa_lower, pa_lower > 0.5


def predict_statistics(counts: np.ndarray, alpha: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PREDICT from counts: `(top [M], pvalue [M] float64, passes [M] bool)`: the two-sided
    exact binomial test of the top count n_A in n_A + n_B trials at p = 1/2 (ties: lower
    class index is top); the top class is released iff `pvalue <= alpha`."""
    top, n_a, n_b = _top_two(np.asarray(counts))
    pvalue = stats.binomial_test_pvalue(n_a, np.maximum(n_a + n_b, 1), 0.5)
    return top, pvalue, pvalue <= alpha


def always_label_statistics(counts: np.ndarray) -> np.ndarray:
    """Always-label from counts: `[M]` the Monte Carlo top class (ties: lower index)."""
    return np.asarray(counts).argmax(axis=1)


# ------------------------------------------------ integer thresholds (the traceable rules)
def predict_threshold_table(n: int, alpha: float) -> np.ndarray:
    """`[n + 1]` int32: for each total m = n_A + n_B, the smallest n_A that passes PREDICT.

    PREDICT releases the top class iff the two-sided binomial test of n_A successes in m
    trials at p = 1/2 has p-value <= alpha; entries of m + 1 mean "never passes". The p-value
    decreases in n_A >= m / 2, so "n_A >= table[m]" is exactly "p-value <= alpha".
    """
    n = _validate.integer("n", n, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    m = np.arange(1, n + 1)
    # the largest tail j = m - n_A with 2 cdf(j; m, 1/2) <= alpha is ppf(alpha / 2) - 1 or
    # ppf(alpha / 2); candidates around it are checked with the exact p-value
    j0 = _sps.binom.ppf(alpha / 2, m, 0.5).astype(np.int64)
    best = m + 1
    for dj in (2, 1, 0, -1):
        k = m - (j0 + dj)
        ok = (2 * k >= m) & (k <= m) & (stats.binomial_test_pvalue(
            np.clip(k, 0, m), m) <= alpha)
        best = np.where(ok, np.minimum(best, k), best)
    # exactness: one fewer vote must fail (p-value decreases in n_A >= m / 2)
    below = np.clip(best - 1, 0, m)
    fails = (2 * below < m) | (stats.binomial_test_pvalue(below, m) > alpha) | (best > m)
    if not np.all(fails):  # never seen; keeps the table exact if it happens
        raise AssertionError("predict_threshold_table: candidate search missed a threshold")
    table = np.concatenate([[1], best])  # m = 0: no votes for either class, never passes
    return table.astype(np.int32)


def predict_thresholds(n: int, alpha: float) -> tuple[int, int]:
    """PREDICT on a two-class count: `(t0, t1)` with answer 1 iff N1 >= t1, 0 iff N1 <= t0.

    N1 is the class-1 count of n samples; in between, PREDICT abstains. Ties go to class 0
    (as `np.argsort(kind="stable")` in `rpjax.predict`). `t1 = n + 1` / `t0 = -1` where the
    test can never pass.
    """
    n1 = np.arange(n + 1)
    top_is_1 = 2 * n1 > n
    n_a = np.where(top_is_1, n1, n - n1)
    passes = stats.binomial_test_pvalue(n_a, np.full_like(n_a, n)) <= alpha
    ones = np.nonzero(passes & top_is_1)[0]
    zeros = np.nonzero(passes & ~top_is_1)[0]
    t1 = int(ones[0]) if ones.size else n + 1
    t0 = int(zeros[-1]) if zeros.size else -1
    # the outcome sets are intervals: check it rather than assume it
    assert ones.size == 0 or ones.size == n + 1 - t1
    assert zeros.size == 0 or zeros.size == t0 + 1
    return t0, t1


def certify_threshold(n: int, alpha: float) -> int:
    """Smallest count k of the selected class with Clopper-Pearson lower bound > 1/2 (n + 1 if
    none): CERTIFY releases its class iff the class's count among n samples is >= this."""
    k = np.arange(n + 1)
    ok = np.nonzero(stats.clopper_pearson_lower(k, np.full_like(k, n), alpha) > 0.5)[0]
    return int(ok[0]) if ok.size else n + 1



# ------------------------------------------------------------------ the traceable rule
def decide(mode: str, counts, selection, table, kstar):
    """Labels from counts: each mode's rule as a traceable function (the release's graph).

    Args:
      mode: a `Mode` (or its value).
      counts: `[M, C]` int votes (estimation samples for CERTIFY).
      selection: `[M, C]` int selection votes (CERTIFY) or None.
      table: `predict_threshold_table(n, alpha)` (PREDICT) or None.
      kstar: `certify_threshold(n, alpha)` (CERTIFY) or None.

    Returns:
      `[M]` int32 labels, `ABSTAIN` (-1) where the mode abstains. Equal, input by input, to
      `certify_statistics` / `predict_statistics` / `always_label_statistics` on the host.
    """
    mode = Mode(mode)
    if mode is Mode.ALWAYS_LABEL:
        return jnp.argmax(counts, axis=-1).astype(jnp.int32)
    if mode is Mode.PREDICT:
        top, idx = jax.lax.top_k(counts, 2)  # ties: lower class index first
        passes = top[:, 0] >= table[top[:, 0] + top[:, 1]]
        return jnp.where(passes, idx[:, 0], ABSTAIN).astype(jnp.int32)
    chosen = jnp.argmax(selection, axis=-1)
    n_top = jnp.take_along_axis(counts, chosen[:, None], axis=1)[:, 0]
    return jnp.where(n_top >= kstar, chosen, ABSTAIN).astype(jnp.int32)
