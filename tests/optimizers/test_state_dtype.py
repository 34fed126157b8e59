"""with_state_dtype: the state is stored small, the update computed in the params' dtype."""

import jax
import jax.numpy as jnp
import numpy as np

import optlab


def test_equals_rounding_the_state_between_steps():
    params = jnp.asarray(np.random.default_rng(0).standard_normal(16), jnp.float32)
    grads = [jnp.asarray(g, jnp.float32) for g in np.random.default_rng(1).standard_normal((5, 16))]
    small = optlab.with_state_dtype(optlab.adam(1e-2), jnp.bfloat16)
    plain = optlab.adam(1e-2)
    s_small, s_plain = small.init(params), plain.init(params)
    update = jax.jit(small.update)

    @jax.jit
    def by_hand(g, state):  # round the new moments to bfloat16, keep computing in float32
        updates, state = plain.update(g, state, params)
        rounded = jax.tree.map(
            lambda x: x.astype(jnp.bfloat16).astype(jnp.float32)
            if jnp.issubdtype(x.dtype, jnp.floating) else x,
            state,
        )  # fmt: skip
        return updates, rounded

    for g in grads:
        got, s_small = update(g, s_small, params)
        want, s_plain = by_hand(g, s_plain)
        # Two compiled programs: XLA may fuse the casts differently, a float32 ulp apart.
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=0)
        assert got.dtype == jnp.float32
    assert {x.dtype for x in jax.tree.leaves(s_small)} == {
        jnp.dtype("bfloat16"),
        jnp.dtype("int32"),
    }
    assert update._cache_size() == 1


def test_contract_checks_hold():
    from optlab.testing import OptimizerSpec, check_inject_hyperparams, check_no_recompile

    spec = OptimizerSpec(
        "adam_bf16_state",
        lambda learning_rate: optlab.with_state_dtype(optlab.adam(learning_rate), jnp.bfloat16),
        1e-2,
    )
    check_no_recompile(spec)
    check_inject_hyperparams(spec)
