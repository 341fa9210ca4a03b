"""The PyTorch reference (`benchmarks/reference_torch.py`) against rpjax.

The PyTorch twins of the rpjax models compute the same logits (Flax's asymmetric SAME padding
included), and the reference CERTIFY agrees with `rpjax.certify` statistically (the two use
different noise streams, so only their distributions can agree).
"""

import importlib.util
import os
import sys

import jax
import numpy as np
import pytest
import torch
from flax import nnx

import rpjax
from rpjax.models import FaceCNN, TabularMLP, as_apply_fn

_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "reference_torch.py"
)


def _load_reference():
    """`benchmarks/reference_torch.py`, imported by path (benchmarks/ is not a package)."""
    if "reference_torch" in sys.modules:
        return sys.modules["reference_torch"]
    spec = importlib.util.spec_from_file_location("reference_torch", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reference_torch"] = module
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

# the benchmarks' PyTorch reference: benchmark code, run with the slow set
pytestmark = pytest.mark.slow

SIGMA = 0.5


def _with_random_biases(model, seed):
    """`model` with every bias drawn N(0, 0.1^2) (Flax initializes them to 0, which would
    leave the bias copy untested)."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))
    rng = np.random.default_rng(seed)
    new = [
        (rng.normal(0.0, 0.1, np.shape(v)).astype(np.float32)
         if str(getattr(path[-1], "key", "")) == "bias" else v)
        for path, v in leaves
    ]
    pure = jax.tree_util.tree_unflatten(treedef, new)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model


def _jitted(model):
    apply_fn, params = as_apply_fn(model)
    return jax.jit(apply_fn), params


_CNNS = {
    "face32": dict(num_classes=20, image_size=32, channels=(8, 16, 32), dense=64),
    "face31": dict(num_classes=20, image_size=31, channels=(8, 16, 32), dense=64),
    "cifar32": dict(num_classes=10, in_channels=3, image_size=32, channels=(32, 64, 128),
                    dense=256),
    "cifar33": dict(num_classes=10, in_channels=3, image_size=33, channels=(32, 64, 128),
                    dense=256),
}


def _check(result):
    assert result["max_abs_diff_clean"] <= result["tol"], result
    assert result["max_abs_diff_noisy"] <= result["tol"], result
    assert result["rel_diff"] <= 1e-4, result
    assert result["agreement_clean"] == 1.0, result
    # Exact argmax agreement wherever the decision is not a near-tie at float32 precision
    # (none occurred with these seeds: agreement was 1.0 everywhere).
    assert result["mismatches_beyond_tol_noisy"] == 0, result
    assert result["agreement_noisy"] >= 0.999, result
    assert result["ok"]


def test_same_pads_is_xla_same():
    for size in range(1, 40):
        for kernel, stride in ((3, 2), (3, 1), (5, 2), (4, 3)):
            expected = jax.lax.padtype_to_pads((size,), (kernel,), (stride,), "SAME")[0]
            assert ref.same_pads(size, kernel, stride) == tuple(expected), (size, kernel, stride)
    assert ref.same_pads(32, 3, 2) == (0, 1)  # even: all of the padding after
    assert ref.same_pads(31, 3, 2) == (1, 1)


def test_mlp_matches_flax():
    model = _with_random_biases(TabularMLP(11, 2, rngs=nnx.Rngs(0)), seed=1)
    apply_fn, params = _jitted(model)
    module = ref.from_flax(params)
    assert isinstance(module, ref.TorchMLP)
    assert all(t.dtype == torch.float32 for t in module.parameters())
    xs = np.random.default_rng(2).standard_normal((64, 11)).astype(np.float32)
    result = ref.base_predictions_match(apply_fn, params, module, xs, sigma=SIGMA, num_noisy=64)
    _check(result)
    # The model object, its state and the pure dict all give the same module.
    for source in (model, nnx.to_pure_dict(params)):
        again = ref.torch_mlp_from_flax(source)
        np.testing.assert_array_equal(ref.torch_logits(again, xs), ref.torch_logits(module, xs))


@pytest.mark.parametrize("name", sorted(_CNNS))
def test_cnn_matches_flax(name):
    cfg = _CNNS[name]
    model = _with_random_biases(FaceCNN(**cfg, rngs=nnx.Rngs(3)), seed=4)
    apply_fn, params = _jitted(model)
    module = ref.from_flax(params)
    assert isinstance(module, ref.TorchCNN)
    size, chans = cfg["image_size"], cfg.get("in_channels", 1)
    xs = np.random.default_rng(5).uniform(0.0, 1.0, (8, size, size, chans)).astype(np.float32)
    result = ref.base_predictions_match(apply_fn, params, module, xs, sigma=SIGMA, num_noisy=16)
    _check(result)


def test_symmetric_padding_would_be_caught(monkeypatch):
    """Negative control: PyTorch's usual padding=1 (1 before, 1 after) differs from Flax's
    SAME on even sizes, and the comparison notices."""
    model = _with_random_biases(FaceCNN(**_CNNS["face32"], rngs=nnx.Rngs(3)), seed=4)
    apply_fn, params = _jitted(model)
    module = ref.from_flax(params)
    xs = np.random.default_rng(5).uniform(0.0, 1.0, (8, 32, 32, 1)).astype(np.float32)
    monkeypatch.setattr(ref, "same_pads", lambda size, kernel, stride: (1, 1))
    result = ref.base_predictions_match(apply_fn, params, module, xs, sigma=SIGMA, num_noisy=4)
    assert not result["ok"]
    assert result["max_abs_diff_clean"] > 100 * result["tol"]


def test_clopper_pearson_matches_rpjax():
    from statsmodels.stats.proportion import proportion_confint

    for n in (1, 7, 100, 2000):
        for alpha in (1e-3, 0.05):
            ks = np.unique(np.linspace(0, n, 23).astype(int))
            mine = np.array([ref.clopper_pearson_lower(int(k), n, alpha) for k in ks])
            np.testing.assert_allclose(mine, rpjax.stats.clopper_pearson_lower(ks, n, alpha),
                                       rtol=1e-12, atol=0)
            sm = np.array([proportion_confint(int(k), n, alpha=2 * alpha, method="beta")[0]
                           for k in ks])
            np.testing.assert_allclose(mine, np.nan_to_num(sm), rtol=1e-9, atol=1e-15)


def test_certify_reference_agrees_with_rpjax():
    n0, n, alpha = 100, 2000, 1e-3
    model = _with_random_biases(TabularMLP(11, 2, rngs=nnx.Rngs(3)), seed=6)
    apply_fn, params = as_apply_fn(model)
    pool = np.random.default_rng(1).standard_normal((128, 11)).astype(np.float32)
    # Screen with a stream neither certifier uses for inputs with pA well inside (0.5, 1).
    screen = np.asarray(rpjax.sample_counts(apply_fn, params, pool, 12345, num_classes=2,
                                            config=rpjax.SmoothingConfig(sigma=SIGMA, n=n)))
    p_hat = screen.max(axis=1) / n
    inside = np.flatnonzero((p_hat >= 0.75) & (p_hat <= 0.95))[:16]
    assert len(inside) == 16
    # Far from the boundary: the 4 largest-margin inputs pushed out 4x (logit gaps 6 to 10,
    # unanimous in 10^6 samples each when this test was written).
    logits = np.asarray(apply_fn(params, pool))
    far = 4.0 * pool[np.argsort(-np.abs(logits[:, 0] - logits[:, 1]))[:4]]
    xs = np.concatenate([pool[inside], far])
    expected = np.concatenate([screen[inside].argmax(1), np.asarray(apply_fn(params, far))
                               .argmax(1)])

    mine = ref.certify_reference(ref.from_flax(params), xs, sigma=SIGMA, n0=n0, n=n,
                                 alpha=alpha, batch_size=512, seed=0)
    theirs = rpjax.certify(apply_fn, params, xs, 0, num_classes=2,
                           config=rpjax.SmoothingConfig(sigma=SIGMA, n0=n0, n=n, alpha=alpha))

    b = len(xs)
    assert mine["counts"].shape == (b, 2) and mine["selection_counts"].shape == (b, 2)
    np.testing.assert_array_equal(mine["counts"].sum(1), n)
    np.testing.assert_array_equal(mine["selection_counts"].sum(1), n0)
    assert mine["forward_passes"] == b * (n0 + n)
    assert mine["forward_calls"] == b * (1 + 4)  # ceil(100 / 512) + ceil(2000 / 512)
    assert mine["seconds"] > 0 and mine["fwd_per_s"] > 0

    # Same labels, both certified, on every selected input.
    np.testing.assert_array_equal(mine["label"], theirs.label)
    np.testing.assert_array_equal(mine["label"], expected)

    # pA_lower and the radius are rpjax's statistics of the reference's own counts.
    n_top = np.take_along_axis(mine["counts"], mine["label"][:, None], axis=1)[:, 0]
    np.testing.assert_allclose(mine["pa_lower"], rpjax.stats.clopper_pearson_lower(n_top, n,
                                                                                   alpha),
                               rtol=1e-12)
    np.testing.assert_allclose(mine["radius"],
                               rpjax.stats.certified_radius(mine["pa_lower"], SIGMA),
                               rtol=1e-10)

    # Unanimous inputs: identical counts, so identical pA_lower and radius (the largest n
    # can certify).
    k = len(inside)
    np.testing.assert_array_equal(mine["counts"][k:], theirs.counts[k:])
    # rpjax's radius is Cohen's less the bound on the rounding of the noisy float32 inputs
    # (docs/guarantee.md, section 1b; about 1e-6 here), which the reference does not apply
    np.testing.assert_allclose(mine["radius"][k:], theirs.radius[k:], rtol=1e-5)
    assert np.all(theirs.radius[k:] < mine["radius"][k:])
    np.testing.assert_allclose(mine["radius"][k:], rpjax.stats.max_radius(n, alpha, SIGMA),
                               rtol=1e-12)

    # pA inside (0.5, 1): the two counts of the top class are independent Binomial(n, pA);
    # a two-sample z statistic stays below 4.5 (Bonferroni over 16 inputs, p ~ 1e-4).
    top = theirs.label[:k]
    a = mine["counts"][np.arange(k), top].astype(float)
    c = theirs.counts[np.arange(k), top].astype(float)
    pooled = (a + c) / (2 * n)
    z = (a - c) / np.sqrt(2 * n * pooled * (1 - pooled))
    assert np.all(np.abs(z) < 4.5), z
    # Radii within a few percent: each within 25% (about 4 standard deviations of the
    # difference at n = 2000), and on average within 5%.
    rel = (mine["radius"][:k] - theirs.radius[:k]) / theirs.radius[:k]
    assert np.all(np.abs(rel) < 0.25), rel
    assert abs(rel.mean()) < 0.05, rel


def test_certify_reference_cnn_and_determinism():
    model = _with_random_biases(FaceCNN(**_CNNS["face31"], rngs=nnx.Rngs(3)), seed=4)
    xs = np.random.default_rng(7).uniform(0.0, 1.0, (2, 31, 31, 1)).astype(np.float32)
    kw = dict(sigma=SIGMA, n0=16, n=100, alpha=0.01, batch_size=32)
    first = ref.certify_reference(model, xs, seed=3, **kw)  # a Flax model is converted
    module = ref.from_flax(model)
    again = ref.certify_reference(module, xs, seed=3, **kw)
    for key in ("label", "radius", "pa_lower", "counts", "selection_counts"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["counts"].shape == (2, 20)
    np.testing.assert_array_equal(first["counts"].sum(1), 100)
    np.testing.assert_array_equal(first["selection_counts"].sum(1), 16)
    certified = first["label"] >= 0
    np.testing.assert_array_equal(first["radius"][~certified], 0.0)
    assert np.all(first["pa_lower"][certified] > 0.5)
    other = ref.certify_reference(module, xs, seed=4, **kw)
    assert not np.array_equal(other["counts"], first["counts"])
