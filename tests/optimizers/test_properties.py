"""Property tests over the registry: random pytrees, zero, huge and tiny gradients.

Every optimizer keeps the structure, shape and dtype of the parameters and produces no
NaN or infinity where its formula has none. Hypothesis draws from a few fixed structures
so that each optimizer compiles at most three programs (examples are capped in conftest).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.optimizers.registry import LECTURE_SPECS, SHELF_SPECS, SPECS

# The lectures' optimizers in the quick tier, the shelf's in the full tier (`pytest -m ""`).
PARAMS = [pytest.param(s, id=s.name) for s in LECTURE_SPECS] + [
    pytest.param(s, id=s.name, marks=pytest.mark.slow) for s in SHELF_SPECS
]

STRUCTURES = [
    {"a": (5,)},
    {"dense": {"kernel": (4, 3), "bias": (3,)}, "scale": ()},
    [(2, 2), {"x": (1,)}, (3, 1, 2)],
]


def _make_tree(structure, rng, scale):
    return jax.tree.map(
        lambda shape: jnp.asarray(scale * rng.standard_normal(shape), jnp.float32),
        structure,
        is_leaf=lambda x: isinstance(x, tuple),
    )


@functools.cache
def _compiled(spec_name):
    spec = next(s for s in SPECS if s.name == spec_name)
    tx = spec.make(learning_rate=spec.learning_rate)
    return tx, jax.jit(tx.update)


@pytest.mark.parametrize("spec", PARAMS)
@given(
    structure=st.integers(0, len(STRUCTURES) - 1),
    log10_scale=st.integers(-30, 15),
    zero=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_structure_dtype_and_finiteness(spec, structure, log10_scale, zero, seed):
    if zero and not spec.finite_at_zero:
        return  # 0/0 by the form's own formula (asserted in the test below)
    tx, update = _compiled(spec.name)
    rng = np.random.default_rng(seed)
    params = _make_tree(STRUCTURES[structure], rng, 1.0)
    state = tx.init(params)
    for _ in range(4):
        grads = _make_tree(STRUCTURES[structure], rng, 0.0 if zero else 10.0**log10_scale)
        updates, state = update(grads, state, params)
        assert jax.tree.structure(updates) == jax.tree.structure(params)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert u.shape == p.shape and u.dtype == p.dtype
            assert bool(jnp.all(jnp.isfinite(u))), f"{spec.name}: non-finite update"
        for leaf in jax.tree.leaves(state):
            assert bool(jnp.all(jnp.isfinite(leaf))), f"{spec.name}: non-finite state"
        params = jax.tree.map(lambda p, u: p + u, params, updates)


@pytest.mark.parametrize("spec", PARAMS)
def test_zero_gradients_from_rest_do_not_move_unregularized_params(spec):
    tx, update = _compiled(spec.name)
    params = _make_tree(STRUCTURES[1], np.random.default_rng(0), 1.0)
    updates, _ = update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    moved = max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(updates))
    if not spec.finite_at_zero:  # the form's documented 0/0 (optax's Prodigy)
        assert np.isnan(moved), f"{spec.name} no longer gives 0/0 at g = 0: update the spec"
    elif spec.moves_at_rest:  # decoupled decay moves θ even with g = 0
        assert moved > 0
    else:
        assert moved == 0.0, f"{spec.name} moved {moved} with zero gradients"
