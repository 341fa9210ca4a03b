"""The attacker's generator prior (PCA, and the optional VAE) fitted on public identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpjax._src.attacks import prior as prior_lib
from rpjax._src.data import olivetti


@pytest.fixture(scope="module")
def split_faces():
    faces = olivetti.load_olivetti()
    split = olivetti.split_identities(faces.labels, num_private=20, seed=0)
    return faces.images[split.public_idx], faces.images[split.test_idx]


@pytest.fixture(scope="module")
def prior(split_faces):
    return prior_lib.fit_pca_prior(split_faces[0], k=40)


def test_fields_shapes_and_orthonormal_components(prior):
    assert prior.mean.shape == (4096,) and prior.mean.dtype == np.float32
    assert prior.components.shape == (40, 4096) and prior.components.dtype == np.float32
    assert prior.scales.shape == (40,) and prior.scales.dtype == np.float32
    assert prior.image_shape == (64, 64, 1) and prior.latent_dim == 40
    c = prior.components.astype(np.float64)
    np.testing.assert_allclose(c @ c.T, np.eye(40), atol=1e-5)
    assert np.all(prior.scales > 0) and np.all(np.diff(prior.scales) <= 0)


def test_matches_a_numpy_covariance_reference(split_faces, prior):
    x = split_faces[0].reshape(len(split_faces[0]), -1).astype(np.float64)
    np.testing.assert_allclose(prior.mean, x.mean(0), atol=1e-6)
    xc = x - x.mean(0)
    # The std of the data along each component is its scale; the components are uncorrelated.
    proj = xc @ prior.components.astype(np.float64).T
    np.testing.assert_allclose(proj.std(0, ddof=1), prior.scales, rtol=1e-4)
    cov = np.cov(proj, rowvar=False) / np.outer(prior.scales, prior.scales)
    np.testing.assert_allclose(cov, np.eye(40), atol=1e-4)
    # Encoded training images are whitened: mean 0, covariance I.
    z = np.asarray(prior.encode(split_faces[0]), np.float64)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(40), atol=1e-3)


@pytest.mark.slow
def test_encode_inverts_unclipped_decode(prior):
    z = prior.sample(jax.random.key(1), 32)
    np.testing.assert_allclose(prior.encode(prior.decode(z, clip=False)),
                               z, atol=2e-3)
    zz = z.reshape(4, 8, 40)  # arbitrary leading axes
    assert prior.decode(zz).shape == (4, 8, 64, 64, 1)
    assert prior.encode(prior.decode(zz, clip=False)).shape == (4, 8, 40)


@pytest.mark.slow
def test_reconstructs_held_out_private_faces_far_better_than_the_mean(split_faces, prior):
    test = split_faces[1]
    recon = prior.decode(prior.encode(test), clip=False)
    err = float(jnp.mean(jnp.sum((recon - test) ** 2, axis=(1, 2, 3))))
    mean_err = float(np.mean(np.sum((prior.mean.reshape(64, 64, 1) - test) ** 2, axis=(1, 2, 3))))
    assert err < 0.4 * mean_err  # measured: 20.4 vs 74.4 (ratio 0.27)
    # More components reconstruct better (nested subspaces).
    small = prior_lib.fit_pca_prior(split_faces[0], k=10)
    err10 = float(jnp.mean(jnp.sum(
        (small.decode(small.encode(test), clip=False) - test) ** 2,
        axis=(1, 2, 3))))
    assert err < err10 < mean_err


def test_samples_decode_to_images_in_the_unit_interval(prior, split_faces):
    z = prior.sample(0, 64)
    assert z.shape == (64, 40) and z.dtype == jnp.float32
    np.testing.assert_array_equal(z, prior.sample(jax.random.key(0), 64))
    images = prior.decode(z)
    assert images.shape == (64, 64, 64, 1) and images.dtype == jnp.float32
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    raw = prior.decode(z, clip=False)
    assert float(raw.min()) < 0.0 or float(raw.max()) > 1.0  # clipping did something
    # Samples look like the public faces on average: per-pixel mean close to the data mean.
    gap = np.abs(np.asarray(images).mean(0) - split_faces[0].mean(0)).mean()
    assert gap < 0.05


@pytest.mark.slow
def test_decode_is_jittable_vmappable_and_differentiable(prior):
    z = prior.sample(2, 5)
    jitted = jax.jit(lambda zi: prior.decode(zi))
    np.testing.assert_allclose(jitted(z), prior.decode(z), atol=1e-6)
    vmapped = jax.vmap(lambda zi: prior.decode(zi, clip=False))(z)
    np.testing.assert_allclose(vmapped, prior.decode(z, clip=False), atol=1e-6)

    def brightness(zi):
        return prior.decode(zi, clip=False).mean()

    grad = jax.jit(jax.grad(brightness))(z[0])
    assert grad.shape == (40,) and bool(jnp.all(jnp.isfinite(grad)))
    with pytest.raises(TypeError, match="close over the prior"):
        jax.jit(prior_lib.PCAPrior.decode)(prior, z)
    # The image is linear in z, so the gradient is the scaled mean of each component.
    expected = prior.scales * prior.components.mean(axis=1)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_bad_arguments_name_the_parameter(split_faces, prior):
    public = split_faces[0]
    for k in (len(public), 10_000, 0):
        with pytest.raises(ValueError, match="k"):
            prior_lib.fit_pca_prior(public, k=k)
    with pytest.raises(TypeError, match="k"):
        prior_lib.fit_pca_prior(public, k=4.0)
    with pytest.raises(ValueError, match="k must not exceed the rank"):
        prior_lib.fit_pca_prior(np.repeat(public[:3], 4, axis=0), k=5)
    with pytest.raises(TypeError, match="images"):
        prior_lib.fit_pca_prior((public * 255).astype(np.uint8), k=5)
    with pytest.raises(ValueError, match="z"):
        prior.decode(jnp.zeros((3, 39)))
    with pytest.raises(ValueError, match="images"):
        prior.encode(jnp.zeros((3, 32, 32, 1)))
    with pytest.raises(ValueError, match="num"):
        prior.sample(0, 0)


@pytest.mark.slow
def test_vae_prior_trains_and_decodes(split_faces):
    public = split_faces[0].reshape(-1, 32, 2, 32, 2, 1).mean(axis=(2, 4))  # 32 x 32 pixels
    vae = prior_lib.fit_vae_prior(public, 8, jax.random.key(0), steps=300, hidden=64)
    assert vae.latent_dim == 8 and vae.losses.shape == (300,)
    assert vae.losses[-30:].mean() < vae.losses[:30].mean() - 20.0  # nats per image
    # It has learned something: its reconstructions beat the mean face (measured 0.0088 vs
    # 0.0155 mean squared error per pixel).
    recon = vae.decode(vae.encode(public))
    assert float(jnp.mean((recon - public) ** 2)) < 0.75 * np.mean((public - public.mean(0)) ** 2)
    z = vae.sample(1, 6)
    images = vae.decode(z)
    assert images.shape == (6, 32, 32, 1)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert vae.encode(public[:4]).shape == (4, 8)
    grad = jax.grad(lambda zi: vae.decode(zi, clip=False).mean())(z[0])
    assert grad.shape == (8,) and bool(jnp.all(jnp.isfinite(grad)))
    # Deterministic given the key.
    again = prior_lib.fit_vae_prior(public, 8, 0, steps=300, hidden=64)
    np.testing.assert_allclose(again.losses, vae.losses, rtol=1e-5)
