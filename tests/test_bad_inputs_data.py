"""Hostile inputs to the data loaders: each raises a named error (issue 13, point 5).

One table: each row writes a bad file (or builds bad arrays) under `tmp_path`, calls a loader,
and names the exception type and a message pattern. `{tmp}` in a pattern stands for the
escaped `tmp_path`, so a pattern that starts with it checks that the message names the file.
The positive tests at the end check the accepted variants (a UTF-8 BOM, CRLF line ends, NCHW
arrays with `layout="NCHW"`) give the same data as the plain files.
"""

import re
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from rpjax import data as rdata
from rpjax._src.data import insurance

HEADER = "age,sex,bmi,children,smoker,region,charges"
ROW_A = "19,female,27.9,0,yes,southwest,16884.924"
ROW_B = "33,male,22.705,2,no,northwest,21984.47061"
ROW_C = "28,male,33,3,no,southeast,4449.462"


def _csv(tmp_path, *lines, raw: bytes | None = None):
    """Writes `lines` (or `raw` bytes) to `tmp_path/bad.csv` and loads it."""
    path = tmp_path / "bad.csv"
    path.write_bytes(raw if raw is not None else ("\n".join(lines) + "\n").encode("utf-8"))
    return insurance.load_insurance(path)


def _npz(tmp_path, layout=None, **arrays):
    """Saves `arrays` to `tmp_path/bad.npz` and loads it with `layout`."""
    np.savez(tmp_path / "bad.npz", **arrays)
    return rdata.load_faces(tmp_path / "bad.npz", layout=layout)


def _faces(images, labels=None, **kw):
    """`faces_from_arrays(images, labels or arange(N), **kw)`."""
    labels = np.arange(len(images)) if labels is None else labels
    return rdata.faces_from_arrays(images, labels, **kw)


def _write(path, save, array):
    """`save(file, array)` into exactly `path` (np.save would append `.npy` to a name)."""
    with open(path, "wb") as f:
        save(f, array)


def _folder(tmp_path, files):
    """Writes `{relative path: bytes or [H, W] float array}` under `tmp_path/faces`, loads it."""
    root = tmp_path / "faces"
    root.mkdir()
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            Image.fromarray(np.asarray(content, np.uint8)).save(path)
    return rdata.load_faces(root)


U8 = np.zeros((4, 8, 8), np.uint8)
LABELS = np.arange(4)

CASES = [
    # --- train_test_split(num, test_fraction, seed) -------------------------------------------
    ("split: one example leaves no training set", lambda t: rdata.train_test_split(1, 0.2, 0),
     ValueError, r"num must be an integer >= 2, got num=1"),
    ("split: test fraction leaves no training example",
     lambda t: rdata.train_test_split(2, 0.9, 0),
     ValueError, r"test_fraction=0.9 of num=2 examples leaves no training example"),
    ("split: test fraction NaN", lambda t: rdata.train_test_split(10, float("nan"), 0),
     ValueError, r"test_fraction must be finite"),
    ("split: test fraction 1", lambda t: rdata.train_test_split(10, 1.0, 0),
     ValueError, r"test_fraction must lie in the open interval \(0, 1\)"),
    ("split: num a float", lambda t: rdata.train_test_split(10.0, 0.2, 0),
     TypeError, r"num must be an integer"),
    ("split: seed negative", lambda t: rdata.train_test_split(10, 0.2, -1),
     ValueError, r"seed must be an integer >= 0"),
    # --- load_insurance(path) ---------------------------------------------------------------
    ("csv: extra field in a row",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B + ",EXTRA"),
     ValueError, r"{tmp}/bad\.csv, line 3: 8 fields for 7 columns \(extra fields\)"),
    ("csv: missing field in a row",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.rsplit(",", 1)[0], ROW_C),
     ValueError, r"{tmp}/bad\.csv, line 3: 6 fields for 7 columns \(missing fields\)"),
    ("csv: absurd BMI 1e308",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace("22.705", "1e308"), ROW_C),
     ValueError, r"{tmp}/bad\.csv, line 3: column 'bmi' must lie in \[5, 250\], got '1e308'"),
    ("csv: negative age",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B, ROW_C.replace("28,", "-1,", 1)),
     ValueError, r"{tmp}/bad\.csv, line 4: column 'age' must lie in \[0, 130\], got '-1'"),
    ("csv: fractional children",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace(",2,", ",2.5,"), ROW_C),
     ValueError, r"line 3: column 'children' must be a whole number, got '2\.5'"),
    ("csv: NaN bmi",
     lambda t: _csv(t, HEADER, ROW_A.replace("27.9", "nan"), ROW_B),
     ValueError, r"{tmp}/bad\.csv, line 2: column 'bmi' must be finite, got 'nan'"),
    ("csv: infinite charges",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace("21984.47061", "inf")),
     ValueError, r"line 3: column 'charges' must be finite, got 'inf'"),
    ("csv: sentinel charges -1",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace("21984.47061", "-1")),
     ValueError, r"line 3: column 'charges' must lie in \[0, 1e\+09\], got '-1'"),
    ("csv: non-numeric bmi",
     lambda t: _csv(t, HEADER, ROW_A.replace("27.9", "heavy"), ROW_B),
     ValueError, r"{tmp}/bad\.csv, line 2: column 'bmi' must be numeric, got 'heavy'"),
    ("csv: empty age",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace("33,", ",", 1)),
     ValueError, r"line 3: column 'age' must be numeric, got ''"),
    ("csv: unknown category",
     lambda t: _csv(t, HEADER, ROW_A.replace("yes", "maybe"), ROW_B),
     ValueError, r"{tmp}/bad\.csv, line 2: column 'smoker' has unknown values \['maybe'\]"),
    ("csv: missing column",
     lambda t: _csv(t, HEADER.replace(",region", ""), "19,female,27.9,0,yes,16884.9"),
     ValueError, r"{tmp}/bad\.csv: missing column\(s\) \['region'\]"),
    ("csv: duplicated column",
     lambda t: _csv(t, HEADER + ",bmi", ROW_A + ",30", ROW_B + ",31"),
     ValueError, r"{tmp}/bad\.csv: duplicated column\(s\) \['bmi'\]"),
    ("csv: constant column",
     lambda t: _csv(t, HEADER, ROW_A, ROW_B.replace(",2,", ",0,")),
     ValueError, r"{tmp}/bad\.csv: column\(s\) \['children'\] take a single value"),
    ("csv: header only",
     lambda t: _csv(t, HEADER),
     ValueError, r"{tmp}/bad\.csv: no data rows"),
    ("csv: empty file",
     lambda t: _csv(t, raw=b""),
     ValueError, r"{tmp}/bad\.csv: empty file"),
    ("csv: undecodable bytes (Latin-1)",
     lambda t: _csv(t, raw=f"{HEADER}\n{ROW_A}\n".replace("female", "f\xe9male").encode("latin-1")),
     ValueError, r"{tmp}/bad\.csv: not UTF-8 text: byte 0xe9 at offset \d+ \(line 2\)"),
    ("csv: UTF-16 text",
     lambda t: _csv(t, raw=f"{HEADER}\n{ROW_A}\n{ROW_B}\n".encode("utf-16")),
     ValueError, r"{tmp}/bad\.csv: the file is UTF-16 text"),
    ("csv: unterminated quote",
     lambda t: _csv(t, HEADER, ROW_A, '33,"male,22.705,2,no,northwest,1'),
     ValueError, r"{tmp}/bad\.csv, line \d+: malformed CSV"),
    ("csv: path of the wrong type",
     lambda t: insurance.load_insurance(3),
     TypeError, r"path must be a str or os\.PathLike, got path=3"),
    ("csv: missing file",
     lambda t: insurance.load_insurance(t / "absent.csv"),
     FileNotFoundError, r"absent\.csv"),
    # --- faces: layout ---------------------------------------------------------------------
    ("npz: NCHW read with the default layout",
     lambda t: _npz(t, images=np.zeros((4, 1, 8, 8), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: images of shape \(4, 1, 8, 8\) look like NCHW.*"
                 r"layout='NCHW'"),
    ("npz: NCHW declared NHWC",
     lambda t: _npz(t, "NHWC", images=np.zeros((4, 3, 8, 8), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: .* do not fit layout='NHWC': axis 3 \(channels\) has 8.*"
                 r"fits layout='NCHW'"),
    ("npz: NHWC declared NCHW",
     lambda t: _npz(t, "NCHW", images=np.zeros((4, 8, 8, 1), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: .* do not fit layout='NCHW': axis 1 \(channels\) has 8.*"
                 r"fits layout='NHWC'"),
    ("npz: ambiguous shape without a layout",
     lambda t: _npz(t, images=np.zeros((4, 3, 8, 3), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: images of shape \(4, 3, 8, 3\) are ambiguous"),
    ("arrays: 4 channels (RGBA)",
     lambda t: _faces(np.zeros((4, 8, 8, 4), np.uint8)),
     ValueError, r"faces: .* do not fit layout='NHWC' \(the default.*has 4, expected one of "
                 r"\[1, 3\]"),
    ("arrays: unknown layout",
     lambda t: _faces(U8, layout="HWC"),
     ValueError, r"layout must be one of \['NHWC', 'NCHW'\] or None, got layout='HWC'"),
    ("arrays: layout of the wrong type",
     lambda t: _faces(U8, layout=1),
     TypeError, r"layout must be one of .* got layout=1 \(int\)"),
    # --- faces: arrays (moved from tests/test_olivetti.py) ------------------------------------
    ("npz: 2-D images",
     lambda t: _npz(t, images=np.zeros((4, 8), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: images must have shape \[N, H, W\]"),
    ("npz: 5-D images",
     lambda t: _npz(t, images=np.zeros((4, 8, 8, 1, 1), np.uint8), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: images.*ndim 5"),
    ("npz: labels of the wrong length",
     lambda t: _npz(t, images=U8, labels=np.arange(3)),
     ValueError, r"{tmp}/bad\.npz: labels.*\(4,\).*\(3,\)"),
    ("npz: integer pixels above 255",
     lambda t: _npz(t, images=np.full((4, 8, 8), 300, np.int32), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: integer images must lie in 0\.\.255.*max 300"),
    ("npz: float pixels above 1",
     lambda t: _npz(t, images=np.full((4, 8, 8), 1.5), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: float images must lie in \[0, 1\].*max 1\.5"),
    ("npz: NaN pixels",
     lambda t: _npz(t, images=np.full((4, 8, 8), np.nan), labels=LABELS),
     ValueError, r"{tmp}/bad\.npz: images contain non-finite values"),
    ("arrays: an inf pixel (NCHW)",
     lambda t: _faces(np.where(np.arange(64).reshape(1, 1, 8, 8) == 9, np.inf, 0.5)
                      .repeat(2, 0), layout="NCHW"),
     ValueError, r"faces: images contain non-finite values .* first inf at index "
                 r"\(0, 1, 1, 0\)"),
    ("npz: negative labels",
     lambda t: _npz(t, images=U8, labels=-LABELS),
     ValueError, r"{tmp}/bad\.npz: labels must be non-negative"),
    ("npz: float labels",
     lambda t: _npz(t, images=np.zeros((2, 4, 4)), labels=np.array([0.0, 1.0])),
     TypeError, r"{tmp}/bad\.npz: labels must be integers"),
    ("npz: bool images",
     lambda t: _npz(t, images=np.zeros((2, 4, 4), bool), labels=np.arange(2)),
     TypeError, r"{tmp}/bad\.npz: images must be integers in 0\.\.255 or floats"),
    ("npz: missing 'images' array",
     lambda t: _npz(t, pictures=np.zeros((2, 4, 4)), labels=np.arange(2)),
     ValueError, r"{tmp}/bad\.npz: missing array\(s\) \['images'\]"),
    ("arrays: ragged images",
     lambda t: _faces([np.zeros((4, 4)), np.zeros((5, 4))], labels=np.arange(2)),
     ValueError, r"faces: images must be an array"),
    # --- faces: files ------------------------------------------------------------------------
    ("npz: a .npy file, not an archive",
     lambda t: (_write(t / "bad.npz", np.save, U8), rdata.load_faces(t / "bad.npz")),
     ValueError, r"{tmp}/bad\.npz: not an \.npz archive"),
    ("npz: not a numpy file",
     lambda t: ((t / "bad.npz").write_bytes(b"\x89PNG garbage"),
                rdata.load_faces(t / "bad.npz")),
     ValueError, r"{tmp}/bad\.npz: not a readable \.npz archive"),
    ("npz: object array",
     lambda t: _npz(t, images=np.array([U8[0], None], dtype=object), labels=np.arange(2)),
     ValueError, r"{tmp}/bad\.npz: array 'images' cannot be read"),
    ("npz: path of the wrong type",
     lambda t: rdata.load_faces(None),
     TypeError, r"path must be a str or os\.PathLike, got path=None"),
    ("folder: corrupt image file",
     lambda t: _folder(t, {"a/0.png": np.zeros((4, 4)), "b/0.png": b"\x89PNG\r\n\x1a\nbroken"}),
     ValueError, r"{tmp}/faces/b/0\.png: cannot read the image"),
    ("folder: mixed shapes",
     lambda t: _folder(t, {"a/0.png": np.zeros((4, 4)), "b/0.png": np.zeros((5, 4))}),
     ValueError, r"one shape: {tmp}/faces/b/0\.png has shape \(5, 4\)"),
    ("folder: identity without images",
     lambda t: _folder(t, {"a/0.png": np.zeros((4, 4)), "c/notes.txt": b"x"}),
     ValueError, r"{tmp}/faces/c: no image files"),
    ("folder: no sub-folders",
     lambda t: _folder(t, {"0.png": np.zeros((4, 4))}),
     ValueError, r"{tmp}/faces: no sub-folders"),
    ("faces: missing path",
     lambda t: rdata.load_faces(t / "missing"),
     FileNotFoundError, r"{tmp}/missing.* does not exist"),
    ("folder: a layout given",
     lambda t: rdata.load_faces(t, layout="NHWC"),
     ValueError, r"layout applies to an \.npz file; {tmp} is a folder"),
]


@pytest.mark.parametrize("call,error,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error(tmp_path, call, error, pattern):
    with pytest.raises(error, match=pattern.replace("{tmp}", re.escape(str(tmp_path)))):
        call(tmp_path)


def test_csv_with_utf8_bom_or_crlf_is_read_like_the_plain_file(tmp_path):
    text = "\n".join([HEADER, ROW_A, ROW_B, ROW_C]) + "\n"
    (tmp_path / "plain.csv").write_bytes(text.encode("utf-8"))
    (tmp_path / "bom.csv").write_bytes(text.encode("utf-8-sig"))
    (tmp_path / "crlf.csv").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    assert (tmp_path / "bom.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    plain = insurance.load_insurance(tmp_path / "plain.csv")
    np.testing.assert_allclose(plain.x[:, 0], (np.array([19, 33, 28]) - 80 / 3)
                               / np.std([19, 33, 28]), rtol=1e-6)  # 'age' read as the age
    for name in ("bom.csv", "crlf.csv"):
        other = insurance.load_insurance(tmp_path / name)
        for field in ("x", "mean", "std", "bmi", "charges"):
            np.testing.assert_array_equal(getattr(other, field), getattr(plain, field))


def test_bundled_csv_through_the_user_loader_gives_the_bundled_data():
    path = resources.files("rpjax.data").joinpath("_files/insurance.csv")
    user, bundled = insurance.load_insurance(str(path)), insurance.load_insurance()
    for field in ("x", "mean", "std", "bmi", "charges"):
        np.testing.assert_array_equal(getattr(user, field), getattr(bundled, field))


@pytest.mark.parametrize("channels", [1, 3])
def test_nchw_with_layout_nchw_gives_the_nhwc_images(tmp_path, channels):
    rng = np.random.default_rng(channels)
    nhwc = rng.integers(0, 256, size=(5, 6, 7, channels), dtype=np.uint8)  # H != W
    labels = np.array([0, 0, 1, 1, 2])
    np.savez(tmp_path / "nhwc.npz", images=nhwc, labels=labels)
    np.savez(tmp_path / "nchw.npz", images=nhwc.transpose(0, 3, 1, 2), labels=labels)
    ref = rdata.load_faces(tmp_path / "nhwc.npz")
    explicit = rdata.load_faces(tmp_path / "nhwc.npz", layout="NHWC")
    got = rdata.load_faces(tmp_path / "nchw.npz", layout="NCHW")
    assert ref.images.shape == got.images.shape == (5, 6, 7, channels)
    assert got.images.flags.c_contiguous and got.images.dtype == np.float32
    np.testing.assert_allclose(ref.images, nhwc / 255.0, atol=1e-7)
    for other in (explicit, got):
        np.testing.assert_array_equal(other.images, ref.images)
        np.testing.assert_array_equal(other.labels, ref.labels)
    floats = rdata.faces_from_arrays(nhwc.transpose(0, 3, 1, 2) / 255.0, labels, layout="NCHW")
    np.testing.assert_allclose(floats.images, ref.images, atol=1e-7)


def test_train_test_split_partitions_the_indices():
    for num, fraction in ((2, 0.2), (3, 0.5), (1338, 0.2)):
        train, test = rdata.train_test_split(num, fraction, 7)
        assert train.size >= 1 and test.size >= 1
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(num))
