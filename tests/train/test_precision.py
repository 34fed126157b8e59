"""Mixed precision: bf16/fp16 compute with float32 master weights; fp16 loss scaling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train import StepSpec, create_state, make_train_step, run


@pytest.mark.parametrize("precision", ["bf16", pytest.param("fp16", marks=pytest.mark.slow)])
def test_half_precision_runs_keep_float32_weights(tmp_path, precision):
    args = cli.parser().parse_args(
        ["train", "--out", str(tmp_path), "--epochs", "6", "--precision", precision,
         "--no-progress"]
    )  # fmt: skip
    result = run(config_from_args(args), progress=False)
    assert result.summary["test_accuracy"] > 0.9
    assert {p.dtype for p in jax.tree.leaves(result.state.params)} == {jnp.dtype("float32")}
    if precision == "fp16":
        assert float(result.state.loss_scale) >= 1.0


def _half_model(variables, x, train=True, rngs=None, mutable=False):
    # A float16 linear model whose scaled loss overflows float16 when the scale is huge.
    return (x.astype(jnp.float16) @ variables["params"]["w"].astype(jnp.float16)).astype(
        jnp.float32
    )


def _batch():
    rng = np.random.default_rng(0)
    return {
        "x": jnp.asarray(rng.standard_normal((8, 4)) * 30, jnp.float32),
        "y": jnp.asarray(rng.integers(0, 3, 8), jnp.int32),
        "mask": jnp.ones(8),
    }


def test_overflow_halves_the_scale_and_skips_without_failing():
    params = {"w": jnp.ones((4, 3)) * 3}
    tx = optlab.sgd(0.1)
    spec = StepSpec(learning_rate_fn=lambda _: 0.1, loss_scaling=True, nonfinite="stop")
    step = jax.jit(make_train_step(_half_model, tx, spec))
    state = create_state(params, tx.init(params), 0, loss_scale=2.0**40)
    new, metrics = step(state, _batch())
    assert not bool(metrics["finite"])  # the float16 gradient overflowed
    assert float(new.loss_scale) == 2.0**39  # halved
    assert int(new.first_nonfinite[0]) == -1  # an overflow is not a failure
    np.testing.assert_array_equal(new.params["w"], params["w"])  # update skipped
    for _ in range(60):  # it keeps halving until the scaled gradients fit in float16
        new, metrics = step(new, _batch())
        if bool(metrics["finite"]):
            break
    assert bool(metrics["finite"]) and float(new.loss_scale) < 2.0**39
    assert not np.array_equal(np.asarray(new.params["w"]), np.asarray(params["w"]))


def test_scale_grows_after_a_run_of_good_steps():
    params = {"w": jnp.full((4, 3), 0.01)}
    tx = optax.sgd(0.0)
    spec = StepSpec(
        learning_rate_fn=lambda _: 0.0, loss_scaling=True, scale_growth_interval=3, nonfinite="skip"
    )
    step = jax.jit(make_train_step(_half_model, tx, spec))
    state = create_state(params, tx.init(params), 0, loss_scale=4.0)
    scales = []
    for _ in range(7):
        state, _ = step(state, _batch())
        scales.append(float(state.loss_scale))
    assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0, 16.0]
