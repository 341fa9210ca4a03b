"""The counting kernel: exact sums, determinism, noise distribution, limits, no retrace."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import rpjax
from rpjax._src import noise, smoothing

from _models import (
    bucket_apply,
    linear_apply,
    linear_first,
    linear_rest,
    plan,
    random_linear,
    relu_first,
)

_PARAMS = random_linear(3, seed=0)
_XS = jnp.asarray(np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32))
_N = 2_000


def _counts(xs=_XS, **kw):
    kw = {"sigma": 0.7, "n": _N, "num_classes": 2, **kw}
    return np.asarray(rpjax.sample_counts(linear_apply, _PARAMS, xs, 123, **plan(**kw)))


_REFERENCE = _counts(chunk_size=_N)


@pytest.mark.parametrize("chunk_size", [64, 1000, _N, 1, 7, None])
def test_counts_do_not_depend_on_chunk_size(chunk_size):
    np.testing.assert_array_equal(_counts(chunk_size=chunk_size), _REFERENCE)


def test_rows_sum_to_n():
    chex.assert_shape(_REFERENCE, (50, 2))
    np.testing.assert_array_equal(_REFERENCE.sum(axis=1), _N)
    assert _REFERENCE.dtype == np.int32


@pytest.mark.parametrize("i", [0, 17, 49])
def test_alone_or_in_a_batch(i):
    alone = _counts(xs=_XS[i : i + 1], ids=[i])
    np.testing.assert_array_equal(alone[0], _REFERENCE[i])


def test_subset_in_other_order():
    idx = np.array([40, 3, 22, 9])
    np.testing.assert_array_equal(_counts(xs=_XS[idx], ids=idx), _REFERENCE[idx])


def test_batched_with_padding_and_progress():
    np.testing.assert_array_equal(_counts(batch_size=7, progress=True), _REFERENCE)


@pytest.mark.slow
def test_remainder_is_masked():
    for n in (1, 9, 1001, 1999):
        c = _counts(n=n, chunk_size=64)
        np.testing.assert_array_equal(c.sum(axis=1), n)
    # the first n samples are a prefix of a longer run: counts can only grow
    a, b = _counts(n=1001, chunk_size=64), _counts(n=1001, chunk_size=1000)
    np.testing.assert_array_equal(a, b)


def test_different_keys_and_ids_differ():
    other = np.asarray(rpjax.sample_counts(linear_apply, _PARAMS, _XS, 124, num_classes=2,
                                           config=rpjax.SmoothingConfig(sigma=0.7, n=_N)))
    assert not np.array_equal(other, _REFERENCE)
    shifted = _counts(ids=np.arange(50) + 1000)
    assert not np.array_equal(shifted, _REFERENCE)


def test_key_forms_agree():
    for key in (jax.random.key(123), jax.random.key_data(jax.random.key(123))):
        got = rpjax.sample_counts(linear_apply, _PARAMS, _XS, key, num_classes=2,
                                  config=rpjax.SmoothingConfig(sigma=0.7, n=_N))
        np.testing.assert_array_equal(np.asarray(got), _REFERENCE)


def test_traceable_core_matches_public_function():
    """counts_traced inside a user's jit gives the public function's counts."""
    key = jax.random.key(123)

    @jax.jit
    def user(xs):
        keys = noise.example_keys(key, jnp.arange(xs.shape[0], dtype=jnp.uint32))
        return smoothing.counts_traced(linear_apply, _PARAMS, xs, keys, 0.7, n=_N,
                                       num_classes=2, chunk=13)

    np.testing.assert_array_equal(np.asarray(user(_XS)), _REFERENCE)


def test_no_retrace_on_second_call():
    traces = []

    def apply_fn(params, x):
        traces.append(x.shape)
        return linear_apply(params, x)

    kw = dict(n=500, num_classes=2, chunk_size=100)
    rpjax.sample_counts(apply_fn, _PARAMS, _XS, 0, **plan(sigma=0.5, **kw))
    after_first = len(traces)
    rpjax.sample_counts(apply_fn, _PARAMS, _XS + 1.0, 1, **plan(sigma=0.9, **kw))
    rpjax.sample_counts(apply_fn, (_PARAMS[0] * 2, _PARAMS[1]), _XS, 2, **plan(sigma=0.1, **kw))
    assert len(traces) == after_first


# The noise the kernel adds is N(0, sigma^2), checked through the kernel itself.
_EDGES = jnp.asarray(np.linspace(-2.5, 2.5, 21), jnp.float32)


def _histogram(sigma, n=60_000):
    counts = rpjax.sample_counts(bucket_apply, _EDGES, jnp.zeros((1, 2)), 7, num_classes=22,
                                 config=rpjax.SmoothingConfig(sigma=sigma, n=n))
    return np.asarray(counts)[0]


def _pvalue(observed, sigma):
    cdf = sps.norm.cdf(np.concatenate([[-np.inf], np.asarray(_EDGES), [np.inf]]),
                       scale=sigma)
    expected = np.diff(cdf) * observed.sum()
    return sps.chisquare(observed, expected).pvalue


def test_accepts_sigma_rejects_two_thirds_and_three_halves():
    observed = _histogram(1.0)
    assert _pvalue(observed, 1.0) > 1e-3
    assert _pvalue(observed, 2 / 3) < 1e-12
    assert _pvalue(observed, 3 / 2) < 1e-12


@pytest.mark.slow
def test_sample_noise_ks():
    pair = noise.example_keys(jax.random.key(3), jnp.arange(1, dtype=jnp.uint32))[0]
    draws = noise.sample_noise(pair, jnp.arange(4000, dtype=jnp.uint32), (5,))
    draws = np.asarray(draws, np.float64).ravel()
    assert sps.kstest(draws, "norm").pvalue > 1e-3
    assert sps.kstest(draws, "norm", args=(0, 2 / 3)).pvalue < 1e-12
    assert sps.kstest(draws, "norm", args=(0, 3 / 2)).pvalue < 1e-12


@pytest.mark.slow
def test_gaussian_transform_matches_jax_random_normal():
    """Same transform as jax.random.normal: equal in distribution (two-sample KS)."""
    ours = noise.gaussian_from_bits(
        jax.random.bits(jax.random.key(0), (200_000,), jnp.uint32))
    ref = jax.random.normal(jax.random.key(1), (200_000,))
    assert sps.ks_2samp(np.asarray(ours), np.asarray(ref)).pvalue > 1e-3
    extremes = np.asarray(noise.gaussian_from_bits(jnp.array([0, 2**32 - 1], jnp.uint32)))
    assert np.isfinite(extremes).all()
    # the transform is monotone in the word: these are the largest |values| it can emit,
    # and the sigma-overflow check relies on the bound
    assert np.abs(extremes).max() < noise.MAX_ABS_UNIT_NOISE
    assert np.abs(extremes).max() > (noise.MAX_ABS_UNIT_NOISE - 1)


@pytest.mark.slow
def test_samples_coordinates_and_examples_are_independent():
    """Noise of neighbouring samples, coordinates and ids is uncorrelated."""
    pairs = noise.example_keys(jax.random.key(0), jnp.arange(2, dtype=jnp.uint32))
    index = jnp.arange(20_000, dtype=jnp.uint32)
    a = np.asarray(noise.sample_noise(pairs[0], index, (3,)))
    b = np.asarray(noise.sample_noise(pairs[1], index, (3,)))
    limit = 4 / np.sqrt(20_000)
    assert abs(np.corrcoef(a[:, 0], b[:, 0])[0, 1]) < limit  # across ids
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < limit  # within a word
    assert abs(np.corrcoef(a[:, 1], a[:, 2])[0, 1]) < limit  # across words
    assert abs(np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1]) < limit  # across samples


@pytest.mark.slow
def test_noise_of_a_sample_does_not_depend_on_the_others():
    pair = noise.example_keys(jax.random.key(5), jnp.arange(1, dtype=jnp.uint32))[0]
    full = noise.sample_noise(pair, jnp.arange(100, dtype=jnp.uint32), (4, 3))
    part = noise.sample_noise(pair, jnp.array([97, 3], jnp.uint32), (4, 3))
    np.testing.assert_array_equal(np.asarray(part), np.asarray(full)[[97, 3]])


def test_other_prng_implementations_work():
    key = jax.random.key(0, impl="rbg")
    c = rpjax.sample_counts(linear_apply, _PARAMS, _XS, key, num_classes=2,
                            config=rpjax.SmoothingConfig(sigma=0.7, n=300))
    np.testing.assert_array_equal(np.asarray(c).sum(axis=1), 300)


def test_bfloat16_base_model():
    """bf16 inputs and params run the model in bf16; counts stay exact int32 and close to
    float32 (the same noise, rounded)."""
    params16 = jax.tree.map(lambda a: jnp.asarray(a, jnp.bfloat16), _PARAMS)
    xs16 = _XS.astype(jnp.bfloat16)
    c16 = np.asarray(rpjax.sample_counts(linear_apply, params16, xs16, 123, num_classes=2,
                                         config=rpjax.SmoothingConfig(sigma=0.7, n=_N)))
    assert c16.dtype == np.int32
    np.testing.assert_array_equal(c16.sum(axis=1), _N)
    agreement = np.minimum(c16, _REFERENCE).sum() / _REFERENCE.sum()
    assert agreement > 0.98


def test_unrolled_threefry_equals_the_jax_primitive():
    from jax.extend.random import threefry2x32_p

    rng = np.random.default_rng(0)
    for _ in range(3):
        k0, k1 = (jnp.uint32(v) for v in rng.integers(0, 2**32, 2))
        x0, x1 = (jnp.asarray(rng.integers(0, 2**32, 5000), jnp.uint32) for _ in range(2))
        want = threefry2x32_p.bind(k0, k1, x0, x1)
        got = jax.jit(noise.threefry2x32)(k0, k1, x0, x1)
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_64_bit_counter_product():
    a = [0, 1, 2**16 - 1, 2**16, 123456789, 2**30 - 1, 2**32 - 1]
    for b in (1, 11, 3072, 65535, 65536, 150528, 2**32 - 1):
        lo, hi = noise._mul64(jnp.asarray(a, jnp.uint32), b)  # noqa: SLF001
        got = np.asarray(hi, np.uint64) * 2**32 + np.asarray(lo, np.uint64)
        np.testing.assert_array_equal(got, np.asarray(a, np.uint64) * np.uint64(b))


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(11,), (4, 3), (32, 32, 3)])
def test_flat_range_equals_per_sample_noise(shape):
    pair = noise.example_keys(jax.random.key(5), jnp.arange(1, dtype=jnp.uint32))[0]
    for first in (0, 7, 2**20 + 3):
        want = noise.sample_noise(pair, jnp.arange(first, first + 6, dtype=jnp.uint32),
                                  shape)
        got = noise.sample_noise_range(pair, first, 6, shape)
        np.testing.assert_array_equal(np.asarray(want), np.asarray(got))


def test_small_sigma_gives_the_base_classifier():
    counts = _counts(sigma=1e-5, n=200)  # (8 float32 spacings at |x| ~ 4 is 3.8e-6)
    base = np.asarray(jnp.argmax(linear_apply(_PARAMS, _XS), axis=-1))
    np.testing.assert_array_equal(counts.argmax(axis=1), base)
    np.testing.assert_array_equal(counts.max(axis=1), 200)


def test_extra_classes_get_zero_counts():
    counts = _counts(num_classes=5)
    np.testing.assert_array_equal(counts[:, :2], _REFERENCE)
    np.testing.assert_array_equal(counts[:, 2:], 0)


def test_counts_match_analytic_probability():
    """Linear f: P(class 1) = Phi((w.x + b) / (sigma ||w||)); counts agree (binomial)."""
    w, b = _PARAMS
    n = 20_000
    counts = _counts(n=n)
    p1 = sps.norm.cdf(np.asarray(_XS @ w + b) / (0.7 * float(jnp.linalg.norm(w))))
    pvals = sps.binom.cdf(counts[:, 1], n, p1)
    pvals = 2 * np.minimum(pvals, 1 - pvals + sps.binom.pmf(counts[:, 1], n, p1))
    # 50 two-sided tests: none should be extreme (Bonferroni at 1e-3)
    assert pvals.min() > (1e-3 / 50)


_SPLIT = rpjax.AffineFirst(linear_first, linear_rest)


# `common_noise=True`: every input gets id 0's noise; each input's counts stay exact.
def test_every_input_gets_the_noise_of_id_0():
    common = _counts(common_noise=True)
    for i in (0, 17, 49):
        alone = _counts(xs=_XS[i : i + 1], ids=[0])
        np.testing.assert_array_equal(common[i], alone[0])
    np.testing.assert_array_equal(common[0], _REFERENCE[0])


@pytest.mark.parametrize("chunk_size", [pytest.param(1, marks=pytest.mark.slow), 7,
                                        pytest.param(64, marks=pytest.mark.slow), None])
def test_does_not_depend_on_chunking_or_batching(chunk_size):
    want = _counts(common_noise=True, chunk_size=_N)
    got = _counts(common_noise=True, chunk_size=chunk_size, batch_size=9)
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_affine_split_equals_the_plain_model():
    """Same counts through `first(x) + (first(sigma eps) - first(0))` up to rounding."""
    plain = _counts(common_noise=True)
    split = np.asarray(rpjax.sample_counts(
        _SPLIT, _PARAMS, _XS, 123, num_classes=2,
        config=rpjax.SmoothingConfig(sigma=0.7, n=_N, common_noise=True)))
    np.testing.assert_array_equal(split.sum(axis=1), _N)
    # a vote can only flip where w.(x + eps) + b is within float rounding of 0
    assert np.abs(split - plain).max() <= 2
    # without common noise an AffineFirst is an ordinary apply_fn
    np.testing.assert_array_equal(
        np.asarray(rpjax.sample_counts(_SPLIT, _PARAMS, _XS, 123, num_classes=2,
                                       config=rpjax.SmoothingConfig(sigma=0.7, n=_N))), _REFERENCE)


def test_split_counts_match_analytic_probability():
    """Each input's counts are Binomial(n, Phi((w.x + b) / (sigma ||w||)))."""
    w, b = _PARAMS
    n = 20_000
    counts = np.asarray(rpjax.sample_counts(
        _SPLIT, _PARAMS, _XS, 7, num_classes=2,
        config=rpjax.SmoothingConfig(sigma=0.7, n=n, common_noise=True)))
    p1 = sps.norm.cdf(np.asarray(_XS @ w + b) / (0.7 * float(jnp.linalg.norm(w))))
    pvals = [sps.binomtest(int(k), n, p).pvalue for k, p in zip(counts[:, 1], p1, strict=True)]
    assert min(pvals) > (1e-3 / 50)


@pytest.mark.slow
def test_inputs_share_their_noise():
    """Copies of one input: identical counts with common noise, not with independent."""
    xs = jnp.repeat(_XS[:1], 4, axis=0) * 0.01  # near the boundary: counts vary widely
    common = _counts(xs=xs, common_noise=True)
    independent = _counts(xs=xs)
    np.testing.assert_array_equal(common, np.repeat(common[:1], 4, axis=0))
    assert len({tuple(row) for row in independent.tolist()}) > 1


def test_certify_with_common_noise():
    cert = rpjax.certify(
        _SPLIT, _PARAMS, _XS, 3, num_classes=2,
        config=rpjax.SmoothingConfig(sigma=0.7, n=_N, alpha=1e-3, common_noise=True))
    plain = rpjax.certify(
        linear_apply, _PARAMS, _XS, 3, num_classes=2,
        config=rpjax.SmoothingConfig(sigma=0.7, n=_N, alpha=1e-3, common_noise=True))
    assert np.mean(cert.label == plain.label) >= 0.96
    np.testing.assert_array_equal(cert.counts.sum(axis=1), _N)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ids"):
        _counts(common_noise=True, ids=np.arange(50))
    with pytest.raises(TypeError, match="common_noise"):
        _counts(common_noise=1)
    bad = rpjax.AffineFirst(relu_first, linear_rest)
    with pytest.raises(ValueError, match="not affine"):
        rpjax.sample_counts(bad, _PARAMS, _XS, 0, num_classes=2,
                            config=rpjax.SmoothingConfig(sigma=0.7, n=10, common_noise=True))


def test_model_check_caches_are_bounded():
    smoothing.clear_caches()
    xs = jnp.ones((2, 3), jnp.float32)
    fns = [functools.partial(_scaled_linear, float(i)) for i in range(80)]
    for fn in fns:
        smoothing.check_model(fn, _PARAMS, xs, 2)
    assert len(smoothing._MODEL_CACHE) == smoothing._CACHE_SIZE
    smoothing.check_model(fns[-1], _PARAMS, xs, 2)  # a hit keeps the size
    assert len(smoothing._MODEL_CACHE) == smoothing._CACHE_SIZE
    smoothing.clear_caches()
    assert len(smoothing._MODEL_CACHE) == 0


def test_counting_program_is_what_sample_counts_runs():
    xs = jnp.ones((4, 3), jnp.float32)
    prog = smoothing.counting_program(linear_apply, _PARAMS, xs, num_classes=2,
                                      config=rpjax.SmoothingConfig(sigma=0.5, n=1000),
                                      placement=rpjax.Placement(chunk_size=300))
    assert prog.chunk == smoothing.resolve_chunk_size(300, 1000, 4, 3,
                                                      len(jax.local_devices()))
    assert prog.steps * prog.chunk * len(jax.local_devices()) >= 1000
    memory = prog.lowered.compile().memory_analysis()
    assert memory.output_size_in_bytes > 0


@pytest.mark.slow
def test_invalid_column_leaves_finite_counts_unchanged():
    """The NaN/+inf column adds nothing for a finite model: the counts are those of the
    traced loop without it, bit for bit."""
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)), jnp.float32)
    keys = noise.example_keys(jax.random.key(4), jnp.arange(3, dtype=jnp.uint32))
    plain = smoothing.counts_traced(linear_apply, _PARAMS, xs, keys, 0.7, n=500,
                                    num_classes=2, chunk=100)
    extra = smoothing.counts_traced(linear_apply, _PARAMS, xs, keys, 0.7, n=500,
                                    num_classes=2, chunk=100, invalid_column=True)
    np.testing.assert_array_equal(np.asarray(extra)[:, :2], np.asarray(plain))
    np.testing.assert_array_equal(np.asarray(extra)[:, 2], 0)


def _scaled_linear(scale, params, x):
    return linear_apply(params, x) * scale
