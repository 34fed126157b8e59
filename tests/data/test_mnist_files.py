"""MNIST from local files: tiny IDX (plain and .gz) and npz files written into tmp_path."""

import gzip
import struct

import numpy as np
import pytest

from optlab.data import IDX_FILES, load_dataset, read_idx

N_TRAIN, N_TEST, SIDE = 30, 7, 5


def write_idx(path, array):
    """LeCun's IDX format: 0, 0, type code (0x08 = ubyte), ndim, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (N_TRAIN, SIDE, SIDE), dtype=np.uint8),
        "y_train": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (N_TEST, SIDE, SIDE), dtype=np.uint8),
        "y_test": (np.arange(N_TEST) % 10).astype(np.uint8),
    }


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_files(tmp_path, arrays, suffix):
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / f"{name}{suffix}", arrays[key])
    np.testing.assert_array_equal(
        read_idx(tmp_path / f"{IDX_FILES['x_test']}{suffix}"), arrays["x_test"]
    )
    ds = load_dataset("mnist", data_dir=tmp_path, standardize=False, val_fraction=0.2)
    assert ds.input_shape == (SIDE, SIDE, 1) and ds.num_classes == 10
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (24, 6, N_TEST)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_allclose(ds.x_test[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])  # official test set, in order
    assert "IDX" in ds.meta["source"]


def test_npz_file(tmp_path, arrays):
    np.savez(tmp_path / "mnist.npz", **arrays)
    ds = load_dataset("mnist", data_dir=str(tmp_path), seed=3)
    assert ds.x_train.shape == (27, SIDE, SIDE, 1) and ds.x_test.shape == (N_TEST, SIDE, SIDE, 1)
    assert abs(float(ds.x_train.mean())) < 1e-5 and ds.stats["mean"].shape == ()
    flat = {**arrays, "x_train": arrays["x_train"].reshape(N_TRAIN, -1)}
    np.savez(tmp_path / "mnist.npz", **flat)  # (n, H*W) rows of a square image also load
    assert load_dataset("mnist", data_dir=tmp_path).input_shape == (SIDE, SIDE, 1)


def test_missing_files_name_data_dir_and_every_file(tmp_path):
    for data_dir in (None, tmp_path, tmp_path / "nowhere"):
        with pytest.raises(ValueError, match="--data-dir") as err:
            load_dataset("mnist", data_dir=data_dir)
        for name in (*IDX_FILES.values(), "mnist.npz"):
            assert name in str(err.value)


def test_partial_idx_set_lists_what_is_missing(tmp_path, arrays):
    write_idx(tmp_path / IDX_FILES["x_train"], arrays["x_train"])
    with pytest.raises(ValueError, match=r"Missing: train-labels-idx1-ubyte, t10k-images"):
        load_dataset("mnist", data_dir=tmp_path)


def test_bad_files(tmp_path, arrays):
    (tmp_path / "junk").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    write_idx(tmp_path / "short", arrays["x_test"])
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")
    np.savez(tmp_path / "mnist.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(ValueError, match=r"lacks the arrays \['x_test', 'y_test'\]"):
        load_dataset("mnist", data_dir=tmp_path)
    np.savez(tmp_path / "mnist.npz", **{**arrays, "y_test": arrays["y_test"][:3]})
    with pytest.raises(ValueError, match="7 test images but 3 test labels"):
        load_dataset("mnist", data_dir=tmp_path)
