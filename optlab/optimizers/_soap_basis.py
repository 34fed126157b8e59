"""SOAP's eigenbases (Vyas et al. 2024): the first one by eigh, the refresh by one power
iteration and QR (its Algorithm 4), and the projections into and out of them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optlab.optimizers._shampoo import (
    matmul,
)


def eigenbasis(p: jax.Array) -> jax.Array:
    """The first basis: eigh(P + 1e-30·I), columns flipped to descending eigenvalues."""
    _, q = jnp.linalg.eigh(p + 1e-30 * jnp.eye(p.shape[0], dtype=p.dtype))
    return q[:, ::-1]


def power_qr(p: jax.Array, q: jax.Array, v: jax.Array, axis: int):
    """Algorithm 4 with the code's ordering: sort Q's columns by the estimated eigenvalues
    diag(QᵀPQ) (descending; V's ``axis`` permuted alike), then Q ← QR(P·Q).Q."""
    pq = matmul(p, q)
    estimate = jnp.sum(q * pq, axis=0)  # diag(Qᵀ·P·Q)
    order = jnp.argsort(-estimate)  # stable
    new_q, _ = jnp.linalg.qr(pq[:, order])  # P·Q[:, order] = (P·Q)[:, order]
    return new_q, jnp.take(v, order, axis=axis)


def project(x: jax.Array, q: tuple) -> jax.Array:
    """Q_Lᵀ·X·Q_R (a missing side is the identity)."""
    ql, qr = q
    if ql is not None:
        x = matmul(ql.T, x)
    if qr is not None:
        x = matmul(x, qr)
    return x


def project_back(x: jax.Array, q: tuple) -> jax.Array:
    """Q_L·X·Q_Rᵀ (a missing side is the identity)."""
    ql, qr = q
    if ql is not None:
        x = matmul(ql, x)
    if qr is not None:
        x = matmul(x, qr.T)
    return x
