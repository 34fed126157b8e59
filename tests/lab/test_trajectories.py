"""optlab.lab trajectories and their plots: a path equals the lecture's update rolled out in
NumPy float64, several optimizers compile once, gradient noise is seeded and escapes a
saddle and a local minimum (lectures 03, 04), L-BFGS solves Rosenbrock; PNG/GIF files."""

import collections

import jax
import numpy as np
import optax
import pytest
from PIL import Image

import optlab
from optlab.lab import (
    Trajectories,
    lecture02_quadratic,
    local_minima,
    plot_losses,
    plot_trajectories,
    rosenbrock,
    saddle,
    trajectories,
)


def _gd_numpy(alpha: float, start, steps: int) -> np.ndarray:
    """Lecture 02's w ← w − α∇f, ∇f = (10x + 2y, 2x + 6y), in float64."""
    w = np.asarray(start, np.float64)
    path = [w]
    for _ in range(steps):
        x, y = w
        w = w - alpha * np.array([10 * x + 2 * y, 2 * x + 6 * y])
        path.append(w)
    return np.array(path)


@pytest.fixture(scope="module")
def quadratic_run() -> Trajectories:
    optimizers = {
        "gd": optlab.sgd(0.05),
        "heavy_ball": optlab.momentum(0.02, 0.9),
        "adam": optlab.adam(0.1),
    }
    return trajectories(lecture02_quadratic(), optimizers, steps=60)


def test_gd_path_equals_numpy_rollout(quadratic_run):
    expected = _gd_numpy(0.05, (1.0, 1.0), 60)
    path = quadratic_run.paths["gd"]
    assert path.shape == (61, 2) and quadratic_run.losses["gd"].shape == (61,)
    # float32 against float64: relative 1e-5 per step; atol far below the final |w| ~ 1e-7
    np.testing.assert_allclose(path, expected, rtol=1e-5, atol=1e-12)
    x, y = expected.T
    losses = 5 * x**2 + 2 * x * y + 3 * y**2
    np.testing.assert_allclose(quadratic_run.losses["gd"], losses, rtol=2e-5, atol=1e-14)
    first = int(np.flatnonzero(losses <= 1e-3)[0])
    assert quadratic_run.steps_to(1e-3)["gd"] == first
    assert quadratic_run.steps_to(0.0)["heavy_ball"] is None
    assert quadratic_run.final_distance()["gd"] == pytest.approx(
        np.linalg.norm(expected[-1]), rel=1e-4
    )
    assert quadratic_run.final_loss()["gd"] == pytest.approx(losses[-1], rel=1e-4)


def test_heavy_ball_path_equals_numpy_rollout(quadratic_run):
    w, delta = np.array([1.0, 1.0]), np.zeros(2)  # lecture 04: Δ ← μΔ − ∇f; θ ← θ + γΔ
    for t in range(60):
        x, y = w
        delta = 0.9 * delta - np.array([10 * x + 2 * y, 2 * x + 6 * y])
        w = w + 0.02 * delta
        np.testing.assert_allclose(quadratic_run.paths["heavy_ball"][t + 1], w, rtol=1e-5,
                                   atol=1e-7)  # fmt: skip


def test_several_optimizers_compile_once():
    compiles = collections.Counter()

    def listener(name, *args, **kwargs):
        compiles[name] += 1

    optimizers = {
        "gd": optlab.sgd(0.01),
        "nesterov": optlab.nesterov(0.01, 0.9),
        "rmsprop": optlab.rmsprop(0.01),
        "lbfgs": optlab.lbfgs(),
    }
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        first = trajectories(rosenbrock(), optimizers, steps=5)
        again = trajectories(first.surface, optimizers, start=(0.5, 0.5), steps=5)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles["/jax/core/compile/jaxpr_trace_duration"] == 1
    assert compiles["/jax/core/compile/backend_compile_duration"] == 1
    np.testing.assert_array_equal(again.paths["gd"][0], [0.5, 0.5])
    assert set(first.paths) == set(optimizers)


def test_noise_is_seeded_and_changes_the_path():
    optimizers = {"gd": optlab.sgd(0.05)}
    surface = lecture02_quadratic()
    exact = trajectories(surface, optimizers, steps=20)
    noisy = trajectories(surface, optimizers, steps=20, noise_scale=0.5, seed=1)
    same = trajectories(surface, optimizers, steps=20, noise_scale=0.5, seed=1)
    other = trajectories(surface, optimizers, steps=20, noise_scale=0.5, seed=2)
    np.testing.assert_array_equal(noisy.paths["gd"], same.paths["gd"])
    assert np.abs(noisy.paths["gd"][1:] - exact.paths["gd"][1:]).min() > 0
    assert np.abs(noisy.paths["gd"][1:] - other.paths["gd"][1:]).max() > 1e-3
    # the first step's noise is σ·ε with ε ~ N(0, I) from fold_in(key(seed), 0)
    eps = jax.random.normal(jax.random.fold_in(jax.random.key(1), 0), (2,))
    expected = np.array([1.0, 1.0]) - 0.05 * (np.array([12.0, 8.0]) + 0.5 * np.asarray(eps))
    np.testing.assert_allclose(noisy.paths["gd"][1], expected, rtol=1e-6)


def test_noise_escapes_the_saddle_from_its_stable_manifold():
    """Lectures 03/04: from a start on the x axis, GD converges to the saddle (0, 0); with
    gradient noise the same steps leave it for a minimum (0, ±1)."""
    optimizers = {"gd": optlab.sgd(0.1)}
    exact = trajectories(saddle(), optimizers, start=(1.5, 0.0), steps=300)
    np.testing.assert_allclose(exact.paths["gd"][-1], [0.0, 0.0], atol=1e-9)
    assert exact.losses["gd"][-1] == pytest.approx(0.0, abs=1e-12)  # f at the saddle
    for seed in range(3):
        noisy = trajectories(saddle(), optimizers, start=(1.5, 0.0), steps=300,
                             noise_scale=0.1, seed=seed)  # fmt: skip
        assert abs(noisy.paths["gd"][-1, 1]) > 0.8, seed
        assert noisy.final_distance()["gd"] < 0.2
        assert noisy.losses["gd"][-1] < -0.2  # f* = −0.25, the saddle's f = 0


def test_noise_escapes_a_local_minimum():
    """Lecture 04: 'may escape local minima due to noise'. Noiseless GD settles in the
    local minimum (1, ½); with σ = 1.5 most seeds end in the global basin (x < ¼)."""
    surface, optimizers = local_minima(), {"gd": optlab.sgd(0.1)}
    exact = trajectories(surface, optimizers, steps=500)
    np.testing.assert_allclose(exact.paths["gd"][-1], [1.0, 0.5], atol=1e-4)
    ends = [
        trajectories(surface, optimizers, steps=500, noise_scale=1.5, seed=s).paths["gd"][-1, 0]
        for s in range(10)
    ]
    assert sum(x < 0.25 for x in ends) >= 7, ends


def test_lbfgs_reaches_the_rosenbrock_minimum():
    result = trajectories(rosenbrock(), {"lbfgs": optlab.lbfgs()}, steps=100)
    assert result.final_distance()["lbfgs"] < 1e-3
    assert result.steps_to(1e-6)["lbfgs"] is not None


def test_optax_transformations_work_too():
    result = trajectories(lecture02_quadratic(), {"optax_sgd": optax.sgd(0.05)}, steps=60)
    np.testing.assert_allclose(result.paths["optax_sgd"], _gd_numpy(0.05, (1, 1), 60),
                               rtol=1e-5, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"start": (1.0, 2.0, 3.0)}, "start"),
        ({"start": (np.nan, 0.0)}, "start"),
        ({"optimizers": {}}, "optimizers"),
        ({"optimizers": {"sgd": "sgd"}}, "optimizers"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"seed": -1}, "seed"),
        ({"surface": "rosenbrock"}, "surface"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    args = {"surface": lecture02_quadratic(), "optimizers": {"sgd": optlab.sgd(0.1)}}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        trajectories(**args)


def test_steps_to_rejects_negative_threshold(quadratic_run):
    with pytest.raises(ValueError, match="threshold"):
        quadratic_run.steps_to(-1.0)


def test_plot_trajectories_png_and_gif(quadratic_run, tmp_path):
    png, gif = tmp_path / "paths.png", tmp_path / "anim" / "paths.gif"
    fig = plot_trajectories(quadratic_run, png, gif=gif, frames=12, dpi=60)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == quadratic_run.names
    np.testing.assert_array_equal(lines[0].get_xydata(), quadratic_run.paths["gd"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == quadratic_run.names
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size == (round(6.4 * 60), round(5.2 * 60))
    with Image.open(gif) as im:
        assert im.format == "GIF"
        assert im.n_frames == 12
        assert im.size == (round(6.4 * 40), round(5.2 * 40))
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB"))
    assert (first != last).any()  # the paths grow
    assert gif.stat().st_size < 400_000


def test_plot_losses(quadratic_run, tmp_path):
    fig = plot_losses(quadratic_run, tmp_path / "losses.png", dpi=50)
    lines = fig.axes[0].get_lines()
    assert len(lines) == len(quadratic_run.names)
    np.testing.assert_allclose(
        lines[0].get_ydata(), np.maximum(quadratic_run.gaps()["gd"], 1e-12), rtol=1e-6
    )
    assert fig.axes[0].get_yscale() == "log"
    with Image.open(tmp_path / "losses.png") as im:
        assert im.size == (320, 210)


def test_plots_reject_other_objects():
    with pytest.raises(ValueError, match="result"):
        plot_trajectories({"gd": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="result"):
        plot_losses(None)
