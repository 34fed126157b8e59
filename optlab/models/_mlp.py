"""The multilayer perceptron (lecture 03's fully connected network)."""

from __future__ import annotations

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


def batchnorm(train: bool, momentum: float, dtype, param_dtype) -> nn.BatchNorm:
    """Batch norm over all axes but the last: batch statistics while training, the running
    averages (collection ``batch_stats``: ``mean``, ``var``) at evaluation."""
    return nn.BatchNorm(
        use_running_average=not train, momentum=momentum, dtype=dtype, param_dtype=param_dtype
    )


class MLP(nn.Module):
    """Dense → [BatchNorm] → activation → [Dropout] per hidden width, then a dense head.

    Built by ``create_model("mlp", ...)``; the input is flattened to ``(batch, features)``.
    Parameter paths: ``Dense_i/kernel`` and ``Dense_i/bias`` for hidden layer i, the head is
    ``Dense_{len(widths)}``; ``BatchNorm_i/scale``, ``BatchNorm_i/bias`` (γ, β) and
    ``batch_stats/BatchNorm_i/{mean,var}`` with batch norm (the hidden Dense layers then have
    no bias: β replaces it); ``PReLU_i/slope`` with ``activation="prelu"``.
    Batch norm sits before the non-linearity, as lecture 03 advises.
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

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        for width in self.widths:
            x = dense(width, self.kernel_init, not self.batchnorm, self.dtype, self.param_dtype)(x)
            if self.batchnorm:
                x = batchnorm(train, self.batchnorm_momentum, self.dtype, self.param_dtype)(x)
            x = activate(self.activation, x, dtype=self.dtype, param_dtype=self.param_dtype)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout)(x, deterministic=not train)
        x = dense(self.num_classes, self.kernel_init, True, self.dtype, self.param_dtype)(x)
        return x.astype(jnp.float32)
