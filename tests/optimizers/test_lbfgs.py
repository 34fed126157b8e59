"""lbfgs: the two-loop recursion equals the explicit BFGS inverse-Hessian update."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference

RTOL, ATOL = 1e-9, 1e-12
RNG = np.random.default_rng(3)
_M = RNG.standard_normal((5, 5))
A = _M @ _M.T + 0.5 * np.eye(5)  # symmetric positive definite
B = RNG.standard_normal(5)


def quadratic(params):
    x = params["x"]
    return 0.5 * x @ (jnp.asarray(A) @ x) - jnp.asarray(B) @ x


def quadratic_grad(params, t):
    del t
    return {"x": A @ params["x"] - B}


def explicit_bfgs_reference(memory_size, step):
    """H_k = γ_k I updated by the m newest pairs, H ← (I − ρsyᵀ)H(I − ρysᵀ) + ρssᵀ
    (Nocedal & Wright eq. 7.19 with H_k⁰ = γ_k I, eq. 7.20), as dense matrices."""

    def init(params):
        return {"pairs": [], "prev": None}

    def ref_step(params, grads, state):
        x, g = params["x"], grads["x"]
        pairs = list(state["pairs"])
        if state["prev"] is not None:
            x_prev, g_prev = state["prev"]
            pairs = [*pairs, (x - x_prev, g - g_prev)][-memory_size:]
        if pairs:
            s, y = pairs[-1]
            h = (s @ y) / (y @ y) * np.eye(5)
            for s, y in pairs:
                rho = 1.0 / (y @ s)
                v = np.eye(5) - rho * np.outer(y, s)
                h = v.T @ h @ v + rho * np.outer(s, s)
            d = -h @ g
        else:
            d = -g / max(1.0, np.linalg.norm(g))
        return {"x": x + step * d}, {"pairs": pairs, "prev": (x, g)}

    return init, ref_step


@pytest.mark.parametrize("memory_size", [1, 3, 10])
def test_two_loop_recursion_equals_explicit_bfgs(memory_size):
    init, ref_step = explicit_bfgs_reference(memory_size, step=0.5)
    assert_matches_reference(
        optlab.lbfgs(0.5, memory_size, linesearch=False),
        ref_step,
        ref_init=init,
        grad_fn=quadratic_grad,
        shapes={"x": (5,)},
        per_leaf=False,
        num_steps=8,  # > memory_size: the ring buffer wraps
        rtol=RTOL,
        atol=ATOL,
        update_kwargs={"value_fn": quadratic},
    )


def test_line_search_meets_the_weak_wolfe_conditions():
    tx = optlab.lbfgs()
    with jax.enable_x64(True):
        x = {"x": jnp.asarray(RNG.standard_normal(5))}
        state = tx.init(x)
        update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=quadratic(p), value_fn=quadratic))
        for _ in range(6):
            g = jax.grad(quadratic)(x)
            step, state = update(g, state, x)
            new_x = optax.apply_updates(x, step)
            slope = float(g["x"] @ step["x"])  # α·gᵀd
            assert slope < 0
            assert float(quadratic(new_x)) <= float(quadratic(x)) + 1e-4 * slope  # Armijo
            assert float(jax.grad(quadratic)(new_x)["x"] @ step["x"]) >= 0.9 * slope  # curvature
            x = new_x
        assert update._cache_size() == 1  # no recompile across iterations


def test_update_needs_the_objective():
    tx = optlab.lbfgs()
    with pytest.raises(ValueError, match="value_fn=f"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))


@pytest.mark.parametrize(
    ("kwargs", "arg"), [({"memory_size": 0}, "memory_size"), ({"c1": 0.95}, "c1")]
)
def test_bad_options(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        optlab.lbfgs(**kwargs)
