"""The multilayer perceptron (lecture 03's fully connected network)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from optlab.models._layers import LayeredModel, dense


class MLP(LayeredModel):
    """Dense → [BatchNorm] → activation → [Dropout] per hidden width, then a dense head.

    Built by ``create_model("mlp", ...)``; the input is flattened to ``(batch, features)``.
    Parameter paths: ``Dense_i/kernel`` and ``Dense_i/bias`` for hidden layer i, the head is
    ``Dense_{len(widths)}``; ``BatchNorm_i/scale``, ``BatchNorm_i/bias`` (γ, β) and
    ``batch_stats/BatchNorm_i/{mean,var}`` with batch norm (the hidden Dense layers then have
    no bias: β replaces it); ``PReLU_i/slope`` with ``activation="prelu"``.
    Batch norm sits before the non-linearity, as lecture 03 advises.

    The other options (``activation``, ``kernel_init``, ``batchnorm``, ``dropout``, dtypes,
    ``batchnorm_axis_name``, ``remat``) are ``LayeredModel``'s; with ``remat`` each hidden
    layer (Dense → [BatchNorm] → activation → [Dropout]) is rematerialized.
    """

    num_classes: int
    widths: tuple[int, ...] = (128, 128)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        x = self.stack(x, [_hidden_layer(width, train) for width in self.widths])
        return self.head(x, self.num_classes)


def _hidden_layer(width: int, train: bool) -> Callable[[MLP, jax.Array], jax.Array]:
    def layer(mlp: MLP, x: jax.Array) -> jax.Array:
        x = dense(width, mlp.kernel_init, not mlp.batchnorm, mlp.dtype, mlp.param_dtype)(x)
        x = mlp.normalize_activate(x, train)
        if mlp.dropout > 0:
            x = nn.Dropout(mlp.dropout)(x, deterministic=not train)
        return x

    return layer
