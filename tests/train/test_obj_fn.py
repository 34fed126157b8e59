"""The train step hands the optimizer ``obj_fn`` (params -> the batch's mean loss), as
optax.contrib's SAM and Sophia expect, and ``value`` (the loss)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.train import StepSpec, create_state, make_train_step


class Seen(NamedTuple):
    at_params: jax.Array  # obj_fn(params)
    at_zero: jax.Array  # obj_fn(0)
    value: jax.Array


def recorder():
    """Moves nothing; records what obj_fn and value said."""

    def init(params):
        del params
        return Seen(jnp.zeros([]), jnp.zeros([]), jnp.zeros([]))

    def update(updates, state, params=None, *, obj_fn=None, value=None, **extra):
        del state, extra
        zero = jax.tree.map(jnp.zeros_like, params)
        seen = Seen(obj_fn(params), obj_fn(zero), value)
        return jax.tree.map(jnp.zeros_like, updates), seen

    return optax.GradientTransformationExtraArgs(init, update)


def apply(variables, x, train=False, rngs=None):
    del train, rngs
    return x @ variables["params"]["w"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_obj_fn_is_the_batch_loss_at_any_params(accumulate):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)}
    x = jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 8))
    batch = {"x": x, "y": y, "mask": jnp.ones(8)}
    if accumulate == 2:
        batch = jax.tree.map(lambda a: a.reshape(2, 4, *a.shape[1:]), batch)
    tx = recorder()
    step = jax.jit(
        make_train_step(apply, tx, StepSpec(loss="cross_entropy", accumulate=accumulate))
    )
    state, metrics = step(create_state(params, tx.init(params), seed=0), batch)
    seen = state.opt_state
    logits = np.asarray(x @ params["w"], np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.mean(log_softmax[np.arange(8), np.asarray(y)])
    np.testing.assert_allclose(float(seen.at_params), want, rtol=1e-5)
    np.testing.assert_allclose(float(seen.value), want, rtol=1e-5)
    np.testing.assert_allclose(float(seen.at_zero), np.log(4.0), rtol=1e-6)  # uniform logits
    np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)
