"""The attack harness and the deployed release are one protocol (`rpjax._src.privacy.release`).

BREP-MI's queries get exactly the answers `RobustPrivacyRelease.query` gives for the same
secret and the same query sequence; the attacker's key never reaches a release (there is no
key argument); the baselines' randomness comes from their secret and answer counter.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpjax import SmoothingConfig
from rpjax._src.attacks.brep_mi import BrepConfig, brep_mi
from rpjax._src.baselines import labels
from rpjax._src.privacy import release as release_lib
from rpjax._src.privacy.release import advance
from rpjax.privacy import (
    Budget,
    LabelRelease,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    base_release,
    experiment_secret,
    initial_state,
)

from _models import traced_release

_CENTERS = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_DECODE_W = jnp.array([[0.8, 0.1, 0.0], [-0.1, 0.7, 0.2]])  # latent 2 -> input 3


def nearest_centre(centers, x):
    """Logits: minus the squared distance to each centre (3 classes)."""
    return -jnp.sum((x[:, None, :] - centers[None]) ** 2, axis=-1)


def decode(z):
    return z @ _DECODE_W


def _spy(release: LabelRelease, log: list) -> LabelRelease:
    """`release` that also records every batch (inputs, labels) on the host, in order."""

    def record(x, out):
        log.append((np.asarray(x), np.asarray(out)))

    def fn(params, x, state):
        out, state = release.fn(params, x, state)
        jax.debug.callback(record, x, out, ordered=True)
        return out, state

    return LabelRelease(release.name, fn, release.forward_passes, release.params)


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["fresh", "consistent"])
def test_brep_mi_gets_exactly_the_deployed_releases_answers(noise):
    config = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.4, n=16, alpha=0.05),
                           num_classes=3, noise=noise)
    secret = experiment_secret("test_harness_protocol", noise)
    traced = RobustPrivacyRelease(nearest_centre, _CENTERS, config, secret=secret,
                                  budget=Budget.unlimited()).traced()
    log: list = []
    res = brep_mi(_spy(traced, log), decode, jnp.array([1, 2]), 3,
                  BrepConfig(r0=0.3, num_points=8, max_iters=6, init_candidates=60),
                  latent_dim=2, init_batch=25)
    jax.effects_barrier()
    # 3 initial batches (25, 25, 10), then sphere points and candidates per iteration
    sizes = [x.shape[0] for x, _ in log]
    assert sizes[:3] == [25, 25, 10]
    assert sizes[3:] == [16, 2] * (len(sizes[3:]) // 2) and len(sizes) > 3
    assert sum(sizes) == int(res.release_state[0]) and res.release_state[1] == 0
    released = np.concatenate([out for _, out in log])
    assert {-1, 1, 2} <= set(released.tolist())  # not a trivial sequence of answers
    deployed = RobustPrivacyRelease(nearest_centre, _CENTERS, config, secret=secret,
                                    budget=Budget.unlimited())
    for x, out in log:  # the same queries, in order, through the deployed interface
        np.testing.assert_array_equal(deployed.query(x), out)
    assert deployed.audit()[-1].answer_index[-1] == sum(sizes) - 1


@pytest.mark.slow
def test_a_release_takes_no_key_and_its_noise_is_its_secrets():
    rp = [traced_release(nearest_centre, _CENTERS, "predict", sigma=0.5, n=20, alpha=0.05,
                         num_classes=3),
          traced_release(nearest_centre, _CENTERS, "always_label", sigma=0.5, n=20, num_classes=3),
          traced_release(nearest_centre, _CENTERS, "certify", sigma=0.5, n=20, n0=5, alpha=0.05,
                         num_classes=3)]
    baselines = [base_release(nearest_centre, _CENTERS),
                 labels.randomized_response_release(nearest_centre, _CENTERS, p=0.5,
                                                    num_classes=3),
                 labels.random_abstain_release(nearest_centre, _CENTERS, q=0.5),
                 labels.output_noise_release(nearest_centre, _CENTERS, scale=1.0)]
    for rel in rp + baselines:
        assert list(inspect.signature(rel.fn).parameters) == ["params", "x", "state"], rel.name
    assert [r.name for r in rp] == ["rp_predict", "rp_always_label", "rp_certify"]
    assert {"model", "keys", "sigma", "table"} == set(rp[0].params)
    for rel in rp + baselines[1:]:  # the secret's keys travel in params but are not printed
        assert "hidden" in repr(rel.params["keys"]), rel.name

    # a borderline input (equidistant from classes 0 and 1), many copies
    x = jnp.tile(jnp.array([[0.5, 0.0, 0.0]]), (64, 1))
    sa, sb = experiment_secret("a"), experiment_secret("b")
    rel_a = traced_release(nearest_centre, _CENTERS, "always_label", sigma=0.5, n=20, num_classes=3,
                           secret=sa)
    fn = rel_a  # compiled
    first, s1 = fn(x, initial_state())
    # an attacker running its own sampling in between changes nothing: same (x, state), same
    # answers (the attack's key has no way in)
    brep_mi(rel_a, decode, jnp.array([1]), 12345,
            BrepConfig(max_iters=2, init_candidates=10, num_points=4), latent_dim=2)
    again, s2 = fn(x, initial_state())
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(s1, s2)
    assert set(np.asarray(first).tolist()) == {0, 1}  # borderline: both labels occur
    later, _ = fn(x, s1)  # fresh noise: the next answers are new draws
    assert np.any(np.asarray(later) != np.asarray(first))
    other, _ = traced_release(nearest_centre, _CENTERS, "always_label", sigma=0.5, n=20,
                              num_classes=3, secret=sb)(x, initial_state())
    assert np.any(np.asarray(other) != np.asarray(first))
    # two secrets: different votes for the same query (owner's audit record)
    counts = []
    for s in (sa, sb):
        config = ReleaseConfig(smoothing=SmoothingConfig(sigma=0.5, n=20), num_classes=3,
                               mode="always_label")
        deployed = RobustPrivacyRelease(nearest_centre, _CENTERS, config, secret=s,
                                        budget=Budget.unlimited())
        np.testing.assert_array_equal(deployed.query(x),
                                      np.asarray(first if s is sa else other))
        counts.append(deployed.audit()[0].counts)
    assert np.any(counts[0] != counts[1])


@pytest.mark.parametrize("make", [
    pytest.param(lambda s: labels.randomized_response_release(nearest_centre, _CENTERS, p=0.3,
                                                              num_classes=3, secret=s),
                 marks=pytest.mark.slow),
    lambda s: labels.random_abstain_release(nearest_centre, _CENTERS, q=0.5, secret=s),
    pytest.param(lambda s: labels.output_noise_release(nearest_centre, _CENTERS, scale=2.0,
                                                       secret=s),
                 marks=pytest.mark.slow),
], ids=["randomized_response", "abstain", "output_noise"])
def test_baseline_randomness_comes_from_the_secret_and_the_counter(make):
    x = jnp.tile(jnp.eye(3), (100, 1))  # 300 inputs, each on one centre
    secret = experiment_secret("baseline", 1)
    a, b = make(secret), make(Secret(bytes(secret._value)))  # two releases, one secret
    start = advance(initial_state(), 1000)
    la, sa = a(x, start)  # compiled
    lb, sb = b.fn(b.params, x, start)  # eager or compiled, same answers
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(sa, advance(start, 300))
    np.testing.assert_array_equal(sa, sb)
    fresh, _ = a(x, sa)  # the next answers: new draws
    assert np.mean(np.asarray(fresh) != np.asarray(la)) > 0.1
    other, _ = make(experiment_secret("baseline", 2))(x, start)
    assert np.mean(np.asarray(other) != np.asarray(la)) > 0.1


@pytest.mark.parametrize("stream", [pytest.param(s, marks=pytest.mark.slow) if s == "fresh" else s
                                    for s in release_lib.STREAMS])
def test_answer_keys_are_the_same_inside_jit(stream):
    keys = release_lib._SecretKeys.of(experiment_secret("row-keys"))
    state = advance(initial_state(), 2**32 - 2)  # across the low word's carry
    x = jnp.arange(15.0).reshape(5, 3)
    host = release_lib._answer_key_pairs(keys, stream, x, state)
    traced = jax.jit(release_lib._answer_key_pairs, static_argnums=1)(keys, stream, x, state)
    np.testing.assert_array_equal(host, traced)
    assert len({tuple(k) for k in np.asarray(host).tolist()}) == 5
    # the three streams are different keys
    others = [release_lib._answer_key_pairs(keys, s, x, state) for s in release_lib.STREAMS
              if s != stream]
    assert all(not np.array_equal(host, o) for o in others)


def test_keyed_release_checks_its_arguments():
    rule = release_lib._ArgmaxFn  # any hashable callable
    with pytest.raises(TypeError, match="secret"):
        release_lib.keyed_release("x", rule, params={}, secret=0, forward_passes=1)
    with pytest.raises(ValueError, match="stream"):
        release_lib.keyed_release("x", rule, params={}, secret=None, forward_passes=1,
                                  stream="caller")
    with pytest.raises(ValueError, match="keys"):
        release_lib.keyed_release("x", rule, params={"keys": 0}, secret=None,
                                  forward_passes=1)
