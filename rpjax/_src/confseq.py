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
  H0: p <= p* at given looks, alpha spent look by look, computed once per (p*, alpha, looks).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
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
