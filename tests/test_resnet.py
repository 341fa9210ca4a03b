"""The Flax NNX ResNets: architecture, inference-mode batch norm, and certification."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rpjax
from rpjax._src.models.resnet import ResNet
from rpjax.models import as_apply_fn, cifar_resnet, imagenet_resnet


def _rngs():
    # RngBitGenerator keys: initializing many parameter shapes eagerly compiles one sampler
    # per shape, several times faster than with threefry keys on a CPU
    return nnx.Rngs(jax.random.key(0, impl="unsafe_rbg"))


def _tiny_cifar(**kw):
    return cifar_resnet(8, width=4, rngs=_rngs(), **kw)


def _tiny_imagenet(**kw):
    return imagenet_resnet((1, 1), width=4, num_classes=7, rngs=_rngs(), **kw)


@pytest.fixture(scope="module")
def tiny_cifar():
    return _tiny_cifar()


def _n_params(make):
    abstract = nnx.eval_shape(make)  # shapes only: nothing is initialized or run
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


@pytest.mark.slow
def test_full_size_parameter_counts_match_the_reference_architectures():
    # torchvision's resnet50 has 25,557,032 parameters; the CIFAR ResNet-110 of Cohen et al.
    # (bearpaw/pytorch-classification's resnet with depth 110) 1,730,714
    assert _n_params(lambda: imagenet_resnet(rngs=nnx.Rngs(0))) == 25_557_032
    assert _n_params(lambda: cifar_resnet(110, rngs=nnx.Rngs(0))) == 1_730_714


@pytest.mark.parametrize("name,shape,classes", [
    ("cifar", (16, 16, 3), 10),
    pytest.param("imagenet", (32, 32, 3), 7, marks=pytest.mark.slow),
])
def test_logits_shape_and_rows_are_independent(request, name, shape, classes):
    model = request.getfixturevalue("tiny_cifar") if name == "cifar" else _tiny_imagenet()
    x = jax.random.uniform(jax.random.key(0), (5, *shape))
    apply_fn, params = as_apply_fn(model)
    run = jax.jit(apply_fn)
    batch = np.asarray(run(params, x))
    assert batch.shape == (5, classes) and batch.dtype == np.float32
    assert np.all(np.isfinite(batch))
    alone = np.concatenate([np.asarray(run(params, x[i:i + 1])) for i in range(5)])
    scale = np.abs(batch).max()
    np.testing.assert_allclose(alone, batch, rtol=1e-5, atol=1e-5 * scale)

    # the same check fails with batch statistics (training mode): it can catch a model
    # whose rows depend on each other
    training = nnx.clone(model)
    training.train()
    train_fn, train_params = as_apply_fn(training)
    run_train = jax.jit(train_fn)
    together = np.asarray(run_train(train_params, x))
    one = np.asarray(run_train(train_params, x[:1]))
    assert np.abs(together[0] - one[0]).max() > 1e-3 * np.abs(together).max()


@pytest.mark.slow
def test_normalization_is_the_first_operation():
    """Cohen et al.'s normalization layer: the model sees `(x - mean) / std` per channel."""
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    model = cifar_resnet(8, width=4, mean=mean, std=std, rngs=_rngs())
    plain = cifar_resnet(8, width=4, mean=(0.0,) * 3, std=(1.0,) * 3, rngs=_rngs())
    x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 3))
    z = (x - jnp.asarray(mean)) / jnp.asarray(std)
    forward = nnx.jit(lambda m, v: m(v))
    np.testing.assert_allclose(np.asarray(forward(model, x)), np.asarray(forward(plain, z)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_zero_init_residual_blocks_start_as_their_shortcut():
    model = _tiny_cifar(zero_init_residual=True)
    block = model.blocks[0]  # 4 -> 4 channels, stride 1: identity shortcut
    assert block.downsample is None
    h = jax.random.normal(jax.random.key(2), (2, 8, 8, 4))
    out = nnx.jit(lambda b, v: b(v))(block, h)
    np.testing.assert_allclose(np.asarray(out), np.asarray(jax.nn.relu(h)), atol=1e-6)


def test_bad_configurations_name_the_parameter():
    with pytest.raises(ValueError, match="depth"):
        cifar_resnet(12, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="block"):
        ResNet(10, block="wide", stage_blocks=(1,), widths=(4,), stem="cifar", stem_width=4,
               mean=(0.0,) * 3, std=(1.0,) * 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="std"):
        cifar_resnet(8, std=(1.0, 0.0, 1.0), rngs=nnx.Rngs(0))


def test_certify_runs_on_a_tiny_resnet_and_an_input_keeps_its_certificate_in_a_batch(
        tiny_cifar):
    apply_fn, params = as_apply_fn(tiny_cifar)
    # one compiled program per architecture: other weights, the same hashable apply_fn
    assert as_apply_fn(_tiny_cifar(zero_init_residual=True))[0] is apply_fn
    xs = jax.random.uniform(jax.random.key(3), (3, 16, 16, 3))
    kw = dict(num_classes=10, config=rpjax.SmoothingConfig(sigma=0.25, n0=16, n=200, alpha=0.01),
              placement=rpjax.Placement(batch_size=1))
    cert = rpjax.certify(apply_fn, params, xs, 7, **kw)
    np.testing.assert_array_equal(cert.counts.sum(axis=1), 200)
    np.testing.assert_array_equal(cert.selection_counts.sum(axis=1), 16)
    assert np.all((cert.label == rpjax.ABSTAIN) | ((cert.label >= 0) & (cert.label < 10)))
    alone = rpjax.certify(apply_fn, params, xs[2:], 7, ids=[2], **kw)
    np.testing.assert_array_equal(alone.counts[0], cert.counts[2])
    np.testing.assert_array_equal(alone.label[0], cert.label[2])
