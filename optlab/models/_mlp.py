"""The multilayer perceptron (lecture 03's fully connected network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from optlab.models import initializers
from optlab.models._layers import activate

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


class MLP(nn.Module):
    """Dense → [BatchNorm] → activation → [Dropout] per hidden width, then a dense head.

    Built by ``create_model("mlp", ...)``; the input is flattened to ``(batch, features)``.
    Parameter paths: ``Dense_i/kernel`` and ``Dense_i/bias`` for hidden layer i, the head is
    ``Dense_{len(widths)}``; ``BatchNorm_i/scale``, ``BatchNorm_i/bias`` (γ, β) and
    ``batch_stats/BatchNorm_i/{mean,var}`` with batch norm (the hidden Dense layers then have
    no bias: β replaces it); ``PReLU_i/slope`` with ``activation="prelu"``.
    Batch norm sits before the non-linearity, as lecture 03 advises.

    ``batchnorm_axis_name``: the ``jax.pmap`` axis over which batch norm averages its
    statistics (see ``batchnorm``; ``--parallel pmap`` sets it); None on one device and under
    ``jit``, where the global batch is one array already. ``remat``: each hidden layer
    (Dense → [BatchNorm] → activation → [Dropout]) is rematerialized in the backward pass
    (``maybe_remat``); the same numbers and parameter paths, less activation memory kept.
    """

    num_classes: int
    widths: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    kernel_init: Any = "he"
    batchnorm: bool = False
    batchnorm_momentum: float = BATCHNORM_MOMENTUM
    dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32
    batchnorm_axis_name: str | None = None
    remat: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        for width in self.widths:
            x = maybe_remat(_hidden_layer(width, train), self.remat)(self, x)
        x = dense(self.num_classes, self.kernel_init, True, self.dtype, self.param_dtype)(x)
        return x.astype(jnp.float32)


def _hidden_layer(width: int, train: bool) -> Callable[[MLP, jax.Array], jax.Array]:
    def layer(mlp: MLP, x: jax.Array) -> jax.Array:
        x = dense(width, mlp.kernel_init, not mlp.batchnorm, mlp.dtype, mlp.param_dtype)(x)
        if mlp.batchnorm:
            x = batchnorm(
                train,
                mlp.batchnorm_momentum,
                mlp.dtype,
                mlp.param_dtype,
                mlp.batchnorm_axis_name,
            )(x)
        x = activate(mlp.activation, x, dtype=mlp.dtype, param_dtype=mlp.param_dtype)
        if mlp.dropout > 0:
            x = nn.Dropout(mlp.dropout)(x, deterministic=not train)
        return x

    return layer
