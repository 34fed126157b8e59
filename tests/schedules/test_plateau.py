"""reduce_on_plateau: PyTorch's ReduceLROnPlateau, the `value` extra argument, its state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import schedules as sch

LOSSES = [10, 9, 9.5, 9.2, 9.0, 9.0, 8.9995, 9.1, 9.3, 7, 7, 7, 7, 7, 7.5, 6.99, 7, 7, 7, 7]


def torch_scales(torch, losses, **kwargs):
    """lr / initial lr after each ``scheduler.step(loss)``."""
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **kwargs)
    out = []
    for loss in losses:
        opt.step()
        plateau.step(float(loss))
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


@pytest.mark.parametrize(
    ("factor", "patience", "cooldown", "min_scale", "rtol"),
    [
        (0.1, 10, 0, 0.0, 1e-4),  # PyTorch's defaults
        (0.5, 0, 0, 1e-3, 1e-4),  # min_scale keeps the lr above torch's eps = 1e-8
        (0.5, 2, 1, 0.1, 1e-4),
        (0.3, 1, 3, 0.0, 0.05),
    ],
)
def test_matches_torch(torch, factor, patience, cooldown, min_scale, rtol):
    rng = np.random.default_rng(0)
    losses = np.concatenate([LOSSES, 5 + 0.1 * np.cumsum(rng.normal(0.0, 0.05, 60))])
    want = torch_scales(
        torch,
        losses,
        factor=factor,
        patience=patience,
        cooldown=cooldown,
        min_lr=min_scale,
        threshold=rtol,
        threshold_mode="rel",
    )
    assert want.min() < 1.0  # the sequence does reduce

    tx = sch.reduce_on_plateau(factor, patience, cooldown=cooldown, min_scale=min_scale, rtol=rtol)
    with jax.enable_x64(True):

        @jax.jit
        def run(losses):
            def body(state, loss):
                updates, state = tx.update(jnp.ones(2), state, value=loss)
                return state, (state.scale, updates)

            return jax.lax.scan(body, tx.init(jnp.zeros(2)), losses)[1]

        scales, updates = run(jnp.asarray(losses))
    np.testing.assert_allclose(scales, want, rtol=1e-12)
    np.testing.assert_allclose(updates, np.stack([want, want], axis=1), rtol=1e-12)


def test_in_a_chain_after_the_optimizer():
    tx = optax.chain(optlab.sgd(0.1), sch.reduce_on_plateau(0.5, patience=0))
    params = jnp.ones(2)
    state = tx.init(params)
    for loss, want in [(1.0, -0.1), (1.0, -0.05), (2.0, -0.025), (0.5, -0.025)]:
        updates, state = tx.update(jnp.ones(2), state, params, value=loss)
        np.testing.assert_allclose(updates, want, rtol=1e-6)


def test_value_is_required_and_scalar():
    tx = optax.chain(optlab.sgd(0.1), sch.reduce_on_plateau())
    state = tx.init(jnp.ones(2))
    with pytest.raises(ValueError, match=r"reduce_on_plateau: `value` \(the monitored loss\)"):
        tx.update(jnp.ones(2), state, jnp.ones(2))
    with pytest.raises(ValueError, match="`value` must be a scalar loss"):
        tx.update(jnp.ones(2), state, jnp.ones(2), value=jnp.ones(3))


def test_state_round_trips_jits_and_vmaps():
    tx = sch.reduce_on_plateau(0.5, patience=1)
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}
    state = tx.init(params)
    assert isinstance(state, sch.ReduceOnPlateauState)
    leaves, treedef = jax.tree.flatten(state)
    assert len(leaves) == 4 and all(leaf.shape == () for leaf in leaves)
    restored = jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])  # as from disk
    assert restored._fields == state._fields

    traces = [0]

    def update(g, state, loss):
        traces[0] += 1
        return tx.update(g, state, value=loss)

    update = jax.jit(update)
    state = restored
    for loss in [3.0, 3.0, 3.0, 2.0]:
        updates, state = update(params, state, loss)
        assert jax.tree.structure(state) == treedef
        assert [x.dtype for x in jax.tree.leaves(state)] == [x.dtype for x in leaves]
    assert traces[0] == 1, f"update traced {traces[0]} times for 4 calls"
    assert float(state.scale) == 0.5 and updates["b"].dtype == jnp.bfloat16

    # Independent runs (a sweep) vmap over state and value.
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), tx.init(params))
    step = jax.vmap(lambda s, v: tx.update(params, s, value=v)[1])
    for values in ([1.0, 1.0], [0.5, 1.0], [0.5, 1.0]):
        batch = step(batch, jnp.array(values))
    np.testing.assert_array_equal(batch.scale, [1.0, 0.5])
    np.testing.assert_array_equal(batch.best_value, [0.5, 1.0])
