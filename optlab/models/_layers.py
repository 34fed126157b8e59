"""Activations (lecture 03, "Activation Functions") and the PReLU layer."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "gelu")
"""Names accepted by ``activation=``. The first five are lecture 03's; ``"gelu"`` (the
transformer default) is the usual choice inside transformer MLP blocks."""

LEAKY_SLOPE = 0.01
"""Fixed negative slope of ``"leaky_relu"`` (as ``jax.nn.leaky_relu``)."""

PRELU_SLOPE_INIT = 0.25
"""Initial learnable slope of ``"prelu"`` (He et al. 2015)."""

_FUNCTIONS = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, LEAKY_SLOPE),
    "gelu": jax.nn.gelu,
}


class PReLU(nn.Module):
    """Parametric ReLU: f(x) = x if x > 0 else a·x, with one learnable slope a per feature.

    Lecture 03's leaky ReLU slide ("Learnable parameter!"). The slopes are the parameter
    ``slope`` of shape ``(features,)`` (last axis; a conv's channels), initialized to 0.25
    as in He et al. 2015, so a layer's path reads ``PReLU_0/slope``.
    """

    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        slope = self.param(
            "slope", nn.initializers.constant(PRELU_SLOPE_INIT), (x.shape[-1],), self.param_dtype
        )
        dtype = self.dtype or x.dtype
        x = x.astype(dtype)
        return jnp.where(x > 0, x, slope.astype(dtype) * x)


def activate(name: str, x: jax.Array, *, dtype: Any = None, param_dtype: Any = jnp.float32):
    """Applies activation ``name``; call inside a ``@nn.compact`` method (PReLU adds a layer)."""
    if name == "prelu":
        return PReLU(dtype=dtype, param_dtype=param_dtype)(x)
    return _FUNCTIONS[name](x)
