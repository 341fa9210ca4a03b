"""The Olivetti faces (bundled), loaders for user face data, and an identity split.

The bundled file is the Olivetti face database of AT&T Laboratories Cambridge (credit:
"AT&T Laboratories Cambridge"): 40 subjects x 10 grayscale images of 64 x 64 pixels, the
exact `olivettifaces.mat` that scikit-learn's `fetch_olivetti_faces` downloads
(sha256 b1988d02...534d; provenance in `rpjax/data/_files/PROVENANCE.md`).

Every loader returns a `FaceData`: float32 images `[N, H, W, C]` with pixels in [0, 1] and
int32 identity labels `[N]`. User arrays in `[N, C, H, W]` order are accepted with
`layout="NCHW"`; a 4-D shape that does not say which axis holds the channels is refused.
`split_identities` chooses the private identities (the target model's classes, attacked by
model inversion) and leaves the others public (the attacker's generator prior is trained on
them).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from importlib import resources
from typing import Any, NamedTuple

import numpy as np

from rpjax._src import validate as _validate

SHA256 = "b1988d02c72fe5b8ee82b5ef3bb7982eafc74f1e1ff0ae0ade35061ad0af534d"
CREDIT = "AT&T Laboratories Cambridge"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".pgm")
LAYOUTS = ("NHWC", "NCHW")
CHANNELS = (1, 3)  # grayscale, RGB


class FaceData(NamedTuple):
    """Face images with identity labels.

    Attributes:
      images: `[N, H, W, C]` float32 pixels in [0, 1]; row 0 is the top of the face.
      labels: `[N]` int32 identity labels, >= 0.
    """

    images: np.ndarray
    labels: np.ndarray


class FaceSplit(NamedTuple):
    """Private / public identity split of a face dataset (indices into its arrays).

    Attributes:
      private_identities: `[P]` int64 original ids of the private identities, sorted.
      public_identities: `[Q]` int64 original ids of the other identities, sorted.
      train_idx: `[N_train]` int64 sorted indices of the private images used for training.
      test_idx: `[P * held_out_per_identity]` int64 sorted indices of held-out private images.
      public_idx: `[N_public]` int64 sorted indices of all images of public identities.
      relabel: `[max(labels) + 1]` int32; `relabel[id]` is the class index 0..P-1 of a
        private identity (in the order of `private_identities`) and -1 for any other id.
        Use `relabel[labels[train_idx]]` as the target model's labels.
    """

    private_identities: np.ndarray
    public_identities: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    public_idx: np.ndarray
    relabel: np.ndarray


def load_olivetti() -> FaceData:
    """Loads the bundled Olivetti faces (AT&T Laboratories Cambridge), checking the sha256.

    Returns:
      `FaceData` with images `[400, 64, 64, 1]` float32 in [0, 1] (upright) and labels `[400]`
      int32, `labels[i] = i // 10` (40 subjects x 10 images).

    Raises:
      RuntimeError: if the bundled file does not match its recorded sha256.

    Examples:
      >>> faces = load_olivetti()
      >>> faces.images.shape, faces.labels[:12].tolist()
      ((400, 64, 64, 1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    """
    from scipy import io as sio

    raw = resources.files("rpjax.data").joinpath("_files/olivettifaces.mat").read_bytes()
    if hashlib.sha256(raw).hexdigest() != SHA256:
        raise RuntimeError("the bundled olivettifaces.mat does not match its recorded sha256.")
    faces = sio.loadmat(io.BytesIO(raw))["faces"]  # [4096, 400] uint8, column-major images
    images = faces.T.reshape(400, 64, 64).transpose(0, 2, 1)
    labels = np.arange(400, dtype=np.int32) // 10
    return FaceData(images=(images[..., None] / np.float32(255.0)).astype(np.float32),
                    labels=labels)


def _resolve_layout(shape: tuple[int, ...], layout: str | None, source: str) -> str:
    """The layout of a 4-D image array: the declared one, after checking that its channel axis
    holds 1 or 3 channels, or (`layout=None`) NHWC when only the last axis can be channels."""
    fits = {"NHWC": shape[3] in CHANNELS, "NCHW": shape[1] in CHANNELS}
    if layout is None:
        if fits["NHWC"] and not fits["NCHW"]:
            return "NHWC"
        if fits["NHWC"] and fits["NCHW"]:
            raise ValueError(f"{source}: images of shape {shape} are ambiguous (axis 1 and axis "
                             f"3 could both be channels); pass layout='NHWC' or "
                             f"layout='NCHW'.")
        if fits["NCHW"]:
            raise ValueError(f"{source}: images of shape {shape} look like NCHW (axis 1 has "
                             f"{shape[1]} channels, axis 3 has {shape[3]}, not one of "
                             f"{list(CHANNELS)}); pass layout='NCHW' to transpose them.")
    elif fits[layout]:
        return layout
    axis = 3 if layout in (None, "NHWC") else 1
    other = "NCHW" if axis == 3 else "NHWC"
    hint = f"; the shape fits layout={other!r}" if fits[other] else ""
    declared = repr(layout) if layout else "'NHWC' (the default for 4-D images)"
    raise ValueError(f"{source}: images of shape {shape} do not fit layout={declared}: axis "
                     f"{axis} (channels) has {shape[axis]}, expected one of {list(CHANNELS)} "
                     f"(grayscale or RGB){hint}.")


def _check_images(images: np.ndarray, source: str, layout: str | None = None) -> np.ndarray:
    """`[N, H, W]`, or `[N, H, W, C]` / `[N, C, H, W]` by `layout` (C in 1, 3), uint/int in
    0..255 or float in [0, 1] -> float32 NHWC."""
    if layout is not None and not isinstance(layout, str):
        raise TypeError(f"layout must be one of {list(LAYOUTS)} or None, got "
                        f"layout={layout!r} ({type(layout).__name__}).")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)} or None, got "
                         f"layout={layout!r}.")
    if images.ndim not in (3, 4):
        raise ValueError(f"{source}: images must have shape [N, H, W] or [N, H, W, C] "
                         f"([N, C, H, W] with layout='NCHW'), got shape {images.shape} (ndim "
                         f"{images.ndim}).")
    if images.shape[0] == 0 or 0 in images.shape[1:]:
        raise ValueError(f"{source}: images must be non-empty, got shape {images.shape}.")
    if images.dtype == bool or not (np.issubdtype(images.dtype, np.integer)
                                    or np.issubdtype(images.dtype, np.floating)):
        raise TypeError(f"{source}: images must be integers in 0..255 or floats in [0, 1], "
                        f"got dtype {images.dtype}.")
    if images.ndim == 4 and _resolve_layout(images.shape, layout, source) == "NCHW":
        images = images.transpose(0, 2, 3, 1)
    if np.issubdtype(images.dtype, np.integer):
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"{source}: integer images must lie in 0..255, got min {lo} and "
                             f"max {hi}.")
        out = images.astype(np.float32) / np.float32(255.0)
    else:
        finite = np.isfinite(images)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(f"{source}: images contain non-finite values (NaN or inf), first "
                             f"{float(images[first])} at index {first} of the NHWC images.")
        lo, hi = float(images.min()), float(images.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{source}: float images must lie in [0, 1], got min {lo} and "
                             f"max {hi}; divide 0..255 pixels by 255.")
        out = images.astype(np.float32)
    return np.ascontiguousarray(out[..., None] if out.ndim == 3 else out)


def _check_labels(labels: np.ndarray, num: int, source: str) -> np.ndarray:
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{source}: labels must be integers, got dtype {labels.dtype}.")
    if labels.shape != (num,):
        raise ValueError(f"{source}: labels must have shape [N]=({num},) to match images, got "
                         f"shape {labels.shape}.")
    if labels.min() < 0 or labels.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{source}: labels must be non-negative int32 ids, got min "
                         f"{labels.min()} and max {labels.max()}.")
    return labels.astype(np.int32)


def faces_from_arrays(images: Any, labels: Any, *, layout: str | None = None,
                      source: str = "faces") -> FaceData:
    """Validates user arrays and converts them to a `FaceData`.

    Args:
      images: `[N, H, W]` (grayscale), or 4-D with C in {1, 3} channels: `[N, H, W, C]` with
        `layout="NHWC"`, `[N, C, H, W]` with `layout="NCHW"` (transposed to NHWC); integers in
        0..255 (e.g. uint8) or floats in [0, 1]. A missing channel axis is added (C = 1).
      labels: `[N]` non-negative integer identity labels.
      layout: "NHWC", "NCHW", or None (the default): NHWC when the shape is unambiguous, that
        is when only axis 3 holds 1 or 3; a 4-D shape that looks like NCHW (e.g.
        `[N, 1, 64, 64]`) or fits both layouts (e.g. `[N, 3, 8, 3]`) is refused and must be
        declared.
      source: a name for error messages (e.g. the file the arrays came from).

    Returns:
      `FaceData` with float32 images `[N, H, W, C]` in [0, 1] and int32 labels `[N]`.

    Raises:
      TypeError: on a non-numeric (or bool) `images`, non-integer `labels` or a non-str
        `layout`.
      ValueError: on a bad shape (including one that does not fit `layout`), a length
        mismatch, a non-finite or out-of-range value, or an unknown `layout`, naming it.
    """
    arrays = {}
    for name, value in (("images", images), ("labels", labels)):
        try:
            arrays[name] = np.asarray(value)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{source}: {name} must be an array, got {type(value).__name__} "
                             f"that numpy cannot convert: {err}") from None
    images = _check_images(arrays["images"], source, layout)
    return FaceData(images=images, labels=_check_labels(arrays["labels"], len(images), source))


def load_faces(path: str | os.PathLike, *, layout: str | None = None) -> FaceData:
    """Loads user faces from an `.npz` file or from a folder of identity sub-folders.

    Args:
      path: either an `.npz` file (`np.savez`) holding `images` (`[N, H, W]`,
        `[N, H, W, C]` or, with `layout="NCHW"`, `[N, C, H, W]`; C in {1, 3}; uint8 0..255
        or float in [0, 1]) and `labels` (`[N]` non-negative integers); or a folder whose
        sub-folders (one per identity) hold `.png`, `.jpg`, `.jpeg` or `.pgm` files (other
        files are ignored; colour images become grayscale by the mean of R, G and B; all
        images must share one height and width).
      layout: for an `.npz` file, "NHWC", "NCHW" or None (see `faces_from_arrays`); a folder
        takes None.

    Returns:
      `FaceData` with float32 images `[N, H, W, C]` in [0, 1] and int32 labels `[N]`. From a
      folder, C = 1, label i is the i-th sub-folder in sorted name order, and images are in
      sorted file-name order.

    Raises:
      TypeError: if `path` is not a str or os.PathLike; see also `faces_from_arrays`.
      FileNotFoundError: if `path` does not exist.
      ValueError: if the file is not an `.npz` archive or cannot be read (an object array),
        on a missing array or a bad shape, layout or range, naming the path and the array;
        for a folder, if it has no sub-folder, a sub-folder has no image, an image file cannot
        be read (naming it), shapes differ, pixels fall outside [0, 1], or a layout is given.
    """
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got path={path!r} "
                        f"({type(path).__name__}).")
    source = os.fsdecode(path)
    if os.path.isdir(source):
        if layout is not None:
            raise ValueError(f"layout applies to an .npz file; {source} is a folder, whose "
                             f"images are read as [H, W] grayscale (got layout={layout!r}).")
        return _load_folder(source)
    if not os.path.exists(source):
        raise FileNotFoundError(f"path={source!r} does not exist (give an .npz file or a "
                                f"folder with one sub-folder of images per identity).")
    return _load_npz(source, layout)


def _load_npz(source: str, layout: str | None) -> FaceData:
    """`load_faces` of an `.npz` file."""
    try:
        npz = np.load(source, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{source}: not a readable .npz archive: {err}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{source}: not an .npz archive (it holds a single .npy array); save "
                         f"the faces with np.savez(path, images=..., labels=...).")
    with npz:
        missing = [name for name in ("images", "labels") if name not in npz.files]
        if missing:
            raise ValueError(f"{source}: missing array(s) {missing}; expected 'images' and "
                             f"'labels', found {sorted(npz.files)}.")
        arrays = {}
        for name in ("images", "labels"):
            try:
                arrays[name] = npz[name]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"{source}: array {name!r} cannot be read: {err}") from None
    return faces_from_arrays(arrays["images"], arrays["labels"], layout=layout, source=source)


def _read_gray(path: str) -> np.ndarray:
    """One image file -> `[H, W]` float32 in [0, 1]; colour is averaged over R, G, B."""
    from PIL import Image  # a dependency of matplotlib

    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode == "L":
                return np.asarray(img, np.float32) / np.float32(255.0)
            if mode.startswith("I;16") or mode == "I":  # 16-bit PGM / PNG
                return np.asarray(img, np.float32) / np.float32(65535.0)
            if mode == "F":
                raise ValueError(f"{path}: floating-point images (mode 'F') are not "
                                 f"supported.")
            rgb = np.asarray(img.convert("RGB"), np.float32) / np.float32(255.0)
    except (OSError, SyntaxError) as err:  # PIL: unidentified, truncated or corrupt file
        raise ValueError(f"{path}: cannot read the image: {err}") from None
    return rgb.mean(axis=-1)


def _load_folder(root: str) -> FaceData:
    """`load_faces` of a folder with one sub-folder of images per identity."""
    identities = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not identities:
        raise ValueError(f"{root}: no sub-folders; expected one sub-folder per identity.")
    images, labels, first = [], [], None
    for label, name in enumerate(identities):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(IMAGE_EXTENSIONS)
                       and os.path.isfile(os.path.join(folder, f)))
        if not files:
            raise ValueError(f"{folder}: no image files {list(IMAGE_EXTENSIONS)}.")
        for f in files:
            file = os.path.join(folder, f)
            image = _read_gray(file)
            if first is None:
                first = (file, image.shape)
            elif image.shape != first[1]:
                raise ValueError(f"all images must share one shape: {file} has shape "
                                 f"{image.shape}, {first[0]} has shape {first[1]}.")
            images.append(image)
            labels.append(label)
    # Range and finiteness (a 32-bit mode 'I' file can exceed 65535): the same checks as
    # `faces_from_arrays`.
    return FaceData(images=_check_images(np.stack(images), root),
                    labels=np.asarray(labels, np.int32))


def split_identities(labels: Any, *, num_private: int = 20, held_out_per_identity: int = 3,
                     seed: int = 0) -> FaceSplit:
    """Seeded split into private identities (train / held-out test) and public identities.

    Args:
      labels: `[N]` non-negative integer identity labels.
      num_private: private identities, in [2, num_identities - 1] (at least one stays public).
      held_out_per_identity: held-out test images per private identity; must be smaller than
        the number of images of every identity (so that each keeps a training image).
      seed: numpy seed of the identity choice and of the held-out images.

    Returns:
      `FaceSplit`; the same arguments always give the same split.

    Raises:
      TypeError, ValueError: on a bad argument, naming it.

    Examples:
      >>> s = split_identities(np.arange(40) // 10, num_private=2, held_out_per_identity=3)
      >>> len(s.train_idx), len(s.test_idx), len(s.public_idx), int((s.relabel >= 0).sum())
      (14, 6, 20, 2)
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must have shape [N] with N >= 1, got shape {labels.shape}.")
    labels = _check_labels(labels, labels.size, "labels")
    identities, counts = np.unique(labels, return_counts=True)
    num_private = _validate.integer("num_private", num_private, minimum=2)
    if num_private > len(identities) - 1:
        raise ValueError(f"num_private must lie in [2, num_identities - 1] = [2, "
                         f"{len(identities) - 1}], got num_private={num_private}.")
    held_out = _validate.integer("held_out_per_identity", held_out_per_identity, minimum=0)
    if held_out >= counts.min():
        raise ValueError(f"held_out_per_identity must be smaller than the images of every "
                         f"identity (identity {identities[counts.argmin()]} has "
                         f"{counts.min()}), got held_out_per_identity={held_out}.")
    rng = np.random.default_rng(_validate.integer("seed", seed, minimum=0))
    private = np.sort(rng.choice(identities, size=num_private, replace=False)).astype(np.int64)
    test = [rng.permutation(np.flatnonzero(labels == i))[:held_out] for i in private]
    test_idx = np.sort(np.concatenate(test)).astype(np.int64)
    is_private = np.isin(labels, private)
    relabel = np.full(int(labels.max()) + 1, -1, np.int32)
    relabel[private] = np.arange(num_private, dtype=np.int32)
    return FaceSplit(
        private_identities=private,
        public_identities=np.setdiff1d(identities, private).astype(np.int64),
        train_idx=np.setdiff1d(np.flatnonzero(is_private), test_idx).astype(np.int64),
        test_idx=test_idx,
        public_idx=np.flatnonzero(~is_private).astype(np.int64),
        relabel=relabel,
    )
