"""Anytime-valid statistics for a binomial proportion: bounds that hold at every look at once.

A fixed-n bound (`clopper_pearson_lower`) is valid only if n was fixed before sampling. When
sampling continues or stops depending on the data (stop as soon as an input is decided), the
bound must hold simultaneously over every look; the procedures here do, so any stopping rule,
even one chosen to break them, keeps their error probability at most alpha. All run on the
host in float64 (NumPy / SciPy) on the successes counted in consecutive chunks of samples.

- `betting_bound`: a betting confidence sequence (Waudby-Smith and Ramdas, JRSS-B 2024,
  "Estimating means of bounded random variables by betting"), one-sided;
- `staged_clopper_pearson`: Clopper-Pearson at each of J looks at level alpha / J (the union
  bound; the simple staged baseline);
- `sequential_test_table`: exact reject thresholds of the group-sequential test of
  H0: p <= p* at given looks, alpha spent look by look, computed once per (p*, alpha, looks);
- `mixture_bound`: the mixture likelihood-ratio confidence sequence (Robbins; the test of
  Voracek, NeurIPS 2024), one-sided, on cumulative counts, valid at every sample count;
- `decision_table`: reject / accept thresholds at every sample count m = 0..n_max of the
  sequential mixture test of "pA > p*" (int32 tables for an in-graph scheduler);
- `budget_table`: the stopping rule of "radius with a budget" (abstain when hopeless, stop
  when the radius is within a tolerance of its projection at n_max) as int32 tables;
- `beta_decision_table`: what `rpjax.DecideAt` runs, the test of "pA > p*" whose mixing
  prior is taken from the input's independent selection counts (`selection_prior`) and
  restricted to each side's alternatives;
- `planned_sample_sizes`: what `rpjax.RadiusBudget` runs, a sample count per input from its
  selection counts alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import scipy.signal
import scipy.special
import scipy.stats

from rpjax._src import stats as _stats
from rpjax._src import validate as _validate

_BISECTION_STEPS = 60


def _chunks(k, m) -> tuple[np.ndarray, np.ndarray]:
    """Successes `k [..., T]` in chunks of sizes `m [T]` (or `[..., T]`), as float64."""
    k = np.asarray(k)
    m = np.broadcast_to(np.asarray(m), k.shape)
    if k.ndim < 1 or k.shape[-1] == 0:
        raise ValueError(f"k must have a last axis of chunks, got shape {k.shape}.")
    for name, v in (("k", k), ("m", m)):
        if v.dtype == bool or not np.issubdtype(v.dtype, np.integer):
            raise TypeError(f"{name} must be integers, got dtype {v.dtype}.")
    if (m < 1).any():
        raise ValueError("m (chunk sizes) must be >= 1.")
    if (k < 0).any() or (k > m).any():
        raise ValueError("k must satisfy 0 <= k <= m in every chunk.")
    return k.astype(np.float64), m.astype(np.float64)


def betting_bets(k, m, alpha: float, *, max_bet: float = 0.5) -> np.ndarray:
    """The bets `lambda_t [..., T]` of `betting_bound`: predictable, in `[0, max_bet]`.

    The bet of chunk t depends only on chunks before t: the predictable plug-in of
    Waudby-Smith and Ramdas (2024, eq. 26), `sqrt(2 log(1/alpha) / (var * N log(N + 1)))`
    with N the samples so far plus one and var a regularized variance estimate of the samples
    so far, held fixed over the chunk and truncated to `max_bet`.
    """
    k, m = _chunks(k, m)
    s_before = np.cumsum(k, axis=-1) - k  # successes before chunk t
    n_before = np.cumsum(m, axis=-1) - m
    mean = (0.5 + s_before) / (n_before + 1.0)
    var = (0.25 + n_before * mean * (1.0 - mean)) / (n_before + 1.0)
    t = n_before + 1.0
    bet = np.sqrt(2.0 * math.log(1.0 / alpha) / (var * t * np.log(t + 1.0)))
    return np.minimum(bet, max_bet)


def betting_bound(k, m, alpha: float, *, side: str = "lower",
                  max_bet: float = 0.5) -> np.ndarray:
    """A one-sided betting confidence sequence for p: the bound after each chunk.

    The samples are Bernoulli(p), counted in consecutive chunks: chunk t holds `m[t]` samples
    of which `k[..., t]` are successes. For each candidate m0, the capital
    `K_t(m0) = prod_{j <= t} (1 + lambda_j (1 - m0))^k_j (1 - lambda_j m0)^(m_j - k_j)`
    with the predictable bets `lambda_j in [0, max_bet]` (`betting_bets`) is a nonnegative
    martingale under p = m0 and decreases in m0. The lower bound after chunk t is
    `L_t = sup{m0 : K_s(m0) >= 1/alpha for some s <= t}` (0 if none), found by bisection from
    below; the upper bound is `1 - L_t` of the failures.

    Args:
      k: `[..., T]` integer successes per chunk.
      m: `[T]` (or `[..., T]`) integer chunk sizes, >= 1.
      alpha: error probability, in (0, 1).
      side: "lower" or "upper".
      max_bet: the largest bet, in (0, 1).

    Returns:
      `[..., T]` float64 bounds on p, monotone over t (non-decreasing for "lower").

    Guarantee:
      Whatever the stopping time tau (any function of the data), `P(L_tau > p) <= alpha`:
      indeed `P(exists t: L_t > p) <= P(exists t: K_t(p) >= 1/alpha) <= alpha` by Ville's
      inequality, since `K_t(m0) >= K_t(L_t)` for m0 <= L_t. Likewise for the upper bound.
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    max_bet = _validate.open_unit_interval("max_bet", max_bet)
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got side={side!r}.")
    k_arr, m_arr = _chunks(k, m)
    if side == "upper":
        return 1.0 - betting_bound((np.asarray(m_arr) - k_arr).astype(np.int64),
                                   m_arr.astype(np.int64), alpha, side="lower",
                                   max_bet=max_bet)
    bets = betting_bets(k_arr.astype(np.int64), m_arr.astype(np.int64), alpha,
                        max_bet=max_bet)
    threshold = math.log(1.0 / alpha)
    tri = np.tril(np.ones((k_arr.shape[-1],) * 2))  # [t, j]: chunk j counts at time t

    def log_capital(p0):  # p0 [..., T] -> log K_t(p0[..., t]) [..., T]
        win = k_arr[..., None, :] * np.log1p(bets[..., None, :] * (1.0 - p0[..., :, None]))
        lose = (m_arr - k_arr)[..., None, :] * np.log1p(-bets[..., None, :] * p0[..., :, None])
        return ((win + lose) * tri).sum(axis=-1)

    lo = np.zeros(k_arr.shape)
    hi = np.ones(k_arr.shape)
    reached = log_capital(lo) >= threshold  # else no m0 >= 0 is rejected at t
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        ok = log_capital(mid) >= threshold
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    roots = np.where(reached, lo, 0.0)  # K_t(roots) >= 1/alpha wherever roots > 0
    return np.maximum.accumulate(roots, axis=-1)


def staged_clopper_pearson(k, n, alpha: float, *, side: str = "lower") -> np.ndarray:
    """Clopper-Pearson bounds at J looks, each at level alpha / J (union bound).

    Args:
      k: `[..., J]` cumulative successes at each look.
      n: `[J]` (or `[..., J]`) cumulative samples at each look, increasing.
      alpha: error probability over all J looks together, in (0, 1).
      side: "lower" or "upper".

    Returns:
      `[..., J]` float64 bounds.

    Guarantee:
      `P(some look's bound excludes p) <= alpha` (each look errs with probability at most
      alpha / J), so any stopping rule over the J looks keeps the error at most alpha.
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    k = np.asarray(k)
    n = np.broadcast_to(np.asarray(n), k.shape)
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got side={side!r}.")
    looks = k.shape[-1]
    if side == "lower":
        return _stats.clopper_pearson_lower(k, n, alpha / looks)
    return _stats.clopper_pearson_upper(k, n, alpha / looks)


def sequential_test_table(p_star: float, alpha: float, looks) -> np.ndarray:
    """Exact reject thresholds of the group-sequential test of H0: p <= p*.

    The test looks at the cumulative successes `S` after `looks[0] < looks[1] < ...` samples
    and rejects H0 (decides p > p*) at the first look j with `S >= a[j]`. The thresholds are
    chosen look by look so that, at p = p*, the probability of rejecting by look j is at most
    `alpha * (j + 1) / J` (alpha spent evenly over the J looks); the distribution of S on the
    paths not yet rejected is carried exactly (binomial convolutions in float64).

    Args:
      p_star: the null boundary, in (0, 1).
      alpha: the test's level over all looks, in (0, 1).
      looks: `[J]` increasing positive sample counts.

    Returns:
      `[J]` int64 thresholds `a`; `looks[j] + 1` where no threshold spends within budget.

    Guarantee:
      For every p <= p*, `P_p(reject at some look) <= alpha`: the rejection event is
      increasing in the samples, so its probability is largest at p = p*, where the
      construction bounds it. Stopping for other reasons (e.g. giving up when S is low) only
      removes rejections.
    """
    p_star = _validate.open_unit_interval("p_star", p_star)
    alpha = _validate.open_unit_interval("alpha", alpha)
    looks = np.asarray(looks)
    if looks.ndim != 1 or looks.size == 0 or not np.issubdtype(looks.dtype, np.integer):
        raise ValueError(f"looks must be a 1-D array of sample counts, got {looks!r}.")
    if looks[0] < 1 or (np.diff(looks) <= 0).any():
        raise ValueError("looks must be positive and increasing.")
    dist = np.ones(1)  # sub-probability of S on the paths not yet rejected, at p*
    spent = 0.0
    out = np.empty(looks.size, np.int64)
    previous = 0
    for j, n in enumerate(looks.tolist()):
        step = scipy.stats.binom.pmf(np.arange(n - previous + 1), n - previous, p_star)
        dist = np.clip(scipy.signal.fftconvolve(dist, step), 0.0, None)[: n + 1]
        previous = n
        budget = alpha * (j + 1) / looks.size - spent
        tails = np.cumsum(dist[::-1])[::-1]  # tails[a] = P(S >= a, not rejected yet)
        # smallest a whose tail fits the budget (with a margin for float rounding)
        fits = np.flatnonzero(tails <= budget * (1.0 - 1e-9))
        a = int(fits[0]) if fits.size else n + 1
        out[j] = a
        if a <= n:
            spent += float(tails[a])
            dist[a:] = 0.0
    return out


# --- the mixture likelihood-ratio confidence sequence -------------------------------------------

_NEWTON_STEPS = 100  # a cap; the safeguarded Newton iteration takes about 5 steps


def _log_mixture(k, m, p) -> np.ndarray:
    """`log M_p(k, m)` of `mixture_bound` (lower side), float64, for 0 <= k <= m, 0 < p < 1.

    `M_p(k, m) = E_{q ~ U(p, 1)}[(q/p)^k ((1-q)/(1-p))^(m-k)]
    = B(k+1, m-k+1) P(Beta(k+1, m-k+1) > p) / ((1-p) p^k (1-p)^(m-k))`; the tail may
    underflow to 0 (log -> -inf: M is tiny there).
    """
    a = k + 1.0
    b = m - k + 1.0
    with np.errstate(divide="ignore"):
        tail = np.log(scipy.special.betaincc(a, b, p))
    return scipy.special.betaln(a, b) + tail - k * np.log(p) - b * np.log1p(-p)


def _mixture_rejects(k, m, p, log_threshold: float) -> np.ndarray:
    """The lower mixture test: rejects "pA <= p" at (k, m) iff `(m+1) p <= k` and
    `log M_p(k, m) >= log(1/alpha)` (the first condition holds anyway when alpha < 1/e)."""
    k = np.asarray(k, np.float64)
    m = np.asarray(m, np.float64)
    return ((m + 1.0) * p <= k) & (_log_mixture(k, m, p) >= log_threshold)


def _mixture_lower(k, m, alpha: float) -> np.ndarray:
    """The lower bound of `mixture_bound` on validated counts (no checks), float64."""
    k, m = np.broadcast_arrays(np.asarray(k, np.float64), np.asarray(m, np.float64))
    threshold = math.log(1.0 / alpha)
    out = np.zeros(k.shape)
    flat = out.reshape(-1)
    idx = np.flatnonzero(k.reshape(-1) >= 1)  # k = 0: M_p <= 1 for every p, the bound is 0
    kk = k.reshape(-1)[idx]
    mm = m.reshape(-1)[idx]
    hi = kk / (mm + 1.0)  # log M_p is decreasing in p on (0, hi]
    top = _log_mixture(kk, mm, hi) >= threshold  # only possible when alpha >= 1/e
    flat[idx[top]] = hi[top]
    idx, kk, mm, hi = idx[~top], kk[~top], mm[~top], hi[~top]
    lo = np.zeros_like(hi)  # invariant: M_lo >= 1/alpha (lo = 0: the limit, M -> inf)
    # start near the root: the Gaussian approximation of log M
    rate = kk / mm
    var = np.maximum(rate * (1.0 - rate), 1.0 / mm)
    x = rate - np.sqrt(2.0 * var / mm * np.maximum(
        threshold - 0.5 * np.log(2.0 * np.pi * var / mm), threshold))
    x = np.where((x > 0.0) & (x < hi), x, 0.5 * hi)
    for _ in range(_NEWTON_STEPS):
        f = _log_mixture(kk, mm, x) - threshold
        ok = f >= 0.0
        lo = np.where(ok, x, lo)
        hi = np.where(ok, hi, x)
        with np.errstate(over="ignore"):
            slope = (mm - kk + 1.0) / (1.0 - x) - kk / x - np.exp(-(f + threshold)) / (1.0 - x)
        step = -f / slope  # >= 0 where ok (log M is decreasing in p)
        done = ok & (step <= 1e-14 * x)
        flat[idx[done]] = lo[done]
        new = x + step
        new = np.where((new > lo) & (new < hi), new, 0.5 * (lo + hi))
        keep = ~done
        idx, kk, mm, lo, hi, x = idx[keep], kk[keep], mm[keep], lo[keep], hi[keep], new[keep]
        if idx.size == 0:
            break
    flat[idx] = lo
    return out


def _cumulative_counts(k, m) -> tuple[np.ndarray, np.ndarray]:
    """Validated cumulative counts `k`, `m` (integers, broadcast, 0 <= k <= m, m >= 1)."""
    k = np.asarray(k)
    m = np.asarray(m)
    for name, v in (("k", k), ("m", m)):
        if v.dtype == bool or not np.issubdtype(v.dtype, np.integer):
            raise TypeError(f"{name} must be integer counts, got dtype {v.dtype}.")
    try:
        k, m = np.broadcast_arrays(k, m)
    except ValueError as err:
        raise ValueError(f"k and m must broadcast, got shapes {k.shape} and {m.shape}.") from err
    if (m < 1).any():
        raise ValueError(f"m (samples so far) must be >= 1, got min m={m.min()}.")
    if (k < 0).any() or (k > m).any():
        raise ValueError("k (successes so far) must satisfy 0 <= k <= m.")
    return k.astype(np.int64), m.astype(np.int64)


def mixture_bound(k, m, alpha: float, *, side: str = "lower") -> np.ndarray:
    """A one-sided mixture likelihood-ratio confidence sequence for a binomial proportion.

    After m samples with k successes, the statistic against "pA <= p" is the likelihood ratio
    of the alternative q against p, averaged over q ~ Uniform(p, 1) (Robbins' mixture; the
    test of Voracek, NeurIPS 2024):
    `M_p(k, m) = E_q[(q/p)^k ((1-q)/(1-p))^(m-k)]
    = B(k+1, m-k+1) P(Beta(k+1, m-k+1) > p) / ((1-p) p^k (1-p)^(m-k))`,
    computed in log space. The test rejects "pA <= p" iff `M_p(k, m) >= 1/alpha` and
    `(m+1) p <= k`. `M_p` is strictly decreasing in p on `(0, k/(m+1)]` and `M_p <= e` for
    `p >= k/(m+1)`, so for alpha < 1/e the second condition is implied and the rejected set is
    an interval `(0, L)`; the lower bound is its end,
    `L(k, m) = sup{p <= k/(m+1) : M_p(k, m) >= 1/alpha}` (0 when k = 0), found by a
    safeguarded Newton iteration and returned on the rejected side of the root (within about
    1e-14 of it). The upper bound is `1 - L(m - k, m)` (failures; p -> 1 - p).

    Args:
      k: integer successes after m samples (cumulative), any shape broadcasting with `m`,
        0 <= k <= m.
      m: integer samples so far (cumulative), >= 1.
      alpha: error probability, in (0, 1).
      side: "lower" or "upper".

    Returns:
      float64 bounds on pA, of the broadcast shape of `k` and `m`.

    Guarantee:
      Theorem. Let X_1, X_2, ... be i.i.d. Bernoulli(pA), k_m = X_1 + ... + X_m. Then
      `P(exists m >= 1: L(k_m, m) > pA) <= alpha`, so `P(L(k_tau, tau) > pA) <= alpha` at
      any stopping time tau (any rule of the data, even one chosen to break the bound);
      likewise `P(exists m: U(k_m, m) < pA) <= alpha`. Proof: for each q > pA the likelihood
      ratio `(q/pA)^k_m ((1-q)/(1-pA))^(m-k_m)` is a nonnegative martingale with mean 1, so
      is their mixture `M_pA(k_m, m)`; by Ville's inequality it ever reaches 1/alpha with
      probability <= alpha; and `L(k, m) > pA` implies `M_pA(k, m) >= 1/alpha` since M is
      decreasing in p below L. (For pA' < p the statistic M_p is a supermartingale, so the
      test of "pA <= p" is valid too: `decision_table`.)
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got side={side!r}.")
    k, m = _cumulative_counts(k, m)
    if side == "lower":
        return _mixture_lower(k, m, alpha)
    return 1.0 - _mixture_lower(m - k, m, alpha)


# --- the sequential test of "pA > p*" at every sample count --------------------------------------


def _reject_thresholds(p: float, alpha: float, counts) -> np.ndarray:
    """`[M]` int64: the smallest S with `_mixture_rejects(S, m, p)` at each m of `counts`
    (`[M]` integers >= 1), m + 1 where none."""
    threshold = math.log(1.0 / alpha)
    m = np.asarray(counts, dtype=np.float64)
    start = np.ceil((m + 1.0) * p)  # the smallest S with (m+1) p <= S
    # log M_p(S, m) <= its value with P(Beta > p) replaced by 1, which increases in S for
    # S >= (m+1) p - 1: binary search on that cheap bound gives S_low <= the threshold
    lo = start - 1.0  # not rejected (or outside the domain)
    hi = m + 1.0  # treated as rejected
    while True:
        live = hi - lo > 1.0
        if not live.any():
            break
        mid = np.floor(0.5 * (lo + hi))
        s = np.where(live, mid, hi)
        cheap = (scipy.special.betaln(s + 1.0, m - s + 1.0) - s * math.log(p)
                 - (m - s + 1.0) * math.log1p(-p))
        up = live & (cheap >= threshold - 1e-9)
        hi = np.where(up, mid, hi)
        lo = np.where(live & ~up, mid, lo)
    s = hi
    # walk up from S_low to the first S the exact statistic rejects (a step or two)
    todo = np.flatnonzero(s <= m)
    while todo.size:
        ok = _mixture_rejects(s[todo], m[todo], p, threshold)
        s[todo[~ok]] += 1.0
        todo = todo[~ok]
        todo = todo[s[todo] <= m[todo]]
    return s.astype(np.int64)


@functools.lru_cache(maxsize=32)
def _decision_table(p_star: float, alpha: float, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.arange(1, n_max + 1)
    reject = np.concatenate([[1], _reject_thresholds(p_star, alpha, counts)]).astype(np.int32)
    failures = np.concatenate([[1], _reject_thresholds(1.0 - p_star, alpha, counts)])
    accept = (np.arange(n_max + 1) - failures).astype(np.int32)  # -1 where none
    for table in (reject, accept):
        table.flags.writeable = False
    return reject, accept


def decision_table(p_star: float, alpha: float, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds of the sequential mixture test of "pA > p*" at every sample count.

    After m samples with S successes (cumulative), decide "pA > p*" (certify) iff
    `S >= reject[m]`, decide "pA < p*" iff `S <= accept[m]`, else continue. `reject[m]` is the
    smallest S at which the lower mixture test of `mixture_bound` rejects "pA <= p*"
    (`M_p*(S, m) >= 1/alpha` and `(m+1) p* <= S`), m + 1 if none; `accept[m]` the largest S at
    which the upper test (on the m - S failures, at 1 - p*) rejects "pA >= p*", -1 if none;
    `reject[0] = 1`, `accept[0] = -1`. So `S >= reject[m]` iff the lower test rejects p*,
    which implies `mixture_bound(S, m, alpha) >= p*` (up to float rounding at equality), and
    `accept[m] < reject[m]` always. Both tables are non-decreasing in m, by steps of 0 or 1.

    Args:
      p_star: the threshold on pA, in (0, 1) (for a radius r under Gaussian noise of scale
        sigma, `p_star = Phi(r / sigma)`).
      alpha: error probability, in (0, 1).
      n_max: the largest sample count, >= 1.

    Returns:
      `(reject, accept)`: read-only `[n_max + 1]` int32 arrays indexed by the sample count m
      (cached per (p_star, alpha, n_max)).

    Guarantee:
      Theorem. If the samples are i.i.d. Bernoulli(pA): for pA <= p*,
      `P(exists m <= n_max: S_m >= reject[m]) <= alpha`; for pA >= p*,
      `P(exists m: S_m <= accept[m]) <= alpha`. Hence whatever the stopping rule, the
      probability of a wrong decision is <= alpha for every pA (at pA = p* both answers are
      wrong, and each has probability <= alpha). Proof: `M_p*(S_m, m)` is a nonnegative
      supermartingale when pA <= p* (each likelihood ratio of q > p* against p* is one), and
      Ville's inequality bounds the probability it ever reaches 1/alpha; the accept side is
      the same on the failures.
    """
    p_star = _validate.open_unit_interval("p_star", p_star)
    alpha = _validate.open_unit_interval("alpha", alpha)
    n_max = _validate.integer("n_max", n_max, minimum=1)
    return _decision_table(p_star, alpha, n_max)


# --- the stopping rule of "radius with a budget" ----------------------------------------------

_GRID = 65  # rates per look searched first for the band (every S where the look has fewer)


def _default_looks(n_max: int) -> np.ndarray:
    """m = 64, then each look about 5% after the previous (rounded, strictly increasing), and
    n_max."""
    looks = []
    m = 64
    while m < n_max:
        looks.append(m)
        m = max(m + 1, round(m * 1.05))
    return np.array(looks + [n_max], dtype=np.int64)


def _band_margin(s, m, n_max: int, alpha: float, tolerance: float, radius,
                 final_alpha: float | None = None):
    """`r(L(S, m)) - (1 - tolerance) r(L_end(S n_max / m))` (-inf where r(L(S, m)) <= 0;
    the projected successes are not rounded). s, m: int64 arrays of one shape. `L_end` is
    the mixture bound at n_max, or with `final_alpha` the larger of it and the fixed-n
    Clopper-Pearson bound at level `final_alpha` (at a real count: the beta quantile)."""
    now = np.asarray(radius(_mixture_lower(s, m, alpha)), np.float64)
    k_end = s * (n_max / m)
    end_bound = _mixture_lower(k_end, np.full(k_end.shape, float(n_max)), alpha)
    if final_alpha is not None:
        cp = np.where(k_end > 0, scipy.stats.beta.ppf(final_alpha, np.maximum(k_end, 1e-300),
                                                      n_max - k_end + 1), 0.0)
        end_bound = np.maximum(end_bound, cp)
    end = np.asarray(radius(end_bound), np.float64)
    return np.where(now > 0.0, now - (1.0 - tolerance) * end, -np.inf)


def _band(looks, n_max, alpha, tolerance, radius,
          final_alpha=None) -> tuple[np.ndarray, np.ndarray]:
    """Per look: the interval [lo, hi] of S where `_band_margin >= 0` ([m + 1, -1] if empty),
    vectorized over looks: the best of a grid of S, a ternary search for the maximum of the
    margin next to it, then a binary search of each edge (the stop set is taken to be an
    interval around the maximum; tests check it against every S)."""
    m = looks.astype(np.int64)
    first = (m + 1) // 2  # r(L) > 0 needs L > 1/2, so S > m/2
    width = m - first
    frac = np.linspace(0.0, 1.0, _GRID)
    grid = first[:, None] + np.round(frac[None, :] * width[:, None]).astype(np.int64)

    def margin(s, mm):
        return _band_margin(s, mm, n_max, alpha, tolerance, radius, final_alpha)

    values = margin(grid, np.broadcast_to(m[:, None], grid.shape).copy())
    best = np.argmax(values, axis=1)
    rows = np.arange(m.size)
    lo = grid[rows, np.maximum(best - 1, 0)]
    hi = grid[rows, np.minimum(best + 1, _GRID - 1)]
    while (hi - lo > 2).any():  # ternary search on [lo, hi] for the largest margin
        third = (hi - lo) // 3
        a, b = lo + third, hi - third
        va, vb = margin(a, m), margin(b, m)
        right = va <= vb  # the maximum lies right of a (ties too: the -inf part lies left)
        live = hi - lo > 2
        lo = np.where(live & right, a + 1, lo)
        hi = np.where(live & ~right, b - 1, hi)
    cands = np.stack([lo, np.minimum(lo + 1, hi), hi], axis=1)
    cvals = margin(cands, np.broadcast_to(m[:, None], cands.shape).copy())
    peak = cands[rows, np.argmax(cvals, axis=1)]
    inside = cvals.max(axis=1) >= 0.0
    # left edge: smallest S in [first, peak] with margin >= 0 (margin < 0 left of it)
    a, b = first - 1, peak.copy()
    while (b - a > 1).any():
        mid = (a + b) // 2
        ok = margin(np.maximum(mid, first), m) >= 0.0
        live = b - a > 1
        b = np.where(live & ok, mid, b)
        a = np.where(live & ~ok, mid, a)
    band_lo = b
    a, b = peak.copy(), m + 1  # right edge: largest S in [peak, m] with margin >= 0
    while (b - a > 1).any():
        mid = (a + b) // 2
        ok = margin(np.minimum(mid, m), m) >= 0.0
        live = b - a > 1
        a = np.where(live & ok, mid, a)
        b = np.where(live & ~ok, mid, b)
    band_hi = a
    return np.where(inside, band_lo, m + 1), np.where(inside, band_hi, -1)


@functools.lru_cache(maxsize=16)
def _budget_table(alpha, n_max, tolerance, looks, radius, final_alpha):
    looks = np.array(looks, dtype=np.int64)
    hopeless = np.full(n_max + 1, -1, np.int32)
    band_lo = (np.arange(n_max + 1) + 1).astype(np.int32)
    band_hi = np.full(n_max + 1, -1, np.int32)
    # hopeless: the upper mixture test (on failures) rejects "pA >= 1/2"
    hopeless[looks] = looks - _reject_thresholds(0.5, alpha, looks)
    lo, hi = _band(looks, n_max, alpha, tolerance, radius, final_alpha)
    band_lo[looks] = lo
    band_hi[looks] = hi
    for table in (hopeless, band_lo, band_hi):
        table.flags.writeable = False
    return hopeless, band_lo, band_hi


def budget_table(alpha: float, n_max: int, tolerance: float, *, looks=None,
                 radius_from_pa: Callable[[np.ndarray], np.ndarray] | None = None,
                 final_alpha: float | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stopping rule of "radius with a budget", as tables indexed by the sample count m.

    At a look m with S successes (cumulative), stop iff `S <= hopeless[m]` (the upper mixture
    test rejects "pA >= 1/2", i.e. U(S, m) <= 1/2: the input can never be certified; abstain)
    or `band_lo[m] <= S <= band_hi[m]`: the radius now, `r(L(S, m))` with L the lower bound
    of `mixture_bound`, is positive and already >= `(1 - tolerance)` times the radius the
    input would reach at n_max if the observed rate continued, `r(L(S n_max / m, n_max))`
    (the projected successes are not rounded: L at a real K is the same closed form, which
    keeps the stop set free of rounding jitter). Projecting at the upper bound U(S, m)
    instead stops almost never (at alpha = 1e-3, n_max = 10^5, tolerance = 0.02 none of the
    default looks then has a band) and its stop set need not be one interval, so the
    observed rate is used. Elsewhere the tables hold sentinels
    that never stop (hopeless -1, band_lo m + 1, band_hi -1). The scheduler stops at n_max
    whatever the table says.

    The band is found per look as the interval of S around the largest margin
    `r(L(S, m)) - (1 - tolerance) r(L(S n_max / m, n_max))` (a grid, a ternary search, then
    a binary search of each edge); that the stop set is such an interval is an assumption,
    checked against every S of every look by a test at n_max = 2000.

    This rule only decides when to stop. The soundness of the reported bound never depends on
    it: `mixture_bound` holds at every sample count simultaneously, so the bound reported at
    the stopping time is valid whatever rule chose it (tested by simulation).

    Args:
      alpha: error probability of the bounds, in (0, 1).
      n_max: the sample budget per input, >= 1.
      tolerance: the fraction of the final radius one accepts to lose, in (0, 1).
      looks: increasing sample counts in [1, n_max] at which the rule is checked; default
        m = 64, then each look about 5% after the previous, and n_max.
      radius_from_pa: the radius of a lower bound on pA, vectorized and non-decreasing;
        default `scipy.stats.norm.ppf` (the Gaussian radius with sigma = 1; sigma cancels).
        It is a cache key: pass the same function object to reuse tables.
      final_alpha: if given, the bound an input reaching n_max gets is the larger of the
        mixture bound and the fixed-n Clopper-Pearson bound at level `final_alpha` (what
        `rpjax.certify` with `DecideAt` reports there), and the projection uses it.

    Returns:
      `(hopeless, band_lo, band_hi)`: read-only `[n_max + 1]` int32 arrays (cached).
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    n_max = _validate.integer("n_max", n_max, minimum=1)
    tolerance = _validate.open_unit_interval("tolerance", tolerance)
    if looks is None:
        looks = _default_looks(n_max)
    looks = np.asarray(looks)
    if looks.dtype == bool or not np.issubdtype(looks.dtype, np.integer):
        raise TypeError(f"looks must be integer sample counts, got dtype {looks.dtype}.")
    if looks.ndim != 1 or looks.size == 0:
        raise ValueError(f"looks must be a non-empty 1-D array, got shape {looks.shape}.")
    if looks[0] < 1 or looks[-1] > n_max or (np.diff(looks) <= 0).any():
        raise ValueError(f"looks must be increasing within [1, n_max={n_max}], got {looks!r}.")
    if radius_from_pa is None:
        radius_from_pa = scipy.stats.norm.ppf
    elif not callable(radius_from_pa):
        raise TypeError(f"radius_from_pa must be callable, got {radius_from_pa!r}.")
    if final_alpha is not None:
        final_alpha = _validate.open_unit_interval("final_alpha", final_alpha)
    return _budget_table(alpha, n_max, tolerance, tuple(looks.tolist()), radius_from_pa,
                         final_alpha)


def staged_looks(n_max: int, stages: int = 6) -> np.ndarray:
    """The looks of the staged budget rule: `n_max / 2^k` for k = stages - 1, ..., 0 (rounded
    down, at least 1, distinct, increasing; the last is n_max)."""
    n_max = _validate.integer("n_max", n_max, minimum=1)
    stages = _validate.integer("stages", stages, minimum=1)
    return np.unique([max(1, n_max >> k) for k in range(stages - 1, -1, -1)]).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _staged_budget_table(alpha, n_max, tolerance, looks, radius):
    level = alpha / len(looks)
    hopeless = np.full(n_max + 1, -1, np.int32)
    band_lo = (np.arange(n_max + 1) + 1).astype(np.int32)
    band_hi = np.full(n_max + 1, -1, np.int32)
    for m in looks:
        s = np.arange(m + 1)
        upper = _stats.clopper_pearson_upper(s, np.full(s.shape, m), level)
        never = np.flatnonzero(upper <= 0.5)
        hopeless[m] = never[-1] if never.size else -1
        now = np.asarray(radius(_stats.clopper_pearson_lower(s, np.full(s.shape, m), level)))
        k_end = s * (n_max / m)
        end_bound = np.where(k_end > 0, scipy.stats.beta.ppf(
            level, np.maximum(k_end, 1e-300), n_max - k_end + 1), 0.0)
        end = np.asarray(radius(np.clip(end_bound, 0.0, 1.0)))
        good = (now > 0.0) & (now >= (1.0 - tolerance) * end)
        if good.any():  # the longest run of consecutive S (in practice the whole set)
            idx = np.flatnonzero(good)
            breaks = np.flatnonzero(np.diff(idx) > 1)
            starts = np.concatenate([[0], breaks + 1])
            stops = np.concatenate([breaks, [idx.size - 1]])
            best = int(np.argmax(stops - starts))
            band_lo[m], band_hi[m] = idx[starts[best]], idx[stops[best]]
    for table in (hopeless, band_lo, band_hi):
        table.flags.writeable = False
    return hopeless, band_lo, band_hi


def staged_budget_table(alpha: float, n_max: int, tolerance: float, *, looks=None,
                        radius_from_pa: Callable[[np.ndarray], np.ndarray] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The radius-with-a-budget stopping rule on a few looks, with staged Clopper-Pearson.

    The bound is `staged_clopper_pearson` over the J `looks` (each look at level alpha / J):
    valid at whichever look an input stops, by the union bound, and much tighter than an
    anytime sequence when J is small, which is what a radius needs. At each look m with S
    successes, stop iff the upper bound at alpha / J is <= 1/2 (`S <= hopeless[m]`: the input
    can never be certified) or `band_lo[m] <= S <= band_hi[m]`: the radius now,
    `r(CP_lower(S, m))`, is positive and at least `(1 - tolerance)` times the radius it would
    reach at n_max if its observed rate held, `r(CP_lower(S n_max / m, n_max))` (a real count:
    the beta quantile). Every S of every look is evaluated; the band is the run of consecutive
    S where the rule holds (the longest, should it ever be split). Elsewhere the tables hold
    sentinels that never stop; the scheduler stops at n_max anyway (the last look).

    Args:
      alpha: error probability over all looks, in (0, 1).
      n_max: the sample budget per input.
      tolerance: the fraction of radius one accepts to lose against the projection, in (0, 1).
      looks: increasing sample counts ending at n_max (default `staged_looks(n_max)`:
        n_max / 32, n_max / 16, ..., n_max).
      radius_from_pa: as in `budget_table` (default: the Gaussian radius at sigma = 1).

    Returns:
      `(hopeless, band_lo, band_hi)`: read-only `[n_max + 1]` int32 tables (cached).

    Guarantee:
      The rule decides only when to stop; an input that stops at look m reports
      `staged_clopper_pearson`'s bound there, wrong with probability at most alpha over all
      looks together, whatever the rule (tested by simulation).
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    n_max = _validate.integer("n_max", n_max, minimum=1)
    tolerance = _validate.open_unit_interval("tolerance", tolerance)
    looks = staged_looks(n_max) if looks is None else np.asarray(looks)
    if looks.dtype == bool or not np.issubdtype(looks.dtype, np.integer):
        raise TypeError(f"looks must be integer sample counts, got dtype {looks.dtype}.")
    if looks.ndim != 1 or looks.size == 0 or looks[0] < 1 or looks[-1] != n_max or (
            np.diff(looks) <= 0).any():
        raise ValueError(f"looks must be increasing within [1, n_max] and end at n_max={n_max}, "
                         f"got {looks!r}.")
    if radius_from_pa is None:
        radius_from_pa = scipy.stats.norm.ppf
    elif not callable(radius_from_pa):
        raise TypeError(f"radius_from_pa must be callable, got {radius_from_pa!r}.")
    return _staged_budget_table(alpha, n_max, tolerance, tuple(int(v) for v in looks),
                                radius_from_pa)


# --- the selection-informed test of "pA > p*": one prior per input from its selection counts ----


_FAILURE_LEVELS = np.array([0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 64, 80,
                            100, 128, 160, 200, 256, 320, 400, 512, 640, 800, 1024])


def selection_prior(k0, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """The mixing distribution of `beta_decision_table` from the
    selection counts (`k0` votes for the selected class out of `n0`):
    `Beta(n0 - f + 1/2, f + 1/2)` with f the failures `n0 - k0` rounded down to one of a few
    levels (0..6, then about 25% apart), so that one batch needs few decision tables. Valid as a
    prior of the estimation stream because it is a fixed function of the selection counts,
    which are drawn independently of it (`rpjax.certify`'s keys `fold_in(key, 0)` and
    `fold_in(key, 1)`).

    Returns:
      `(a, b)`, float64 arrays of the shape of `k0`.
    """
    failures = float(n0) - np.asarray(k0, np.float64)
    levels = _FAILURE_LEVELS[_FAILURE_LEVELS <= max(n0, 0)].astype(np.float64)
    if levels[-1] < n0:
        levels = np.append(levels, float(n0))
    f = levels[np.searchsorted(levels, failures, side="right") - 1]
    return float(n0) - f + 0.5, f + 0.5


def _log_beta_mixture(s, m, p, a, b) -> np.ndarray:
    """`log M_p(s, m)`, the likelihood ratio of the `Beta(a, b)` mixture against p:
    `E_{q ~ Beta(a, b)}[(q/p)^s ((1-q)/(1-p))^(m-s)]
    = B(s + a, m - s + b) / (B(a, b) p^s (1-p)^(m-s))`, float64."""
    s = np.asarray(s, np.float64)
    m = np.asarray(m, np.float64)
    return (scipy.special.betaln(s + a, m - s + b) - scipy.special.betaln(a, b)
            - s * np.log(p) - (m - s) * np.log1p(-p))


def _beta_reject_thresholds(p: float, a: float, b: float, level: float,
                            n_max: int) -> np.ndarray:
    """`[n_max + 1]` int64: at each m, the smallest S > m p from which on the Beta(a, b) mixture
    rejects p (`log M_p(S', m) >= log(1/level)` for every S' >= S), m + 1 where none.

    `log M_p(S, m)` is convex in S (`log B(S + a, m - S + b)` is), so it increases from its
    minimum on: the threshold is searched there, where "rejects" is monotone in S."""
    threshold = math.log(1.0 / level)
    m = np.arange(n_max + 1, dtype=np.float64)

    def f(s):
        return _log_beta_mixture(s, m, p, a, b)

    # the convex function's minimum over the integers: first S with f(S + 1) >= f(S); near
    # p (m + a + b - 1) - a + 1/2 (digamma(x) ~ log(x - 1/2)), searched from a bracket
    # around that, widened to the whole range where it does not hold
    guess = np.clip(np.floor(p * (m + a + b - 1.0) - a + 0.5), 0.0, m)
    lo = np.clip(guess - 4.0, -1.0, m)
    hi = np.clip(guess + 4.0, 0.0, m)
    lo = np.where((lo < 0) | (f(np.minimum(lo + 1, m)) < f(np.maximum(lo, 0.0))), lo, -1.0)
    hi = np.where((hi >= m) | (f(np.minimum(hi + 1, m)) >= f(hi)), hi, m)
    while (hi - lo > 1).any():
        mid = np.floor(0.5 * (lo + hi))
        live = hi - lo > 1
        up = np.where(live, f(np.minimum(mid + 1, m)) >= f(mid), True) | (mid >= m)
        hi = np.where(live & up, mid, hi)
        lo = np.where(live & ~up, mid, lo)
    start = np.maximum(hi, np.floor(m * p) + 1.0)  # increasing from here on, and S > m p
    lo, hi = start - 1.0, m + 1.0  # f(lo) < threshold (or lo below start); hi: rejects
    while (hi - lo > 1).any():
        mid = np.floor(0.5 * (lo + hi))
        live = hi - lo > 1
        rej = np.where(live, f(np.clip(mid, 0.0, m)) >= threshold, True)
        hi = np.where(live & rej, mid, hi)
        lo = np.where(live & ~rej, mid, lo)
    out = hi.astype(np.int64)
    out[0] = 1  # no decision before a sample
    return out


def _log_truncated_mixture(s, m, p: float, a: float, b: float) -> np.ndarray:
    """`log T_p(S, m)`, float64: the likelihood ratio against p of the `Beta(a, b)` prior
    restricted to `(p, 1)`,
    `E[(q/p)^S ((1-q)/(1-p))^(m-S) | q > p]
    = B(S + a, m - S + b) Q(S + a, m - S + b; p) / (B(a, b) Q(a, b; p) p^S (1-p)^(m-S))`,
    Q the upper regularized incomplete beta function; -inf where a tail underflows (such a
    point never rejects)."""
    s = np.asarray(s, np.float64)
    m = np.asarray(m, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail = np.log(scipy.special.betaincc(s + a, m - s + b, p))
        out = (scipy.special.betaln(s + a, m - s + b) + tail - scipy.special.betaln(a, b)
               - math.log(scipy.special.betaincc(a, b, p)) - s * math.log(p)
               - (m - s) * math.log1p(-p))
    return np.where(np.isfinite(tail) & np.isfinite(out), out, -np.inf)


def _truncated_reject_thresholds(p: float, a: float, b: float, level: float,
                                 n_max: int) -> np.ndarray:
    """`[n_max + 1]` int64: at each m, the smallest S with `log T_p(S, m) >= log(1/level)`
    (`_log_truncated_mixture`), m + 1 where none; `[0] = 1`.

    `T_p` increases in S (each term `(q/p)^S ((1-q)/(1-p))^(m-S)` with q > p does), so the
    threshold is a search; it starts at the untruncated mixture's threshold at level
    `level / P(q > p)`, below which nothing rejects (`T_p <= M_p / P(q > p)`, every term of
    `M_p` being >= 0), gallops up and bisects: about 0.3 s at n_max = 10^5."""
    m = np.arange(n_max + 1, dtype=np.float64)
    above = float(scipy.special.betaincc(a, b, p))
    if not above > 0.0:  # the restricted prior is empty in float64: never reject
        out = (m + 1.0).astype(np.int64)
        out[0] = 1
        return out
    threshold = math.log(1.0 / level)
    start = _beta_reject_thresholds(p, a, b, level / above, n_max).astype(np.float64)
    lo = start - 1.0  # does not reject (or is below the domain)
    hi = np.where(start > m, m + 1.0, np.nan)
    step = np.ones_like(m)
    todo = np.flatnonzero(start <= m)
    while todo.size:  # gallop: lo + 1, lo + 2, lo + 4, ... until one rejects or passes m
        probe = np.minimum(lo[todo] + step[todo], m[todo] + 1.0)
        ok = (probe > m[todo]) | (_log_truncated_mixture(
            np.minimum(probe, m[todo]), m[todo], p, a, b) >= threshold)
        hi[todo[ok]] = probe[ok]
        lo[todo[~ok]] = probe[~ok]
        step[todo[~ok]] *= 2.0
        todo = todo[~ok]
    todo = np.flatnonzero(hi - lo > 1.0)
    while todo.size:  # bisect between the last S that does not reject and the first that does
        mid = np.floor(0.5 * (lo[todo] + hi[todo]))
        ok = _log_truncated_mixture(mid, m[todo], p, a, b) >= threshold
        hi[todo[ok]] = mid[ok]
        lo[todo[~ok]] = mid[~ok]
        todo = todo[hi[todo] - lo[todo] > 1.0]
    out = hi.astype(np.int64)
    out[0] = 1  # no decision before a sample
    return out


@functools.lru_cache(maxsize=512)
def _beta_decision_table(p_star, a, b, alpha, futility, n_max):
    reject = _truncated_reject_thresholds(p_star, a, b, alpha, n_max).astype(np.int32)
    failures = _truncated_reject_thresholds(1.0 - p_star, b, a, futility, n_max)
    accept = (np.arange(n_max + 1) - failures).astype(np.int32)  # -1 where none
    for table in (reject, accept):
        table.flags.writeable = False
    return reject, accept


def beta_decision_table(p_star: float, a: float, b: float, alpha: float, n_max: int, *,
                        futility: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds of the selection-informed sequential test of "pA > p*" at every m.

    After m samples with S successes, certify iff `S >= reject[m]`, give up ("pA < p*") iff
    `S <= accept[m]`. `reject[m]` is the smallest S at which the mixture likelihood ratio of
    the prior `Beta(a, b)` restricted to `(p*, 1)` against p* reaches 1/alpha
    (`T_{p*}(S, m) = E[(q/p*)^S ((1-q)/(1-p*))^(m-S) | q > p*] >= 1/alpha`); `accept[m]` the
    largest S at which the same prior restricted to `(0, p*)` reaches 1/futility on the
    failures. Restricting each side's prior to its alternatives spends nothing on the other
    side: against the unrestricted mixture `M_{p*}` (whose sequence bounds both ends at once
    with one alpha) it divides alpha by the prior's mass above p*.

    Args:
      p_star: the threshold on pA, in (0, 1).
      a, b: the mixing Beta (`selection_prior` of the input's selection counts).
      alpha: the error probability of a certificate, in (0, 1).
      n_max: the largest sample count, >= 1.
      futility: the error probability of giving up on an input with pA >= p*, in (0, 1);
        None: alpha.

    Returns:
      `(reject, accept)`: read-only `[n_max + 1]` int32 tables (cached; about 0.6 s to build
      at n_max = 10^5).

    Guarantee:
      Theorem. With i.i.d. Bernoulli(pA) samples and (a, b) fixed before them: if pA <= p*,
      `P(exists m <= n_max: S_m >= reject[m]) <= alpha`; if pA >= p*,
      `P(exists m <= n_max: S_m <= accept[m]) <= futility`. Proof: for q > p* >= pA one
      sample multiplies `(q/p*)^S ((1-q)/(1-p*))^(m-S)` by a factor of mean
      `1 + (q - p*)(pA - p*) / (p* (1 - p*)) <= 1`, so each such term, and their average
      `T_{p*}` over the restricted prior (fixed before the samples), is a nonnegative
      supermartingale from 1; Ville's inequality bounds the probability it ever reaches
      1/alpha by alpha. The accept side is the same on the failures (q < p* <= pA). Checked
      exactly by dynamic programming in `tests/test_confseq.py`.
    """
    p_star = _validate.open_unit_interval("p_star", p_star)
    alpha = _validate.open_unit_interval("alpha", alpha)
    futility = alpha if futility is None else _validate.open_unit_interval("futility",
                                                                           futility)
    n_max = _validate.integer("n_max", n_max, minimum=1)
    a, b = float(a), float(b)
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be > 0, got a={a}, b={b}.")
    return _beta_decision_table(p_star, a, b, alpha, futility, n_max)


# --- radius with a budget: a planned sample size per input from its selection counts --------


_PLAN_QUANTILES = (np.arange(32) + 0.5) / 32
_PLAN_GRID_POINTS = 33


def allocation_grid(n_max: int) -> np.ndarray:
    """The sample counts `planned_sample_sizes` chooses from: about 33 geometrically spaced
    integers from min(64, n_max) to n_max (both included), int64, increasing."""
    n_max = _validate.integer("n_max", n_max, minimum=1)
    low = min(64, n_max)
    grid = np.unique(np.round(np.geomspace(low, n_max, _PLAN_GRID_POINTS)).astype(np.int64))
    grid[-1] = n_max
    return grid


@functools.lru_cache(maxsize=64)
def _expected_radius(k0: int, n0: int, grid: tuple[int, ...], alpha: float,
                     unit_radius: Callable | None) -> np.ndarray:
    """`[G]` float64: the mean over 32 quantiles p of `Beta(k0 + 1/2, n0 - k0 + 1/2)` of the
    radius (units of sigma) Clopper-Pearson at alpha gives with n samples at the rate p
    (`floor(p n)` successes), 0 where that bound is <= 1/2."""
    p = scipy.stats.beta.ppf(_PLAN_QUANTILES, k0 + 0.5, n0 - k0 + 0.5)
    n = np.asarray(grid, np.int64)
    k = np.floor(p[:, None] * n[None, :]).astype(np.int64)
    lower = _stats.clopper_pearson_lower(k, np.broadcast_to(n, k.shape), alpha)
    ppf = scipy.stats.norm.ppf if unit_radius is None else unit_radius
    radius = np.where(lower > 0.5, ppf(np.clip(lower, 0.5, 1.0 - 1e-16)), 0.0)
    return radius.mean(axis=0)


def planned_sample_sizes(k0, n0: int, n_max: int, alpha: float, price: float, *,
                         unit_radius: Callable | None = None) -> np.ndarray:
    """Each input's estimation sample count for "radius with a budget", chosen from its
    selection count before any estimation sample is drawn.

    For an input whose top class got `k0` of the `n0` selection votes, the expected radius
    after n estimation samples is taken as the mean, over 32 quantiles p of the posterior
    `Beta(k0 + 1/2, n0 - k0 + 1/2)`, of the radius Clopper-Pearson at `alpha` gives when the
    observed rate is p (`_expected_radius`); the input gets the n of `allocation_grid(n_max)`
    that maximizes `expected_radius(n) - price * n`: samples are spent while each buys at
    least `price` of expected radius (units of sigma). Inputs that look hopeless get the
    smallest n; inputs whose radius is capped by the alpha^(1/n) ceiling or is already
    precise stop where more samples stop paying.

    Args:
      k0: `[B]` integer top-class selection votes, 0 <= k0 <= n0.
      n0: selection samples per input, >= 1.
      n_max: the largest estimation sample count, >= 1.
      alpha: the certificates' error probability, in (0, 1).
      price: expected radius (units of sigma) one estimation sample must add, >= 0
        (0: every input gets n_max).
      unit_radius: `p -> radius at sigma = 1` (default the Gaussian `Phi^-1`).

    Returns:
      `[B]` int64 sample counts, each in `allocation_grid(n_max)`.

    Guarantee:
      The sample counts are a fixed function of the selection counts, which are independent
      of the estimation samples, so Clopper-Pearson at alpha on each input's n estimation
      samples keeps its (1 - alpha) coverage given n: no alpha is spent on the choice.
    """
    n0 = _validate.integer("n0", n0, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    price = _validate.real("price", price)
    if price < 0:
        raise ValueError(f"price must be finite and >= 0, got price={price}.")
    k0 = np.asarray(k0)
    if k0.size and (k0.min() < 0 or k0.max() > n0):
        raise ValueError(f"k0 must be in [0, n0 = {n0}].")
    grid = allocation_grid(n_max)
    distinct, inverse = np.unique(k0.astype(np.int64), return_inverse=True)
    key = tuple(int(v) for v in grid)
    chosen = np.array([grid[np.argmax(_expected_radius(int(k), n0, key, alpha, unit_radius)
                                      - price * grid)] for k in distinct], np.int64)
    return chosen[inverse.reshape(k0.shape)] if distinct.size else np.zeros(k0.shape, np.int64)
