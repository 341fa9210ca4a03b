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

That bound is for k answers to one input. An adaptive attacker moves each query's input and
chooses it after seeing the earlier answers; `advantage_bound(..., adaptive=True)` covers
every such attacker with `min(1 - (1 - t*)^k, sqrt(1 - BC*^(2k)))`, where `t*` and `BC*`
(`per_answer_bound`) bound one answer's TV and Bhattacharyya coefficient over every pair of
inputs within delta; BC* comes from the length of the path `z -> sqrt(P(answer | z))` on the
unit sphere, so its loss is second order in the cell width. The one-input bound returned by
default is the smaller of the grid above and this one (both hold for one input). This is the
bound a release's `Budget(max_advantage=...)` enforces (`docs/guarantee.md`, section 3a).

Only two-class base models are covered (the bound of a k-class release needs the whole
probability vector; `advantage_bound` takes no `num_classes` and says so).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import stats as _sps

from rpjax._src import stats
from rpjax._src import validate as _validate
from rpjax._src.decision import ABSTAIN, certify_threshold, predict_thresholds
from rpjax._src.decision import MODES as _decision_modes

MODES = (*_decision_modes, "certify_radius")
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


def _sf(k, m, p, q=None):
    """P(Bin(m, p) >= k), exact at p in {0, 1}; `q = 1 - p` if given (kept accurate near 1)."""
    k = np.asarray(k)
    if q is None:
        return _sps.binom.sf(k - 1, m, p)
    return np.where(p <= 0.5, _sps.binom.sf(k - 1, m, p), _sps.binom.cdf(m - k, m, q))


def _cdf(k, m, p, q=None):
    """P(Bin(m, p) <= k); `q = 1 - p` if given."""
    k = np.asarray(k)
    if q is None:
        return _sps.binom.cdf(k, m, p)
    return np.where(p <= 0.5, _sps.binom.cdf(k, m, p), _sps.binom.sf(m - k - 1, m, q))


def _pmf_sup(j: int, m: int, pa, qa, pb, qb):
    """max of P(Bin(m, p) = j) over p in [pa, pb] (the pmf is unimodal in p, peak at j/m)."""
    if m == 0:
        return np.ones_like(pa)
    peak = j / m
    p = np.where(peak < pa, pa, np.where(peak > pb, pb, peak))
    q = np.where(peak < pa, qa, np.where(peak > pb, qb, 1.0 - peak))
    return np.where(p <= 0.5, _sps.binom.pmf(j, m, p), _sps.binom.pmf(m - j, m, q))


def _probabilities(name: str, value) -> np.ndarray:
    """`value` as a float64 array of probabilities; NaN or values outside [0, 1] refused."""
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be an array of probabilities, got {value!r}.") from e
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # NaN fails both comparisons
    if np.any(bad):
        first = arr[bad].flat[0] if arr.ndim else arr
        raise ValueError(f"{name} must lie in [0, 1] (no NaN), got {name} containing "
                         f"{float(first)!r}.")
    return arr


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
    p = np.atleast_1d(_probabilities("p1", p1))
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
    m = _validate.integer("m", m, minimum=0)
    p, q = np.broadcast_arrays(_probabilities("p", p), _probabilities("q", q))
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


# ------------------------------------------------------------ the adaptive, worst-case bound
_MAX_CELLS = 2_000_000  # the largest grid on the z axis (a few hundred MB of float64 at most)
_DEFAULT_MIN_WIDTH = 2 * _Z_MAX / 1_000_000  # the default grid never has more than 1e6 cells
_TAIL = float(_sps.norm.sf(_Z_MAX))  # Phi(-12) ~ 1.8e-33
_ANGLE_SLACK = 1e-12  # added to every angle: float64 rounding of the sums that make it


class PerAnswerBound(NamedTuple):
    """What one answer can reveal, worst case over every input and every x' within delta.

    Attributes:
      tv: upper bound on `sup TV(answer at x, answer at x')` over all x and all
        `||x' - x||_2 <= delta` (t* in `docs/guarantee.md`).
      hellinger2: upper bound on `sup (1 - BC(answer at x, answer at x'))`, BC the
        Bhattacharyya coefficient (so `1 - hellinger2` is BC*, a lower bound on BC).
    """

    tv: float
    hellinger2: float

    @property
    def bc(self) -> float:
        """BC*: a lower bound on the Bhattacharyya coefficient of one answer."""
        return 1.0 - self.hellinger2


def _labels_pq(mode: str, p, q, *, n: int, alpha, n0):
    """`(P(answer 1), P(answer 0))` at p1 = p (q = 1 - p, kept accurate near 1)."""
    if mode == "always_label":
        h = n // 2 + 1
        return _sf(h, n, p, q), _cdf(h - 1, n, p, q)
    if mode == "predict":
        t0, t1 = predict_thresholds(n, alpha)
        return _sf(t1, n, p, q), _cdf(t0, n, p, q)
    kstar = certify_threshold(n, alpha)
    h0 = n0 // 2 + 1
    return (_sf(h0, n0, p, q) * _sf(kstar, n, p, q),
            _cdf(h0 - 1, n0, p, q) * _cdf(n - kstar, n, p, q))


def _cell_terms(mode: str, ua, ub, *, n: int, alpha, n0):
    """For finite cells `[ua, ub]` of the z = Phi^-1(p1) axis, per label outcome (1, 0) and
    ABSTAIN: an upper bound on `|d P(outcome) / dz|` over the cell and a lower bound on
    `P(outcome)` over the cell. Returns `(deriv [C, O], lower [C, O])`.

    P(answer 1) increases and P(answer 0) decreases in p1 (every mode), so the lower bounds
    are their values at the cell's ends and `|d P(ABSTAIN)| <= max(|d P(1)|, |d P(0)|)`.
    Derivatives: `dz P = phi(z) dp P`, `dp P(Bin(m, p) >= k) = m pmf(k - 1; m - 1, p)`, each
    factor bounded by its largest value on the cell (the pmf is unimodal in p).
    """
    pa, pb = _sps.norm.cdf(ua), _sps.norm.cdf(ub)
    qa, qb = _sps.norm.sf(ua), _sps.norm.sf(ub)
    phi = _sps.norm.pdf(np.where((ua <= 0) & (ub >= 0), 0.0,
                                 np.minimum(np.abs(ua), np.abs(ub))))

    def dsf(k: int, m: int):  # sup over the cell of d/dp P(Bin(m, p) >= k)
        if k <= 0 or k > m:
            return np.zeros_like(pa)
        return m * _pmf_sup(k - 1, m - 1, pa, qa, pb, qb)

    # sup over the cell of phi(z) / p1 and of phi(z) / (1 - p1): at its left / right end
    over_p = np.exp(_sps.norm.logpdf(ua) - _sps.norm.logcdf(ua))
    over_q = np.exp(_sps.norm.logpdf(ub) - _sps.norm.logsf(ub))

    def ratio(c1: float, c2: float):  # sup |d log P / dz| <= c1 phi / p1 + c2 phi / (1 - p1)
        return c1 * over_p + c2 * over_q

    if mode == "always_label":
        h = n // 2 + 1
        d1 = phi * dsf(h, n)
        return (np.stack([d1, d1], axis=1),
                np.stack([_cdf(h - 1, n, pb, qb), _sf(h, n, pa, qa)], axis=1),
                np.stack([ratio(0, n - h + 1), ratio(h, 0)], axis=1))
    if mode == "predict":
        t0, t1 = predict_thresholds(n, alpha)
        d_one, d_zero = dsf(t1, n), dsf(t0 + 1, n)
        lo_one, lo_zero = _sf(t1, n, pa, qa), _cdf(t0, n, pb, qb)
        lo_abst = np.maximum(_sf(t0 + 1, n, pa, qa) - _sf(t1, n, pb, qb),
                             _cdf(t1 - 1, n, pb, qb) - _cdf(t0, n, pa, qa))
        ratios = [ratio(t0 + 1, n - t1 + 1), ratio(0, n - t0), ratio(t1, 0)]
    else:  # certify: P(1) = s1 A, P(0) = (1 - s1) B, P(ABSTAIN) = s1 (1 - A) + (1 - s1)(1 - B)
        kstar, h0 = certify_threshold(n, alpha), n0 // 2 + 1
        s1a, s1b = _sf(h0, n0, pa, qa), _sf(h0, n0, pb, qb)
        c1a, c1b = _cdf(h0 - 1, n0, pa, qa), _cdf(h0 - 1, n0, pb, qb)
        ds1, d_a, d_b = dsf(h0, n0), dsf(kstar, n), dsf(n - kstar + 1, n)
        d_one = ds1 * _sf(kstar, n, pb, qb) + s1b * d_a
        d_zero = ds1 * _cdf(n - kstar, n, pa, qa) + c1a * d_b
        lo_one = s1a * _sf(kstar, n, pa, qa)
        lo_zero = c1b * _cdf(n - kstar, n, pb, qb)
        lo_abst = (s1a * _cdf(kstar - 1, n, pb, qb)
                   + c1b * _sf(n - kstar + 1, n, pa, qa))
        ratios = [ratio(h0 + n - kstar + 1, n - kstar + 1 + n0 - h0 + 1),
                  ratio(0, n0 - h0 + 1 + kstar), ratio(h0 + kstar, 0)]
    d_one, d_zero = phi * d_one, phi * d_zero
    deriv = np.stack([np.maximum(d_one, d_zero), d_zero, d_one], axis=1)
    lower = np.clip(np.stack([lo_abst, lo_zero, lo_one], axis=1), 0.0, 1.0)
    return deriv, lower, np.stack(ratios, axis=1)


def _speed(deriv, lower, ratios):
    """`[C]` upper bound on the speed `|d sqrt(P(z)) / dz| = sqrt(sum_o P_o'^2 / P_o) / 2` of
    the answer distribution on the unit sphere of square-root probabilities.

    Each term is bounded twice: `sup |P_o'|^2 / inf P_o`, and `sup |P_o'| sup |P_o' / P_o|`
    with the log-derivative bound `ratios` (`d/dp P(N >= k) <= (k / p) P(N >= k)`,
    `|d/dp P(N <= k)| <= ((m - k) / (1 - p)) P(N <= k)`, sums for products), which stays
    finite where the probabilities underflow.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        direct = np.where(deriv > 0, np.where(lower > 0, deriv**2 / lower, np.inf), 0.0)
        direct = np.where(np.isnan(direct), np.inf, direct)
    terms = np.minimum(direct, ratios * deriv)
    return 0.5 * np.sqrt(terms.sum(axis=1))


def _segment(s, w):
    """`seg(a, b)` = w * sum(s[a..b]) (0 if a > b) for integer arrays a, b, exact with infs."""
    c = s.size
    finite = np.where(np.isinf(s), 0.0, s)
    total = np.concatenate([[0.0], np.cumsum(finite)])
    infs = np.concatenate([[0], np.cumsum(np.isinf(s))])

    def seg(a, b):
        a, b1 = np.clip(a, 0, c), np.clip(np.asarray(b) + 1, 0, c)
        b1 = np.maximum(a, b1)
        return np.where(infs[b1] > infs[a], np.inf, w * (total[b1] - total[a]))

    return seg, w * total[-1]


def _scaled(r: float, s):
    return r * s if r > 0 else np.zeros_like(s)


def _windows(s, w: float, d: float):
    """Upper bounds on the integral over `[z, z + d]` of a density that is at most `s[c]` on
    cell c (finite cells of width w, cell c = [e_c, e_c + w]), for z in cell i, over the
    windows that end inside the grid: `in_grid [C]` (-inf where none does), and for the
    windows that reach past either end: `left` (from e_0) and `right` (to e_C) scalars.

    With d = D w + r, a window from z = e_i + f w covers (1 - f) w of cell i, whole cells,
    and the rest of d in the last cell it reaches; the integral is linear in f on each of
    the two ranges of f, so its maximum is at their ends (exact for piecewise-constant s).
    """
    c = s.size
    big_d = int(math.floor(d / w))
    r = min(max(d - big_d * w, 0.0), w)
    seg, total = _segment(s, w)
    i = np.arange(c)
    last = np.minimum(i + big_d, c - 1)
    after = np.minimum(i + big_d + 1, c - 1)
    if big_d == 0:
        ends_in_last = _scaled(r, s)
    else:
        ends_in_last = seg(i + 1, i + big_d - 1) + np.maximum(
            w * s + _scaled(r, s[last]), _scaled(r, s) + w * s[last])
    ends_after = seg(i + 1, i + big_d) + _scaled(r, np.maximum(s, s[after]))
    out = np.where(i + big_d <= c - 1, ends_in_last, -np.inf)
    out = np.where(i + big_d + 1 <= c - 1, np.maximum(out, ends_after), out)
    k = min(big_d, c - 1)
    left = float(seg(np.array(0), np.array(k - 1)) + _scaled(r, s[k]))
    right = float(seg(np.array(c - k), np.array(c - 1)) + _scaled(r, s[c - 1 - k]))
    slack = _ANGLE_SLACK * (1.0 + (total if np.isfinite(total) else 0.0))
    return out + slack, left + slack, right + slack


def _cells(width: float) -> tuple[np.ndarray, float]:
    cells = math.ceil(2 * _Z_MAX / width)
    if cells > _MAX_CELLS:
        raise ValueError(f"cell_width={width!r} makes a grid of {cells} cells on the "
                         f"Phi^-1(p1) axis [-{_Z_MAX:g}, {_Z_MAX:g}]; the most is {_MAX_CELLS} "
                         f"(cell_width >= {2 * _Z_MAX / _MAX_CELLS:.3g}).")
    w = 2 * _Z_MAX / cells
    return -_Z_MAX + w * np.arange(cells + 1), w


def _default_width(n_eff: float) -> float:
    return max(_DEFAULT_MIN_WIDTH, min(0.02, 0.02 / math.sqrt(n_eff)))


def per_answer_bound(mode: str, *, sigma: float, delta: float, n: int,
                     alpha: float | None = None, n0: int | None = None,
                     cell_width: float | None = None) -> PerAnswerBound:
    """t* and BC*: what one answer can reveal, for every input at once (two-class models).

    `tv >= sup TV` and `hellinger2 >= sup (1 - BC)` over every pair of inputs x, x' with
    `||x' - x||_2 <= delta`, whatever the base model (Salman et al.'s Lipschitz lemma: only
    pairs with `|Phi^-1(p1(x')) - Phi^-1(p1(x))| <= delta / sigma` can occur, and a linear
    model attains every such pair). These are the two quantities `advantage_bound(...,
    adaptive=True)` composes.

    How (each step an inequality): z = Phi^-1(p1) in [-12, 12] is cut into cells of width
    `cell_width`; beyond it, every answer equals the answer at p1 = 0 (or 1) except with
    probability at most (votes per answer) * Phi(-12), a term added explicitly.
    - TV: the smallest of three bounds for each cell where x may lie: the corners (P(1)
      increases and P(0) decreases in z, so the TV of one answer, `max(dP(1), -dP(0))`, is
      largest at the far corners), the integral of `|dP/dz|` over the window (per-cell
      derivative bounds), and `sqrt(1 - BC^2)` from the angle below.
    - BC: square-root probability vectors lie on the unit sphere and BC is the cosine of the
      angle between two of them; the angle is at most the length of the path z -> sqrt(P(z))
      between them, the integral of its speed `sqrt(Fisher information) / 2`, bounded cell by
      cell. So `1 - BC <= 1 - cos(length)`: the loss is of order (cell width) x (1 - BC),
      second order, where per-cell brackets on each probability lose first order.
    - "certify_radius": the answer is a function of the sufficient statistic
      `Bin(n0 + n, p1)` (data processing: TV and 1 - BC can only shrink), whose TV and BC
      are monotone in the pair and exact at the corners.

    Args:
      mode, sigma, delta, n, alpha, n0: as `advantage_bound`.
      cell_width: grid width on the z axis (default `min(0.02, 0.02 / sqrt(votes))`, at
        most 1e6 cells); changes only the tightness. A grid of more than 2e6 cells is
        refused.
    """
    mode, sigma, delta, n, alpha, n0 = _check_settings(mode, sigma, delta, n, alpha, n0)
    if cell_width is not None:
        cell_width = _validate.positive("cell_width", cell_width)
    return _per_answer(mode, delta / sigma, n, alpha if mode != "always_label" else None,
                       n0 if mode in ("certify", "certify_radius") else None, cell_width)


@functools.lru_cache(maxsize=256)
def _per_answer(mode: str, d: float, n: int, alpha, n0, cell_width) -> PerAnswerBound:
    """`per_answer_bound` on validated settings, d = delta / sigma (cached: a pure function)."""
    if d == 0:
        return PerAnswerBound(0.0, 0.0)
    if d >= 2 * _Z_MAX:  # some pair has p1 = Phi(-12) and Phi(12): trivially at most 1
        return PerAnswerBound(1.0, 1.0)
    votes = n + (n0 if mode in ("certify", "certify_radius") else 0)
    edges, w = _cells(_default_width(votes) if cell_width is None else cell_width)
    ua, ub = edges[:-1], edges[1:]
    eps = min(1.0, votes * _TAIL)  # TV between any tail point and the grid's end
    theta_tail = 2.0 * math.asin(math.sqrt(eps / 2.0))
    exits = ub + d > _Z_MAX  # some window from this cell reaches past z = 12
    if mode == "certify_radius":
        m = votes
        pa, qa, pb, qb = (_sps.norm.cdf(ua), _sps.norm.sf(ua), _sps.norm.cdf(ub),
                          _sps.norm.sf(ub))
        phi = _sps.norm.pdf(np.where((ua <= 0) & (ub >= 0), 0.0,
                                     np.minimum(np.abs(ua), np.abs(ub))))
        with np.errstate(divide="ignore"):
            speed = 0.5 * math.sqrt(m) * phi / np.sqrt(np.minimum(pa * qa, pb * qb))
        far_p, far_q = _sps.norm.cdf(ub + d), _sps.norm.sf(ub + d)
        corner_tv = binomial_tv(m, pa, far_p)
        bc1 = np.sqrt(pa * far_p) + np.sqrt(qa * far_q)
        with np.errstate(divide="ignore"):
            corner_h2 = -np.expm1(m * np.log(np.clip(bc1, 0.0, 1.0)))
        e0_tv = float(binomial_tv(m, _sps.norm.cdf(-_Z_MAX), _sps.norm.cdf(-_Z_MAX + d)))
        deriv_tv = left_tv = right_tv = None
    else:
        deriv, lower, ratios = _cell_terms(mode, ua, ub, n=n, alpha=alpha, n0=n0)
        speed = _speed(deriv, lower, ratios)
        pe, qe = _sps.norm.cdf(edges), _sps.norm.sf(edges)
        pf, qf = _sps.norm.cdf(edges + d), _sps.norm.sf(edges + d)
        one_e, zero_e = _labels_pq(mode, pe, qe, n=n, alpha=alpha, n0=n0)
        one_f, zero_f = _labels_pq(mode, pf, qf, n=n, alpha=alpha, n0=n0)
        corner_tv = np.maximum(one_f[1:] - one_e[:-1], zero_e[:-1] - zero_f[1:])
        corner_h2 = np.ones_like(corner_tv)
        e0_tv = float(max(one_f[0] - one_e[0], zero_e[0] - zero_f[0]))
        w_one, l_one, r_one = _windows(deriv[:, -1], w, d)
        w_zero, l_zero, r_zero = _windows(deriv[:, -2], w, d)
        deriv_tv = np.maximum(w_one, w_zero)
        left_tv, right_tv = max(l_one, l_zero), max(r_one, r_zero)
    angle_in, angle_left, angle_right = _windows(speed, w, d)

    def h2_of(angle):
        return 2.0 * np.sin(np.minimum(angle, math.pi / 2) / 2.0) ** 2

    def tv_of(h2):
        return np.sqrt(np.clip(h2 * (2.0 - h2), 0.0, 1.0))

    # windows that end inside the grid, and those that reach past z = 12
    fits = np.isfinite(angle_in) | (angle_in == np.inf)  # some window ends in the grid
    h2_in = np.minimum(h2_of(np.where(fits, angle_in, 0.0)), corner_h2)
    h2_out = np.where(exits, np.minimum(h2_of(angle_right + theta_tail), corner_h2), -np.inf)
    tv_in = np.minimum(corner_tv, tv_of(h2_in))
    tv_out = np.minimum(corner_tv, tv_of(h2_of(angle_right + theta_tail)) + eps)
    if deriv_tv is not None:
        tv_in = np.minimum(tv_in, deriv_tv)
        tv_out = np.minimum(tv_out, right_tv + eps)
    tv_out = np.where(exits, tv_out, -np.inf)
    h2_in, tv_in = np.where(fits, h2_in, -np.inf), np.where(fits, tv_in, -np.inf)
    # windows that start below z = -12
    h2_left = float(h2_of(theta_tail + angle_left))
    tv_left = eps + min(e0_tv, float(tv_of(h2_of(angle_left))),
                        left_tv if left_tv is not None else 1.0)
    tv = max(float(np.max(tv_in)), float(np.max(tv_out)), tv_left)
    h2 = max(float(np.max(h2_in)), float(np.max(h2_out)), h2_left)
    # (the angles carry their own rounding slack, _ANGLE_SLACK times the path length)
    return PerAnswerBound(float(min(1.0, tv + _ROUNDING)), float(min(1.0, h2)))


def _compose(tv: float, hellinger2: float, k: int) -> float:
    """`min(1 - (1 - t)^k, sqrt(1 - (1 - h2)^(2k)))`, computed without cancellation."""
    if k == 0:
        return 0.0
    coupling = 1.0 if tv >= 1.0 else -math.expm1(k * math.log1p(-tv))
    hell = 1.0 if hellinger2 >= 1.0 else math.sqrt(
        max(0.0, -math.expm1(2 * k * math.log1p(-hellinger2))))
    return min(coupling, hell)


def answers_within(bound: PerAnswerBound, max_advantage: float) -> int | float:
    """The largest k with `composed advantage bound after k answers <= max_advantage` (the
    bound `advantage_bound(..., adaptive=True)` reports; `math.inf` if every k is within)."""
    max_advantage = _validate.real("max_advantage", max_advantage)
    if not 0.0 <= max_advantage <= 1.0:
        raise ValueError(f"max_advantage must lie in [0, 1], got {max_advantage!r}.")

    def value(k):
        return min(1.0, _compose(bound.tv, bound.hellinger2, k) + _ROUNDING)

    if value(1) > max_advantage:
        return 0
    if bound.tv == 0.0 or bound.hellinger2 == 0.0:
        return math.inf
    target = max_advantage - _ROUNDING
    guesses = []
    if bound.tv < 1.0 and target > 0:
        guesses.append(math.log1p(-target) / math.log1p(-bound.tv))
    if bound.hellinger2 < 1.0 and 0 < target < 1:
        guesses.append(math.log1p(-target**2) / (2 * math.log1p(-bound.hellinger2)))
    guess = max(guesses, default=1.0)
    lo = max(1, int(guess * (1 - 1e-9)) - 2)
    hi = int(guess * (1 + 1e-9)) + 3
    while lo > 1 and value(lo) > max_advantage:  # float edges: widen, then bisect exactly
        lo //= 2
    while value(hi) <= max_advantage:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if value(mid) <= max_advantage else (lo, mid)
    return lo


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


def _check_settings(mode, sigma, delta, n, alpha, n0):
    """The release settings every bound takes, validated (alpha / n0 where the mode uses
    them)."""
    _check_mode(mode)
    sigma = _validate.positive("sigma", sigma)
    delta = _validate.real("delta", delta)
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got delta={delta!r}.")
    n = _validate.integer("n", n, minimum=1)
    if mode != "always_label":
        alpha = _validate.open_unit_interval("alpha", alpha)
    if mode in ("certify", "certify_radius"):
        n0 = _validate.integer("n0", n0, minimum=1)
    return mode, sigma, delta, n, alpha, n0


_MAX_PAIR_WORK = 50_000_000  # cell pairs the one-input grid may visit (else: the k-free bound)


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
    adaptive: bool = False,
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
        `p1_interval_from_counts`. Not with `adaptive=True`.
      failure_probability: probability that `p1_interval` is wrong (recorded in the result).
      cell_width: grid width on the Phi^-1(p1) axis (default: fine enough for n); changes
        only the tightness. A grid of more than 2e6 cells is refused.
      adaptive: False: the k answers are all to one input x (and to one x'). True: an
        adaptive attacker who chooses the i-th query pair (x_i, x'_i), `||x_i' - x_i|| <=
        delta`, after seeing the first i - 1 answers (e.g. by changing the features it
        knows while the secret one stays); the bound is then
        `min(1 - (1 - t*)^k, sqrt(1 - BC*^(2k)))` from `per_answer_bound`.

    Returns:
      `LeakageBound`. `advantage` bounds, over every test, `P(test says x | x) -
      P(test says x | x')` for all x' with `||x' - x||_2 <= delta`.

    Guarantee:
      For any two-class base classifier f and any x with p_1(x) in `p1_interval`, the TV
      distance between the distributions of the k answers at x and at x' is at most
      `advantage`, for every x' with `||x' - x||_2 <= delta`. If `p1_interval` is a confidence
      interval, this holds except with its failure probability. With `adaptive=True`: for
      every adaptive strategy, the TV between the k answers under "the subject is x" and
      under "the subject is x'" is at most `advantage` (`docs/guarantee.md`, section 3).
      Trivial regimes are closed forms: delta = 0 gives 0; delta >= 24 sigma gives 1.

    Examples:
      >>> b = advantage_bound("always_label", sigma=0.5, delta=0.1, n=100,
      ...                     p1_interval=(0.9, 0.9))
      >>> 0.0 < b.advantage < 1.0
      True
    """
    mode, sigma, delta, n, alpha, n0 = _check_settings(mode, sigma, delta, n, alpha, n0)
    k = _validate.integer("k", k, minimum=1)
    if not isinstance(adaptive, bool):
        raise TypeError(f"adaptive must be a bool, got adaptive={adaptive!r}.")
    if not isinstance(p1_interval, (tuple, list)) or len(p1_interval) != 2:
        raise TypeError(f"p1_interval must be a pair (lo, hi), got {p1_interval!r}.")
    lo, hi = (_validate.real("p1_interval", v) for v in p1_interval)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"p1_interval must satisfy 0 <= lo <= hi <= 1, got {p1_interval!r}.")
    failure_probability = _validate.real("failure_probability", failure_probability)
    if not 0.0 <= failure_probability <= 1.0:
        raise ValueError(f"failure_probability must lie in [0, 1], got "
                         f"failure_probability={failure_probability!r}.")
    if adaptive and (lo, hi) != (0.0, 1.0):
        raise ValueError("p1_interval does not apply with adaptive=True: an adaptive "
                         "attacker chooses each query's input, so the bound covers every p1; "
                         f"got p1_interval={p1_interval!r}.")
    if cell_width is not None:
        cell_width = _validate.positive("cell_width", cell_width)
    d = delta / sigma

    def result(adv: float) -> LeakageBound:
        return LeakageBound(advantage=float(min(1.0, adv)), mode=mode, k=k, delta=delta,
                            sigma=sigma, p1_interval=(lo, hi),
                            failure_probability=failure_probability)

    if d == 0:  # x' = x: the same answer distribution
        return result(0.0)
    if d >= 2 * _Z_MAX:
        return result(1.0)
    per = per_answer_bound(mode, sigma=sigma, delta=delta, n=n, alpha=alpha, n0=n0,
                           cell_width=cell_width)
    adv = _compose(per.tv, per.hellinger2, k) + _ROUNDING  # valid for one input too
    if adaptive:
        return result(adv)
    width = cell_width
    if width is None:
        width = max(_DEFAULT_MIN_WIDTH,
                    min(0.02, 0.1 / math.sqrt(n * (k if mode == "always_label" else 1)),
                        max(d, 1e-3) / 4))
    z_lo, z_hi = float(_sps.norm.ppf(lo)), float(_sps.norm.ppf(hi))
    w = d / math.ceil(d / width)
    span = min(z_hi, _Z_MAX) - max(z_lo, -_Z_MAX)
    x_cells = span / w + 2
    if (x_cells + 2 * d / w > _MAX_CELLS) or (
            mode in ("predict", "certify") and (2 * d / w + 1) * x_cells > _MAX_PAIR_WORK):
        if cell_width is not None:
            raise ValueError(f"cell_width={cell_width!r} is too fine for delta / sigma = "
                             f"{d:.3g} (over {_MAX_CELLS} cells or {_MAX_PAIR_WORK} cell "
                             "pairs); give a larger cell_width or none.")
        return result(adv)  # the k-free bound: first order in delta for tiny delta
    edges, first, last, big_d = _edges(z_lo, z_hi, d, width)
    p_edges = _sps.norm.cdf(edges)
    cells = np.arange(first, last + 1)
    if mode in ("always_label", "certify_radius"):
        one_input = _monotone_bound(mode, p_edges, cells, big_d, n=n, n0=n0, k=k)
    else:
        one_input = _three_outcome_bound(mode, p_edges, cells, big_d, n=n, n0=n0,
                                         alpha=alpha, k=k)
    return result(min(adv, one_input + _ROUNDING))


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
    if count_1 > n:
        raise ValueError(f"count_1 must be <= n = {n}, got count_1={count_1}.")
    beta = _validate.open_unit_interval("beta", beta)
    return (float(stats.clopper_pearson_lower(count_1, n, beta / 2)),
            float(stats.clopper_pearson_upper(count_1, n, beta / 2)))


def _probability(name: str, value) -> float:
    value = _validate.real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {name}={value!r}.")
    return value


def composed_advantage(per_answer_tv: float, per_answer_bc: float | None, k: int) -> float:
    """Bound after k answers, each with one-answer TV <= per_answer_tv and (if given)
    Bhattacharyya coefficient >= per_answer_bc: `min(1 - (1 - t)^k, sqrt(1 - BC^(2k)))`.

    It holds for adaptively chosen queries too, provided t and BC bound every query the
    attacker may choose (the per-answer worst case, `per_answer_bound`): the coupling bound
    and `BC(P_1..k, Q_1..k) >= BC^k` compose step by step, conditionally on the past.
    """
    t = _probability("per_answer_tv", per_answer_tv)
    k = _validate.integer("k", k, minimum=0)
    h2 = 1.0
    if per_answer_bc is not None:
        h2 = 1.0 - _probability("per_answer_bc", per_answer_bc)
    return _compose(t, h2, k)
