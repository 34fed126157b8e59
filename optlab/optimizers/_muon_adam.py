"""Muon's fallback for the parameters it does not orthogonalize: the direction of
``optax.adamw(nesterov=...)``, as ``optax.contrib.muon`` runs it."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optimizers._base import (
    abs_sq,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
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


class NesterovAdamState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def scale_by_optax_adam(b1, b2, eps, eps_root, mu_dtype, nesterov):
    """optax.adamw(nesterov=...)'s direction, optax.contrib.muon's fallback:
    m̂ = β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t) (Nesterov) or m_t/(1 − β1^t),
    v̂ = v_t/(1 − β2^t), m̂/(√(v̂ + ε_root) + ε)."""

    def init_fn(params):
        return NesterovAdamState(init_count(), moment_zeros(params, mu_dtype), moment_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = next_count(state.count)
        t = count.astype(jnp.float32)

        def step(g, m, v):
            m = scalar_like(b1, m) * m + scalar_like(1 - b1, m) * g.astype(m.dtype)
            v = scalar_like(b2, v) * v + scalar_like(1 - b2, v) * abs_sq(g).astype(v.dtype)
            one = scalar_like(1.0, g)

            def power(b, n):
                return scalar_like(b, g) ** n.astype(g.dtype)

            if nesterov:
                m_hat = scalar_like(b1, g) * m / (one - power(b1, t + 1))
                m_hat = m_hat + scalar_like(1 - b1, g) * g / (one - power(b1, t))
            else:
                m_hat = m / (one - power(b1, t))
            v_hat = v / (one - power(b2, t))
            d = m_hat / (jnp.sqrt(v_hat + scalar_like(eps_root, g)) + scalar_like(eps, g))
            return d.astype(g.dtype), m, v

        d, mu, nu = unzip(updates, jax.tree.map(step, updates, state.mu, state.nu), 3)
        return d, NesterovAdamState(count, mu, nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
