"""Adafactor's factored second moment (Shazeer & Stern 2018, section 3): the row and column
statistics, the three estimates (the paper's, optax's, torch's), ``scale_by_factored_rms``.
The step that uses it (relative step, clipping, momentum) is ``optlab.optimizers._adafactor``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab import _validation
from optlab.optimizers._base import (
    abs_sq,
    check_like,
    init_count,
    next_count,
    unzip,
)

LIKE = ("optax", "torch")
OPTAX_MIN_DIM_SIZE_TO_FACTOR = 128  # optax's default; the paper factors every matrix
PAPER_EPS = 1e-30  # ε1 of the paper (and optax's eps)
TORCH_LEARNING_RATE = 1e-2  # torch.optim.Adafactor's lr: the cap of ρ_t
RELATIVE_STEP_CAP = 1e-2  # ρ_t = min(10⁻², 1/√t)


class FactoredState(NamedTuple):
    """optax's ``FactoredState``: the same names and fields.

    ``count``: updates made. Per leaf: ``v_row``, ``v_col`` (the factored R_t, C_t of a
    factored leaf, as means rather than sums) and ``v`` (the full V_t of an unfactored
    leaf). A leaf keeps only the buffers it uses; the others are empty ``(0,)`` arrays
    (optax stores ``(1,)`` placeholders), so a factored (n, m) leaf holds n + m numbers.
    Complex parameters keep real statistics.
    """

    count: jax.Array
    v_row: optax.Updates
    v_col: optax.Updates
    v: optax.Updates


class AdafactorStepState(NamedTuple):
    """``count``: updates made (ρ_t and the schedules read it); ``mu``: the momentum
    m_t in ``dtype_momentum`` (None without momentum)."""

    count: jax.Array
    mu: optax.Updates | None


def _real_compute_dtype(x: Any) -> Any:
    """The real dtype the statistics are computed in: the leaf's, at least float32."""
    return jnp.promote_types(jnp.finfo(x.dtype).dtype, jnp.float32)


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(abs_sq(x)))


def paper_decay_rate(step: jax.Array, exponent: Any, dtype: Any = None) -> jax.Array:
    """β̂2t = 1 − t^(−exponent) with t = step + 1 (step = updates made, from 0)."""
    dtype = dtype or jnp.result_type(float)
    t = jnp.asarray(step, dtype) + 1
    return 1 - t ** (-jnp.asarray(exponent, dtype))


def _optax_decay_rate(step: jax.Array, exponent: Any) -> jax.Array:
    """optax's ``_decay_rate_pow``: the same, with t rounded to float32 (so β̂2t too)."""
    t = jnp.array(step + 1, jnp.float32)
    return 1.0 - t ** (-exponent)


def factored_axes(
    shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int | None, like: Any
) -> tuple[int, int] | None:
    """(row axis, column axis) of a factored leaf, or None for the full V (Algorithm 5).

    ``v_row`` averages over the column axis, ``v_col`` over the row axis; any other axes
    are a batch of matrices. The paper (the authors' tensor2tensor code) and torch use the
    last two axes; optax the two largest (``np.argsort`` of the shape), the largest as the
    column axis. A threshold factors only when both axes are at least that long (optax:
    the second largest dimension, the same thing).
    """
    if not factored or len(shape) < 2:
        return None
    if like == "optax":
        order = np.argsort(shape)
        rows, cols = int(order[-2]), int(order[-1])
    else:
        rows, cols = len(shape) - 2, len(shape) - 1
    if min_dim_size_to_factor is not None and min(shape[rows], shape[cols]) < (
        min_dim_size_to_factor
    ):
        return None
    return rows, cols


def _empty(dtype: Any) -> jax.Array:
    return jnp.zeros((0,), dtype)


def _estimate_paper(g, v_row, v_col, v, beta, eps, axes):
    """U_t = G_t/√V̂_t with ε1 inside the averages (Algorithms 4 and 5)."""
    cd = _real_compute_dtype(g)
    gc = g.astype(jnp.promote_types(g.dtype, cd))
    beta = jnp.asarray(beta, cd)
    sq = abs_sq(gc) + jnp.asarray(eps, cd)
    if axes is None:
        new_v = beta * v.astype(cd) + (1 - beta) * sq
        u = gc * jax.lax.rsqrt(new_v)
        return u.astype(g.dtype), v_row, v_col, new_v.astype(v.dtype)
    rows, cols = axes
    new_row = beta * v_row.astype(cd) + (1 - beta) * jnp.mean(sq, axis=cols)
    new_col = beta * v_col.astype(cd) + (1 - beta) * jnp.mean(sq, axis=rows)
    row_axis = rows if rows < cols else rows - 1  # the row axis of v_row
    # V̂ = R·C/mean(R), applied as (R/mean R)^(−1/2)·C^(−1/2): no R·C to under- or overflow.
    row_factor = jax.lax.rsqrt(new_row / jnp.mean(new_row, axis=row_axis, keepdims=True))
    col_factor = jax.lax.rsqrt(new_col)
    u = gc * jnp.expand_dims(row_factor, cols) * jnp.expand_dims(col_factor, rows)
    return u.astype(g.dtype), new_row.astype(v_row.dtype), new_col.astype(v_col.dtype), v


def _estimate_optax(g, v_row, v_col, v, beta, eps, axes):
    """optax.scale_by_factored_rms's leaf update, operation by operation."""
    grad_sqr = abs_sq(g) + eps
    if axes is None:
        new_v = (beta * v + (1.0 - beta) * grad_sqr).astype(v.dtype)
        return (g * new_v**-0.5).astype(g.dtype), v_row, v_col, new_v
    d1, d0 = axes
    new_row = (beta * v_row + (1.0 - beta) * jnp.mean(grad_sqr, axis=d0)).astype(v_row.dtype)
    new_col = (beta * v_col + (1.0 - beta) * jnp.mean(grad_sqr, axis=d1)).astype(v_col.dtype)
    reduced_d1 = d1 - 1 if d1 > d0 else d1
    row_col_mean = jnp.mean(new_row, axis=reduced_d1, keepdims=True)
    row_factor = (new_row / row_col_mean) ** -0.5
    col_factor = new_col**-0.5
    u = g * jnp.expand_dims(row_factor, axis=d0) * jnp.expand_dims(col_factor, axis=d1)
    return u.astype(g.dtype), new_row, new_col, v


def _lerp(start, end, weight):
    """torch.lerp: start + w·(end − start) for |w| < 0.5, else end − (end − start)·(1 − w)."""
    return jnp.where(
        jnp.abs(weight) < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
    )


def _estimate_torch(g, v_row, v_col, v, weight, eps, axes):
    """torch.optim.Adafactor's U_t: ε1 outside the averages, machine ε by default.

    ``weight`` = 1 − β̂2t = t^(−c), torch's ``step**beta2_decay`` (the lerp weight).
    """
    cd = _real_compute_dtype(g)
    gc = g.astype(jnp.promote_types(g.dtype, cd))
    eps1 = jnp.finfo(g.dtype).eps if eps is None else eps
    eps1 = jnp.asarray(eps1, cd)
    weight = jnp.asarray(weight, cd)
    sq = abs_sq(gc)
    if axes is None:
        new_v = _lerp(v.astype(cd), sq, weight)
        u = gc * jax.lax.rsqrt(jnp.maximum(new_v, eps1 * eps1))
        return u.astype(g.dtype), v_row, v_col, new_v.astype(v.dtype)
    new_row = _lerp(v_row.astype(cd), jnp.mean(sq, axis=-1), weight)
    new_col = _lerp(v_col.astype(cd), jnp.mean(sq, axis=-2), weight)
    scale = jnp.maximum(jnp.mean(new_row, axis=-1, keepdims=True), eps1)
    v_hat = (new_row / scale)[..., :, None] * new_col[..., None, :]
    u = gc * jax.lax.rsqrt(jnp.maximum(v_hat, eps1 * eps1))
    return u.astype(g.dtype), new_row.astype(v_row.dtype), new_col.astype(v_col.dtype), v


_ESTIMATES = {None: _estimate_paper, "optax": _estimate_optax, "torch": _estimate_torch}


def _check_int(owner: str, name: str, value: Any, low: int, fix: str) -> None:
    if value is None or not _validation.is_concrete_number(value):
        return
    if int(value) != value or value < low:
        _validation.fail(owner, name, value, f"an integer >= {low}", fix)


def _check_torch_options(owner: str, **options: Any) -> None:
    """``like="torch"``: the options torch.optim.Adafactor has no counterpart for."""
    for name, (value, default) in options.items():
        if isinstance(value, (jax.Array, np.ndarray)):  # traced by inject_hyperparams
            continue
        if value is not default and value != default:
            raise ValueError(
                f"{owner}: `{name}`={value!r} conflicts with like='torch': "
                f"torch.optim.Adafactor has no such option (it runs as {name}={default!r}). "
                "Drop the argument or use like=None / like='optax'."
            )


def scale_by_factored_rms(
    factored: bool = True,
    decay_rate: float = 0.8,
    step_offset: int = 0,
    min_dim_size_to_factor: int | None = None,
    epsilon: float | None = None,
    decay_rate_fn: Callable[[jax.Array, Any], jax.Array] | None = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Adafactor's U_t = G_t/√V̂_t, unclipped and unscaled (optax's name); see ``adafactor``.

    ``decay_rate_fn(step − step_offset, decay_rate)`` gives β̂2t (default: 1 − t^(−c) with
    t = step − step_offset + 1, in float32 with ``like="optax"`` as optax). Sentinels:
    ``min_dim_size_to_factor=None`` factors every leaf of two or more dimensions (the
    paper, torch; 128 with ``like="optax"``); ``epsilon=None`` is ε1 = 1e-30 (the paper,
    optax), torch's machine epsilon of the leaf's dtype with ``like="torch"``.
    """
    owner = "scale_by_factored_rms"
    check_like(owner, like, LIKE)
    _validation.check_non_negative(owner, "decay_rate", decay_rate, "The paper uses 0.8.")
    _validation.check_non_negative(owner, "epsilon", epsilon, "The paper uses 1e-30.")
    _check_int(owner, "step_offset", step_offset, 0, "Use 0, or the first fine-tuning step.")
    _check_int(owner, "min_dim_size_to_factor", min_dim_size_to_factor, 1, "optax uses 128.")
    if like == "torch":
        _check_torch_options(
            owner,
            factored=(factored, True),
            step_offset=(step_offset, 0),
            min_dim_size_to_factor=(min_dim_size_to_factor, None),
            decay_rate_fn=(decay_rate_fn, None),
        )
    if like == "optax":
        if min_dim_size_to_factor is None:
            min_dim_size_to_factor = OPTAX_MIN_DIM_SIZE_TO_FACTOR
        decay_fn = decay_rate_fn or _optax_decay_rate
    else:
        decay_fn = decay_rate_fn or paper_decay_rate
    if epsilon is None and like != "torch":
        epsilon = PAPER_EPS
    estimate = _ESTIMATES[like]

    def axes_of(leaf):
        return factored_axes(leaf.shape, factored, min_dim_size_to_factor, like)

    def init_fn(params):
        def init_leaf(p):
            dtype = jnp.finfo(p.dtype).dtype  # real statistics, also for complex leaves
            axes = axes_of(p)
            if axes is None:
                return _empty(dtype), _empty(dtype), jnp.zeros(p.shape, dtype)
            rows, cols = axes
            v_row = jnp.zeros(tuple(np.delete(p.shape, cols)), dtype)
            v_col = jnp.zeros(tuple(np.delete(p.shape, rows)), dtype)
            return v_row, v_col, _empty(dtype)

        v_row, v_col, v = unzip(params, jax.tree.map(init_leaf, params), 3)
        return FactoredState(count=init_count(), v_row=v_row, v_col=v_col, v=v)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        step = state.count - step_offset

        def leaf(g, v_row, v_col, v):
            if like == "torch":  # the weight t^(−c) itself, as torch computes it
                cd = _real_compute_dtype(g)
                beta = (jnp.asarray(step, cd) + 1) ** (-jnp.asarray(decay_rate, cd))
            elif like == "optax" or decay_rate_fn is not None:
                beta = decay_fn(step, decay_rate)
            else:
                beta = decay_fn(step, decay_rate, _real_compute_dtype(g))
            return estimate(g, v_row, v_col, v, beta, epsilon, axes_of(g))

        out = jax.tree.map(leaf, updates, state.v_row, state.v_col, state.v)
        u, v_row, v_col, v = unzip(updates, out, 4)
        return u, FactoredState(count=next_count(state.count), v_row=v_row, v_col=v_col, v=v)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
