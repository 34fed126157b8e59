"""A small convolutional network, 1-D (sequences such as MNIST-1D) or 2-D (images)."""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from optlab.models import initializers
from optlab.models._layers import LayeredModel


class CNN(LayeredModel):
    """Conv → [BatchNorm] → activation per entry of ``channels``, flatten, [Dropout], dense head.

    ``spatial_dims`` is 1 for inputs ``(batch, L)`` or ``(batch, L, C)`` and 2 for
    ``(batch, H, W)`` or ``(batch, H, W, C)``; a missing channel axis is added (C = 1).
    Every convolution has a ``kernel_size`` window (``kernel_size × kernel_size`` in 2-D),
    stride ``stride`` and ``"SAME"`` padding, so each halves the length (or height and width)
    with the default stride 2. The defaults are the MNIST-1D paper's CNN (Greydanus 2020):
    3 conv layers of 25 channels and a linear head on the flattened features.

    Parameter paths: ``Conv_i/kernel`` of shape ``(*window, C_in, C_out)`` and
    ``Conv_i/bias``; the head ``Dense_0/kernel``, ``Dense_0/bias``; with batch norm
    ``BatchNorm_i/{scale,bias}`` and ``batch_stats/BatchNorm_i/{mean,var}`` (the convs then
    have no bias); ``PReLU_i/slope`` (one per channel) with ``activation="prelu"``.
    Dropout, if any, acts once on the flattened features before the head (as Inception's
    "dropout (40%)" before its linear layer, lecture 04).

    The other options are ``LayeredModel``'s, as in ``MLP``: ``batchnorm_axis_name`` (the
    ``jax.pmap`` axis of batch norm's statistics; SyncBatchNorm), and ``remat``: each conv
    layer (Conv → [BatchNorm] → activation) rematerialized with unchanged parameter paths.
    """

    num_classes: int
    spatial_dims: int = 1
    channels: tuple[int, ...] = (25, 25, 25)
    kernel_size: int = 5
    stride: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim == self.spatial_dims + 1:
            x = x[..., None]
        if self.dtype is not None:
            x = x.astype(self.dtype)
        x = self.stack(x, [_conv_layer(features, train) for features in self.channels])
        x = x.reshape(x.shape[0], -1)
        if self.dropout > 0:
            x = nn.Dropout(self.dropout)(x, deterministic=not train)
        return self.head(x, self.num_classes)


def _conv_layer(features: int, train: bool) -> Callable[[CNN, jax.Array], jax.Array]:
    def layer(cnn: CNN, x: jax.Array) -> jax.Array:
        x = nn.Conv(
            features,
            kernel_size=(cnn.kernel_size,) * cnn.spatial_dims,
            strides=(cnn.stride,) * cnn.spatial_dims,
            padding="SAME",
            use_bias=not cnn.batchnorm,
            kernel_init=initializers.get(cnn.kernel_init),
            bias_init=nn.initializers.zeros,
            dtype=cnn.dtype,
            param_dtype=cnn.param_dtype,
        )(x)
        return cnn.normalize_activate(x, train)

    return layer
