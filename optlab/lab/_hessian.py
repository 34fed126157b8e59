"""The Hessian of a loss and its condition number (lecture 04, "Recap: Hessian-based analysis").

Near a minimum θ*, lecture 04 expands the error function as the quadratic
``E(θ) ≈ E(θ*) + ½ (θ − θ*)ᵀ H (θ − θ*)``; the condition number of the problem is
``κ = λmax / λmin``, the ratio of the Hessian's largest and smallest eigenvalues (lower is
better: gradient descent needs about κ·log(1/ε) steps, heavy-ball momentum √κ·log(1/ε)).

Every function takes ``loss_fn(params) -> scalar`` (or ``loss_fn(params, batch)`` with
``batch=``) on any pytree of params, flattened with ``jax.flatten_util.ravel_pytree`` so
the Hessian is one ``n × n`` matrix, n = the number of parameters:

- small problems: ``hessian`` (dense) and ``hessian_eigenvalues`` (exact, ``eigvalsh``);
- a network: Hessian-vector products ``hvp`` (forward-over-reverse: a ``jvp`` of
  ``grad``, never forming H), ``power_iteration`` (the eigenvalue of largest magnitude)
  and ``lanczos`` (Ritz values, whose ends converge to λmin and λmax first);
- ``extreme_eigenvalues`` -> (λmin, λmax) and ``condition_number`` -> κ.

Each compiles once per ``(loss_fn, shapes)``: ``loss_fn`` is a static argument of a
``jax.jit``, so pass the same function object (a new lambda recompiles) and give the data
as ``batch=`` rather than closing over it to reuse the compiled program on new batches.
The arithmetic is in the params' dtype (float32; float64 under ``jax.enable_x64``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = [
    "Eigenpair",
    "condition_number",
    "extreme_eigenvalues",
    "hessian",
    "hessian_eigenvalues",
    "hvp",
    "lanczos",
    "power_iteration",
]

EXACT_LIMIT = 1000
"""``method="auto"`` diagonalizes the dense Hessian up to this many parameters, else Lanczos."""


class Eigenpair(NamedTuple):
    """``value``: an eigenvalue (scalar array); ``vector``: its unit eigenvector, params-shaped."""

    value: jax.Array
    vector: Any


def _flat(loss_fn: Callable, params: Any, batch: Any) -> tuple[jax.Array, Callable, Callable]:
    """(θ as one vector, f(θ vector) -> loss, unravel)."""
    flat, unravel = ravel_pytree(params)
    if batch is None:
        return flat, lambda w: loss_fn(unravel(w)), unravel
    return flat, lambda w: loss_fn(unravel(w), batch), unravel


def _matvec(f: Callable, flat: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """v ↦ H v by forward-over-reverse differentiation (one jvp of the gradient)."""
    grad = jax.grad(f)
    return lambda v: jax.jvp(grad, (flat,), (v.astype(flat.dtype),))[1]


def _check_loss_fn(owner: str, loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise ValueError(
            f"{owner}: `loss_fn` must be a function loss_fn(params) -> scalar "
            f"(or loss_fn(params, batch) with batch=...), got {loss_fn!r}."
        )


def _check_count(owner: str, name: str, value: Any, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive integer, got {value!r}. {fix}")
    return value


def _start(key: Any, params: Any) -> jax.Array:
    """A standard normal start vector of the flattened params' size and dtype, drawn on the
    host from the key's bits (no PRNG in the compiled program: threefry compiles slowly)."""
    if key is None:
        key = jax.random.PRNGKey(0)
    if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    rng = np.random.default_rng(np.asarray(key, np.uint32).ravel().tolist())
    return jnp.asarray(rng.standard_normal(_size(params)), _dtype(params))


def _size(params: Any) -> int:
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))


def _dtype(params: Any) -> Any:
    return jnp.result_type(*jax.tree.leaves(params))  # ravel_pytree's dtype


@functools.partial(jax.jit, static_argnums=0)
def _hessian_jit(loss_fn, params, batch):
    flat, f, _ = _flat(loss_fn, params, batch)
    return jax.hessian(f)(flat)


@functools.partial(jax.jit, static_argnums=0)
def _hvp_jit(loss_fn, params, v, batch):
    flat, f, unravel = _flat(loss_fn, params, batch)
    return unravel(_matvec(f, flat)(ravel_pytree(v)[0]))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _power_jit(loss_fn, iters, params, start, batch):
    flat, f, unravel = _flat(loss_fn, params, batch)
    matvec = _matvec(f, flat)
    tiny = jnp.finfo(flat.dtype).tiny

    def normalize(w):
        return w / jnp.maximum(jnp.linalg.norm(w), tiny)

    v = normalize(start)
    v = jax.lax.fori_loop(0, iters, lambda _, v: normalize(matvec(v)), v)
    return jnp.vdot(v, matvec(v)), unravel(v)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _lanczos_jit(loss_fn, k, params, start, batch):
    flat, f, _ = _flat(loss_fn, params, batch)
    matvec = _matvec(f, flat)
    n, dtype = flat.shape[0], flat.dtype
    tiny = jnp.finfo(dtype).tiny
    breakdown = 100 * jnp.finfo(dtype).eps

    def orthogonalize(w, basis):  # twice is enough (Kahan–Parlett)
        w = w - basis.T @ (basis @ w)
        return w - basis.T @ (basis @ w)

    def unit(w):
        return w / jnp.maximum(jnp.linalg.norm(w), tiny)

    start = unit(start)
    seed = start[0] * 1000  # the restart directions vary with the key too
    index = jnp.arange(n, dtype=dtype)

    def restart(j):  # a cheap hash direction (no PRNG in the loop: it compiles slowly)
        return jnp.modf(jnp.sin(index * 12.9898 + (j + 1) * 78.233 + seed) * 43758.5453)[0]

    # Rows 0..j of `basis` hold the Lanczos vectors found so far, the rest are zeros, so
    # projecting on all rows is projecting on the Krylov subspace: full reorthogonalization.
    basis = jnp.zeros((k + 1, n), dtype).at[0].set(start)

    def step(j, carry):
        basis, alphas, betas, scale = carry
        v = basis[j]
        w = matvec(v)
        alpha = jnp.vdot(w, v)
        w = w - alpha * v - jnp.where(j > 0, betas[j - 1], 0.0) * basis[j - 1]
        w = orthogonalize(w, basis)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(alpha) + beta)
        # An invariant subspace was found (β ≈ 0): go on from a fresh random direction
        # orthogonal to it, with a zero coupling, so T stays block tridiagonal and exact.
        broke = beta <= breakdown * scale
        fresh = unit(orthogonalize(restart(j), basis))
        basis = basis.at[j + 1].set(jnp.where(broke, fresh, w / jnp.where(broke, 1.0, beta)))
        beta = jnp.where(broke, 0.0, beta)
        return basis, alphas.at[j].set(alpha), betas.at[j].set(beta), scale

    zeros = jnp.zeros(k, dtype)
    _, alphas, betas, _ = jax.lax.fori_loop(0, k, step, (basis, zeros, zeros, jnp.zeros([], dtype)))
    return alphas, betas[: k - 1]


def hessian(loss_fn: Callable, params: Any, *, batch: Any = None) -> jax.Array:
    """The dense Hessian H = ∇²E(θ) of the flattened params, ``(n, n)`` (lecture 04).

    The order of the rows is ``jax.flatten_util.ravel_pytree(params)``'s. It costs n
    Hessian-vector products and n² numbers: for small problems (a quadratic, a logistic
    regression); use ``lanczos`` for a network.

    Args:
      loss_fn: ``loss_fn(params) -> scalar``, or ``loss_fn(params, batch)`` with ``batch``.
      params: any pytree of float arrays.
      batch: passed to ``loss_fn`` when given (a traced argument: new data, no recompile).

    Returns:
      The symmetric ``(n, n)`` Hessian in the params' dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda p: 5 * p["x"] ** 2 + 2 * p["x"] * p["y"] + 3 * p["y"] ** 2
      >>> hessian(loss, {"x": jnp.array(1.0), "y": jnp.array(1.0)}).tolist()
      [[10.0, 2.0], [2.0, 6.0]]
    """
    _check_loss_fn("hessian", loss_fn)
    return _hessian_jit(loss_fn, params, batch)


def hessian_eigenvalues(loss_fn: Callable, params: Any, *, batch: Any = None) -> np.ndarray:
    """All eigenvalues of the Hessian, ascending, exactly (``eigvalsh`` of ``hessian``).

    Lecture 04: the condition number is ``λmax/λmin`` of this spectrum at a minimum. The
    Hessian is computed on the device in the params' dtype and diagonalized on the host
    in float64 (LAPACK); the result is a NumPy float64 array.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: 0.5 * (1.0 * w[0] ** 2 + 100.0 * w[1] ** 2)
      >>> hessian_eigenvalues(loss, jnp.zeros(2)).tolist()
      [1.0, 100.0]
    """
    _check_loss_fn("hessian_eigenvalues", loss_fn)
    matrix = np.asarray(_hessian_jit(loss_fn, params, batch), np.float64)
    return np.linalg.eigvalsh(0.5 * (matrix + matrix.T))


def hvp(loss_fn: Callable, params: Any, v: Any, *, batch: Any = None) -> Any:
    """The Hessian-vector product H v, without forming H (lecture 04).

    Forward-over-reverse: ``jvp(grad(E), (θ,), (v,))``, about the cost of two gradients.
    ``v`` has the params' structure and shapes; so has the result.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: 5 * w[0] ** 2 + 2 * w[0] * w[1] + 3 * w[1] ** 2
      >>> hvp(loss, jnp.ones(2), jnp.array([1.0, 0.0])).tolist()
      [10.0, 2.0]
    """
    _check_loss_fn("hvp", loss_fn)
    shapes = jax.tree.map(jnp.shape, params)
    if jax.tree.structure(v) != jax.tree.structure(params) or jax.tree.map(jnp.shape, v) != shapes:
        raise ValueError(
            "hvp: `v` must have the params' structure and shapes "
            f"{shapes}, got {jax.tree.map(jnp.shape, v)}. Build it with jax.tree.map on params."
        )
    return _hvp_jit(loss_fn, params, v, batch)


def power_iteration(
    loss_fn: Callable, params: Any, *, iters: int = 100, key: Any = None, batch: Any = None
) -> Eigenpair:
    """The Hessian eigenvalue of largest magnitude and its eigenvector, by power iteration.

    ``v ← H v / ‖H v‖`` for ``iters`` steps from a random unit vector, then
    ``λ = vᵀ H v`` (signed). The error shrinks like ``|λ₂/λ₁|^iters``: fast when the top
    eigenvalue stands apart, slow when the top two are close (use ``lanczos`` then).

    Args:
      loss_fn, params, batch: as in ``hessian``.
      iters: Hessian-vector products (a static argument: each value compiles once).
      key: PRNG key of the start vector (default ``PRNGKey(0)``).

    Returns:
      ``Eigenpair(value, vector)``: λ as a scalar array, the unit eigenvector params-shaped.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: 0.5 * (1.0 * w[0] ** 2 + 10.0 * w[1] ** 2)
      >>> round(float(power_iteration(loss, jnp.zeros(2), iters=50).value), 4)
      10.0
    """
    _check_loss_fn("power_iteration", loss_fn)
    _check_count("power_iteration", "iters", iters, "Use e.g. iters=100.")
    value, vector = _power_jit(loss_fn, iters, params, _start(key, params), batch)
    return Eigenpair(value, vector)


def lanczos(
    loss_fn: Callable, params: Any, *, k: int = 30, key: Any = None, batch: Any = None
) -> np.ndarray:
    """Ritz values of the Hessian after ``k`` Lanczos steps, ascending (lecture 04).

    From a random unit vector v₁, each step makes one Hessian-vector product::

        w = H vⱼ − βⱼ vⱼ₋₁,  αⱼ = vⱼᵀ H vⱼ,  w ← w − αⱼ vⱼ,  βⱼ₊₁ = ‖w‖,  vⱼ₊₁ = w / βⱼ₊₁

    with ``w`` re-orthogonalized against all earlier vⱼ (twice), which keeps the basis
    orthonormal in floating point. The eigenvalues of the tridiagonal matrix
    ``T = tridiag(β, α, β)`` (the Ritz values) approximate H's; the extreme ones converge
    first, so ``values[0] → λmin`` and ``values[-1] → λmax`` in far fewer than n steps.
    If βⱼ₊₁ vanishes (an invariant subspace), the next vector is a fresh random direction
    orthogonal to the basis and the coupling is 0. ``k`` is capped at n; with k = n the
    Ritz values are H's eigenvalues.

    Args:
      loss_fn, params, batch: as in ``hessian``.
      k: Lanczos steps = Hessian-vector products (static: each value compiles once).
        Memory: a ``(k + 1) × n`` basis.
      key: PRNG key of the start vector (default ``PRNGKey(0)``).

    Returns:
      ``(k,)`` Ritz values, ascending, as a NumPy float64 array (the k × k tridiagonal
      matrix is diagonalized on the host).

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0, 4.0]) * w**2)
      >>> [round(x, 4) for x in lanczos(loss, jnp.zeros(4), k=4).tolist()]
      [1.0, 2.0, 3.0, 4.0]
    """
    _check_loss_fn("lanczos", loss_fn)
    _check_count("lanczos", "k", k, "Use e.g. k=30.")
    n = _size(params)
    alphas, betas = (
        np.asarray(a, np.float64)
        for a in _lanczos_jit(loss_fn, min(k, n), params, _start(key, params), batch)
    )
    tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    return np.linalg.eigvalsh(tridiagonal)


def extreme_eigenvalues(
    loss_fn: Callable,
    params: Any,
    *,
    method: str = "auto",
    k: int = 30,
    key: Any = None,
    batch: Any = None,
) -> tuple[float, float]:
    """(λmin, λmax) of the Hessian (lecture 04).

    Args:
      loss_fn, params, batch: as in ``hessian``.
      method: ``"exact"`` (dense Hessian, ``eigvalsh``), ``"lanczos"`` (``k`` Hessian-vector
        products; the ends of the spectrum to a tolerance that improves with k), or
        ``"auto"``: exact up to ``EXACT_LIMIT`` parameters, Lanczos above.
      k, key: Lanczos's steps and start vector.

    Returns:
      ``(λmin, λmax)`` as Python floats.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = lambda w: 0.5 * (2.0 * w[0] ** 2 + 50.0 * w[1] ** 2)
      >>> extreme_eigenvalues(loss, jnp.zeros(2))
      (2.0, 50.0)
    """
    _check_loss_fn("extreme_eigenvalues", loss_fn)
    methods = ("auto", "exact", "lanczos")
    if method not in methods:
        raise ValueError(
            f"extreme_eigenvalues: `method` must be one of {methods}, got {method!r}. "
            "Use 'exact' for small problems, 'lanczos' for a network."
        )
    if method == "auto":
        n = _size(params)
        method = "exact" if n <= EXACT_LIMIT else "lanczos"
    if method == "exact":
        values = hessian_eigenvalues(loss_fn, params, batch=batch)
    else:
        values = lanczos(loss_fn, params, k=k, key=key, batch=batch)
    return float(values[0]), float(values[-1])


def condition_number(
    loss_fn: Callable,
    params: Any,
    *,
    method: str = "auto",
    k: int = 30,
    key: Any = None,
    batch: Any = None,
) -> float:
    """Lecture 04's condition number κ = λmax / λmin of the Hessian at ``params``.

    The lecture defines κ at a minimum, where H is positive semi-definite. Elsewhere — a
    saddle, a network at initialization, a flat direction — λmin may be ≤ 0; the quadratic
    model then has no minimum and κ is not defined, so this returns ``math.inf`` whenever
    λmin ≤ 0 (never a ratio of magnitudes). Call ``extreme_eigenvalues`` to see both ends.

    With Lanczos, the Ritz values lie inside the spectrum and the ends converge to within a
    small fraction of its width λmax − λmin; for an ill-conditioned H that can still be a
    large *relative* error in λmin (e.g. 1.3 for λmin = 1 at κ = 1000, 20 steps of 30), so
    κ from few steps is an underestimate: raise ``k`` (k = n is exact).

    Arguments as in ``extreme_eigenvalues``.

    Example:
      >>> import jax.numpy as jnp
      >>> condition_number(lambda w: 0.5 * (w[0] ** 2 + 100.0 * w[1] ** 2), jnp.zeros(2))
      100.0
      >>> condition_number(lambda w: w[0] ** 2 - w[1] ** 2, jnp.zeros(2))  # a saddle
      inf
    """
    lam_min, lam_max = extreme_eigenvalues(
        loss_fn, params, method=method, k=k, key=key, batch=batch
    )
    if not lam_min > 0:
        return math.inf
    return lam_max / lam_min
