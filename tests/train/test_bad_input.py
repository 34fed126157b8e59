"""Bad input refused by the setup before anything is written (issue 11): each is one stderr
line ``optlab: error: ...`` and exit 2 from ``optlab train``, with nothing under ``--out``;
from Python, a ``ConfigError``.

The values of the config (seed, counts that must be positive, the monitor, the validation
split), the data (MNIST files that are not what they say, labels outside the classes, a
user's own ``Dataset``) and the safety net that traces the schedule and the optimizer's
update once for arguments of the wrong type. ``BAD_INPUTS`` counts the bad inputs tried.
"""

import gzip
import json
import struct

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab.config._factory as factory
from optlab import config as config_lib
from optlab.cli import main
from optlab.data import IDX_FILES, Dataset, check_labels, load_dataset
from optlab.errors import ConfigError
from optlab.train import losses
from optlab.train.setup import build_setup

QUICK = ["train", "--no-progress", "--steps", "2", "--batch-size", "16"]
HERE = "tests.train.test_bad_input"


def refused(tmp_path, capsys, *args: str) -> str:
    """Runs ``optlab train`` with ``args``; asserts exit 2, one stderr line ``optlab: error:``
    and nothing written under --out; returns the line."""
    out = tmp_path / "run"
    rc = main([*QUICK, "--out", str(out), *args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("optlab: error: "), err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    return lines[0]


# --- the config's values ------------------------------------------------------------------

FLAG_CASES = [
    (["--seed", str(2**70)], ["--seed"]),
    (["--seed", str(2**32)], ["--seed", "[0, 2**32)", "PRNGKey"]),
    (["--seed", "-1"], ["--seed", "[0, 2**32)"]),
    (["--early-stopping", "-1"], ["--early-stopping must be a positive integer", "got -1"]),
    (["--early-stopping", "0"], ["--early-stopping must be a positive integer", "got 0"]),
    (["--checkpoint-every", "-1"], ["--checkpoint-every must be a positive integer"]),
    (["--checkpoint-every", "0"], ["--checkpoint-every must be a positive integer"]),
    (["--eval-every", "0"], ["--eval-every must be a positive integer"]),
    (["--eval-every", "-5"], ["--eval-every must be a positive integer"]),
    (["--log-every", "0"], ["--log-every must be a positive integer"]),
    (["--val-fraction", "1"], ["--val-fraction must be a number in [0, 1)"]),
    (["--val-fraction", "-0.1"], ["--val-fraction must be a number in [0, 1)"]),
    (["--val-fraction", "1.5"], ["--val-fraction must be a number in [0, 1)"]),
    # the monitor: a metric the run reports, listed per task
    (["--monitor", "val_acc"], ["'val_acc' is not a metric", "val_accuracy", "val_f1_macro"]),
    (["--monitor", "test_accuracy"], ["'test_accuracy' is not a metric", "val_loss"]),
    (["--monitor", "val_acc", "--dataset", "spirals"], ["val_roc_auc", "k = 0..1"]),
    (
        ["--dataset", "synthetic_linear", "--early-stopping", "3"],
        ["'val_accuracy' (what --early-stopping watches)", "reports val_loss"],
    ),
    # no validation split: what cannot work without one
    (["--val-fraction", "0", "--early-stopping", "3"], ["needs a validation split", "is 0"]),
    (["--val-fraction", "0", "--monitor", "val_loss"], ["--monitor val_loss needs a validation"]),
    (
        ["--val-fraction", "0.0001", "--early-stopping", "2"],
        ["needs a validation split", "is no example"],
    ),
    (
        ["--dataset", "spirals", "--val-fraction", "0.001", "--monitor", "val_roc_auc"],
        ["val_roc_auc is undefined", "one class"],
    ),
]


def _ids(cases) -> list[str]:
    return [" ".join(args) for args, _ in cases]


FILE_CASES = [
    ({"train": {"epochs": True}}, "train.epochs"),
    ({"train": {"keep_checkpoints": 0}}, "train.keep_checkpoints must be a positive integer"),
    ({"train": {"keep_checkpoints": -2}}, "train.keep_checkpoints must be a positive integer"),
    ({"train": {"early_stopping": False}}, "train.early_stopping"),
]


@pytest.mark.parametrize(("raw", "wanted"), FILE_CASES, ids=[json.dumps(r) for r, _ in FILE_CASES])
def test_a_bad_config_file_value_is_one_line(tmp_path, capsys, raw, wanted):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(raw))
    assert wanted in refused(tmp_path, capsys, "--config", str(path))


PYTHON_CASES = [
    ("train", "epochs", True),
    ("train", "steps", 0),
    ("train", "eval_every", True),
    ("train", "checkpoint_every", -1),
    ("train", "keep_checkpoints", 0),
    ("train", "early_stopping", 0),
    ("train", "log_every", 0),
    ("train", "seed", 2**32 + 5),
    ("train", "seed", np.int64(-3)),
    ("train", "seed", True),
    ("data", "val_fraction", True),
    ("train", "monitor", "val_acc"),
]


@pytest.mark.parametrize(("section", "field", "value"), PYTHON_CASES, ids=str)
def test_from_python_the_setup_refuses_the_same_values(tmp_path, section, field, value):
    cfg = config_lib.RunConfig(out=str(tmp_path / "run"))
    cfg.train.steps = 2
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError, match=f"{section}.{field}"):
        build_setup(cfg)
    assert not (tmp_path / "run").exists()


# --- no validation split, and one that holds a single class: these train ---------------


@pytest.mark.parametrize(
    ("args", "absent", "present"),
    [
        (["--val-fraction", "0"], "val_", "test_accuracy"),  # no validation split at all
        # one validation example: its ROC AUC is undefined and left out, not "non-finite"
        (["--dataset", "spirals", "--val-fraction", "0.001"], "val_roc_auc", "test_roc_auc"),
    ],
    ids=["val_fraction 0", "one-class validation split"],
)
def test_a_run_without_a_usable_validation_split_trains(tmp_path, capsys, args, absent, present):
    out = tmp_path / "run"
    rc = main([*QUICK, "--steps", "4", "--eval-every", "2", "--out", str(out), *args])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert present in summary and summary["steps"] == 4
    assert not [k for k in summary if k.startswith(absent)]
    assert "nonfinite" not in summary


def test_summarize_of_nothing_and_of_an_undefined_auc():
    assert losses.summarize("val", {}) == {}
    got = losses.summarize("val", {"loss_sum": 1.0, "count": 2.0}, {"roc_auc": float("nan")})
    assert got == {"val_loss": 0.5}


@pytest.mark.parametrize("num_classes", [0, 2, 10])
def test_metric_names_are_what_an_evaluation_reports(num_classes):
    rng = np.random.default_rng(num_classes)
    loss = "cross_entropy" if num_classes else "mse"
    n, outputs = 40, max(num_classes, 1)
    logits = jnp.asarray(rng.standard_normal((n, outputs)), jnp.float32)
    y = rng.integers(0, num_classes, n) if num_classes else rng.standard_normal(n)
    batch = {"y": jnp.asarray(y), "mask": jnp.ones(n)}
    counts = {
        k: np.asarray(v) for k, v in losses.batch_counts(loss, logits, batch, outputs).items()
    }
    extra = {}
    if "positive_score" in counts:
        extra["roc_auc"] = losses.roc_auc(counts.pop("positive_score"), y)
    assert list(losses.summarize("val", counts, extra)) == losses.metric_names(
        "val", loss, num_classes
    )


# --- the safety net: the schedule and the optimizer's update traced once ---------------


def plain(learning_rate, scale):
    """An optimizer whose argument no annotation or default describes."""

    def update(updates, state, params=None):
        return jax.tree.map(lambda g: -learning_rate * scale * g, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def reshaping(learning_rate):
    """A state that changes shape in its update (the step's skip branch cannot hold it)."""

    def update(updates, state, params=None):
        return updates, jnp.zeros((2,))

    return optax.GradientTransformation(lambda params: jnp.zeros(()), update)


def retyping(learning_rate):
    """A state that changes dtype in its update."""

    def update(updates, state, params=None):
        return updates, state + 0.5

    return optax.GradientTransformation(lambda params: jnp.zeros((), jnp.int32), update)


NET_CASES = [
    (["--opt-arg", "b1=[0.9,0.99]"], ["--opt-arg: adam's update with b1=[0.9, 0.99]", "Type"]),
    (["--optimizer", f"{HERE}:plain", "--opt-arg", "scale=abc"], ["--opt-arg", "scale='abc'"]),
    (["--optimizer", f"{HERE}:plain", "--opt-arg", "scale=[1,2]"], ["--opt-arg", "TypeError"]),
    (["--optimizer", f"{HERE}:reshaping"], ["returns a state that does not match", "[2]"]),
    (["--optimizer", f"{HERE}:retyping"], ["returns a state", "not int32[]"]),
    (
        [
            "--schedule",
            "step_decay",
            "--schedule-arg",
            "factor=0.5",
            "--schedule-arg",
            "every=[1,2]",
        ],
        ["--schedule-arg: the step_decay schedule", "at step 0"],
    ),
]


@pytest.mark.parametrize(
    ("args", "wanted"), FLAG_CASES + NET_CASES, ids=_ids(FLAG_CASES + NET_CASES)
)
def test_a_bad_flag_is_one_line_and_writes_nothing(tmp_path, capsys, args, wanted):
    # NET_CASES: the safety net (the optimizer traced once) names the arguments
    line = refused(tmp_path, capsys, *args)
    for text in wanted:
        assert text in line


NET_ONLY_CASES = [
    (["--opt-arg", "b1=abc"], "--opt-arg: adam's update with b1='abc' fails"),
    (["--optimizer", "momentum", "--opt-arg", "mu=abc"], "--opt-arg: momentum's update"),
    (
        ["--schedule", "cosine_decay", "--schedule-arg", "warmup_steps=abc"],
        "--schedule-arg: the cosine_decay schedule with warmup_steps='abc' cannot be evaluated",
    ),
    (
        ["--schedule", "step_decay", "--schedule-arg", "factor=abc", "--schedule-arg", "every=3"],
        "--schedule-arg: the step_decay schedule",
    ),
]


@pytest.mark.parametrize(("args", "wanted"), NET_ONLY_CASES, ids=_ids(NET_ONLY_CASES))
def test_the_safety_net_alone_catches_text_for_a_number(
    tmp_path, capsys, monkeypatch, args, wanted
):
    """The signature check (optlab.config) catches these first; without it, the trace does."""
    monkeypatch.setattr(factory, "_check_types", lambda *a, **k: None)
    assert wanted in refused(tmp_path, capsys, *args)


def test_every_registered_optimizer_passes_the_safety_net():
    """No false alarm: each optimizer of the registry, with its defaults, traces cleanly."""
    import optlab

    cfg = config_lib.RunConfig()
    cfg.train.steps = 3
    cfg.optimizer.schedule = "cosine_decay"
    for name in optlab.OPTIMIZERS:
        cfg.optimizer.optimizer = name
        assert build_setup(cfg).total_steps == 3, name


# --- data: MNIST files, labels, a user's own Dataset ------------------------------------


def write_idx(path, array, *, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    payload = header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def mnist_arrays():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (40, 5, 5), dtype=np.uint8),
        "y_train": (np.arange(40) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (10, 5, 5), dtype=np.uint8),
        "y_test": (np.arange(10) % 10).astype(np.uint8),
    }


def write_mnist(folder, suffix=".gz", **changes):
    folder.mkdir()
    arrays = {**mnist_arrays(), **changes}
    for key, name in IDX_FILES.items():
        write_idx(folder / f"{name}{suffix}", arrays[key])
    return folder


def _not_gzip(folder):
    write_mnist(folder)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01" + bytes(44))


def _cut_gzip(folder):
    write_mnist(folder)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])


def _cut_idx(folder):
    write_mnist(folder, suffix="")
    path = folder / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])


def _bad_magic(folder):
    write_mnist(folder, suffix="")
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04" + bytes(20))


def _header_only(folder):
    write_mnist(folder, suffix="")
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")


def _labels_200(folder):
    y = (np.arange(40) % 10).astype(np.uint8)
    y[7] = 200
    write_mnist(folder, y_train=y)


def _npz(folder, **changes):
    folder.mkdir()
    np.savez(folder / "mnist.npz", **{**mnist_arrays(), **changes})


def _npz_not_zip(folder):
    folder.mkdir()
    (folder / "mnist.npz").write_bytes(b"this is not a zip archive at all" * 4)


def _npz_cut(folder):
    _npz(folder)
    path = folder / "mnist.npz"
    path.write_bytes(path.read_bytes()[:300])


def _npz_label(value, dtype):
    def write(folder):
        y = (np.arange(10) % 10).astype(dtype)
        y[3] = value
        _npz(folder, y_test=y)

    write.__name__ = f"npz_label_{value}"
    return write


def _npz_missing(folder):
    folder.mkdir()
    np.savez(folder / "mnist.npz", x_train=np.zeros((3, 5, 5)))


DATA_CASES = [
    (_not_gzip, ["train-labels-idx1-ubyte.gz: cannot read as gzip"]),
    (_cut_gzip, ["train-images-idx3-ubyte.gz: cannot read as gzip"]),
    (_cut_idx, ["t10k-images-idx3-ubyte: header says shape (10, 5, 5)", "truncated"]),
    (_bad_magic, ["t10k-labels-idx1-ubyte is not an IDX file"]),
    (_header_only, ["train-images-idx3-ubyte: the header names 3 dimensions"]),
    (_labels_200, ["train-labels-idx1-ubyte.gz holds the label 200 (row 7)", "[0, 10)"]),
    (_npz_not_zip, ["mnist.npz is not a .npz archive"]),
    (_npz_cut, ["mnist.npz is not a readable .npz"]),
    (_npz_missing, ["mnist.npz lacks the arrays"]),
    (_npz_label(-1, np.int64), ["mnist.npz's y_test holds the label -1 (row 3)", "[0, 10)"]),
    (_npz_label(10, np.int64), ["mnist.npz's y_test holds the label 10", "[0, 10)"]),
    (_npz_label(2.5, np.float32), ["mnist.npz's y_test holds 2.5 (row 3), not a whole number"]),
    (_npz_label(np.nan, np.float32), ["y_test holds nan (row 3), not a whole number"]),
]


@pytest.mark.parametrize(("make", "wanted"), DATA_CASES, ids=[m.__name__ for m, _ in DATA_CASES])
def test_a_bad_mnist_file_is_one_line_naming_it(tmp_path, capsys, make, wanted):
    folder = tmp_path / "data"
    make(folder)
    line = refused(tmp_path, capsys, "--dataset", "mnist", "--data-dir", str(folder))
    for text in wanted:
        assert text in line
    assert str(folder) in line


def test_good_mnist_files_still_load(tmp_path):
    """The same writers, unchanged: the refusals above are about the changes only."""
    ds = load_dataset("mnist", data_dir=write_mnist(tmp_path / "data"), val_fraction=0.2)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (32, 8, 10)


def own_dataset(**changes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(np.float32)
    y = (np.arange(60) % 3).astype(np.int32)
    splits = {
        "x_train": x[:40],
        "y_train": y[:40],
        "x_val": x[40:50],
        "y_val": y[40:50],
        "x_test": x[50:],
        "y_test": y[50:],
    }
    for key, change in changes.items():
        splits[key] = change(splits[key].copy())
    return Dataset("mine", "classification", 3, (4,), **splits)


def _set(row, value, dtype=None):
    def change(a):
        a = a if dtype is None else a.astype(dtype)
        a[row] = value
        return a

    return change


OWN_CASES = [
    ({"y_train": _set(5, 200)}, ["y_train holds the label 200 (row 5)", "[0, 3)"]),
    ({"y_val": _set(2, -1)}, ["y_val holds the label -1 (row 2)", "[0, 3)"]),
    ({"y_test": _set(0, 1.5, np.float32)}, ["y_test holds 1.5 (row 0), not a whole number"]),
    ({"y_train": lambda a: a[:, None]}, ["y_train has shape (40, 1)"]),
    ({"y_train": lambda a: a.astype(str)}, ["y_train holds <U"]),
    ({"y_val": lambda a: a[:-1]}, ["x_val has 10 examples but y_val 9"]),
    ({"x_train": lambda a: a.astype(object)}, ["x_train holds object values"]),
    ({"x_test": lambda a: a[:, :2]}, ["x_test has shape (10, 2), but input_shape is (4,)"]),
]


@pytest.mark.parametrize(("changes", "wanted"), OWN_CASES, ids=[w[0][:36] for _, w in OWN_CASES])
def test_your_own_dataset_is_checked_before_anything_is_written(tmp_path, changes, wanted):
    from optlab.train import train

    cfg = config_lib.RunConfig(out=str(tmp_path / "run"))
    cfg.train.steps = 2
    cfg.data.batch_size = 8
    with pytest.raises(ConfigError) as info:
        train(cfg, dataset=own_dataset(**changes), progress=False)
    message = str(info.value)
    assert message.startswith("your dataset: ") and "\n" not in message
    for text in wanted:
        assert text in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("labels", "wanted"),
    [
        (
            [0, 1, 9, 12, -4],
            "holds the label 12 (row 3; 2 labels in all are outside, from -4 to 12)",
        ),
        ([0.0, 1.0, np.inf], "holds inf (row 2), not a whole number"),
        ([[0, 1]], "has shape (1, 2)"),
        ([1 + 2j], "holds complex128 values"),
    ],
    ids=["several outside", "infinity", "2-D", "complex"],
)
def test_check_labels(labels, wanted):
    with pytest.raises(ValueError, match="labels of a 10-class task are whole numbers") as info:
        check_labels(np.asarray(labels), 10, "y")
    assert wanted in str(info.value)
    check_labels(np.arange(10), 10, "y")  # the good ones pass
    check_labels(np.arange(10, dtype=np.float32), 10, "y")  # whole floats are whole numbers


BAD_INPUTS = (
    len(FLAG_CASES)
    + len(FILE_CASES)
    + len(PYTHON_CASES)
    + len(NET_CASES)
    + len(NET_ONLY_CASES)
    + len(DATA_CASES)
    + len(OWN_CASES)
    + 4  # test_check_labels
)
