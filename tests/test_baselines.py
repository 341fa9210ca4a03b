"""Baseline defences: label releases (rates by binomial tests) and DP-SGD (clipping, accountant)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from scipy import stats as sps

from rpjax._src.attacks.brep_mi import BrepConfig, brep_mi
from rpjax._src.baselines import dpsgd, labels
from rpjax._src.experiments.frontier import pareto_mask
from rpjax.models import TabularMLP
from rpjax.privacy import experiment_secret, initial_state

K = 5


def _fixed(params, x):
    """A 'model' whose argmax is x[:, 0] mod K (one-hot logits)."""
    del params
    return jax.nn.one_hot(x[:, 0].astype(jnp.int32) % K, K) * 10.0


def _secret(*parts):
    return experiment_secret("test_baselines", *parts)


def _answers(release, m=20_000):
    """m answers, in two batches (the second continues the release's counter)."""
    x = jnp.tile(jnp.arange(K, dtype=jnp.float32)[:, None], (m // K, 1))
    half = m // 2
    first, state = release(x[:half], initial_state())  # compiled
    second, state = release(x[half:], state)
    assert np.asarray(state).tolist() == [m, 0]
    out = np.concatenate([np.asarray(first), np.asarray(second)])
    return out, np.asarray(x[:, 0]).astype(int)


@pytest.mark.parametrize("p", [pytest.param(0.9, marks=pytest.mark.slow), 0.5, 0.1])
def test_randomized_response_flips_at_the_configured_rate(p):
    out, base = _answers(labels.randomized_response_release(_fixed, None, p=p, num_classes=K,
                                                            secret=_secret("rr", p)))
    flips = int(np.sum(out != base))
    rate = (1 - p) * (K - 1) / K
    assert sps.binomtest(flips, out.size, rate).pvalue > 1e-3
    # and a wrong rate is rejected: the test has power
    assert sps.binomtest(flips, out.size, min(1.0, rate + 0.03)).pvalue < 1e-3
    # flipped labels are uniform over the other classes
    counts = np.bincount((out[out != base] - base[out != base]) % K, minlength=K)[1:]
    assert sps.chisquare(counts).pvalue > 1e-3
    assert out.min() >= 0 and out.max() < K


@pytest.mark.slow
def test_random_abstention_rate_and_output_noise():
    out, base = _answers(labels.random_abstain_release(_fixed, None, q=0.3,
                                                       secret=_secret("abstain")))
    abst = int(np.sum(out == -1))
    assert sps.binomtest(abst, out.size, 0.3).pvalue > 1e-3
    np.testing.assert_array_equal(out[out != -1], base[out != -1])
    # output noise: logits 10 apart; P(flip to a given other) = P(N(0, 2 s^2) > 10)
    out, base = _answers(labels.output_noise_release(_fixed, None, scale=5.0,
                                                     secret=_secret("noise")))
    flips = int(np.sum(out != base))
    # kept iff 10 + 5 Z_0 beats the other K - 1 logits 5 Z_j: P = E[Phi(Z + 2)^(K - 1)]
    rate = 1.0 - sps.norm.expect(lambda z: sps.norm.cdf(z + 10.0 / 5.0) ** (K - 1))
    assert sps.binomtest(flips, out.size, rate).pvalue > 1e-3
    assert sps.binomtest(flips, out.size, rate + 0.03).pvalue < 1e-3
    small, _ = _answers(labels.output_noise_release(_fixed, None, scale=0.1))
    np.testing.assert_array_equal(small, base)


@pytest.mark.slow
def test_label_release_validation_and_brep_plugin():
    with pytest.raises(ValueError, match="p"):
        labels.randomized_response_release(_fixed, None, p=1.5, num_classes=K)
    with pytest.raises(ValueError, match="q"):
        labels.random_abstain_release(_fixed, None, q=-0.1)
    with pytest.raises(ValueError, match="scale"):
        labels.output_noise_release(_fixed, None, scale=0.0)
    with pytest.raises(TypeError, match="Secret"):
        labels.random_abstain_release(_fixed, None, q=0.5, secret=jax.random.key(0))
    # plugs into BREP-MI: with p = 0 every label is uniform noise, the attack still runs
    rel = labels.randomized_response_release(_fixed, None, p=0.0, num_classes=K)
    res = brep_mi(rel, lambda z: z * 3.0, jnp.arange(K), 0,
                  BrepConfig(max_iters=3, init_candidates=50), latent_dim=2)
    chex.assert_shape(res.latents, (K, 2))
    np.testing.assert_allclose(res.forward_passes, res.queries)


def _toy_loss_and_params():
    """Least squares on a linear model: the per-example gradient grows with the input."""
    params = {"w": jnp.array([0.3, -0.2, 0.1]), "b": jnp.array(0.05)}

    def loss(p, xb, yb, wb):
        return jnp.sum(wb * (xb @ p["w"] + p["b"] - yb) ** 2)

    return loss, params


@pytest.mark.slow
def test_dp_gradient_clips_each_example():
    loss, params = _toy_loss_and_params()
    x = jnp.ones((4, 3)) * jnp.array([[1.0], [1.0], [1.0], [1e6]])
    y = jnp.array([0.0, 1.0, 0.0, 1.0])
    w = jnp.ones(4)
    clip = 0.5
    g = dpsgd.dp_gradient(loss, params, x, y, w, jax.random.key(0), l2_clip_norm=clip,
                          noise_multiplier=0.0, denominator=1.0)
    norm = float(optax.tree.norm(g))
    raw = float(optax.tree.norm(jax.grad(loss)(params, x, y, w)))
    assert raw > 100 * clip * 4  # the huge example dominates the unclipped gradient
    assert norm <= 4 * clip * (1 + 1e-5)
    # one example alone: its gradient has norm exactly the clip norm (it was larger)
    g1 = dpsgd.dp_gradient(loss, params, x[3:], y[3:], w[3:], jax.random.key(0),
                           l2_clip_norm=clip, noise_multiplier=0.0, denominator=1.0)
    assert abs(float(optax.tree.norm(g1)) - clip) < 1e-4
    # padding (weight 0) contributes nothing
    g0 = dpsgd.dp_gradient(loss, params, x, y, w.at[3].set(0.0), jax.random.key(0),
                           l2_clip_norm=clip, noise_multiplier=0.0, denominator=1.0)
    g3 = dpsgd.dp_gradient(loss, params, x[:3], y[:3], w[:3], jax.random.key(0),
                           l2_clip_norm=clip, noise_multiplier=0.0, denominator=1.0)
    chex.assert_trees_all_close(g0, g3, atol=1e-6)
    # noise: std noise_multiplier * clip / denominator per coordinate
    big = {"v": jnp.zeros(20_000)}
    gn = dpsgd.dp_gradient(lambda p, xb, yb, wb: jnp.sum(wb * xb[:, 0]) * jnp.sum(p["v"]),
                           big, x, y, w.at[:].set(0.0), jax.random.key(1),
                           l2_clip_norm=clip, noise_multiplier=2.0, denominator=4.0)
    flat = np.concatenate([np.ravel(v) for v in jax.tree.leaves(gn)])
    assert abs(flat.std() / (2.0 * clip / 4.0) - 1.0) < 0.03


@pytest.mark.slow
def test_accountant_epsilon_falls_with_noise_and_calibration_hits_target():
    eps = [dpsgd.dpsgd_epsilon(nm, 0.1, 500, 1e-5) for nm in (0.8, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(eps, eps[1:], strict=False))
    assert dpsgd.dpsgd_epsilon(1.0, 0.1, 1000, 1e-5) > dpsgd.dpsgd_epsilon(1.0, 0.1, 100, 1e-5)
    nm = dpsgd.calibrate_noise_multiplier(4.0, 0.1, 500, 1e-5)
    assert dpsgd.dpsgd_epsilon(nm, 0.1, 500, 1e-5) <= 4.0 + 1e-6
    assert dpsgd.dpsgd_epsilon(nm * 0.98, 0.1, 500, 1e-5) > 4.0
    # PLD is tighter than RDP at the same noise
    assert (dpsgd.dpsgd_epsilon(nm, 0.1, 500, 1e-5, "pld")
            <= dpsgd.dpsgd_epsilon(nm, 0.1, 500, 1e-5, "rdp"))
    with pytest.raises(ValueError, match="noise_multiplier"):
        dpsgd.dpsgd_epsilon(0.0, 0.1, 10, 1e-5)
    with pytest.raises(ValueError, match="target_epsilon"):
        dpsgd.DPSGDConfig(target_epsilon=None, noise_multiplier=None)
    with pytest.raises(ValueError, match="accountant"):
        dpsgd.DPSGDConfig(accountant="moments")


@pytest.mark.slow
def test_fit_dpsgd_reports_the_accountants_epsilon_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    cfg = dpsgd.DPSGDConfig(target_epsilon=8.0, steps=200, expected_batch_size=40,
                            learning_rate=1e-2)
    res = dpsgd.fit_dpsgd(TabularMLP(3, 2, rngs=nnx.Rngs(0)), x, y, 0, cfg)
    assert res.epsilon <= 8.0 + 1e-6 and res.epsilon > 7.0
    assert res.sampling_prob == pytest.approx(0.1)
    assert res.epsilon == pytest.approx(
        dpsgd.dpsgd_epsilon(res.noise_multiplier, 0.1, 200, 1e-5))
    acc = float(np.mean(np.argmax(res.apply_fn(res.params, x), -1) == y))
    assert acc > 0.85


@pytest.mark.slow
def test_dp_grad_step_is_the_dp_gradient_of_the_indexed_batch():
    loss, params = _toy_loss_and_params()
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)), jnp.float32)
    y = jnp.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    step = dpsgd.dp_grad_step(loss, x, y, l2_clip_norm=0.5, noise_multiplier=1.5,
                              denominator=3.0)
    idx = jnp.array([4, 0, 2, -1, -1])  # three examples, two padding slots
    key = jax.random.key(7)
    value, grads = step(params, idx, key)
    w = jnp.array([1.0, 1.0, 1.0, 0.0, 0.0])
    safe = jnp.maximum(idx, 0)
    want = dpsgd.dp_gradient(loss, params, x[safe], y[safe], w, key, l2_clip_norm=0.5,
                             noise_multiplier=1.5, denominator=3.0)
    chex.assert_trees_all_close(grads, want, atol=1e-6)
    # the loss is the mean over the real examples only (padding weighs 0)
    np.testing.assert_allclose(float(value), float(loss(params, x[idx[:3]], y[idx[:3]],
                                                         jnp.ones(3))) / 3, rtol=1e-5)
    # fit_dpsgd trains with this step in the shared loop: its losses are the step's losses
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(50, 3)).astype(np.float32)
    ys = (xs[:, 0] > 0).astype(np.int32)
    cfg = dpsgd.DPSGDConfig(target_epsilon=None, noise_multiplier=1.0, steps=5,
                            expected_batch_size=10)
    res = dpsgd.fit_dpsgd(TabularMLP(3, 2, rngs=nnx.Rngs(0)), xs, ys, 0, cfg)
    assert res.losses.shape == (5,) and np.all(np.isfinite(res.losses))


def test_pareto_mask_on_hand_made_points():
    acc = [0.9, 0.8, 0.95, 0.7, 0.9, np.nan]
    asr = [0.5, 0.2, 0.9, 0.3, 0.6, 0.0]
    np.testing.assert_array_equal(pareto_mask(acc, asr),
                                  [True, True, True, False, False, False])
    # ties: identical points are both on the front
    np.testing.assert_array_equal(pareto_mask([0.5, 0.5], [0.1, 0.1]), [True, True])
    with pytest.raises(ValueError, match="accuracy"):
        pareto_mask([0.1, 0.2], [0.1])
