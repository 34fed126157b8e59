"""A small pre-LayerNorm transformer encoder that classifies a sequence of tokens."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from optlab.models import initializers
from optlab.models._layers import activate

POSITION_STDDEV = 0.02
"""The learned positional embedding starts at N(0, 0.02²) whatever ``init`` says (ViT, BERT)."""


def tokens(x: jax.Array, patch: int) -> jax.Array:
    """``(batch, L)`` → ``(batch, L // patch, patch)``; ``(batch, T, *rest)`` →
    ``(batch, T, ∏rest)``: an image's rows become its tokens."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], x.shape[1] // patch, patch)
    return x.reshape(x.shape[0], x.shape[1], -1)


class EncoderBlock(nn.Module):
    """x ← x + Attention(LN(x)); x ← x + MLP(LN(x)) (pre-LayerNorm, Xiong et al. 2020)."""

    dim: int
    heads: int
    mlp_dim: int
    activation: str
    kernel_init: Any
    dropout: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:  # train: static under remat
        kinds = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        dense_kw = {
            "kernel_init": initializers.get(self.kernel_init),
            "bias_init": nn.initializers.zeros,
            **kinds,
        }
        y = nn.LayerNorm(name="norm_attention", **kinds)(x)
        y = nn.MultiHeadDotProductAttention(
            num_heads=self.heads,
            qkv_features=self.dim,
            out_features=self.dim,
            deterministic=True,
            name="attention",
            **dense_kw,
        )(y)
        if self.dropout > 0:
            y = nn.Dropout(self.dropout)(y, deterministic=not train)
        x = x + y
        y = nn.LayerNorm(name="norm_mlp", **kinds)(x)
        y = nn.Dense(self.mlp_dim, name="mlp_in", **dense_kw)(y)
        y = activate(self.activation, y, **kinds)
        y = nn.Dense(self.dim, name="mlp_out", **dense_kw)(y)
        if self.dropout > 0:
            y = nn.Dropout(self.dropout)(y, deterministic=not train)
        return x + y


class Transformer(nn.Module):
    """Token embedding + learned positions, ``depth`` pre-LN blocks, mean-pool, dense head.

    Tokens: a 1-D input ``(L,)`` is cut into ``L // patch`` tokens of ``patch`` features;
    an input ``(T, ...)`` of rank ≥ 2 has ``T`` tokens (an image's rows) of ``∏...``
    features. Each token is embedded by one dense layer to ``dim`` features.

    Parameter paths: ``embed/{kernel,bias}``; ``pos_embedding`` ``(T, dim)``;
    ``block_i/norm_attention/{scale,bias}``;
    ``block_i/attention/{query,key,value}/kernel`` ``(dim, heads, dim // heads)`` and
    ``block_i/attention/out/kernel`` ``(heads, dim // heads, dim)`` (each with a ``bias``);
    ``block_i/norm_mlp/{scale,bias}``; ``block_i/mlp_in/kernel`` ``(dim, mlp_dim)``;
    ``block_i/mlp_out/kernel`` ``(mlp_dim, dim)``; ``norm_final/{scale,bias}``;
    ``head/{kernel,bias}``. ``init`` applies to every kernel (attention's are flattened to
    ``(dim, dim)`` for the fans). No batch norm: LayerNorm has no running statistics.
    """

    num_classes: int
    patch: int = 4
    depth: int = 2
    heads: int = 4
    dim: int = 64
    mlp_dim: int = 128
    activation: str = "gelu"
    kernel_init: Any = "xavier"
    dropout: float = 0.0
    dtype: Any = None
    param_dtype: Any = jnp.float32
    remat: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = tokens(x, self.patch)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        kinds = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        x = nn.Dense(
            self.dim,
            kernel_init=initializers.get(self.kernel_init),
            bias_init=nn.initializers.zeros,
            name="embed",
            **kinds,
        )(x)
        positions = self.param(
            "pos_embedding",
            nn.initializers.normal(POSITION_STDDEV),
            (x.shape[1], self.dim),
            self.param_dtype,
        )
        x = x + positions.astype(x.dtype)
        if self.dropout > 0:
            x = nn.Dropout(self.dropout)(x, deterministic=not train)
        # --remat: each block recomputed in the backward pass; nn.remat keeps the block's
        # name, so the parameter paths (and the sharding rules on them) do not change.
        block = nn.remat(EncoderBlock, static_argnums=(2,)) if self.remat else EncoderBlock
        for i in range(self.depth):
            x = block(
                self.dim,
                self.heads,
                self.mlp_dim,
                self.activation,
                self.kernel_init,
                self.dropout,
                self.dtype,
                self.param_dtype,
                name=f"block_{i}",
            )(x, train)
        x = nn.LayerNorm(name="norm_final", **kinds)(x)
        x = x.mean(axis=1)
        x = nn.Dense(
            self.num_classes,
            kernel_init=initializers.get(self.kernel_init),
            bias_init=nn.initializers.zeros,
            name="head",
            **kinds,
        )(x)
        return x.astype(jnp.float32)
