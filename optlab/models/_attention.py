"""Multi-head self-attention through ``jax.nn.dot_product_attention``, with optional rotary
positions (RoPE) and a functional key-value cache for sampling.

The parameters have exactly the paths and shapes of flax's ``MultiHeadDotProductAttention``
(``query|key|value/kernel`` ``(d, heads, head_dim)``, ``query|key|value/bias``
``(heads, head_dim)``, ``out/kernel`` ``(heads, head_dim, d)``, ``out/bias`` ``(d,)``, all
``nn.DenseGeneral`` as there), so the tensor-parallel rules of ``optlab.parallel`` apply
unchanged: q/k/v column-parallel on the heads, ``out`` row-parallel.

``jax.nn.dot_product_attention`` is called with ``implementation=None`` so that XLA may pick
a fused kernel where it has one (cuDNN on GPU). Its ``is_causal`` mask is aligned top-left:
query ``i`` sees keys ``j <= i`` counted from the start of *both* arrays. That is right when
the queries and keys are the same ``T`` positions (training, prefill from position 0), but
wrong for ``t`` new queries at positions ``[index, index + t)`` against a cache of
``max_len`` keys; the cached path therefore builds the explicit boolean mask
``key position <= query position`` instead.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

ROPE_BASE = 10_000.0
"""θ of RoPE (Su et al. 2021): pair i of a head rotates by position · θ^(−2i/head_dim)."""


class KVCache(NamedTuple):
    """One attention layer's cache: ``key``, ``value`` ``(B, max_len, heads, head_dim)`` hold
    positions ``[0, index)``; ``index`` (int32 scalar) is the next position to write."""

    key: jax.Array
    value: jax.Array
    index: jax.Array


def init_cache(batch: int, max_len: int, heads: int, head_dim: int, dtype: Any) -> KVCache:
    """An empty cache (zeros, ``index`` 0) for ``max_len`` positions."""
    shape = (batch, max_len, heads, head_dim)
    return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((), jnp.int32))


def rope(x: jax.Array, positions: jax.Array, base: float = ROPE_BASE) -> jax.Array:
    """Rotary position embedding of ``x`` ``(B, T, heads, head_dim)`` at ``positions``
    ``(B, T)`` or ``(T,)``, in the "rotate half" layout of GPT-NeoX and LLaMA: features
    ``i`` and ``i + head_dim/2`` form pair i, rotated by the angle position · base^(−2i/D).
    Computed in float32, returned in ``x``'s dtype. q·k then depends only on the offset."""
    half = x.shape[-1] // 2
    freqs = base ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / x.shape[-1])
    angles = positions.astype(jnp.float32)[..., None] * freqs  # (B?, T, half)
    if angles.ndim == 2:
        angles = angles[None]
    cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention: softmax(q·kᵀ/√head_dim + mask)·v, heads concatenated and
    projected by ``out``.

    Call ``attention(x, mask=None, positions=None, cache=None)`` with ``x`` ``(B, T, d)``:

    - no cache: every query sees every key (``causal=False``) or the keys at or before it
      (``causal=True``, ``is_causal``); ``mask`` (boolean, broadcastable to
      ``(B, heads, T, T)``, True = may attend) further restricts it, e.g. to the query's own
      document (segment masking). Returns ``(B, T, d)``.
    - with a ``KVCache``: the ``T`` new tokens are positions ``[index, index + T)``; their
      keys and values are written into the cache at ``index`` and each query attends to
      the cached positions at or before its own (the explicit mask described in the
      module docstring). Returns ``(y, new_cache)``. The cache is an argument and a result,
      not a flax mutable collection, so a jitted step compiles once per shape.

    With ``rope=True`` q and k are rotated by their positions (``positions`` ``(B, T)``;
    default ``arange(T)``, or ``index + arange(T)`` with a cache) before the dot product.
    There is no attention-weight dropout (``jax.nn.dot_product_attention`` has none); the
    GPT applies dropout to this module's output instead.
    """

    heads: int
    causal: bool = True
    rope: bool = False
    kernel_init: Any = nn.initializers.lecun_normal()
    out_kernel_init: Any = None
    bias_init: Any = nn.initializers.zeros
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array | None = None,
        positions: jax.Array | None = None,
        cache: KVCache | None = None,
    ):
        d = x.shape[-1]
        if d % self.heads:
            raise ValueError(f"SelfAttention: heads={self.heads} does not divide width {d}")
        head_dim = d // self.heads
        kinds = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        dense = {"kernel_init": self.kernel_init, "bias_init": self.bias_init, **kinds}
        q, k, v = (
            nn.DenseGeneral((self.heads, head_dim), axis=-1, name=name, **dense)(x)
            for name in ("query", "key", "value")
        )
        t = x.shape[1]
        start = jnp.zeros((), jnp.int32) if cache is None else cache.index
        if self.rope:
            if positions is None:
                positions = start + jnp.arange(t, dtype=jnp.int32)
            q, k = rope(q, positions), rope(k, positions)
        new_cache = None
        if cache is None:
            y = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=self.causal)
        else:
            at = (0, start, 0, 0)
            keys = jax.lax.dynamic_update_slice(cache.key, k.astype(cache.key.dtype), at)
            values = jax.lax.dynamic_update_slice(cache.value, v.astype(cache.value.dtype), at)
            new_cache = KVCache(keys, values, start + t)
            query_pos = start + jnp.arange(t)[:, None]
            key_pos = jnp.arange(keys.shape[1])[None, :]
            visible = (key_pos <= query_pos) if self.causal else (key_pos < start + t)
            visible = visible[None, None]  # (1, 1, t, max_len)
            if mask is not None:
                visible = jnp.logical_and(visible, mask)
            y = jax.nn.dot_product_attention(
                q, keys.astype(q.dtype), values.astype(q.dtype), mask=visible
            )
        y = nn.DenseGeneral(
            d,
            axis=(-2, -1),
            name="out",
            kernel_init=self.out_kernel_init or self.kernel_init,
            bias_init=self.bias_init,
            **kinds,
        )(y)
        return y if cache is None else (y, new_cache)
