"""optlab.lab.sweep: a grid trained at once equals the same runs made one at a time by the
trainer; the configuration axis is sharded over the 8 test devices; k-fold folds are
disjoint and cover the split; refine brackets the best; bad grid keys are named."""

import copy
import csv
import math

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from optlab.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    TrainConfig,
)
from optlab.data import Dataset, load_dataset
from optlab.lab import SweepResult, kfold_indices, plot_sweep, refine, sweep
from optlab.train.loop import evaluate
from optlab.train.setup import build_setup

STEPS = 12
# float32: the vmapped program batches the same arithmetic over runs, so results agree to
# rounding (observed ~1e-7 relative); 12 steps of momentum SGD amplify that very little.
RTOL, ATOL = 2e-5, 2e-6
GRID = {"learning_rate": [1e30, 0.05], "momentum": [0.5, 0.9]}  # 1e30: overflows at once
SEEDS = (0, 3)


def tiny_config(**optimizer) -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="digits", batch_size=32),
        model=ModelConfig(options={"widths": (16,), "dropout": 0.1}),
        optimizer=OptimizerConfig(**{"optimizer": "momentum", **optimizer}),
        train=TrainConfig(epochs=None, steps=STEPS, seed=0),
    )


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def result(digits):
    return sweep(tiny_config(), GRID, seeds=SEEDS, dataset=digits)


def one_at_a_time(cfg: RunConfig, dataset) -> tuple[np.ndarray, dict, dict]:
    """The trainer's own pieces (build_setup's compiled step and data order), one run."""
    setup = build_setup(cfg, dataset=dataset)
    state = setup.init_state()
    losses = []
    for _ in range(setup.total_steps):
        state, metrics = setup.train_step(state, setup.next_batch())
        losses.append(float(metrics["loss"]))
    return np.asarray(losses), evaluate(setup, state, "val"), jax.device_get(state.params)


def test_table_lists_every_run_in_order(result):
    assert len(result.table) == 8 and result.steps == STEPS
    expected = [(lr, mu, s) for lr in (1e30, 0.05) for mu in (0.5, 0.9) for s in SEEDS]
    got = [(r["learning_rate"], r["mu"], r["seed"]) for r in result.table]
    assert got == expected
    assert result.grid == {"learning_rate": [1e30, 0.05], "mu": [0.5, 0.9]}  # momentum → μ
    assert result.losses.shape == (8, STEPS)


def test_sweep_equals_the_run_made_alone(result, digits):
    run = 7  # rate 0.05, μ = 0.9, seed 3 (not the config's seed): every axis moved
    row = result.table[run]
    cfg = tiny_config(learning_rate=row["learning_rate"], args={"mu": row["mu"]})
    cfg.train.seed = row["seed"]
    losses, val, params = one_at_a_time(cfg, digits)
    np.testing.assert_allclose(result.losses[run], losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(row["val_loss"], val["val_loss"], rtol=RTOL, atol=ATOL)
    assert row["val_accuracy"] == pytest.approx(val["val_accuracy"], abs=1.5 / row["val_count"])
    assert row["val_count"] == len(digits.x_val)
    mine = jax.tree.map(lambda a: np.asarray(a[run]), jax.device_get(result.params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), mine, params)
    assert not row["diverged"] and row["train_loss"] == pytest.approx(
        np.mean(losses[-math.ceil(len(digits.x_train) / 32) :])
    )


def test_one_seed_shares_each_batch_and_still_equals_the_run_alone(digits):
    # One seed and no folds: every run reads the same batch, gathered once per step (the
    # shared path); the runs must still be the trainer's own.
    res = sweep(tiny_config(), {"learning_rate": [0.2, 0.05]}, dataset=digits)
    losses, val, _ = one_at_a_time(tiny_config(learning_rate=0.05), digits)
    np.testing.assert_allclose(res.losses[1], losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.table[1]["val_loss"], val["val_loss"], rtol=RTOL, atol=ATOL)
    assert not np.allclose(res.losses[0], res.losses[1])  # the two rates really differ


def test_a_diverging_rate_is_marked_and_never_best(result):
    for row in result.table:
        assert row["diverged"] == (row["learning_rate"] == 1e30)
        if row["diverged"]:
            assert math.isnan(row["val_loss"]) and math.isnan(row["val_accuracy"])
    assert result.best()["learning_rate"] == 0.05
    assert "!" in result.format().splitlines()[1]


def test_configuration_axis_is_sharded_over_the_devices(result):
    devices = jax.devices()
    assert len(devices) == 8 and result.devices == 8
    for leaf in jax.tree.leaves(result.params):
        assert leaf.shape[0] == 8
        assert leaf.sharding.spec == P("config")
        assert leaf.sharding.device_set == set(devices)
        assert {s.data.shape[0] for s in leaf.addressable_shards} == {1}


def test_summary_means_and_stds_over_seeds(result):
    rows = result.summary()
    assert len(rows) == 4 and all(r["runs"] == 2 for r in rows)
    good = [r for r in rows if r["learning_rate"] == 0.05]
    for r in good:
        runs = [t for t in result.table if (t["learning_rate"], t["mu"]) == (0.05, r["mu"])]
        acc = np.array([t["val_accuracy"] for t in runs])
        assert r["val_accuracy"] == pytest.approx(acc.mean())
        assert r["val_accuracy_std"] == pytest.approx(acc.std(ddof=1))
    best = max(good, key=lambda r: r["val_accuracy"])
    assert result.best() == best
    marked = [line for line in result.format().splitlines() if line.startswith("*")]
    assert len(marked) == 2 and f"{best['mu']:g}" in marked[0]  # the best row, and the legend


def test_csv_and_plot(result, tmp_path):
    result.to_csv(tmp_path / "runs.csv")
    result.to_csv(tmp_path / "summary.csv", summary=True)
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and float(rows[5]["val_loss"]) == pytest.approx(
        result.table[5]["val_loss"]
    )
    with open(tmp_path / "summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    fig = plot_sweep(result, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert [ax.get_xscale() for ax in fig.axes] == ["log", "linear"]  # rate log-x, μ linear


def test_kfold_indices_are_disjoint_and_cover_the_split():
    folds = kfold_indices(103, 5, seed=2)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(103))  # cover, and disjoint
    assert {len(f) for f in folds} == {20, 21}
    assert [f.tolist() for f in kfold_indices(103, 5, seed=2)] == [f.tolist() for f in folds]
    with pytest.raises(ConfigError, match="--folds"):
        kfold_indices(10, 1)


def test_kfold_sweep_holds_out_each_fold_once(digits):
    cfg = tiny_config(learning_rate=0.05)
    cfg.train.steps = 6
    folds = 3
    res = sweep(cfg, {}, folds=folds, dataset=digits)  # 3 runs, padded to the 8 devices
    assert [r["fold"] for r in res.table] == [0, 1, 2]
    assert res.folds is not None
    assert [r["val_count"] for r in res.table] == [len(f) for f in res.folds]
    assert sum(len(f) for f in res.folds) == len(digits.x_train)
    summary = res.summary()
    assert len(summary) == 1 and summary[0]["runs"] == folds
    # Fold 1's run is the trainer's run on the other folds, validated on fold 1.
    held = res.folds[1]
    kept = np.setdiff1d(np.arange(len(digits.x_train)), held)
    split = Dataset(
        name="digits",
        task="classification",
        num_classes=10,
        input_shape=digits.input_shape,
        x_train=digits.x_train[kept],
        y_train=digits.y_train[kept],
        x_val=digits.x_train[held],
        y_val=digits.y_train[held],
        x_test=digits.x_test,
        y_test=digits.y_test,
    )
    losses, val, _ = one_at_a_time(copy.deepcopy(cfg), split)
    np.testing.assert_allclose(res.losses[1], losses, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(res.table[1]["val_loss"], val["val_loss"], rtol=RTOL, atol=ATOL)


def _fake_result(grid: dict, scores: dict) -> SweepResult:
    table = [
        {**dict(zip(grid, key, strict=True)), "seed": 0, "fold": None, "val_accuracy": acc,
         "val_loss": 1 - acc, "train_loss": 1 - acc, "diverged": False}
        for key, acc in scores.items()
    ]  # fmt: skip
    return SweepResult(
        grid, table, np.zeros((len(table), 1)), None, "val_accuracy", None, 1, 0, 0, 1
    )


def test_refine_brackets_the_best_on_a_finer_grid():
    coarse = [0.1, 0.05, 0.03, 0.01, 0.003, 0.001, 0.0005, 0.0001]  # lecture 03
    scores = {(lr,): 1 - abs(math.log10(lr / 0.01)) / 10 for lr in coarse}  # best at 0.01
    fine = refine(_fake_result({"learning_rate": coarse}, scores), points=5)["learning_rate"]
    assert len(fine) == 5 and 0.01 in fine
    assert 0.003 < min(fine) < 0.01 < max(fine) < 0.03  # strictly between the neighbours
    ratios = np.diff(np.log(fine))  # log-spaced on each side
    np.testing.assert_allclose(ratios[:2], np.log(0.01 / 0.003) / 3, rtol=1e-3)
    np.testing.assert_allclose(ratios[2:], np.log(0.03 / 0.01) / 3, rtol=1e-3)
    # best at an end of the grid: factor stands in for the missing neighbour
    edge = refine(_fake_result({"learning_rate": [0.1, 0.01]}, {(0.1,): 0.9, (0.01,): 0.5}))
    assert min(edge["learning_rate"]) > 0.01 and max(edge["learning_rate"]) < 0.3 + 1e-9


def test_refine_momentum_stays_below_one_and_fixes_the_rest():
    grid = {"learning_rate": [0.1, 0.01], "mu": [0.9, 0.99]}
    scores = {(0.1, 0.9): 0.5, (0.1, 0.99): 0.6, (0.01, 0.9): 0.7, (0.01, 0.99): 0.95}
    fine = refine(_fake_result(grid, scores), keys=["mu"], points=3)
    assert fine["learning_rate"] == [0.01]
    assert 0.9 < fine["mu"][0] < 0.99 < fine["mu"][-1] < 1.0 and len(fine["mu"]) == 3
    with pytest.raises(ValueError, match="factor"):
        refine(_fake_result(grid, scores), factor=1.0)


def test_bad_grid_key_names_it_and_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        sweep(tiny_config(optimizer="adam"), {"b3": [0.9]})
    message = str(err.value)
    assert "'b3'" in message and "adam" in message
    for valid in ("learning_rate", "weight_decay", "b1", "b2", "eps"):
        assert valid in message
    with pytest.raises(ConfigError, match="Adam's β1 is b1"):
        sweep(tiny_config(optimizer="adam"), {"momentum": [0.9]})
    with pytest.raises(ConfigError, match="finite numbers"):
        sweep(tiny_config(), {"learning_rate": []})
    with pytest.raises(ConfigError, match=r"train\.mesh"):
        cfg = tiny_config()
        cfg.train.mesh = "data=2"
        sweep(cfg, {"learning_rate": [0.1]})


def test_bad_grid_value_uses_the_trainers_check(digits):
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate must be > 0"):
        sweep(tiny_config(), {"learning_rate": [0.1, -1.0]}, dataset=digits)
