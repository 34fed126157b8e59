"""The learning-rate range test: on least squares, gradient descent is stable exactly for
α < 2/λmax(H); the test's divergence lies above that rate and its suggestion below it."""

import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab.config import DataConfig, ModelConfig, OptimizerConfig, RunConfig, TrainConfig
from optlab.data import load_dataset
from optlab.lab import LRFindResult, lr_find, lr_range_test, plot_lr_find
from optlab.train.setup import build_setup

# The suggestion (the smoothed minimum's rate / 10) lands within this factor below 2/λmax:
# the smoothed minimum trails the critical rate by the few steps the unstable mode needs
# to grow back (observed 0.55–0.72 × 2/λmax over random problems and rate ranges).
FACTOR = 3.0


def least_squares(seed: int, condition_root: float):
    """f(w) = ‖Xw − y‖² / 2n with a spread spectrum; H = XᵀX / n (NumPy float64)."""
    rng = np.random.default_rng(seed)
    n, d = 120, 10
    x = rng.standard_normal((n, d)) @ np.diag(np.geomspace(1.0, 1.0 / condition_root, d))
    x *= rng.uniform(0.5, 3.0)
    y = x @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    lam_max = np.linalg.eigvalsh(x.T @ x / n).max()
    data = (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))

    def loss(w, batch):
        xb, yb = batch
        return 0.5 * jnp.mean((xb @ w - yb) ** 2)

    return loss, jnp.zeros(d), data, 2.0 / lam_max


@pytest.mark.parametrize(("seed", "condition_root", "steps"), [(0, 1.0, 100), (1, 30.0, 60)])
def test_suggestion_below_the_stable_limit_and_divergence_above(seed, condition_root, steps):
    loss, w0, data, critical = least_squares(seed, condition_root)
    res = lr_range_test(loss, w0, data, min_lr=1e-4 * critical, max_lr=1e3 * critical, steps=steps)
    assert res.diverged
    assert res.learning_rates[res.stopped_at] > critical
    assert critical / FACTOR < res.suggestion < critical
    assert res.suggestion == pytest.approx(res.min_loss_lr / 10)
    # Full-batch GD on a quadratic: the loss never rises while every rate so far is stable.
    stable = int(np.searchsorted(res.learning_rates, critical))
    assert np.all(np.diff(res.losses[: stable + 1]) <= 1e-6 * res.losses[0])
    rates = np.geomspace(1e-4 * critical, 1e3 * critical, steps)[: len(res.learning_rates)]
    np.testing.assert_allclose(res.learning_rates, rates, rtol=1e-6)


def test_smoothed_losses_are_the_bias_corrected_average():
    loss, w0, data, critical = least_squares(2, 10.0)
    beta = 0.9
    res = lr_range_test(loss, w0, data, min_lr=critical / 100, max_lr=critical * 10, steps=40,
                        smoothing=beta)  # fmt: skip
    avg, expected = 0.0, []
    for t, value in enumerate(res.losses):
        avg = beta * avg + (1 - beta) * value
        expected.append(avg / (1 - beta ** (t + 1)))
    np.testing.assert_allclose(res.smoothed_losses, expected, rtol=1e-12)
    # It stopped at the first step whose smoothed loss exceeded 4× the best so far
    # (decided in float32 inside the program; recomputed here in float64).
    best = np.minimum.accumulate(expected)
    over = np.flatnonzero(np.asarray(expected) > 4.0 * best)
    assert res.stopped_at == over[0] == len(res.losses) - 1


def test_stacked_batches_cycle_and_the_factory_is_used():
    # f(w; b) = ‖w − b‖²; step t uses batch t mod 2; momentum, by hand in float64.
    batches = jnp.asarray([[1.0, 2.0], [-1.0, 0.5]], jnp.float32)
    res = lr_range_test(
        lambda w, b: jnp.sum((w - b) ** 2),
        jnp.zeros(2),
        batches,
        lambda learning_rate: optlab.momentum(learning_rate, mu=0.5),
        stacked=True,
        min_lr=0.01,
        max_lr=0.1,
        steps=5,
    )
    w, v, expected = np.zeros(2), np.zeros(2), []
    b = np.asarray(batches, np.float64)
    for t, lr in enumerate(np.geomspace(0.01, 0.1, 5)):
        expected.append(np.sum((w - b[t % 2]) ** 2))
        v = 0.5 * v - 2 * (w - b[t % 2])  # heavy ball: Δ ← μΔ − ∇f, θ ← θ + γΔ
        w = w + lr * v
    np.testing.assert_allclose(res.losses, expected, rtol=1e-5)
    assert not res.diverged and len(res.losses) == 5


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_lr": 0.0}, "min_lr"),
        ({"max_lr": 1e-9}, "max_lr"),
        ({"steps": 1}, "steps"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        lr_range_test(lambda w, _: jnp.sum(w**2), jnp.ones(1), None, **kwargs)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_lr_find_on_a_run_starts_as_the_trainer_does(digits, tmp_path):
    cfg = RunConfig(
        data=DataConfig(batch_size=32),
        model=ModelConfig(options={"widths": (16,)}),
        optimizer=OptimizerConfig(optimizer="sgd", learning_rate=0.5, weight_decay=1e-3),
        train=TrainConfig(seed=1),
    )
    res = lr_find(cfg, min_lr=1e-4, max_lr=1e3, steps=50, dataset=digits)
    assert isinstance(res, LRFindResult) and res.diverged and len(res.losses) <= 50
    smooth = res.smoothed_losses
    assert res.min_loss_lr == res.learning_rates[np.argmin(smooth)]
    assert smooth.min() < 0.8 * smooth[0]  # it learned before it diverged
    # The first two steps are the trainer's with the rate fixed at the test's first rate:
    # same init, batches, optimizer chain (weight decay included).
    cfg.optimizer.learning_rate, cfg.train.steps = float(res.learning_rates[0]), 2
    setup = build_setup(cfg, dataset=digits)
    state, first = setup.train_step(setup.init_state(), setup.next_batch())
    _, second = setup.train_step(state, setup.next_batch())
    # loss t is measured before update t, so losses 0 and 1 saw only the first rate
    np.testing.assert_allclose(res.losses[:2], [first["loss"], second["loss"]], rtol=1e-6)
    res.to_csv(tmp_path / "lr.csv")
    lines = (tmp_path / "lr.csv").read_text().splitlines()
    assert lines[0] == "step,learning_rate,loss,smoothed_loss" and len(lines) == len(res.losses) + 1
    fig = plot_lr_find(res, tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert fig.axes[0].get_xscale() == "log"
