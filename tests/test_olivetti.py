"""The bundled Olivetti faces, the user-data face loaders and the identity split.

The loaders' error cases are in `tests/test_bad_inputs_data.py`.
"""

import hashlib
from importlib import resources

import matplotlib.pyplot as plt
import numpy as np
import pytest

from rpjax._src.data import olivetti


@pytest.fixture(scope="module")
def faces():
    return olivetti.load_olivetti()


def test_bundled_file_matches_recorded_sha256():
    raw = resources.files("rpjax.data").joinpath("_files/olivettifaces.mat").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == olivetti.SHA256
    assert "AT&T Laboratories Cambridge" in olivetti.__doc__


def test_shapes_dtypes_and_range(faces):
    assert faces.images.shape == (400, 64, 64, 1)
    assert faces.images.dtype == np.float32
    assert faces.labels.shape == (400,) and faces.labels.dtype == np.int32
    assert faces.images.min() >= 0.0 and faces.images.max() <= 1.0
    assert faces.images.max() > 0.9  # scaled by 255, not left in 0..1/255
    np.testing.assert_array_equal(faces.labels, np.arange(400) // 10)


def test_pixels_match_the_raw_column_major_layout(faces):
    from scipy import io as sio

    path = resources.files("rpjax.data").joinpath("_files/olivettifaces.mat")
    raw = sio.loadmat(str(path))["faces"]
    i = 137
    np.testing.assert_allclose(faces.images[i, :, :, 0],
                               raw[:, i].reshape(64, 64, order="F") / 255.0, atol=1e-7)


def test_images_are_upright(faces):
    m = faces.images.mean(axis=0)[..., 0]
    # A face is nearly left-right symmetric, not top-bottom symmetric.
    assert np.abs(m - m[:, ::-1]).mean() < 0.5 * np.abs(m - m[::-1, :]).mean()
    # Upright, not upside down: the darkest points of the mean face are the pupils, in the
    # upper half, one on each side.
    row, col = np.unravel_index(m.argmin(), m.shape)
    assert 8 <= row < 28 and (col < 28 or col >= 36)


def test_same_identity_images_are_closer(faces):
    x = faces.images.reshape(400, -1).astype(np.float64)
    sq = (x * x).sum(1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    same = faces.labels[:, None] == faces.labels[None, :]
    off_diag = ~np.eye(400, dtype=bool)
    within, between = dist[same & off_diag].mean(), dist[~same].mean()
    assert within < 0.8 * between


@pytest.mark.parametrize("num_private,held_out,seed", [(20, 3, 0), (2, 9, 1), (39, 0, 7)])
def test_split_counts_and_disjointness(faces, num_private, held_out, seed):
    labels = faces.labels
    s = olivetti.split_identities(labels, num_private=num_private,
                                  held_out_per_identity=held_out, seed=seed)
    assert len(s.private_identities) == num_private
    assert len(s.public_identities) == 40 - num_private
    assert np.all(np.diff(s.private_identities) > 0)
    assert not set(s.private_identities) & set(s.public_identities)
    assert set(s.private_identities) | set(s.public_identities) == set(range(40))
    assert len(s.test_idx) == num_private * held_out
    assert len(s.train_idx) == num_private * (10 - held_out)
    assert len(s.public_idx) == (40 - num_private) * 10
    assert not set(s.train_idx) & set(s.test_idx)
    parts = np.concatenate([s.train_idx, s.test_idx, s.public_idx])
    np.testing.assert_array_equal(np.sort(parts), np.arange(400))
    assert set(labels[s.train_idx]) == set(s.private_identities)
    assert set(labels[s.test_idx]) <= set(s.private_identities)
    assert set(labels[s.public_idx]) == set(s.public_identities)
    _, per_identity = np.unique(labels[s.test_idx], return_counts=True)
    assert np.all(per_identity == held_out)
    np.testing.assert_array_equal(s.relabel[s.private_identities], np.arange(num_private))
    np.testing.assert_array_equal(s.relabel[s.public_identities], -1)
    assert s.relabel.shape == (40,)
    y = s.relabel[labels[s.train_idx]]
    assert y.min() == 0 and y.max() == num_private - 1


def test_split_is_seeded(faces):
    a = olivetti.split_identities(faces.labels, seed=3)
    b = olivetti.split_identities(faces.labels, seed=3)
    c = olivetti.split_identities(faces.labels, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.private_identities, c.private_identities)
    # The held-out images are a random choice, not the first ones of each identity.
    first = np.concatenate([np.flatnonzero(faces.labels == i)[:3] for i in a.private_identities])
    assert not np.array_equal(np.sort(first), a.test_idx)


@pytest.mark.parametrize("kwargs,name", [
    (dict(num_private=1), "num_private"),
    (dict(num_private=40), "num_private"),
    (dict(num_private=2.5), "num_private"),
    (dict(held_out_per_identity=10), "held_out_per_identity"),
    (dict(held_out_per_identity=-1), "held_out_per_identity"),
    (dict(seed=-1), "seed"),
])
def test_split_rejects_bad_arguments(faces, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        olivetti.split_identities(faces.labels, **kwargs)


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 8, 5), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2, 2])
    np.savez(tmp_path / "f.npz", images=images, labels=labels)
    data = olivetti.load_faces(tmp_path / "f.npz")
    assert data.images.shape == (6, 8, 5, 1) and data.images.dtype == np.float32
    np.testing.assert_allclose(data.images[..., 0], images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(data.labels, labels)
    assert data.labels.dtype == np.int32
    # Float images in [0, 1] with a channel axis are kept as they are.
    rgb = rng.uniform(size=(3, 4, 4, 3)).astype(np.float64)
    np.savez(tmp_path / "g.npz", images=rgb, labels=np.arange(3))
    np.testing.assert_allclose(olivetti.load_faces(tmp_path / "g.npz").images, rgb,
                               rtol=1e-6)


def test_folder_loader(tmp_path):
    rng = np.random.default_rng(1)
    expected = {}
    for name, count in (("bob", 2), ("alice", 3)):
        (tmp_path / name).mkdir()
        for j in range(count):
            img = rng.uniform(size=(6, 5)).astype(np.float32)
            plt.imsave(tmp_path / name / f"{j}.png", img, cmap="gray", vmin=0.0, vmax=1.0)
            expected[(name, j)] = img
    (tmp_path / "alice" / "notes.txt").write_text("ignored")
    rgb = rng.uniform(size=(6, 5, 3)).astype(np.float32)
    plt.imsave(tmp_path / "bob" / "rgb.png", rgb)
    data = olivetti.load_faces(tmp_path)
    assert data.images.shape == (6, 6, 5, 1) and data.images.dtype == np.float32
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1])  # alice < bob (sorted)
    # 8-bit PNGs through a 256-entry colormap: pixels match to within two grey levels.
    np.testing.assert_allclose(data.images[1, ..., 0], expected[("alice", 1)], atol=2 / 255)
    np.testing.assert_allclose(data.images[4, ..., 0], expected[("bob", 1)], atol=2 / 255)
    np.testing.assert_allclose(data.images[5, ..., 0], rgb.mean(-1), atol=2 / 255)
