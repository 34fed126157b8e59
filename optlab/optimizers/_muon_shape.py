"""The shape factor of each of Muon's matrix steps (Jordan's √max(1, fan_out/fan_in), Liu
et al.'s consistent RMS, torch's ``adjust_lr_fn``)."""

from __future__ import annotations

import math

import jax
import optax
from optax.contrib import MuonDimensionNumbers

from optlab.optimizers._base import (
    scalar_like,
)
from optlab.optimizers._muon_adam import (  # noqa: F401  (re-exported: tests and __init__ import them here)
    NesterovAdamState,
    scale_by_optax_adam,
)
from optlab.optimizers._muon_matrices import (  # noqa: F401  (re-exported: imported from here)
    NS_COEFFS,
    NS_PRESETS,
    WeightDimNumOrFn,
    _is_dim_nums,
    _resolve_dims,
    as_matrices,
    fan_in_out,
    matrix_dimension_numbers,
    muon_labels,
    newton_schulz,
)


def scale_by_shape(
    weight_dimension_numbers: WeightDimNumOrFn = None,
    consistent_rms: float | None = None,
    *,
    adjust_lr_fn: str | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """The shape factor of each matrix's step.

    Default (Jordan; optax): √max(1, fan_out/fan_in). ``consistent_rms=r`` (Liu et al.
    2025): r·√max(fan_in, fan_out). ``like="torch"`` reads the leaf's first two dimensions
    (A, B) as torch's ``Muon`` does (rows, columns of the stored array):
    ``adjust_lr_fn`` None/"original" √max(1, A/B), "match_rms_adamw" 0.2·√max(A, B).
    """

    def factor(x, spec):
        if like == "torch":
            a, b = x.shape[:2]
            if adjust_lr_fn == "match_rms_adamw":
                return 0.2 * math.sqrt(max(a, b))
            return math.sqrt(max(1.0, a / b))
        fan_in, fan_out = fan_in_out(x, spec)
        if consistent_rms is not None:
            return math.sqrt(max(fan_in, fan_out)) * consistent_rms
        return math.sqrt(max(1.0, fan_out / fan_in))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        dims = weight_dimension_numbers
        dims = dims(updates) if callable(dims) else dims
        if dims is None:
            dims = jax.tree.map(lambda _: MuonDimensionNumbers(), updates)
        out = jax.tree.map(
            lambda u, s: u * scalar_like(factor(u, s), u), updates, dims, is_leaf=_is_dim_nums
        )
        return out, state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update_fn)
