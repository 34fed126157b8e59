"""L-BFGS with a weak-Wolfe line search (lecture 01's quasi-Newton methods)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import init_count, next_count


class LbfgsState(NamedTuple):
    """``s``, ``y``: the last ``memory_size`` pairs s_i = θ_{i+1} − θ_i, y_i = g_{i+1} − g_i,
    stacked on a leading axis per leaf (a ring buffer); ``rho``: 1/(y_iᵀs_i), 0 for empty
    slots; ``stored``: pairs written so far; ``evaluations``: value-and-gradient calls
    made by the line search; ``step_size``: the last accepted step α."""

    count: jax.Array
    s: optax.Params
    y: optax.Params
    rho: jax.Array
    stored: jax.Array
    evaluations: jax.Array
    step_size: jax.Array


def _vdot(a, b) -> jax.Array:
    return optax.tree.real(optax.tree.vdot(a, b))


def _slot(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def two_loop_direction(grad, state: LbfgsState, memory_size: int):
    """−H_k g by Nocedal & Wright's Algorithm 7.4 (two-loop recursion)."""
    newest = lambda j: (state.stored - 1 - j) % memory_size  # noqa: E731

    def first(j, carry):
        q, alphas = carry
        i = newest(j)
        alpha = state.rho[i] * _vdot(_slot(state.s, i), q)
        q = jax.tree.map(lambda q, y: q - alpha.astype(q.dtype) * y[i], q, state.y)
        return q, alphas.at[i].set(alpha)

    q, alphas = jax.lax.fori_loop(0, memory_size, first, (grad, jnp.zeros_like(state.rho)))
    last = newest(0)
    s_last, y_last = _slot(state.s, last), _slot(state.y, last)
    yy = _vdot(y_last, y_last)
    gamma = jnp.where(state.stored > 0, _vdot(s_last, y_last) / jnp.where(yy > 0, yy, 1.0), 1.0)
    r = jax.tree.map(lambda q: gamma.astype(q.dtype) * q, q)

    def second(j, r):
        i = newest(memory_size - 1 - j)
        beta = state.rho[i] * _vdot(_slot(state.y, i), r)
        coeff = alphas[i] - beta
        return jax.tree.map(lambda r, s: r + coeff.astype(r.dtype) * s[i], r, state.s)

    r = jax.lax.fori_loop(0, memory_size, second, r)
    # With no memory yet, a unit-length first step: the line search then scales it.
    norm = optax.tree.norm(grad)
    first_scale = jnp.where(state.stored > 0, 1.0, 1.0 / jnp.maximum(norm, 1.0))
    return jax.tree.map(lambda r: -first_scale.astype(r.dtype) * r, r)


def weak_wolfe_linesearch(
    value_and_grad_fn: Callable,
    params,
    value: jax.Array,
    grad,
    direction,
    initial_step: jax.Array,
    *,
    c1: float,
    c2: float,
    max_steps: int,
):
    """Bisection for a step α with the weak Wolfe conditions (Lewis & Overton, 2013):
    f(θ + αd) ≤ f(θ) + c1·α·gᵀd  and  ∇f(θ + αd)ᵀd ≥ c2·gᵀd.

    Returns (α, f(θ + αd), ∇f(θ + αd), evaluations). If no step satisfies the sufficient
    decrease within ``max_steps`` trials, α = 0 (the iterate stays put).
    """
    slope = _vdot(grad, direction)
    dtype = jnp.asarray(value).dtype

    def trial(alpha):
        point = jax.tree.map(lambda p, d: p + alpha.astype(p.dtype) * d, params, direction)
        return value_and_grad_fn(point)

    def cond(c):
        i, _, _, _, _, _, done, *_ = c
        return (i < max_steps) & ~done

    def body(c):
        i, alpha, lo, hi, _, _, _, acc_alpha, acc_f, acc_g = c
        f_a, g_a = trial(alpha)
        armijo = jnp.isfinite(f_a) & (f_a <= value + c1 * alpha * slope)
        curvature = _vdot(g_a, direction) >= c2 * slope
        done = armijo & curvature
        hi = jnp.where(armijo, hi, alpha)
        lo = jnp.where(armijo & ~curvature, alpha, lo)
        acc_alpha = jnp.where(armijo, alpha, acc_alpha)
        acc_f = jnp.where(armijo, f_a, acc_f)
        acc_g = jax.tree.map(lambda a, b: jnp.where(armijo, a, b), g_a, acc_g)
        new_alpha = jnp.where(jnp.isfinite(hi), (lo + hi) / 2, 2 * lo)
        return (i + 1, new_alpha, lo, hi, f_a, g_a, done, acc_alpha, acc_f, acc_g)

    init = (
        jnp.zeros([], jnp.int32),
        jnp.asarray(initial_step, dtype),
        jnp.zeros([], dtype),
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(value, dtype),
        grad,
        jnp.zeros([], bool),
        jnp.zeros([], dtype),
        jnp.asarray(value, dtype),
        grad,
    )
    i, *_, acc_alpha, acc_f, acc_g = jax.lax.while_loop(cond, body, init)
    return acc_alpha, acc_f, acc_g, i


def lbfgs_iteration(
    grad,
    state: LbfgsState,
    params,
    value,
    value_fn: Callable,
    *,
    memory_size: int,
    learning_rate,
    linesearch: bool,
    c1: float,
    c2: float,
    max_linesearch_steps: int,
):
    """One L-BFGS iteration: (step, new state, f and ∇f at the new point).

    The line search already evaluates f and ∇f at the accepted point; returning them lets a
    full-batch loop (``optlab.minimize``) skip evaluating them again.
    """
    direction = two_loop_direction(grad, state, memory_size)
    dtype = state.rho.dtype
    if linesearch:
        if value is None:
            value = value_fn(params)
        alpha, new_value, new_grad, evals = weak_wolfe_linesearch(
            jax.value_and_grad(value_fn),
            params,
            jnp.asarray(value, dtype),
            grad,
            direction,
            jnp.asarray(learning_rate, dtype),
            c1=c1,
            c2=c2,
            max_steps=max_linesearch_steps,
        )
    else:
        alpha = jnp.asarray(learning_rate, dtype)
        point = jax.tree.map(lambda p, d: p + alpha.astype(p.dtype) * d, params, direction)
        (new_value, new_grad), evals = jax.value_and_grad(value_fn)(point), jnp.ones([], jnp.int32)
    step = jax.tree.map(lambda d: alpha.astype(d.dtype) * d, direction)
    y = jax.tree.map(lambda a, b: a - b, new_grad, grad)
    sy = _vdot(step, y)
    keep = sy > 1e-10 * jnp.sqrt(_vdot(step, step) * _vdot(y, y))
    slot = state.stored % memory_size
    write = lambda mem, new: jnp.where(keep, mem.at[slot].set(new), mem)  # noqa: E731
    new_state = LbfgsState(
        count=next_count(state.count),
        s=jax.tree.map(write, state.s, step),
        y=jax.tree.map(write, state.y, y),
        rho=jnp.where(keep, state.rho.at[slot].set(1.0 / jnp.where(keep, sy, 1.0)), state.rho),
        stored=state.stored + keep.astype(jnp.int32),
        evaluations=state.evaluations + evals.astype(jnp.int32),
        step_size=alpha,
    )
    return step, new_state, new_value, new_grad


def lbfgs(
    learning_rate: float = 1.0,
    memory_size: int = 10,
    *,
    linesearch: bool = True,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_linesearch_steps: int = 30,
) -> optax.GradientTransformationExtraArgs:
    r"""Limited-memory BFGS with a weak-Wolfe line search.

    Lecture 01 describes quasi-Newton methods: Newton's step θ ← θ − H⁻¹∇J needs the Hessian,
    so BFGS builds an approximation of H⁻¹ from gradient differences, and L-BFGS keeps only
    the last m pairs. With s_i = θ_{i+1} − θ_i, y_i = g_{i+1} − g_i, ρ_i = 1/(y_iᵀs_i), the
    direction d_k = −H_k g_k comes from the two-loop recursion (Nocedal & Wright, Alg. 7.4)::

        q ← g_k;  for i = k−1 … k−m:  α_i ← ρ_i s_iᵀq;  q ← q − α_i y_i
        r ← γ_k q,  γ_k = s_{k−1}ᵀy_{k−1} / y_{k−1}ᵀy_{k−1}
        for i = k−m … k−1:  β ← ρ_i y_iᵀr;  r ← r + s_i(α_i − β)
        d_k = −r;   θ_{k+1} = θ_k + α_k d_k

    α_k satisfies the weak Wolfe conditions (found by bisection from ``learning_rate``),
    which keeps y_kᵀs_k > 0 so H_k stays positive definite; a pair with y_kᵀs_k ≤ 0 (only
    possible without the line search) is not stored. The first direction is −g/max(1, ‖g‖).

    Symbols → arguments: m = ``memory_size``; the first trial step α = ``learning_rate``;
    c1, c2 the Wolfe constants. ``linesearch=False`` takes the fixed step ``learning_rate``.

    ``update(grads, state, params, value=f(params), value_fn=f)`` needs the objective
    ``value_fn`` (a JAX function of the params) and its ``value`` at ``params``, as
    ``optax.lbfgs`` does; its line search differs (optax: zoom for the strong Wolfe
    conditions; PyTorch's ``LBFGS``: none or strong Wolfe); the direction is the same.
    ``optlab.minimize(f, x0, method="lbfgs")`` runs the whole loop compiled.

    Args:
      learning_rate: the first trial step (fixed step without line search), > 0.
      memory_size: m ≥ 1, pairs kept.
      linesearch: search for a weak-Wolfe step (default) or not.
      c1, c2: Wolfe constants, 0 < c1 < c2 < 1.
      max_linesearch_steps: trials per line search.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Nocedal, "Updating quasi-Newton matrices with limited storage", Math. Comp. 1980;
      Liu & Nocedal, Math. Programming 45, 1989; Nocedal & Wright, Numerical Optimization,
      2006, Alg. 7.4; Lewis & Overton, Math. Programming 141, 2013 (the line search).
    """
    owner = "lbfgs"
    _validation.check_learning_rate(owner, learning_rate)
    if not isinstance(memory_size, int) or memory_size < 1:
        raise ValueError(f"{owner}: `memory_size` must be an int >= 1, got {memory_size!r}.")
    if _validation.is_concrete_number(c1) and _validation.is_concrete_number(c2):
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"{owner}: need 0 < `c1` < `c2` < 1, got c1={c1}, c2={c2}.")

    def init_fn(params):
        leaves = jax.tree.leaves(params)
        dtype = jnp.result_type(*[leaf.dtype for leaf in leaves]) if leaves else jnp.float32
        stack = lambda p: jnp.zeros((memory_size, *p.shape), p.dtype)  # noqa: E731
        return LbfgsState(
            count=init_count(),
            s=jax.tree.map(stack, params),
            y=jax.tree.map(stack, params),
            rho=jnp.zeros([memory_size], dtype),
            stored=jnp.zeros([], jnp.int32),
            evaluations=jnp.zeros([], jnp.int32),
            step_size=jnp.zeros([], dtype),
        )

    def update_fn(updates, state, params=None, *, value=None, value_fn=None, **extra_args):
        del extra_args
        if params is None or value_fn is None:
            raise ValueError(
                "lbfgs: `update` needs `params` and the objective: "
                "tx.update(grads, state, params, value=f(params), value_fn=f)."
            )
        step, new_state, _, _ = lbfgs_iteration(
            updates, state, params, value, value_fn, memory_size=memory_size,
            learning_rate=learning_rate, linesearch=linesearch, c1=c1, c2=c2,
            max_linesearch_steps=max_linesearch_steps,
        )  # fmt: skip
        return step, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
