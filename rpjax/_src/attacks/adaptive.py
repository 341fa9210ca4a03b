"""The best adaptive attacker on the linear model, independent of `rpjax._src.privacy.leakage`
(the reference that tests and `benchmarks/budget_table.py` hold the adaptive bound to).

On f(x) = 1[<w, x> > 0] the smoothed class-1 probability is Phi(z), z the signed distance to
the boundary in units of sigma, and the secret attribute moves z by d = delta / sigma. The
attacker sets z for each query (through the features it knows) after seeing the earlier
answers; under "the subject is x" query i has z_i, under "x'" it has z_i + d. Its best
advantage after k answers is `2 v_k(1/2) - 1`, with `v_0(l) = max(l, 1 - l)` and

    v_k(l) = max_z sum_o (l P_o(z) + (1 - l) P_o(z + d)) v_{k-1}(l P_o(z) / (...)),

l the posterior weight of "x". v_k is convex, so its piecewise-linear interpolation on a grid
of l lies above it: the computed value is at least the best attacker's on the grid of z.

The answer distributions come from the definitions with scipy (the binomial test's p-value,
Clopper-Pearson's beta quantile), not from rpjax.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats as sps


@functools.cache
def _predict_sets(n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts N1 in 0..n for which PREDICT answers 1 / answers 0 (two-sided binomial test)."""
    n1 = np.arange(n + 1)
    top = np.maximum(n1, n - n1)
    pv = np.array([sps.binomtest(int(t), n, 0.5).pvalue for t in top])
    passes = pv <= alpha
    return passes & (n1 > n - n1), passes & (n1 < n - n1)


@functools.cache
def _certified_counts(n: int, alpha: float) -> np.ndarray:
    """Counts c of the selected class for which Clopper-Pearson's lower bound exceeds 1/2."""
    c = np.arange(n + 1)
    with np.errstate(invalid="ignore"):
        lower = np.where(c > 0, sps.beta.ppf(alpha, np.maximum(c, 1), n - c + 1), 0.0)
    return lower > 0.5


def answer_probabilities(mode: str, z: np.ndarray, *, n: int, alpha: float = 1e-3,
                         n0: int = 10) -> np.ndarray:
    """`[len(z), O]` probabilities of (answer 0, answer 1[, ABSTAIN]) at p1 = Phi(z)."""
    p = sps.norm.cdf(np.asarray(z, np.float64))
    pmf = sps.binom.pmf(np.arange(n + 1)[None, :], n, p[:, None])  # [Z, n + 1] over N1
    if mode == "always_label":  # the top class of n votes, ties to class 0
        one = np.clip(pmf[:, np.arange(n + 1) * 2 > n].sum(1), 0.0, 1.0)
        return np.stack([1.0 - one, one], axis=1)
    if mode == "predict":
        ones, zeros = _predict_sets(n, alpha)
        one, zero = pmf[:, ones].sum(1), pmf[:, zeros].sum(1)
    elif mode == "certify":
        sel1 = sps.binom.sf(n0 // 2, n0, p)  # S1 > n0 / 2 selects class 1 (ties: class 0)
        ok = _certified_counts(n, alpha)
        one = sel1 * pmf[:, ok].sum(1)  # class-1 count certified
        zero = (1.0 - sel1) * pmf[:, ok[::-1]].sum(1)  # class-0 count n - N1 certified
    else:
        raise ValueError(mode)
    return np.clip(np.stack([zero, one, 1.0 - one - zero], axis=1), 0.0, 1.0)


def attacker_grid(n: int, d: float) -> np.ndarray:
    """Query locations the attacker may choose: coarse everywhere, fine where answers move."""
    fine = 8.0 / np.sqrt(n) + 0.3
    return np.unique(np.concatenate([np.linspace(-5, 5, 101),
                                     np.linspace(-fine - d, fine, 241)]))


def best_adaptive_advantage(mode: str, *, d: float, n: int, ks, alpha: float = 1e-3,
                            n0: int = 10, zs: np.ndarray | None = None,
                            levels: int = 601) -> dict[int, float]:
    """The best adaptive attacker's advantage after each k in `ks` (dynamic programming)."""
    zs = attacker_grid(n, d) if zs is None else zs
    p = answer_probabilities(mode, zs, n=n, alpha=alpha, n0=n0)  # [Z, O], "x"
    q = answer_probabilities(mode, zs + d, n=n, alpha=alpha, n0=n0)  # [Z, O], "x'"
    # nodes in log-odds, fine near 0 (where the posterior starts) and relatively fine far out
    u = np.linspace(-1.0, 1.0, levels) * np.arcsinh(60.0 / 1e-3)
    t = 1e-3 * np.sinh(u)
    lam = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-t)), [1.0]])  # nodes of l, sorted
    v = np.maximum(lam, 1.0 - lam)
    prior = lam[None, :, None]
    mass = prior * p[:, None, :] + (1.0 - prior) * q[:, None, :]  # [Z, L, O]
    with np.errstate(invalid="ignore", divide="ignore"):
        post = np.where(mass > 0, prior * p[:, None, :] / mass, 0.5)
    out, kmax = {}, max(ks)
    for k in range(1, kmax + 1):
        cont = np.interp(post, lam, v)  # v_{k-1} at each posterior, interpolated (above)
        v = np.max(np.sum(mass * cont, axis=2), axis=0)
        v = np.maximum(v, np.maximum(lam, 1.0 - lam))
        if k in ks:
            out[k] = float(2.0 * np.interp(0.5, lam, v) - 1.0)
    return out


def best_two_answer_advantage(mode: str, *, d: float, n: int, alpha: float = 1e-3,
                              n0: int = 10) -> float:
    """The best adaptive attacker with k = 2, exactly (enumeration over its grid of z):
    the first query's z, then the second query's z chosen for each first answer."""
    zs = attacker_grid(n, d)
    p = answer_probabilities(mode, zs, n=n, alpha=alpha, n0=n0)
    q = answer_probabilities(mode, zs + d, n=n, alpha=alpha, n0=n0)
    best = 0.0
    for i in range(len(zs)):  # first query at zs[i]; for answer o, the best second query
        total = 0.0
        for o in range(p.shape[1]):
            a, b = p[i, o] * p, q[i, o] * q  # [Z, O'] joint masses of (o, o')
            total += np.max(np.abs(a - b).sum(axis=1))
        best = max(best, 0.5 * total)
    return best
