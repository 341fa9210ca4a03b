"""The attacker's generator prior: a PCA face model fitted on public identities only.

Model-inversion attacks (BREP-MI, MI-Face) search a low-dimensional latent space instead of
pixel space. The prior is fitted on the *public* identities, never on the private ones it is
used to reconstruct. With latents `z ~ N(0, I_k)`,

    image = clip(mean + (z * scales) @ components, 0, 1)

is a realistic face: `components` are the top-k principal directions of the public images and
`scales` the data's standard deviation along each, so the latent is whitened.
`prior.decode(z)` is pure `jax.numpy` (jit / vmap / grad); pass `clip=False` for gradients
through the unclipped image.

`fit_vae_prior` trains a small dense variational autoencoder (Flax NNX, optax, with the
training loop `rpjax.models.optimize`) as a learned alternative. Both priors have the same
methods: `decode(z)`, `encode(images)` and `sample(key, num)`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from rpjax._src import validate as _validate
from rpjax.models import optimize


def _shape(prior) -> tuple[int, ...]:
    shape = tuple(prior.image_shape)
    if not all(isinstance(s, int | np.integer) for s in shape):
        raise TypeError("prior.image_shape must be Python ints, got a traced value: close over "
                        "the prior, e.g. jax.jit(lambda z: prior.decode(z)), instead of passing "
                        "it as a jit argument.")
    return tuple(int(s) for s in shape)


def _check_latent(prior, z) -> jax.Array:
    z = jnp.asarray(z)
    k = prior.latent_dim
    if z.ndim < 1 or z.shape[-1] != k:
        raise ValueError(f"z must have shape [..., k] with k={k}, got shape {z.shape}.")
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.float32)
    return z


def _decode(prior: PCAPrior | VAEPrior, z: jax.typing.ArrayLike, *,
            clip: bool = True) -> jax.Array:
    """Latents -> images; pure `jax.numpy`, so it can be jitted, vmapped and differentiated.

    Under `jit`, close over the prior (`jax.jit(lambda z: prior.decode(z))`) rather than
    passing it as an argument: `image_shape` is static metadata, not an array.

    Args:
      z: `[..., k]` floating latents; `z ~ N(0, I_k)` gives realistic faces.
      clip: clip pixels to [0, 1] (for release and display). With `clip=False` the PCA image
        is the unclipped linear map, whose gradient never vanishes. A `VAEPrior` ends in a
        sigmoid, always in (0, 1), so `clip` changes nothing for it.

    Returns:
      `[..., *image_shape]` images, pixels in [0, 1] when `clip` (float32 for float32 z).

    Raises:
      ValueError: if the last axis of `z` is not k.
      TypeError: if the prior itself was passed through `jit` (close over it instead).
    """
    if isinstance(prior, VAEPrior):
        return _vae_decode(prior, z, clip)
    z = _check_latent(prior, z)
    flat = prior.mean + jnp.matmul(z * prior.scales, prior.components)
    if clip:
        flat = jnp.clip(flat, 0.0, 1.0)
    return flat.reshape(*z.shape[:-1], *_shape(prior))


def _encode(prior: PCAPrior | VAEPrior, images: jax.typing.ArrayLike) -> jax.Array:
    """Images -> latents: the whitened projection, `encode(decode(z, clip=False)) == z` (a
    `VAEPrior` returns its encoder's mean).

    Args:
      images: `[..., *image_shape]` floating, pixels in [0, 1].

    Returns:
      `[..., k]` latents; for a `PCAPrior`, `prior.decode(prior.encode(x), clip=False)` is
      the orthogonal projection of `x` onto the prior's affine subspace (its best rank-k
      reconstruction).

    Raises:
      ValueError: if the trailing axes of `images` are not `image_shape`.
    """
    x = jnp.asarray(images)
    shape = _shape(prior)
    nd = len(shape)
    if x.ndim < nd or tuple(x.shape[x.ndim - nd:]) != shape:
        raise ValueError(f"images must have shape [..., *image_shape] with image_shape={shape}, "
                         f"got shape {x.shape}.")
    flat = x.reshape(*x.shape[:x.ndim - nd], -1)
    if isinstance(prior, VAEPrior):
        return _vae_encode(prior, flat)
    return jnp.matmul(flat - prior.mean, prior.components.T) / prior.scales


def _sample(prior: PCAPrior | VAEPrior, key: jax.Array | int, num: int) -> jax.Array:
    """Draws `num` standard-normal latents `[num, k]` float32 from `key` (typed key or seed)."""
    key = _validate.key("key", key)
    num = _validate.integer("num", num, minimum=1)
    return jax.random.normal(key, (num, prior.latent_dim), jnp.float32)


class PCAPrior(NamedTuple):
    """A whitened PCA generator, `prior.decode(z)`; see the module docstring.

    Under `jit`, close over the prior (`jax.jit(lambda z: prior.decode(z))`) rather than
    passing it as an argument: `image_shape` is static metadata, not an array.

    Attributes:
      mean: `[D]` float32 mean image, flattened (pixels in [0, 1]).
      components: `[k, D]` float32 principal directions, orthonormal rows, in decreasing
        order of variance.
      scales: `[k]` float32 std of the fitted images along each component (singular value
        / sqrt(N - 1)), pixels; all > 0.
      image_shape: the shape of one image, e.g. `(64, 64, 1)`; `D = prod(image_shape)`.
    """

    mean: np.ndarray
    components: np.ndarray
    scales: np.ndarray
    image_shape: tuple[int, ...]

    @property
    def latent_dim(self) -> int:
        """The latent dimension k."""
        return int(self.components.shape[0])

    decode = _decode
    encode = _encode
    sample = _sample


def _images(name: str, images: Any) -> np.ndarray:
    """Checks `[N, *image_shape]` floating finite images with N >= 2; returns float64."""
    _validate.inputs(name, images)
    x = np.asarray(images, np.float64)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape [N, H, W, C] (or [N, D]), got {x.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images to fit a prior, got {x.shape[0]}.")
    return x


def fit_pca_prior(images: Any, k: int) -> PCAPrior:
    """Fits a whitened PCA prior with `k` components (float64 SVD on the host).

    Args:
      images: `[N, H, W, C]` (any `[N, *image_shape]`) floating, pixels in [0, 1]; the public
        identities' images.
      k: latent dimension, in [1, min(N - 1, D)] (centring removes one dimension, so at most
        N - 1 directions carry variance), and at most the rank of the centred images.

    Returns:
      `PCAPrior`. Component signs are fixed (largest-magnitude entry positive), so the fit
      is deterministic.

    Raises:
      TypeError, ValueError: on bad `images` or `k`, naming it.

    Examples:
      >>> x = np.random.default_rng(0).uniform(size=(10, 4, 4, 1)).astype(np.float32)
      >>> prior = fit_pca_prior(x, k=3)
      >>> prior.components.shape, prior.image_shape
      ((3, 16), (4, 4, 1))
    """
    x = _images("images", images)
    n, image_shape = x.shape[0], tuple(int(s) for s in x.shape[1:])
    flat = x.reshape(n, -1)
    d = flat.shape[1]
    k = _validate.integer("k", k, minimum=1)
    if k > min(n - 1, d):
        raise ValueError(f"k must be <= min(N - 1, D) = min({n - 1}, {d}) for {n} images of "
                         f"{d} pixels, got k={k}.")
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    vt = vt[:k]
    s = s[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    if s[-1] <= 1e-6 * max(s[0], 1e-12):
        raise ValueError(f"k must not exceed the rank of the centred images (singular value "
                         f"{k} is {s[-1]:.3g}), got k={k}; use a smaller k.")
    return PCAPrior(mean=mean.astype(np.float32), components=vt.astype(np.float32),
                    scales=(s / np.sqrt(n - 1)).astype(np.float32), image_shape=image_shape)



# A learned alternative: a small dense VAE.
class VAEPrior(NamedTuple):
    """A trained VAE generator; `prior.decode(z)` maps `z ~ N(0, I_k)` to faces.

    Attributes:
      graphdef: the `nnx.GraphDef` of the `_VAE` module (static).
      state: its `nnx.State` (the trained parameters).
      image_shape: the shape of one image; `D = prod(image_shape)`.
      latent_dim: the latent dimension k.
      losses: `[steps]` float32 training loss per step: the negative ELBO per image, in nats,
        with a Bernoulli-logit likelihood on [0, 1] pixels (a cross-entropy, not 0 at best).
    """

    graphdef: Any
    state: Any
    image_shape: tuple[int, ...]
    latent_dim: int
    losses: np.ndarray

    decode = _decode
    encode = _encode
    sample = _sample


class _VAE(nnx.Module):
    """Dense VAE: D -> hidden -> (mu, log variance) [k]; k -> hidden -> D pixel logits."""

    def __init__(self, d: int, k: int, hidden: int, *, rngs: nnx.Rngs):
        self.enc = nnx.Linear(d, hidden, rngs=rngs)
        self.mu = nnx.Linear(hidden, k, rngs=rngs)
        self.logvar = nnx.Linear(hidden, k, rngs=rngs)
        self.dec = nnx.Linear(k, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, d, rngs=rngs)

    def encode(self, x):
        h = jax.nn.gelu(self.enc(x))
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z):
        return self.out(jax.nn.gelu(self.dec(z)))


def _vae_decode(prior, z, clip):
    z = _check_latent(prior, z)
    logits = nnx.merge(prior.graphdef, prior.state).decode_logits(z)
    flat = jax.nn.sigmoid(logits)  # always in (0, 1); `clip` has nothing left to do
    del clip
    return flat.reshape(*z.shape[:-1], *_shape(prior))


def _vae_encode(prior, flat):
    return nnx.merge(prior.graphdef, prior.state).encode(flat)[0]


def fit_vae_prior(images: Any, k: int, key: jax.Array | int, *, steps: int = 2000,
                  hidden: int = 256, batch_size: int = 64,
                  learning_rate: float = 1e-3) -> VAEPrior:
    """Trains a dense VAE prior (Bernoulli-logit likelihood on [0, 1] pixels) with Adam.

    An optional alternative to `fit_pca_prior`. On the ~200 public Olivetti images (32 x 32)
    it reconstructs held-out faces about 2x worse than a 40-component PCA prior (squared
    error 8.7 vs 4.0 per image with k = 16, 2000 steps), so PCA stays the default.

    Args:
      images: `[N, H, W, C]` floating, pixels in [0, 1]; the public identities' images.
      k: latent dimension >= 1.
      key: typed key or int seed; initialization, batches and reparameterization noise.
      steps: Adam steps; hidden: width of the single hidden layer of encoder and decoder;
      batch_size: images per step (capped at N); learning_rate: Adam's step size.

    Returns:
      `VAEPrior`; decode with `prior.decode(z)`.

    Raises:
      TypeError, ValueError: on a bad argument, naming it.
    """
    x = _images("images", images)
    if x.min() < 0.0 or x.max() > 1.0:
        raise ValueError(f"images must lie in [0, 1], got min {x.min()} and max {x.max()}.")
    k = _validate.integer("k", k, minimum=1)
    key = _validate.key("key", key)
    steps = _validate.integer("steps", steps, minimum=1)
    hidden = _validate.integer("hidden", hidden, minimum=1)
    batch = min(_validate.integer("batch_size", batch_size, minimum=1), x.shape[0])
    lr = _validate.positive("learning_rate", learning_rate)
    flat = jnp.asarray(x.reshape(x.shape[0], -1), jnp.float32)
    init_key, train_key = jax.random.split(key)
    model = _VAE(flat.shape[1], k, hidden, rngs=nnx.Rngs(init_key))
    graphdef, state = nnx.split(model)
    tx = optax.adam(lr)

    def loss_fn(state, xb, noise):
        m = nnx.merge(graphdef, state)
        mu, logvar = m.encode(xb)
        z = mu + jnp.exp(0.5 * logvar) * noise
        logits = m.decode_logits(z)
        rec = optax.sigmoid_binary_cross_entropy(logits, xb).sum(-1)
        kl = 0.5 * (jnp.exp(logvar) + mu**2 - 1.0 - logvar).sum(-1)
        return (rec + kl).mean()

    def grad_step(state, i, key):  # key = fold_in(train_key, i)
        kb, kn = jax.random.split(key)
        idx = jax.random.choice(kb, flat.shape[0], (batch,), replace=False)
        return jax.value_and_grad(loss_fn)(state, flat[idx], jax.random.normal(kn, (batch, k)))

    state, losses = optimize(state, grad_step, tx, train_key, steps=steps)
    return VAEPrior(graphdef=graphdef, state=state, image_shape=tuple(x.shape[1:]),
                    latent_dim=k, losses=np.asarray(losses))
