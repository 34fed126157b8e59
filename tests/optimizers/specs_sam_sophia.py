"""Contract specs of the loss-function optimizers: sam (a wrapper) and sophia.

Both need ``obj_fn`` (params -> scalar loss) in ``update``, and the contract calls
``update(grads, state, params)`` without it. Each spec therefore wraps the optimizer in
``with_obj_fn``, which supplies an ``obj_fn`` when the caller passes none:

* SAM: the local quadratic model whose gradient at θ is the caller's g,
  L̃(q) = Re⟨g, q − θ⟩ + ½‖q − θ‖², so ∇L̃(θ + ε̂) = g + ε̂: SAM's step on a model with
  curvature I. (A fixed loss of the params would pull every problem to that loss's
  minimum instead of the problem's.) Complex parameters work (the conjugate convention).
* Sophia: L(q) = ½‖q‖², whose Hessian is I (only its curvature is used; the gradient
  is the caller's): h → 1, and Sophia is a clipped, momentum-preconditioned step of
  −η·clip(m/max{γ, ε}, 1) with γ·h ≈ γ. Real parameters only (complex_ok=False).

``sam_optax`` (alternating calls) takes no loss: the caller's next gradient is taken at
θ + ε̂ of the real problem. That is true SAM on Rosenbrock, whose narrow valley moves the
fixed point by about ρ·curvature: with ρ = 1e-2 it stalls near (0.90, 0.80), with 1e-3 the
complex case stalls 0.08 away; ρ = 1e-4 reaches the minimum within 2e-3 in 100,000 calls
(half of them ascend). Its inner rate advances once per two calls, so an injected rate is
not a schedule of the call count (schedule_equivalent=False).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import optlab
from optlab.optimizers._sam import sam
from optlab.optimizers._sophia import sophia
from optlab.testing import OptimizerSpec


def with_obj_fn(
    tx: optax.GradientTransformation, make_obj_fn: Callable[[Any, Any], Callable]
) -> optax.GradientTransformationExtraArgs:
    """``tx`` whose ``update`` supplies ``obj_fn=make_obj_fn(grads, params)`` if absent."""

    def update_fn(updates, state, params=None, **extra_args):
        if extra_args.get("obj_fn") is None:
            extra_args["obj_fn"] = make_obj_fn(updates, params)
        return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def local_model(grads, params):
    """q ↦ Re⟨g, q − θ⟩ + ½‖q − θ‖² (its descent gradient at q is g + (q − θ))."""

    def obj_fn(q):
        def term(g, p, x):
            d = x - p
            return jnp.sum(jnp.real(jnp.conj(g) * d)) + 0.5 * jnp.sum(jnp.real(jnp.conj(d) * d))

        return sum(jax.tree.leaves(jax.tree.map(term, grads, params, q)))

    return obj_fn


def half_square(grads, params):
    """q ↦ ½‖q‖² (Hessian I), whatever the gradients."""
    del grads, params
    return lambda q: 0.5 * sum(jnp.sum(x * x) for x in jax.tree.leaves(q))


SPECS = [
    OptimizerSpec(
        "sam",
        lambda learning_rate: with_obj_fn(sam(optlab.sgd(learning_rate), rho=0.05), local_model),
        1e-2,
        1e-3,
        30_000,
    ),
    OptimizerSpec(
        "sam_optax",
        lambda learning_rate: sam(optlab.sgd(learning_rate), rho=1e-4, like="optax"),
        1e-2,
        1e-3,
        100_000,
        schedule_equivalent=False,
    ),
    OptimizerSpec(
        "sophia",
        lambda learning_rate: with_obj_fn(sophia(learning_rate), half_square),
        1e-2,
        1e-3,
        complex_ok=False,
        moves_at_rest=True,
    ),
    OptimizerSpec(
        "sophia_optax",
        lambda learning_rate: with_obj_fn(sophia(learning_rate, like="optax"), half_square),
        1e-2,
        1e-3,
        complex_ok=False,
        moves_at_rest=True,
    ),
]


def specs_for(name: str) -> list[OptimizerSpec]:
    """The specs of optimizer ``name`` (its forms ``name``, ``name_*``)."""
    return [s for s in SPECS if s.name == name or s.name.startswith(name + "_")]
