"""The deployed release protocol (`rpjax._src.privacy.release`), tried as a querier would."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import rpjax
from rpjax._src.privacy import leakage
from rpjax._src.privacy.release import (
    ABSTAIN,
    MODES,
    NOISE_MODES,
    Budget,
    BudgetExceededError,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    composed_bound,
    initial_state,
)

from _models import traced_release

SIGMA = 0.5
_SECRET = Secret(bytes(range(32)))


def _linear(params, x):
    return jnp.stack([-x[:, 0], x[:, 0]], axis=-1) * params


def _xs(m=12, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(m, 1)) * 0.3, rng.normal(size=(m, 2))],
                          axis=1).astype(np.float32)


def _release(mode="predict", noise="fresh", secret=_SECRET, **kw):
    """A measurement release (`Budget.unlimited()`, no ledger) unless `budget` is given."""
    cfg = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=SIGMA, n=100, n0=10),
                        num_classes=2, mode=mode, noise=noise)
    kw.setdefault("budget", Budget.unlimited())
    return RobustPrivacyRelease(_linear, 1.0, cfg, secret=secret, **kw)


@pytest.fixture
def new_ledger(tmp_path):
    """Makes ledger files, each in a folder of its own under the test's `tmp_path`."""
    folders = iter(range(1_000_000))

    def make() -> str:
        folder = tmp_path / f"rpjax-ledger-{next(folders)}"
        folder.mkdir()
        return str(folder / "ledger.sqlite")

    return make


@pytest.mark.parametrize("mode", [pytest.param(MODES[0], marks=pytest.mark.slow), *MODES[1:]])
def test_label_only(mode):
    rel = _release(mode)
    out = rel.querier("q")(_xs())
    assert isinstance(out, np.ndarray)
    assert out.shape == (12,)
    assert np.issubdtype(out.dtype, np.integer)
    assert set(out.tolist()) <= {ABSTAIN, 0, 1}
    # what the owner sees: counts (and radius / pa_lower for certify) in the audit only
    rec = rel.audit()[-1]
    assert rec.counts.shape == (12, 2)
    if mode == "certify":
        assert rec.radius.shape == (12,)
        np.testing.assert_array_equal(rec.radius > 0, out != ABSTAIN)


def test_no_key_id_or_seed_reaches_the_release():
    assert list(inspect.signature(RobustPrivacyRelease.query).parameters) == [
        "self", "xs", "subjects"]
    assert list(inspect.signature(_release().querier("q")).parameters) == ["xs"]
    assert list(inspect.signature(_release().traced().fn).parameters) == ["params", "x", "state"]
    with pytest.raises(TypeError):
        _release().query(_xs(), ids=np.zeros(12, int))  # pylint: disable=unexpected-keyword-arg
    for bad in (0, 2**40, jax.random.key(0), b"short"):
        with pytest.raises((TypeError, ValueError), match="secret"):
            _release(secret=bad)
    with pytest.raises((TypeError, ValueError), match="secret"):
        Secret(b"\x00" * 16)


@pytest.mark.slow
def test_secret_comes_from_the_os_and_is_not_printed():
    a, b = Secret.generate(), Secret.generate()
    assert a.fingerprint() != b.fingerprint()
    assert bytes(range(32)).hex() not in repr(_SECRET)
    assert "hidden" in repr(_SECRET)
    # a release made without a secret draws its own: two such releases differ
    x = np.zeros((64, 3), np.float32)
    r1, r2 = _release("always_label", secret=None), _release("always_label", secret=None)
    r1.query(x)
    r2.query(x)
    assert r1.secret_fingerprint() != r2.secret_fingerprint()
    assert not np.array_equal(r1.audit()[0].counts, r2.audit()[0].counts)


@pytest.mark.slow
def test_different_secrets_give_different_noise():
    x = np.zeros((32, 3), np.float32)  # p1 = 1/2: the counts are pure noise
    r1, r2 = _release(), _release(secret=Secret(bytes(range(1, 33))))
    r1.query(x)
    r2.query(x)
    assert not np.array_equal(r1.audit()[0].counts, r2.audit()[0].counts)


@pytest.mark.parametrize("mode", [pytest.param(MODES[0], marks=pytest.mark.slow), *MODES[1:]])
def test_consistent_mode_exact_repeats_identical(mode):
    rel = _release(mode, "consistent")
    x = _xs(8)
    first = rel.query(x)
    again = rel.query(x[::-1])[::-1]  # other positions, later in the release's life
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(rel.audit()[0].counts, rel.audit()[1].counts[::-1])
    # -0.0 and +0.0 are the same input
    z = np.zeros((1, 3), np.float32)
    rel.query(z)
    rel.query(-z)
    np.testing.assert_array_equal(rel.audit()[2].counts, rel.audit()[3].counts)


def test_consistent_mode_near_duplicates_get_fresh_noise():
    rel = _release("always_label", "consistent")
    x = np.zeros((1, 3), np.float32)
    near = np.repeat(x, 50, axis=0)
    near[:, 2] = np.arange(50) * 1e-7  # a feature the model ignores
    rel.query(near)
    counts = rel.audit()[0].counts[:, 1]
    assert len(set(counts.tolist())) > 10


@pytest.mark.slow
def test_fresh_mode_repeats_draw_new_noise_with_the_right_law():
    """Fresh answers to one input: class-1 counts are Binomial(n, Phi(r / sigma))."""
    rel = _release("always_label", "fresh")
    r = 0.1
    x = np.array([[r, 0.0, 0.0]], np.float32)
    for _ in range(3):
        rel.query(np.repeat(x, 200, axis=0))
    counts = np.concatenate([rec.counts[:, 1] for rec in rel.audit()])
    p = sps.norm.cdf(r / SIGMA)
    assert len(set(counts.tolist())) > 15
    res = sps.binomtest(int(counts.sum()), 100 * counts.size, p)
    assert res.pvalue > 1e-4
    # and the per-answer counts spread like a binomial, not more (no shared noise)
    assert abs(np.var(counts) / (100 * p * (1 - p)) - 1) < 0.35


@pytest.mark.slow
@pytest.mark.parametrize("noise", NOISE_MODES)
@pytest.mark.parametrize("mode", MODES)
def test_traced_release_equals_deployed_release(mode, noise):
    """`release.query` and `release.traced()` agree, compiled and eager."""
    rel = _release(mode, noise)
    traced = rel.traced()
    state = initial_state()
    for seed in range(3):
        x = _xs(6, seed)
        want = rel.query(x)
        got, new_state = traced(jnp.asarray(x), state)  # compiled
        np.testing.assert_array_equal(np.asarray(got), want)
        eager, eager_state = traced.fn(traced.params, jnp.asarray(x), state)
        np.testing.assert_array_equal(np.asarray(eager), want)
        np.testing.assert_array_equal(eager_state, new_state)
        state = new_state
    assert int(state[0]) == 18


def test_refuses_past_the_budget_and_answers_nothing(new_ledger):
    rel = _release(budget=Budget(max_answers=3), ledger=new_ledger())
    x = _xs(2)
    rel.query(x, ["alice", "bob"])
    rel.query(x, ["alice", "alice"])
    with pytest.raises(BudgetExceededError, match="alice"):
        rel.query(x, ["bob", "alice"])
    assert rel.answers("alice") == 3
    assert rel.answers("bob") == 1  # the refused batch counted nothing
    rel.query(x, ["bob", "bob"])
    with pytest.raises(ValueError, match="subjects"):
        rel.query(x)


@pytest.mark.slow
def test_alpha_budget_is_a_union_bound(new_ledger):
    rel = _release(budget=Budget(max_alpha=0.0035), ledger=new_ledger())
    assert rel.budget.answers_allowed(rel.config) == 3
    rel.query(_xs(3), ["a"] * 3)
    assert round(abs(rel.spent("a")["alpha"] - 0.003), 7) == 0
    with pytest.raises(BudgetExceededError):
        rel.query(_xs(1), ["a"])
    with pytest.raises(ValueError, match="always_label"):
        _release("always_label", budget=Budget(max_alpha=0.01), ledger=new_ledger())


@pytest.mark.parametrize("mode", [pytest.param(MODES[0], marks=pytest.mark.slow), *MODES[1:]])
def test_advantage_budget_uses_the_worst_case_bound(mode, new_ledger):
    delta = 0.05
    rel = _release(mode, budget=Budget(max_advantage=0.6, delta=delta),
                   ledger=new_ledger())
    k = rel.budget.answers_allowed(rel.config)
    cfg = rel.config
    assert composed_bound(cfg, delta, k) <= 0.6
    assert composed_bound(cfg, delta, k + 1) > 0.6
    # the worst case over inputs: no known p1 gives a larger bound for one answer
    for lo in (0.3, 0.6, 0.9):
        known = leakage.advantage_bound(mode, sigma=SIGMA, delta=delta, n=100, n0=10,
                                        alpha=1e-3, p1_interval=(lo, lo + 0.05))
        assert known.advantage <= (composed_bound(cfg, delta, 1) * 1.05)
    rel.query(_xs(k), ["s"] * k)
    assert rel.spent("s")["advantage_bound"] <= 0.6
    with pytest.raises(BudgetExceededError):
        rel.query(_xs(1), ["s"])


def test_advantage_budget_needs_two_classes():
    cfg = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=SIGMA, n=100), num_classes=3)
    with pytest.raises(ValueError, match="two-class"):
        RobustPrivacyRelease(lambda p, x: jnp.zeros((x.shape[0], 3)), None, cfg,
                             budget=Budget(max_advantage=0.5, delta=0.1))


def test_bad_config():
    with pytest.raises(ValueError, match="mode"):
        ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=1.0, n=10),
                      num_classes=2, mode="certify_radius")
    with pytest.raises(ValueError, match="noise"):
        ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=1.0, n=10),
                      num_classes=2, noise="caller")
    with pytest.raises(ValueError, match="delta"):
        Budget(max_advantage=0.5)
    with pytest.raises(ValueError, match="xs"):
        _release().query(np.full((2, 3), np.nan, np.float32))


@pytest.mark.parametrize("n,alpha", [(10, 0.01), (100, 1e-3),
                                     pytest.param(257, 0.05, marks=pytest.mark.slow), (40, 0.5)])
def test_predict_threshold_table_matches_the_binomial_test(n, alpha):
    """`n_A >= table[n_A + n_B]` is exactly PREDICT's "p-value <= alpha" (brute force)."""
    from rpjax._src import stats
    from rpjax._src.privacy.release import predict_threshold_table

    table = predict_threshold_table(n, alpha)
    for m in range(0, n + 1):
        for n_a in range((m + 1) // 2, m + 1):
            passes = m > 0 and stats.binomial_test_pvalue(n_a, m) <= alpha
            assert (n_a >= table[m]) == passes, (m, n_a)


def test_abstain_is_defined_once():
    """`ABSTAIN` is the engine's (`rpjax.ABSTAIN`); the release and the leakage bound use it."""
    import rpjax
    from rpjax._src import certify
    from rpjax._src.privacy import release

    assert rpjax.ABSTAIN is certify.ABSTAIN is release.ABSTAIN is leakage.ABSTAIN
    assert "ABSTAIN =" not in inspect.getsource(release)
    assert "ABSTAIN =" not in inspect.getsource(leakage)


@pytest.mark.slow
def test_releases_differing_only_in_floats_share_fn():
    """sigma / p / q / scale, alpha-derived tables and the secret are traced `params`: equal
    `fn`s (one compiled program), equal params structure and shapes."""
    from rpjax._src.baselines import labels
    from rpjax.privacy import experiment_secret

    def same(a, b):
        assert a.fn == b.fn and hash(a.fn) == hash(b.fn)
        assert jax.tree.structure(a.params) == jax.tree.structure(b.params)
        sa, sb = ([(np.shape(v), np.asarray(v).dtype) for v in jax.tree.leaves(r.params)]
                  for r in (a, b))
        assert sa == sb

    def sec(*p):
        return experiment_secret("share", *p)

    same(traced_release(_linear, 1.0, "predict", sigma=0.1, n=50, alpha=1e-3, num_classes=2,
                        secret=sec(1)),
         traced_release(_linear, 2.0, "predict", sigma=0.7, n=50, alpha=0.05, num_classes=2,
                        secret=sec(2)))
    same(traced_release(_linear, 1.0, "certify", sigma=0.1, n=50, n0=5, alpha=1e-3, num_classes=2,
                        secret=sec(1)),
         traced_release(_linear, 1.0, "certify", sigma=0.3, n=50, n0=5, alpha=0.01, num_classes=2,
                        secret=sec(2)))
    same(labels.randomized_response_release(_linear, 1.0, p=0.1, num_classes=2, secret=sec(1)),
         labels.randomized_response_release(_linear, 1.0, p=0.9, num_classes=2, secret=sec(2)))
    same(labels.random_abstain_release(_linear, 1.0, q=0.1, secret=sec(1)),
         labels.random_abstain_release(_linear, 1.0, q=0.5, secret=sec(2)))
    same(labels.output_noise_release(_linear, 1.0, scale=0.1, secret=sec(1)),
         labels.output_noise_release(_linear, 1.0, scale=3.0, secret=sec(2)))
    # a static setting (n: the shapes of the noise) gives another fn
    def predict_fn(n):
        return traced_release(_linear, 1.0, "predict", sigma=0.1, n=n, alpha=1e-3,
                              num_classes=2).fn

    assert predict_fn(50) != predict_fn(60)


_EVALUATED: list[int] = []


def _counting_linear(params, x):
    """`_linear` that reports, from inside the compiled program, how many noisy samples the
    model was evaluated on."""
    jax.debug.callback(lambda b: _EVALUATED.append(int(b)), x.shape[0])
    return _linear(params, x)


@pytest.mark.parametrize("mode", ["predict", pytest.param("certify", marks=pytest.mark.slow),
                                  pytest.param("always_label", marks=pytest.mark.slow)])
def test_an_answer_costs_the_same_whatever_the_input(mode):
    """No cost side channel: an input the model decides under every noise draw (far from the
    boundary) and one on the boundary cost exactly `forward_passes` model evaluations each;
    the sequential methods, whose cost would depend on p_A, are refused."""
    cfg = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=SIGMA, n=300, n0=20),
                        num_classes=2, mode=mode)
    costs = []
    for x0 in (50.0, 0.0):  # p_A = 1 and p_A = 1/2
        rel = RobustPrivacyRelease(_counting_linear, 1.0, cfg, secret=_SECRET, chunk_size=64,
                                   budget=Budget.unlimited())
        _EVALUATED.clear()
        rel.query(np.array([[x0, 0.0, 0.0]], np.float32), ["s"])
        jax.effects_barrier()
        costs.append(sum(_EVALUATED))
    # the compiled loops evaluate whole chunks (masked past n): a fixed count per answer
    assert costs[0] == costs[1] >= cfg.forward_passes, costs


@pytest.mark.parametrize("mode", ["sequential", "certify_sequential", "decision", "budget"])
def test_a_release_refuses_the_sequential_methods(mode):
    with pytest.raises(ValueError, match="refuses the sequential methods"):
        ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=SIGMA, n=300), num_classes=2, mode=mode)
