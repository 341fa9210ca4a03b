"""One decision module: every mode's rule in its host form (float64 statistics) and its
compiled form (integer thresholds, `decide`) gives the same label on every count vector."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rpjax._src import decision
from rpjax._src.privacy import leakage, release, rp


def _counts(rng, m, c, n):
    """`[m, c]` vote counts summing to n, with many ties and near-threshold splits."""
    p = rng.dirichlet(np.full(c, 0.3), size=m)
    out = np.stack([rng.multinomial(n, q) for q in p])
    out[: m // 8, :2] = n // 2  # exact ties between the top two
    out[: m // 8, 2:] = 0
    out[: m // 8, 0] += n - out[: m // 8].sum(1)
    return out.astype(np.int32)


@pytest.mark.parametrize("n", [1, 2, 7, 30, 100, 1000])
@pytest.mark.parametrize("alpha", [1e-3, 0.05, 0.4])
@pytest.mark.parametrize("classes", [2, 3, 10])
def test_compiled_and_host_rules_agree(n, alpha, classes):
    rng = np.random.default_rng(n * 7 + classes)
    counts = _counts(rng, 400, classes, n)
    selection = _counts(rng, 400, classes, 13)
    table = jnp.asarray(decision.predict_threshold_table(n, alpha))
    kstar = decision.certify_threshold(n, alpha)
    for mode in decision.Mode:
        graph = np.asarray(decision.decide(mode, jnp.asarray(counts), jnp.asarray(selection),
                                           table, kstar))
        if mode is decision.Mode.CERTIFY:
            top, _, ok = decision.certify_statistics(selection, counts, n, alpha)
        elif mode is decision.Mode.PREDICT:
            top, _, ok = decision.predict_statistics(counts, alpha)
        else:
            top, ok = decision.always_label_statistics(counts), True
        np.testing.assert_array_equal(graph, np.where(ok, top, decision.ABSTAIN), str(mode))


def test_two_class_outcome_sets_agree_with_the_rule():
    """`predict_thresholds` (the leakage bound's view) is the PREDICT rule on two classes."""
    for n, alpha in [(30, 1e-3), (100, 1e-3), (101, 0.05)]:
        t0, t1 = decision.predict_thresholds(n, alpha)
        n1 = np.arange(n + 1)
        counts = np.stack([n - n1, n1], axis=1)
        top, _, ok = decision.predict_statistics(counts, alpha)
        label = np.where(ok, top, decision.ABSTAIN)
        want = np.where(n1 >= t1, 1, np.where(n1 <= t0, 0, decision.ABSTAIN))
        np.testing.assert_array_equal(label, want)


def test_one_definition_of_the_modes():
    assert decision.MODES == ("predict", "always_label", "certify")
    assert release.MODES is decision.MODES and rp.MODES is decision.MODES
    assert leakage.MODES == (*decision.MODES, "certify_radius")
    assert decision.Mode("predict") is decision.Mode.PREDICT == "predict"
    with pytest.raises(ValueError, match="mode must be one of"):
        decision.mode("sequential")
    assert release.ABSTAIN is decision.ABSTAIN
