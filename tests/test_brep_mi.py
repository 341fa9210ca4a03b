"""Label releases, BREP-MI on a toy problem, and the attack metrics."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpjax import SmoothingConfig
from rpjax._src import stats
from rpjax._src.attacks import metrics
from rpjax._src.attacks.brep_mi import BrepConfig, brep_mi
from rpjax._src.decision import predict_threshold_table
from rpjax._src.privacy.release import Budget, ReleaseConfig, RobustPrivacyRelease
from rpjax.privacy import base_release, experiment_secret, initial_state

from _models import traced_release

_CENTERS = jnp.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 3.0]])


def disc_apply(centers, x):
    """Class c inside the unit disc around centers[c]; class 3 ("other") elsewhere."""
    d = jnp.linalg.norm(x[:, None, :] - centers[None], axis=-1)
    logits = jnp.where(d < 1.0, 10.0 - d, -d)
    other = jnp.where(jnp.all(d >= 1.0, axis=1), 100.0, -100.0)
    return jnp.concatenate([logits, other[:, None]], axis=1)


@pytest.mark.parametrize("n,alpha", [(100, 1e-3), (1000, 1e-3), (250, 0.05)])
def test_threshold_table_matches_the_binomial_test(n, alpha):
    table = predict_threshold_table(n, alpha)
    for m in range(1, n + 1, max(1, n // 97)):
        k = np.arange((m + 1) // 2, m + 1)
        expect = stats.binomial_test_pvalue(k, np.full_like(k, m)) <= alpha
        np.testing.assert_array_equal(k >= table[m], expect)


@pytest.mark.slow
def test_in_graph_predict_agrees_with_the_binomial_test_on_its_counts():
    """The traced release's labels are the deployed release's, and those are PREDICT's
    decision (exact binomial test) on the counts in the owner's audit record."""
    secret = experiment_secret("test", "predict-decisions")
    rel = traced_release(disc_apply, _CENTERS, "predict", sigma=0.8, n=200, alpha=1e-3,
                         num_classes=4, secret=secret)
    x = jnp.array([[0.0, 0.0], [0.9, 0.0], [1.5, 1.5], [3.0, 3.0], [8.0, 8.0]])
    labels, state = rel(x, initial_state())  # compiled
    labels = np.asarray(labels)
    np.testing.assert_array_equal(np.asarray(state), [5, 0])
    config = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.8, n=200, alpha=1e-3), num_classes=4)
    deployed = RobustPrivacyRelease(disc_apply, _CENTERS, config, secret=secret,
                                    budget=Budget.unlimited())
    np.testing.assert_array_equal(deployed.query(x), labels)
    counts = deployed.audit()[0].counts
    top = np.sort(counts, axis=1)[:, ::-1]
    passes = stats.binomial_test_pvalue(top[:, 0], top[:, 0] + top[:, 1]) <= 1e-3
    np.testing.assert_array_equal(labels, np.where(passes, counts.argmax(1), -1))
    assert -1 in labels.tolist()  # the boundary point abstains
    assert labels[4] == 3
    # the float settings travel as traced params: sigma and PREDICT's table (n, alpha)
    assert float(rel.params["sigma"]) == 0.8
    np.testing.assert_array_equal(rel.params["table"], predict_threshold_table(200, 1e-3))


@pytest.mark.slow
def test_always_label_never_abstains():
    rel = traced_release(disc_apply, _CENTERS, "always_label", sigma=2.0, n=20, num_classes=4)
    labels, _ = rel.fn(rel.params, jnp.zeros((50, 2)) + 0.95, initial_state())  # eager
    assert -1 not in np.asarray(labels).tolist()


@pytest.mark.slow
def test_certify_release_matches_the_deployed_release():
    secret = experiment_secret("test", "certify")
    rel = traced_release(disc_apply, _CENTERS, "certify", sigma=0.5, n=50, n0=10, alpha=1e-2,
                         num_classes=4, secret=secret)
    assert (rel.name, rel.forward_passes) == ("rp_certify", 60)
    x = jnp.array([[0.0, 0.0], [0.9, 0.0], [8.0, 8.0]])
    config = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=50, n0=10, alpha=1e-2),
                           num_classes=4, mode="certify")
    deployed = RobustPrivacyRelease(disc_apply, _CENTERS, config, secret=secret,
                                    budget=Budget.unlimited())
    state = initial_state()
    for _ in range(2):  # a second batch continues the counter
        labels, state = rel(x, state)
        np.testing.assert_array_equal(np.asarray(labels), deployed.query(x))
    assert np.asarray(labels)[2] == 3


@pytest.mark.slow
def test_walks_into_the_class_and_grows_its_radius():
    """Toy 2-D: the class region is the disc of radius 0.5 around 0 in latent space."""
    config = BrepConfig(r0=0.05, max_iters=60, init_candidates=4000)
    res = brep_mi(base_release(disc_apply, _CENTERS), lambda z: 2.0 * z, jnp.array([0]), 0,
                  config, latent_dim=2)
    assert res.found[0]
    start, end = np.linalg.norm(res.initial[0]), np.linalg.norm(res.latents[0])
    assert end < start  # away from the boundary, towards the class's interior
    assert end < 0.25
    assert res.radius[0] > (0.05 * 1.3**3)  # grew by 1.3 several times
    grown = np.log(res.radius[0] / 0.05) / np.log(1.3)
    np.testing.assert_allclose(grown, np.round(grown), atol=1e-4)  # in steps of 1.3
    assert res.iterations[0] == 60
    assert res.queries[0] == (4000 + 60 * 33)
    np.testing.assert_array_equal(res.release_state, [4000 + 60 * 33, 0])


@pytest.mark.slow
def test_patience_stops_and_unfound_targets_do_not_move():
    config = BrepConfig(r0=5.0, max_iters=50, patience=4, init_candidates=500)
    # decode = identity: the latent box [-1.5, 1.5]^2 holds class 0's disc but no point of
    # class 1's (centred at (3, 3))
    res = brep_mi(base_release(disc_apply, _CENTERS), lambda z: z,
                  jnp.array([0, 1]), 1, config, latent_dim=2)
    assert res.found[0]
    assert not res.found[1]
    assert res.iterations[1] == 0
    # r0 = 5: every sphere point clips to the box's edge, outside the disc, so the radius
    # never grows and patience ends the walk after exactly 4 iterations
    assert res.iterations[0] == 4


@pytest.mark.slow
def test_queries_and_forward_passes_scale_with_n():
    config = BrepConfig(r0=0.05, max_iters=5, init_candidates=200)
    out = {}
    for n in (10, 40):
        rel = traced_release(disc_apply, _CENTERS, "always_label", sigma=0.05, n=n, num_classes=4,
                             secret=experiment_secret("test", n))
        out[n] = brep_mi(rel, lambda z: 2.0 * z, jnp.array([0]), 0, config, latent_dim=2)
    np.testing.assert_array_equal(out[10].queries, out[40].queries)
    np.testing.assert_allclose(out[40].forward_passes, 4 * out[10].forward_passes)


@pytest.mark.slow
def test_release_state_chains_attacks_on_one_release():
    """The counter after one attack is where the next starts; every query sent counts
    (here two targets, one never found, both queried every iteration)."""
    config = BrepConfig(r0=0.05, max_iters=3, init_candidates=60, num_points=4)
    rel = base_release(disc_apply, _CENTERS)
    first = brep_mi(rel, lambda z: z, jnp.array([0, 1]), 0, config, latent_dim=2,
                    init_batch=25)
    per_attack = 60 + 3 * (2 * 4 + 2)
    np.testing.assert_array_equal(first.release_state, [per_attack, 0])
    second = brep_mi(rel, lambda z: z, jnp.array([0, 1]), 1, config, latent_dim=2,
                     release_state=first.release_state)
    np.testing.assert_array_equal(second.release_state, [2 * per_attack, 0])
    with pytest.raises(ValueError, match="release_state"):
        brep_mi(rel, lambda z: z, jnp.array([0]), 0, config, latent_dim=2,
                release_state=np.zeros(2, np.int32))


@pytest.mark.slow
def test_a_sweep_over_three_sigmas_compiles_the_attack_loop_once():
    """sigma, the alpha-derived table and the secret are traced params of the release,
    so the compiled walk (its `fn` static) is reused across a sigma sweep."""
    messages = []

    class Handler(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    def decode(z):  # a fresh function: no earlier test compiled this walk
        return 2.0 * z

    config = BrepConfig(r0=0.05, num_points=5, max_iters=3, init_candidates=30)
    releases = [traced_release(disc_apply, _CENTERS, "predict", sigma=s, n=12, alpha=0.05,
                               num_classes=4, secret=experiment_secret("sweep", s))
                for s in (0.1, 0.2, 0.4)]
    assert all(r.fn == releases[0].fn and hash(r.fn) == hash(releases[0].fn)
               for r in releases)
    handler = Handler(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            results = [brep_mi(r, decode, jnp.array([0, 1]), 0, config, latent_dim=2,
                               init_batch=15) for r in releases]
    finally:
        logger.removeHandler(handler)
    walks = [m for m in messages if m.startswith("Compiling") and "_walk" in m]
    assert len(walks) == 1
    # the sigmas did reach the release: the three attacks saw different answers
    assert not all(np.array_equal(results[0].latents, r.latents)
                   for r in results[1:])


def test_bad_config():
    with pytest.raises(ValueError, match="growth"):
        BrepConfig(growth=1.0)
    with pytest.raises(ValueError, match="inside_fraction"):
        BrepConfig(inside_fraction=1.5)


def test_attack_success_by_hand():
    logits = np.array([[5.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 3.0, 2.0]])
    ev = lambda x: jnp.asarray(logits)  # noqa: E731
    out = metrics.attack_success(ev, np.zeros((3, 1)), np.array([0, 1, 2]))
    np.testing.assert_array_equal(out["top1"], [True, False, False])
    np.testing.assert_array_equal(out["top5"], [True, True, True])
    np.testing.assert_array_equal(
        metrics.top_k_hits(logits, np.array([0, 1, 2]), 2), [True, True, True])
    np.testing.assert_array_equal(
        metrics.top_k_hits(logits, np.array([2, 0, 0]), 2), [False, False, False])
    valid = metrics.attack_success(ev, np.zeros((3, 1)), np.array([0, 1, 2]),
                                   valid=[False, True, True])
    np.testing.assert_array_equal(valid["top1"], [False, False, False])


def test_nearest_private_distance():
    feats = lambda x: jnp.asarray(x)  # noqa: E731
    private = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 3.0]])
    d = metrics.nearest_private_distance(feats, np.array([[1.0, 0.0], [9.0, 0.0]]),
                                         np.array([0, 1]), private, np.array([0, 1, 0]))
    np.testing.assert_allclose(d, [1.0, 1.0])


def test_release_utility():
    out = metrics.release_utility([0, -1, 1, 2], [0, 1, 1, 1],
                                  confidence=[0.9, 0.2, 0.8, 0.1])
    assert out["accuracy"] == 0.5
    assert out["abstain_rate"] == 0.25
    assert round(abs(out["accuracy_released"] - (2 / 3)), 7) == 0
    assert out["paper_accuracy"] == 1.0  # images 0 (class 0) and 2 (class 1)
