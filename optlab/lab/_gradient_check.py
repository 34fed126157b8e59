"""The doctor's ``gradient_check``: autodiff's gradient against central finite differences.

Random coordinates of every parameter array, in float64 (``jax.enable_x64``), each the best
of the steps ``FD_STEPS``; the relative error of each coordinate is taken against floors
(``FD_FLOOR``, ``FD_RESOLUTION``) so that gradients too small for a difference to resolve,
or exactly 0 on both sides, agree instead of failing as 0/0 or noise/noise.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from optlab.train.losses import per_example_loss

FD_STEPS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
FD_TOLERANCE = 3e-2
"""Largest relative error allowed between a gradient coordinate and its central difference.

The difference is taken in float64, but most models (optlab's included) round their
outputs to float32, which leaves noise ≈ ulp(z)/h in a difference; ReLU kinks crossed by
a step h add an error of their own. Each coordinate therefore takes the best of the steps
``FD_STEPS``: a large step beats the rounding, a small one misses the kinks. On correct
gradients (MLPs of 1–4 hidden layers with ReLU or tanh, batch norm, dropout; the CNN;
digits, MNIST-1D, spirals, synthetic regression) the largest error measured was 8e-3; a
wrong gradient (a factor 1.5, a sign, a dropped term) gives errors of 0.3 and more."""
FD_FLOOR = 1e-2  # errors are relative to at least this fraction of the layer's largest gradient
FD_RESOLUTION = float(np.finfo(np.float32).eps) / (2 * max(FD_STEPS))
"""Errors are also relative to at least ``FD_RESOLUTION · max(|L|, 1)``: the smallest
gradient a central difference resolves, at the largest step, when the loss L is rounded to
float32 (a change below eps₃₂·|L| is lost). Below it both sides are noise and agree: a
constant initialization's symmetric layers get autodiff gradients of ~1e-8 against
differences of exactly 0, and gradients that are both exactly 0 agree (no 0/0)."""


def _relative_errors(analytic: np.ndarray, closest: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """|g − ĝ| / max(|g|, |ĝ|, floor): 0 where both are 0 (agreement, never 0/0), NaN
    where either is not finite."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(closest)), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = np.abs(analytic - closest) / scale
    return np.where((analytic == closest) & np.isfinite(analytic), 0.0, errors)


def gradient_check(
    apply_fn, loss_name, params, model_state, ds, n: int, per_array: int, seed: int
) -> tuple[bool, dict[str, float], str]:
    """(passed, numbers, explanation) of the doctor's ``gradient_check`` (see ``doctor``)."""
    x, y = ds.x_train[:n], ds.y_train[:n]
    rng = np.random.default_rng(seed)
    key = jax.random.PRNGKey(seed)
    with jax.enable_x64(True):

        def to64(a):
            a = jnp.asarray(a)
            return a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a

        p64, ms64 = jax.tree.map(to64, params), jax.tree.map(to64, model_state)
        flat, unravel = ravel_pytree(p64)
        x64, y64 = to64(x), to64(y)
        mutable = list(ms64) if ms64 else False

        def loss(w):
            variables = {"params": unravel(w), **ms64}
            out = apply_fn(variables, x64, train=True, rngs={"dropout": key}, mutable=mutable)
            return jnp.mean(per_example_loss(loss_name, _logits(out).astype(jnp.float64), y64))

        sizes = [leaf.size for leaf in jax.tree.leaves(p64)]
        starts = np.cumsum([0, *sizes])
        chosen = [
            rng.choice(np.arange(starts[i], starts[i + 1]), min(per_array, size), replace=False)
            for i, size in enumerate(sizes)
        ]
        index = np.concatenate(chosen)
        steps = jnp.asarray(FD_STEPS, jnp.float64)

        @jax.jit
        def compare(flat, index):  # autodiff's gradient, and (m, steps) central differences
            def one(i):
                def at(h):
                    return (loss(flat.at[i].add(h)) - loss(flat.at[i].add(-h))) / (2 * h)

                return jax.vmap(at)(steps)

            value, grad = jax.value_and_grad(loss)(flat)
            return value, grad, jax.lax.map(one, index)

        value, grad, differences = (
            np.asarray(a, np.float64) for a in compare(flat, jnp.asarray(index))
        )
    analytic = grad[index]
    best = np.argmin(np.abs(differences - analytic[:, None]), axis=1)
    closest = differences[np.arange(len(index)), best]
    # Each coordinate's error is relative to at least FD_FLOOR × its array's largest gradient,
    # and to at least the differences' resolution (FD_RESOLUTION).
    owner = np.repeat(np.arange(len(sizes)), [len(c) for c in chosen])
    largest = np.array([np.abs(grad[a:b]).max(initial=0.0) for a, b in itertools.pairwise(starts)])
    np.maximum.at(largest, owner, np.abs(closest))
    floor = np.maximum(FD_FLOOR * largest[owner], FD_RESOLUTION * max(abs(float(value)), 1.0))
    errors = _relative_errors(analytic, closest, floor)
    worst = float(errors.max()) if len(errors) else 0.0
    passed = bool(np.all(np.isfinite(errors))) and worst <= FD_TOLERANCE
    return (
        passed,
        {
            "coordinates": len(index),
            "max_rel_error": worst,
            "median_rel_error": float(np.median(errors)) if len(errors) else 0.0,
            "tolerance": FD_TOLERANCE,
        },
        f"autodiff vs central differences in float64 on {len(index)} random coordinates "
        f"({per_array} per parameter array, {len(x)} examples)"
        + (
            ""
            if passed
            else "; they disagree: a custom gradient (jax.custom_vjp/custom_jvp), a "
            "stop_gradient or a non-differentiable step in the model is wrong"
        ),
    )


def _logits(out: Any) -> jax.Array:
    return out[0] if isinstance(out, tuple) else out
