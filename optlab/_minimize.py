"""``optlab.minimize``: a full-batch optimization loop compiled once (``lax.while_loop``)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from optlab import optimizers
from optlab.optimizers._lbfgs import lbfgs_iteration, weak_wolfe_linesearch

# The first-order methods: every optimizer of the registry, by its name (optlab.OPTIMIZERS).
FIRST_ORDER = optimizers.OPTIMIZERS
METHODS = ("lbfgs", "newton", *FIRST_ORDER)

LBFGS_MAX_ITER = 15_000
"""The default ``max_iter`` of ``"lbfgs"``: scipy's L-BFGS-B ``maxiter``."""
MAX_ITER = 500
"""The default ``max_iter`` of the other methods."""

# Why a run stopped: ``MinimizeResult.status`` indexes ``STATUS`` (the first two converged).
GRADIENT, FUNCTION_CHANGE, MAX_ITER_REACHED, NONFINITE, LINESEARCH_FAILED = range(5)
STATUS = (
    "converged: the gradient norm fell to tol",
    "converged: the relative change of f fell to ftol",
    "stopped: reached max_iter",
    "stopped: f or its gradient is not finite",
    "stopped: the line search found no step that decreases f",
)
_RUNNING = -1


@dataclasses.dataclass(frozen=True)
class MinimizeResult:
    """The solution and the history of a run (histories hold ``iterations + 1`` entries:
    the start, then one per iteration). ``converged``: the gradient's norm or the change of
    f fell to its tolerance; ``status`` indexes ``STATUS``, why the run stopped, which
    ``message`` says with the numbers (as scipy's ``OptimizeResult``)."""

    x: Any
    value: float
    grad_norm: float
    iterations: int
    evaluations: int
    converged: bool
    values: np.ndarray
    grad_norms: np.ndarray
    evaluation_counts: np.ndarray
    status: int
    message: str


def _newton_step(fun: Callable, x, value, grad, *, linesearch: bool, max_steps: int):
    """Lecture 01's Newton step θ ← θ − H⁻¹∇J with the exact Hessian (small problems),
    safeguarded: a non-descent direction falls back to −∇J; a weak-Wolfe search picks α."""
    flat_x, unravel = ravel_pytree(x)
    flat_g, _ = ravel_pytree(grad)
    hessian = jax.hessian(lambda v: fun(unravel(v)))(flat_x)
    d = -jnp.linalg.solve(hessian, flat_g)
    descent = jnp.all(jnp.isfinite(d)) & (jnp.vdot(flat_g, d) < 0)
    d = jnp.where(descent, d, -flat_g)
    direction = unravel(d)
    if not linesearch:
        new_x = jax.tree.map(lambda p, s: p + s, x, direction)
        return new_x, jnp.ones([], jnp.int32)
    alpha, _, _, evals = weak_wolfe_linesearch(
        jax.value_and_grad(fun),
        x,
        value,
        grad,
        direction,
        jnp.ones([], value.dtype),
        c1=1e-4,
        c2=0.9,
        max_steps=max_steps,
    )
    return jax.tree.map(lambda p, s: p + alpha.astype(p.dtype) * s, x, direction), evals


def _make_tx(method: str, learning_rate, memory_size: int, linesearch: bool):
    if method == "lbfgs":
        first_step = 1.0 if learning_rate is None else learning_rate
        return optimizers.lbfgs(first_step, memory_size, linesearch=linesearch)
    if method == "newton":
        return None
    return FIRST_ORDER[method].factory(learning_rate)


@functools.cache
def _compiled_runner(fun: Callable, method: str, options: tuple, custom_tx, max_iter: int):
    """One jitted loop per (objective, method, options): later calls reuse the program."""
    learning_rate, memory_size, linesearch = options
    tx = custom_tx if custom_tx is not None else _make_tx(method, *options)
    value_and_grad = jax.value_and_grad(fun)
    searched = linesearch and method in ("lbfgs", "newton")

    def stop(k, f_old, f, gnorm, stepped, tol, ftol):
        """The reason to stop after iteration k (``_RUNNING``: none); ftol < 0 is off.
        ``stepped``: where a line search picked the step, f or ‖∇f‖ decreased. Neither does
        when the search found no step of sufficient decrease (α = 0) or only one too small
        to change f or ∇f in floating point; the next iteration would do the same."""
        scale = jnp.maximum(jnp.maximum(jnp.abs(f_old), jnp.abs(f)), 1.0)
        reasons = [
            ~(jnp.isfinite(f) & jnp.isfinite(gnorm)),
            gnorm <= tol,
            ~stepped,
            jnp.abs(f_old - f) <= ftol * scale,  # scipy L-BFGS-B's test, both signs
            k >= max_iter,
        ]
        codes = [NONFINITE, GRADIENT, LINESEARCH_FAILED, FUNCTION_CHANGE, MAX_ITER_REACHED]
        return jnp.select(reasons, codes, _RUNNING)

    def run(x0, tol, ftol):
        f0, g0 = value_and_grad(x0)
        dtype = jnp.asarray(f0).dtype
        nan_history = jnp.full([max_iter + 1], jnp.nan, dtype)
        state0 = tx.init(x0) if tx is not None else ()
        yes, inf = jnp.ones([], bool), jnp.asarray(jnp.inf, dtype)
        status0 = stop(0, inf, f0, optax.tree.norm(g0), yes, tol, -1.0)

        def cond(c):
            return c[-1] == _RUNNING

        def body(c):
            k, x, state, f, g, evals, values, norms, counts, _ = c
            f_old = f
            if method == "newton":
                x, used = _newton_step(fun, x, f, g, linesearch=linesearch, max_steps=30)
            elif method == "lbfgs":  # f, ∇f at the new point come from the line search
                before = state.evaluations
                step, state, f_new, g_new = lbfgs_iteration(
                    g, state, x, f, fun, memory_size=memory_size, linesearch=linesearch,
                    learning_rate=1.0 if learning_rate is None else learning_rate,
                    c1=1e-4, c2=0.9, max_linesearch_steps=30,
                )  # fmt: skip
                x = optax.apply_updates(x, step)
                used = state.evaluations - before - 1  # the +1 below is already counted
            else:
                updates, state = tx.update(g, state, x, value=f, obj_fn=fun)  # SAM, Sophia
                x = optax.apply_updates(x, updates)
                used = jnp.zeros([], jnp.int32)
            if method == "lbfgs":
                f, g = f_new, g_new
            else:
                f, g = value_and_grad(x)
            evals = evals + used + 1
            values = values.at[k + 1].set(f)
            norms = norms.at[k + 1].set(optax.tree.norm(g))
            counts = counts.at[k + 1].set(evals)
            stepped = ((f < f_old) | (norms[k + 1] < norms[k])) if searched else yes
            status = stop(k + 1, f_old, f, norms[k + 1], stepped, tol, ftol)
            return k + 1, x, state, f, g, evals, values, norms, counts, status

        init = (
            jnp.zeros([], jnp.int32),
            x0,
            state0,
            f0,
            g0,
            jnp.ones([], jnp.int32),
            nan_history.at[0].set(f0),
            nan_history.at[0].set(optax.tree.norm(g0)),
            jnp.zeros([max_iter + 1], jnp.int32).at[0].set(1),
            status0,
        )
        k, x, _, f, g, evals, values, norms, counts, status = jax.lax.while_loop(cond, body, init)
        return k, x, f, optax.tree.norm(g), evals, values, norms, counts, status

    return jax.jit(run)


def minimize(
    fun: Callable[[Any], jax.Array],
    x0: Any,
    method: str | optax.GradientTransformation = "lbfgs",
    *,
    learning_rate: float | None = None,
    tol: float = 1e-6,
    ftol: float | None = None,
    max_iter: int | None = None,
    linesearch: bool = True,
    memory_size: int = 10,
) -> MinimizeResult:
    """Minimizes a deterministic (full-batch) objective with one compiled loop.

    The whole run is a single ``lax.while_loop`` inside ``jax.jit``: it stops when the
    gradient's norm falls to ``tol``, when f changes by at most ``ftol`` (relatively), after
    ``max_iter`` iterations, at a non-finite f or ∇f, or when the line search finds no step
    that decreases f; ``message`` says which. A second call with the same ``fun`` and
    options and an ``x0`` of the same shape reuses the compiled program (``fun`` is part of
    the cache key: pass the same function object).

    Methods:
      * ``"lbfgs"``: ``optlab.lbfgs`` with its weak-Wolfe line search (``memory_size``).
      * ``"newton"``: lecture 01's Newton method with the exact Hessian (``jax.hessian`` on
        the flattened parameters: for small problems), θ ← θ − α·H⁻¹∇J with α from the same
        line search (``linesearch=False`` takes the full step α = 1); a direction that is not
        a descent direction (H not positive definite) falls back to −∇J.
      * a name of ``optlab.OPTIMIZERS`` (``"sgd"``, ``"momentum"``, ``"nesterov"``,
        ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"nadam"``, ``"adamw"``): that optimizer
        at ``learning_rate`` (plain gradient descent is ``"sgd"``).
      * any ``optax.GradientTransformation``.

    Args:
      fun: scalar objective of a pytree of parameters, written in JAX.
      x0: the starting parameters.
      method: see above.
      learning_rate: required for first-order methods; L-BFGS's first trial step.
      tol: stop when ‖∇f‖₂ ≤ tol (scipy's L-BFGS-B: ``gtol=1e-5`` on max_i |∂f/∂x_i|,
        which ‖∇f‖₂ ≤ 1e-6 implies).
      ftol: stop when |f_k − f_{k+1}| ≤ ftol·max(|f_k|, |f_{k+1}|, 1), scipy L-BFGS-B's
        test. None: off (L-BFGS and Newton still stop where their line search finds no
        step that decreases f). scipy's default ``ftol=2.2e-9`` stops the 100-D Rosenbrock
        from zeros at f ≈ 4e-10; pass it for scipy's test.
      max_iter: iteration cap. None: 15000 for ``"lbfgs"`` (scipy's L-BFGS-B ``maxiter``),
        500 for the other methods.
      linesearch: for ``"lbfgs"`` and ``"newton"``.
      memory_size: L-BFGS's m.

    Returns:
      A ``MinimizeResult``: solution, final value and gradient norm, iterations, function
      evaluations (value-and-gradient calls, line searches included), whether it converged
      (``tol`` or ``ftol`` reached), why it stopped (``status``, ``message``), and
      per-iteration histories of values, gradient norms and evaluations.

    Example:
      >>> import jax.numpy as jnp, optlab
      >>> rosen = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
      >>> result = optlab.minimize(rosen, jnp.array([-1.2, 1.0]), method="lbfgs", tol=1e-5)
      >>> bool(result.converged), [round(float(v), 3) for v in result.x]
      (True, [1.0, 1.0])
    """
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"minimize: unknown `method` {method!r}; choose from {METHODS}.")
        if method in FIRST_ORDER and learning_rate is None:
            raise ValueError(f"minimize: method={method!r} needs `learning_rate` (e.g. 1e-2).")
    if max_iter is None:
        max_iter = LBFGS_MAX_ITER if method == "lbfgs" else MAX_ITER
    if ftol is None:
        ftol = -1.0  # off
    elif not ftol >= 0:
        raise ValueError(f"minimize: `ftol` must be >= 0 or None, got {ftol!r}.")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"minimize: `max_iter` must be an int >= 1, got {max_iter!r}.")
    if not tol >= 0:
        raise ValueError(f"minimize: `tol` must be >= 0, got {tol!r}.")
    custom_tx = None
    if not isinstance(method, str):
        custom_tx, method = method, "custom"
    else:
        _make_tx(method, learning_rate, memory_size, linesearch)  # validates the options
    options = (learning_rate, memory_size, linesearch)
    runner = _compiled_runner(fun, method, options, custom_tx, max_iter)
    k, x, f, gnorm, evals, values, norms, counts, status = runner(x0, tol, ftol)
    k, status = int(k), int(status)
    return MinimizeResult(
        x=x,
        value=float(f),
        grad_norm=float(gnorm),
        iterations=k,
        evaluations=int(evals),
        converged=status in (GRADIENT, FUNCTION_CHANGE),
        values=np.asarray(values)[: k + 1],
        grad_norms=np.asarray(norms)[: k + 1],
        evaluation_counts=np.asarray(counts)[: k + 1],
        status=status,
        message=_message(status, k, float(f), float(gnorm), tol, ftol, max_iter),
    )


def _message(status: int, k: int, f: float, gnorm: float, tol, ftol, max_iter: int) -> str:
    detail = {
        GRADIENT: f"‖∇f‖₂ = {gnorm:.3g} ≤ tol = {tol:g}",
        FUNCTION_CHANGE: f"ftol = {ftol:g}, ‖∇f‖₂ = {gnorm:.3g} > tol = {tol:g}",
        MAX_ITER_REACHED: f"max_iter = {max_iter}, ‖∇f‖₂ = {gnorm:.3g} > tol = {tol:g}",
        NONFINITE: f"f = {f:g}, ‖∇f‖₂ = {gnorm:g}",
        LINESEARCH_FAILED: f"‖∇f‖₂ = {gnorm:.3g} > tol = {tol:g}",
    }[status]
    return f"{STATUS[status]} ({detail}; f = {f:.6g} after {k} iterations)"
