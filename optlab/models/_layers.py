"""Activations (lecture 03, "Activation Functions"), the PReLU layer, and what optlab's MLP
and CNN share: their options (``LayeredModel``), dense and batch-norm layers, and remat."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from optlab.models import initializers

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


BATCHNORM_MOMENTUM = 0.9
"""Default running-average decay of batch norm: r ← m·r + (1 − m)·batch statistic.

PyTorch's ``momentum=0.1`` is the weight of the *new* batch, so it equals m = 0.9 here.
"""


def dense(features: int, init, use_bias: bool, dtype, param_dtype, name=None) -> nn.Dense:
    return nn.Dense(
        features,
        use_bias=use_bias,
        kernel_init=initializers.get(init),
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


def batchnorm(
    train: bool, momentum: float, dtype, param_dtype, axis_name: str | None = None
) -> nn.BatchNorm:
    """Batch norm over all axes but the last: batch statistics while training, the running
    averages (collection ``batch_stats``: ``mean``, ``var``) at evaluation.

    ``axis_name``: inside ``jax.pmap`` (or ``shard_map``), the mapped axis over which the
    batch mean and mean square are ``lax.pmean``-averaged before normalizing, so that every
    device normalizes with the statistics of the global batch (lecture 03's batch norm over
    the mini-batch; "SyncBatchNorm"). None: the statistics of the batch this call sees.
    """
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        dtype=dtype,
        param_dtype=param_dtype,
        axis_name=axis_name,
    )


def maybe_remat(layer: Callable, remat: bool) -> Callable:
    """``layer(module, x)`` under ``flax.linen.remat`` when ``remat``: the backward pass
    recomputes the layer's activations from its input instead of keeping them (compute for
    memory). A lifted *function* of the parent module keeps the parent's scope, so the
    layers created inside keep their names (``Dense_0``, ``BatchNorm_0``...) and the
    parameter paths, which the sharding rules and checkpoints match, do not change."""
    return nn.remat(layer) if remat else layer


def _option(default: Any) -> Any:
    # Keyword-only, so that a subclass may add fields without defaults (``num_classes``).
    return dataclasses.field(default=default, kw_only=True)


class LayeredModel(nn.Module):
    """The options optlab's ``MLP`` and ``CNN`` share, and the pieces of their layers.

    Each subclass declares its own ``num_classes`` and shape fields and builds its layers
    with ``stack`` (each layer ``layer(module, x)``, rematerialized when ``remat``),
    ``normalize_activate`` ([BatchNorm] → activation) and ``head`` (the dense output layer).

    ``batchnorm_axis_name``: the ``jax.pmap`` axis over which batch norm averages its
    statistics (see ``batchnorm``; ``--parallel pmap`` sets it); None on one device and under
    ``jit``, where the global batch is one array already. ``remat``: each layer is
    rematerialized in the backward pass (``maybe_remat``); the same numbers and parameter
    paths, less activation memory kept. The options are keyword-only.
    """

    activation: str = _option("relu")
    kernel_init: Any = _option("he")
    batchnorm: bool = _option(False)
    batchnorm_momentum: float = _option(BATCHNORM_MOMENTUM)
    dropout: float = _option(0.0)
    dtype: Any = _option(None)
    param_dtype: Any = _option(jnp.float32)
    batchnorm_axis_name: str | None = _option(None)
    remat: bool = _option(False)

    def stack(self, x: jax.Array, layers: list[Callable]) -> jax.Array:
        """``x`` through each ``layer(module, x)`` in turn (under remat with ``remat``)."""
        for layer in layers:
            x = maybe_remat(layer, self.remat)(self, x)
        return x

    def normalize_activate(self, x: jax.Array, train: bool) -> jax.Array:
        """[BatchNorm] → activation, inside a layer (after its Dense or Conv)."""
        if self.batchnorm:
            x = batchnorm(
                train,
                self.batchnorm_momentum,
                self.dtype,
                self.param_dtype,
                self.batchnorm_axis_name,
            )(x)
        return activate(self.activation, x, dtype=self.dtype, param_dtype=self.param_dtype)

    def head(self, x: jax.Array, num_classes: int) -> jax.Array:
        """The dense output layer (with bias), its output as float32."""
        x = dense(num_classes, self.kernel_init, True, self.dtype, self.param_dtype)(x)
        return x.astype(jnp.float32)
