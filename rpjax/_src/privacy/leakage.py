"""What a Monte Carlo Robust Privacy release leaks: a computed bound on the advantage.

The certificate of `rpjax.certify` is a statement about the *ideal* smoothed classifier
`g(x) = argmax_c p_c(x)`, `p_c(x) = P(f(x + eps) = c)`, `eps ~ N(0, sigma^2 I)`: with
probability >= 1 - alpha, `g` is constant on the certified ball. A deployed release does not
answer with `g`; it answers with a random variable computed from `n` noisy forward passes,
whose distribution depends on the class probabilities `p(x)`, and those vary inside the ball.
So two points of one certified ball can be told apart from the release's answers, with an
advantage that this module computes (the paper's "at most alpha / 2" does not hold for such a
release: see `docs/guarantee.md`).

Theorem used (Salman et al., 2019, Lemma 1): for Gaussian smoothing, `x -> Phi^-1(p_c(x))`
is (1/sigma)-Lipschitz for every class c. Hence for `||x' - x||_2 <= delta`,

    Phi(Phi^-1(p_c(x)) - delta / sigma) <= p_c(x') <= Phi(Phi^-1(p_c(x)) + delta / sigma),

and a linear base classifier attains both ends (so nothing tighter holds for all models).

For a two-class base model every release mode's answer is a known function of
`p1 = p_1(x)`: a binomial (or a pair of binomials) of the release's sample counts. The
distinguishing advantage of any test between x and x' from the answers is at most the total
variation (TV) distance between the answer distributions. `advantage_bound` returns a sound
upper bound on

    sup { TV(answers at x, answers at x') : p1(x) in [lo, hi], ||x' - x|| <= delta }

for one answer or k answers drawn with fresh noise, where [lo, hi] is what is known of p1(x)
(everything, if nothing is known; a confidence interval from counts, then the bound holds with
the interval's coverage). Modes (`MODES`):

- "predict": PREDICT(n, alpha): the top class or ABSTAIN (two-sided binomial test);
- "always_label": the Monte Carlo top class of n samples (ties: class 0);
- "certify": CERTIFY(n0, n, alpha), label only (the class or ABSTAIN);
- "certify_radius": CERTIFY with its radius released too (a one-to-one function of the
  vote count).

How the supremum is bounded (every step an inequality, none an approximation): the z-axis
`z = Phi^-1(p1)` is cut into cells of width `w`; a point of cell i can only be delta away from
points in cells i - D .. i + D (D = ceil((delta / sigma) / w)). On each pair of cells:
- modes whose TV is monotone in the two probabilities (one binomial answer statistic) use the
  corners of the pair's rectangle, where the supremum lies;
- for k > 1 answers of the three-outcome modes (label 0, label 1, ABSTAIN), the k-fold TV is
  bounded by `min(1 - (1 - t)^k, sqrt(1 - BC^(2k)))`, with t the one-answer TV bound (corners)
  and BC a lower bound on the one-answer Bhattacharyya coefficient (each outcome's probability
  bracketed on the cell: the label outcomes are monotone in p1). The first is the coupling
  bound on product measures, the second the Hellinger bound `TV <= sqrt(1 - BC^2)` with
  `BC(P^k, Q^k) = BC(P, Q)^k`;
- "certify_radius" uses the data-processing inequality: its answer is a function of the
  selection and estimation counts, whose TV equals that of their sum, `Bin(n0 + n, p1)`
  (k answers: `Bin(k (n0 + n), p1)`), an upper bound.
The maximum over pairs is the bound. Grid width changes only how tight it is.

Only two-class base models are covered (the bound of a k-class release needs the whole
probability vector; `advantage_bound` takes no `num_classes` and says so).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats as _sps

from rpjax._src import stats
from rpjax._src import validate as _validate
from rpjax._src.certify import ABSTAIN

MODES = ("predict", "always_label", "certify", "certify_radius")
_ROUNDING = 1e-12  # added to every bound: float64 rounding of the probabilities it combines
_Z_MAX = 12.0  # cells cover z in [-12, 12]; two end cells reach 0 and 1 (Phi(-12) ~ 2e-33)


class LeakageBound(NamedTuple):
    """Result of `advantage_bound`.

    Attributes:
      advantage: upper bound on the TV distance between the answers at x and at any x' with
        `||x' - x||_2 <= delta` (and so on any test's distinguishing advantage), in [0, 1].
      mode, k, delta, sigma: what it is for (k answers with fresh noise; delta and sigma in
        input units).
      p1_interval: `(lo, hi)`, the values of p_1(x) the bound holds for.
      failure_probability: probability that `p1_interval` does not hold (0 when it is the
        whole [0, 1]; the interval's error when it comes from counts).
    """

    advantage: float
    mode: str
    k: int
    delta: float
    sigma: float
    p1_interval: tuple[float, float]
    failure_probability: float


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got mode={mode!r}.")
    return mode


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


def _sf(k, m, p):
    """P(Bin(m, p) >= k), exact at p in {0, 1}."""
    return _sps.binom.sf(np.asarray(k) - 1, m, p)


def _cdf(k, m, p):
    return _sps.binom.cdf(k, m, p)


def _simplex(columns) -> np.ndarray:
    return np.clip(np.stack(columns, axis=1), 0.0, 1.0)


def outcome_probabilities(mode: str, p1, *, n: int, alpha: float | None = None,
                          n0: int | None = None) -> tuple[np.ndarray, list]:
    """The distribution of one answer of a two-class release, as a function of p1.

    Args:
      mode: one of `MODES`.
      p1: `[P]` probabilities that the base model says class 1 under noise.
      n, alpha, n0: the release's settings (alpha for predict/certify, n0 for certify).

    Returns:
      `(probs [P, O] float64, outcomes)`: outcomes are -1 (ABSTAIN), 0 and 1, or for
      "certify_radius" `(-1, None)` and `(label, count)` pairs (the radius is a one-to-one
      function of the count).
    """
    _check_mode(mode)
    p = np.atleast_1d(np.asarray(p1, np.float64))
    n = _validate.integer("n", n, minimum=1)
    if mode == "always_label":
        q = _sf(n // 2 + 1, n, p)
        return np.stack([1.0 - q, q], axis=1), [0, 1]
    if mode == "predict":
        t0, t1 = predict_thresholds(n, _validate.open_unit_interval("alpha", alpha))
        p_one = _sf(t1, n, p)
        p_zero = _cdf(t0, n, p) if t0 >= 0 else np.zeros_like(p)
        return _simplex([1.0 - p_one - p_zero, p_zero, p_one]), [ABSTAIN, 0, 1]
    n0 = _validate.integer("n0", n0, minimum=1)
    kstar = certify_threshold(n, _validate.open_unit_interval("alpha", alpha))
    s1 = _sf(n0 // 2 + 1, n0, p)  # selection picks class 1 (ties: class 0)
    if mode == "certify":
        p_one = s1 * _sf(kstar, n, p)
        p_zero = (1.0 - s1) * _cdf(n - kstar, n, p)
        return _simplex([1.0 - p_one - p_zero, p_zero, p_one]), [ABSTAIN, 0, 1]
    counts = np.arange(kstar, n + 1)
    one = s1[:, None] * _sps.binom.pmf(counts[None], n, p[:, None])
    zero = (1.0 - s1)[:, None] * _sps.binom.pmf(counts[None], n, 1.0 - p[:, None])
    abst = 1.0 - one.sum(1) - zero.sum(1)
    outcomes = [(ABSTAIN, None)] + [(0, int(c)) for c in counts] + [(1, int(c)) for c in counts]
    return np.clip(np.concatenate([abst[:, None], zero, one], axis=1), 0.0, 1.0), outcomes


def binomial_tv(m: int, p, q) -> np.ndarray:
    """Exact TV distance between Bin(m, p) and Bin(m, q), elementwise (float64).

    For p < q the likelihood ratio is increasing in the count, so the TV is
    `max_j P_q(X >= j) - P_p(X >= j)`, attained where the ratio crosses 1.
    """
    p, q = np.broadcast_arrays(np.asarray(p, np.float64), np.asarray(q, np.float64))
    lo, hi = np.minimum(p, q), np.maximum(p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = m * (np.log1p(-lo) - np.log1p(-hi))
        den = np.log(hi) - np.log(lo) + np.log1p(-lo) - np.log1p(-hi)
        j = np.ceil(num / den)
    j = np.where(np.isfinite(j), np.clip(j, 0, m), np.where(lo == 0, 1, m))
    best = np.zeros_like(lo)
    for dj in (-1, 0, 1):
        jj = np.clip(j + dj, 0, m + 1)
        best = np.maximum(best, _sf(jj, m, hi) - _sf(jj, m, lo))
    return np.where(lo == hi, 0.0, np.clip(best, 0.0, 1.0))


def _edges(z_lo: float, z_hi: float, d: float, width: float):
    """Cell edges on the z = Phi^-1(p1) axis, the x cells' index range, and D.

    x cells cover [z_lo, z_hi] (with an end cell to -inf / +inf where the interval goes past
    -12 / 12); D cells of the x cells' width w lie on each side, so every point within d
    of an x cell lies in a cell at most D = ceil(d / w) cells away.
    """
    left_tail, right_tail = z_lo < -_Z_MAX, z_hi > _Z_MAX
    zl, zh = float(np.clip(z_lo, -_Z_MAX, _Z_MAX)), float(np.clip(z_hi, -_Z_MAX, _Z_MAX))
    w = d / math.ceil(d / width) if d > 0 else width  # d is a whole number of cells
    big_d = round(d / w) if d > 0 else 0
    cells = max(1, math.ceil((zh - zl) / w)) if zh > zl else 0
    if cells > 0:  # the cells may reach a little past zh: covering more is sound
        x_edges = zl + w * np.arange(cells + 1)
    else:  # one known value: a zero-width cell (or none, when a tail cell holds it)
        x_edges = np.array([zl] if (left_tail or right_tail) else [zl, zl])
    zh = float(x_edges[-1])
    below = np.empty(0) if left_tail else zl - w * np.arange(big_d, 0, -1)
    above = np.empty(0) if right_tail else zh + w * np.arange(1, big_d + 1)
    edges = np.concatenate([[-np.inf], below, x_edges, above, [np.inf]])
    first = 0 if left_tail else 1 + below.size
    last = below.size + x_edges.size - 1 + (1 if right_tail else 0)
    return edges, first, last, big_d


def advantage_bound(
    mode: str,
    *,
    sigma: float,
    delta: float,
    n: int,
    alpha: float | None = None,
    n0: int | None = None,
    k: int = 1,
    p1_interval: tuple[float, float] = (0.0, 1.0),
    failure_probability: float = 0.0,
    cell_width: float | None = None,
) -> LeakageBound:
    """Upper bound on the distinguishing advantage between x and any x' within delta.

    Args:
      mode: release mode, one of `MODES` (two-class base model).
      sigma: the release's noise std, in input units (> 0).
      delta: l2 distance between the two inputs, in input units (>= 0), e.g. a certified
        radius, or a change of one standardized attribute.
      n: the release's samples per answer; n0: selection samples (certify modes).
      alpha: PREDICT's test level / CERTIFY's failure probability.
      k: answers the adversary sees, each with fresh noise (>= 1).
      p1_interval: `(lo, hi)` known to contain p_1(x) (default: nothing known, [0, 1]).
        From `rpjax.certify`'s `pa_lower` for class A (failing with probability alpha):
        `(pa_lower, 1)` if A = 1, `(0, 1 - pa_lower)` if A = 0; from fresh counts:
        `p1_interval_from_counts`.
      failure_probability: probability that `p1_interval` is wrong (recorded in the result).
      cell_width: grid width on the Phi^-1(p1) axis (default: fine enough for n); changes
        only the tightness.

    Returns:
      `LeakageBound`. `advantage` bounds, over every test, `P(test says x | x) -
      P(test says x | x')` for all x' with `||x' - x||_2 <= delta`.

    Guarantee:
      For any two-class base classifier f and any x with p_1(x) in `p1_interval`, the TV
      distance between the distributions of the k answers at x and at x' is at most
      `advantage`, for every x' with `||x' - x||_2 <= delta`. If `p1_interval` is a confidence
      interval, this holds except with its failure probability.

    Examples:
      >>> b = advantage_bound("always_label", sigma=0.5, delta=0.1, n=100,
      ...                     p1_interval=(0.9, 0.9))
      >>> 0.0 < b.advantage < 1.0
      True
    """
    _check_mode(mode)
    sigma = _validate.positive("sigma", sigma)
    delta = _validate.real("delta", delta)
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got delta={delta!r}.")
    n = _validate.integer("n", n, minimum=1)
    k = _validate.integer("k", k, minimum=1)
    if mode != "always_label":
        alpha = _validate.open_unit_interval("alpha", alpha)
    if mode in ("certify", "certify_radius"):
        n0 = _validate.integer("n0", n0, minimum=1)
    lo, hi = (_validate.real("p1_interval", v) for v in p1_interval)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"p1_interval must satisfy 0 <= lo <= hi <= 1, got {p1_interval!r}.")
    d = delta / sigma
    if cell_width is None:
        cell_width = min(0.02, 0.1 / math.sqrt(n * (k if mode == "always_label" else 1)),
                         max(d, 1e-3) / 4)
    cell_width = _validate.positive("cell_width", cell_width)
    edges, first, last, big_d = _edges(float(_sps.norm.ppf(lo)), float(_sps.norm.ppf(hi)), d,
                                       cell_width)
    p_edges = _sps.norm.cdf(edges)
    x_cells = np.arange(first, last + 1)
    if d == 0:  # x' = x: the same answer distribution
        adv = -_ROUNDING
    elif mode in ("always_label", "certify_radius"):
        adv = _monotone_bound(mode, p_edges, x_cells, big_d, n=n, n0=n0, k=k)
    else:
        adv = _three_outcome_bound(mode, p_edges, x_cells, big_d, n=n, n0=n0, alpha=alpha, k=k)
    adv = min(1.0, adv + _ROUNDING)
    return LeakageBound(advantage=float(adv), mode=mode, k=k, delta=delta,
                        sigma=sigma, p1_interval=(lo, hi),
                        failure_probability=float(failure_probability))


def _monotone_bound(mode, p_edges, x_cells, big_d, *, n, n0, k) -> float:
    """Corner bound for TVs monotone in the answer statistic's binomial parameter."""
    if mode == "always_label":
        stat = _sf(n // 2 + 1, n, p_edges)  # P(answer 1), increasing in p1
        m = k
    else:
        stat, m = p_edges, k * (n0 + n)
    top = len(p_edges) - 1
    left = stat[x_cells]
    right = stat[np.minimum(x_cells + 1, top)]
    far_up = stat[np.minimum(x_cells + 1 + big_d, top)]
    far_down = stat[np.maximum(x_cells - big_d, 0)]
    return float(max(binomial_tv(m, left, far_up).max(), binomial_tv(m, right, far_down).max()))


def _three_outcome_bound(mode, p_edges, x_cells, big_d, *, n, n0, alpha, k) -> float:
    """Bound for modes answering 0, 1 or ABSTAIN (predict, certify label-only)."""
    probs, _ = outcome_probabilities(mode, p_edges, n=n, alpha=alpha, n0=n0)
    zero, one = probs[:, 1], probs[:, 2]  # zero decreasing, one increasing in p1
    top = len(p_edges) - 1
    num_cells = top
    # per-cell lower brackets of each outcome's probability
    cell = np.arange(num_cells)
    lo_one, lo_zero = one[cell], zero[cell + 1]
    lo_abst = np.clip(1.0 - one[cell + 1] - zero[cell], 0.0, 1.0)
    best = 0.0
    for off in range(-big_d, big_d + 1):
        j = x_cells + off
        ok = (j >= 0) & (j < num_cells)
        i, j = x_cells[ok], j[ok]
        # one-answer TV: max(|d one|, |d zero|), at the rectangle's two corners
        tv1 = np.maximum(
            np.maximum(np.abs(one[j + 1] - one[i]), np.abs(zero[j + 1] - zero[i])),
            np.maximum(np.abs(one[j] - one[i + 1]), np.abs(zero[j] - zero[i + 1])))
        tv1 = np.clip(tv1, 0.0, 1.0)
        if k == 1:
            cand = tv1
        else:
            bc = (np.sqrt(lo_one[i] * lo_one[j]) + np.sqrt(lo_zero[i] * lo_zero[j])
                  + np.sqrt(lo_abst[i] * lo_abst[j]))
            bc = np.clip(bc, 0.0, 1.0)
            coupling = -np.expm1(k * np.log1p(-np.minimum(tv1, 1.0 - 1e-300)))
            hellinger = np.sqrt(np.clip(-np.expm1(2 * k * np.log(np.maximum(bc, 1e-300))),
                                        0.0, 1.0))
            cand = np.minimum(coupling, hellinger)
        if cand.size:
            best = max(best, float(cand.max()))
    return best


def p1_interval_from_counts(count_1: int, n: int, beta: float) -> tuple[float, float]:
    """Two-sided (1 - beta) Clopper-Pearson interval for p_1 from `count_1` of `n` votes.

    Use fresh samples, not the ones the answers were computed from; the interval fails with
    probability at most beta (beta / 2 each side).
    """
    count_1 = _validate.integer("count_1", count_1, minimum=0)
    n = _validate.integer("n", n, minimum=1)
    beta = _validate.open_unit_interval("beta", beta)
    return (float(stats.clopper_pearson_lower(count_1, n, beta / 2)),
            float(stats.clopper_pearson_upper(count_1, n, beta / 2)))


def composed_advantage(per_answer_tv: float, per_answer_bc: float | None, k: int) -> float:
    """Bound after k independent answers, each with one-answer TV <= per_answer_tv and (if
    given) Bhattacharyya coefficient >= per_answer_bc: `min(1 - (1 - t)^k, sqrt(1 - BC^(2k)))`.
    """
    k = _validate.integer("k", k, minimum=0)
    t = float(np.clip(per_answer_tv, 0.0, 1.0))
    out = 1.0 - (1.0 - t) ** k
    if per_answer_bc is not None:
        out = min(out, math.sqrt(max(0.0, 1.0 - float(per_answer_bc) ** (2 * k))))
    return out
