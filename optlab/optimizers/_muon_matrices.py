"""Muon's matrices: which leaves are matrices and along which axes (``MuonDimensionNumbers``,
``matrix_dimension_numbers``, ``muon_labels``), their matrix views, and the Newton–Schulz
iteration that orthogonalizes them (Jordan et al. 2024; the Dion preset of Ahn et al. 2025).
The optimizer around them is ``optlab.optimizers._muon``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from optax.contrib import MuonDimensionNumbers

from optlab import _validation
from optlab.optimizers._base import (
    scalar_like,
)

NS_COEFFS = (3.4445, -4.7750, 2.0315)
"""Jordan's quintic: a, b, c of X ← aX + b(XXᵀ)X + c(XXᵀ)²X."""

NS_PRESETS = {
    "standard": NS_COEFFS,
    # Ahn et al. 2025 (Dion): one (a, b, c) per step, as optax.contrib's "dion" preset.
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
}
WeightDimNumOrFn = Any  # a tree of MuonDimensionNumbers / None, or params -> such a tree


def _is_dim_nums(x: Any) -> bool:
    return isinstance(x, MuonDimensionNumbers)


def _axes(x: jax.Array, spec: MuonDimensionNumbers) -> tuple[tuple, tuple, tuple]:
    """(batch, reduction, output) axes of ``x`` under ``spec``, non-negative and sorted."""

    def norm(axes):
        return tuple(a % x.ndim for a in ((axes,) if isinstance(axes, int) else axes))

    reduction, output = norm(spec.reduction_axis), norm(spec.output_axis)
    if set(reduction) & set(output) or not reduction or not output:
        raise ValueError(
            f"muon: the reduction axes {reduction} and output axes {output} of a leaf of "
            f"shape {x.shape} must be non-empty and disjoint."
        )
    batch = tuple(a for a in range(x.ndim) if a not in reduction + output)
    return batch, reduction, output


def fan_in_out(x: jax.Array, spec: MuonDimensionNumbers) -> tuple[int, int]:
    """The matrix's (rows, columns): products of the reduction and the output axes."""
    _, reduction, output = _axes(x, spec)
    return math.prod(x.shape[a] for a in reduction), math.prod(x.shape[a] for a in output)


def as_matrices(x: jax.Array, spec: MuonDimensionNumbers):
    """``x`` as a stack of (fan_in, fan_out) matrices, and the function that undoes it."""
    batch, reduction, output = _axes(x, spec)
    order = batch + reduction + output
    shape = tuple(x.shape[a] for a in order)
    flat = (math.prod(shape[: len(batch)]), *fan_in_out(x, spec))
    inverse = tuple(order.index(a) for a in range(x.ndim))
    return x.transpose(order).reshape(flat), lambda y: y.reshape(shape).transpose(inverse)


def newton_schulz(
    x: jax.Array,
    coeffs: Any = NS_COEFFS,
    steps: int = 5,
    eps: float = 1e-8,
    *,
    preconditioning: str = "frobenius",
    clamp_eps: bool = False,
    dtype: Any = None,
) -> jax.Array:
    r"""Jordan's quintic Newton–Schulz iteration: ≈ U·Vᵀ for the matrix x = U·S·Vᵀ.

    ::

        X_0 ← x / (‖x‖_F + ε)              (‖x‖_F ≥ the spectral norm, so σ(X_0) ≤ 1)
        X_{k+1} ← a·X_k + (b·A_k + c·A_k²)·X_k,   A_k = X_k·X_kᵀ

    on the wide orientation (xᵀ when x has more rows than columns: A is the smaller Gram
    matrix). Each step maps every singular value σ to p(σ) = aσ + bσ³ + cσ⁵, which for
    (a, b, c) = (3.4445, −4.7750, 2.0315) has a steep slope at 0 and oscillates near 1:
    five steps leave the singular values in a band around 1, not at 1 (measured in
    ``tests/optimizers/test_muon.py``). ``coeffs`` is one (a, b, c) or one per step (then
    its length must be ``steps``). ``preconditioning="spectral"`` divides by the spectral
    norm instead; ``clamp_eps`` divides by max(‖x‖_F, ε) (torch's form); ``dtype``
    computes in another (real) dtype (torch uses bfloat16) and returns x's dtype; complex
    x is computed in its own dtype.
    """
    out_dtype = x.dtype
    if dtype is not None and not jnp.iscomplexobj(x):  # complex stays complex
        x = x.astype(dtype)
    coeffs = jnp.asarray(coeffs, x.dtype)
    coeffs = coeffs[None] if coeffs.ndim == 1 else coeffs
    rows = coeffs.shape[0]  # one (a, b, c) for every step, or the last `steps` rows
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T
    norm = jnp.linalg.norm(x, ord=2 if preconditioning == "spectral" else "fro")
    eps_ = scalar_like(eps, x)
    x = x / (jnp.maximum(norm, eps_) if clamp_eps else norm + eps_)

    def one_step(x, abc):
        gram = x @ x.T.conj()
        return abc[0] * x + (abc[1] * gram + abc[2] * gram @ gram) @ x

    def row(i):
        return coeffs[0] if rows == 1 else coeffs[i]

    if isinstance(steps, int):  # unrolled, as optax does
        for i in range(rows - steps, rows):
            x = one_step(x, row(i))
    else:  # a traced count (optax.inject_hyperparams feeds ns_steps as an array)
        start = 0 if rows == 1 else rows - steps
        x = jax.lax.fori_loop(start, start + steps, lambda i, x: one_step(x, row(i)), x)
    return (x if wide else x.T).astype(out_dtype)


def matrix_dimension_numbers(params: Any, *, like: str | None = None) -> Any:
    """Which leaves are Muon's matrices, and how: a tree of ``MuonDimensionNumbers`` / None.

    2-D leaves are (fan_in, fan_out) matrices. Leaves of more dimensions (a conv kernel
    HWIO, or (k, in, out) in 1-D) are matrices with every axis but the last as rows
    (reduction) and the last as columns (output); ``like="optax"`` leaves them to AdamW as
    optax.contrib does. Vectors and scalars get None (AdamW).
    """

    def spec(p):
        if p.ndim == 2:
            return MuonDimensionNumbers(0, 1)
        if p.ndim > 2 and like is None:
            return MuonDimensionNumbers(tuple(range(p.ndim - 1)), p.ndim - 1)
        return None

    return jax.tree.map(spec, params)


def _resolve_dims(dims: WeightDimNumOrFn, params: Any, like, adam_paths) -> Any:
    """The tree of specs/None for ``params`` (a full tree: prefixes are broadcast)."""
    if dims is None:
        tree = matrix_dimension_numbers(params, like=like)
    else:
        given = dims(params) if callable(dims) else dims
        tree = jax.tree.map(
            lambda s, sub: jax.tree.map(lambda _: s, sub),
            given,
            params,
            is_leaf=lambda x: x is None or _is_dim_nums(x),
        )
    if adam_paths:
        from optlab._param_groups import param_paths  # a leaf module: no cycle

        regexes = [re.compile(p) for p in adam_paths]
        paths = param_paths(params)
        tree = jax.tree.map(
            lambda s, path: None if any(r.search(path) for r in regexes) else s,
            tree,
            paths,
            is_leaf=lambda x: x is None or _is_dim_nums(x),
        )
    return tree


def muon_labels(
    params: Any,
    muon_weight_dimension_numbers: WeightDimNumOrFn = None,
    *,
    adam_paths: Sequence[str] = (),
    like: str | None = None,
) -> Any:
    """``"muon"`` or ``"adam"`` for each leaf, as ``muon`` assigns them (print it to check)."""
    tree = _resolve_dims(muon_weight_dimension_numbers, params, like, tuple(adam_paths))
    return jax.tree.map(
        lambda s: "muon" if _is_dim_nums(s) else "adam",
        tree,
        is_leaf=lambda x: x is None or _is_dim_nums(x),
    )


def coeffs_table(owner: str, ns_coeffs: Any, ns_steps: Any) -> tuple:
    """The rows of (a, b, c) the iteration reads: the last ``ns_steps`` of a table, or the
    one row of a single (a, b, c) (then each step reads it)."""
    if isinstance(ns_coeffs, str):
        _validation.check_choice(owner, "ns_coeffs", ns_coeffs, tuple(NS_PRESETS))
        ns_coeffs = NS_PRESETS[ns_coeffs]
    table = np.asarray(ns_coeffs, np.float64)  # NumPy: never rounded to float32 here
    if table.ndim not in (1, 2) or table.shape[-1] != 3:
        _validation.fail(
            owner, "ns_coeffs", ns_coeffs, "(a, b, c) or one (a, b, c) per step", "Use the default."
        )
    if not isinstance(ns_steps, int | jax.Array) or (isinstance(ns_steps, int) and ns_steps < 1):
        _validation.fail(owner, "ns_steps", ns_steps, "an int >= 1", "Jordan uses 5.")
    if not isinstance(ns_steps, int):  # traced (inject_hyperparams): its value is not known here
        return tuple(map(tuple, np.atleast_2d(table).tolist()))
    if table.ndim == 2:
        if table.shape[0] < ns_steps:
            raise ValueError(
                f"{owner}: `ns_coeffs` has {table.shape[0]} rows, fewer than ns_steps={ns_steps}."
            )
        return tuple(map(tuple, table[-ns_steps:].tolist()))
    return (tuple(table.tolist()),)
