"""A decoder-only transformer language model in the style of GPT-2 and nanoGPT."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from optlab.models._attention import KVCache, SelfAttention, init_cache

INIT_STDDEV = 0.02
"""GPT-2's initialization: every kernel and embedding N(0, 0.02²), biases 0; the residual
projections (attention ``out``, ``mlp_out``) N(0, (0.02/√(2·n_layer))²), since each block
adds two of them to the residual stream (Radford et al. 2019, §2.3; nanoGPT)."""

LAYERNORM_EPSILON = 1e-5
"""ε of every LayerNorm, GPT-2's and PyTorch's (flax's default is 1e-6)."""

POSITIONS: tuple[str, ...] = ("learned", "rope")
MLPS: tuple[str, ...] = ("gelu", "swiglu")


def swiglu_hidden(d_model: int) -> int:
    """The SwiGLU hidden width: 8·d/3 (which keeps the 3 matrices' parameters at the 8·d²
    of GELU's two d×4d ones, Shazeer 2020), rounded up to a multiple of 64."""
    return 64 * math.ceil(8 * d_model / (3 * 64))


def segment_mask(segment_ids: jax.Array) -> jax.Array:
    """``(B, T)`` document ids → boolean ``(B, 1, T, T)``: query i may see key j only within
    its own document (the causal part is added by the attention)."""
    return segment_ids[:, None, :, None] == segment_ids[:, None, None, :]


class GPTBlock(nn.Module):
    """x ← x + Dropout(Attention(LN(x))); x ← x + Dropout(MLP(LN(x))) (pre-LayerNorm).

    The attention dropout of nanoGPT (on the attention weights) does not exist here:
    ``jax.nn.dot_product_attention`` has no dropout, so the attention branch is dropped at
    its output (after ``out``), like the MLP branch."""

    d_model: int
    n_head: int
    n_layer: int
    mlp: str
    rope: bool
    dropout: float
    dtype: Any
    param_dtype: Any

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        train: bool,  # static under nn.remat
        mask: jax.Array | None = None,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        kinds = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        normal = nn.initializers.normal(INIT_STDDEV)
        residual = nn.initializers.normal(INIT_STDDEV / math.sqrt(2 * self.n_layer))
        dense = {"bias_init": nn.initializers.zeros, **kinds}
        y = nn.LayerNorm(epsilon=LAYERNORM_EPSILON, name="norm_attention", **kinds)(x)
        y = SelfAttention(
            self.n_head,
            causal=True,
            rope=self.rope,
            kernel_init=normal,
            out_kernel_init=residual,
            name="attention",
            **kinds,
        )(y, mask=mask, cache=cache)
        if cache is not None:
            y, cache = y
        if self.dropout > 0:
            y = nn.Dropout(self.dropout)(y, deterministic=not train)
        x = x + y
        y = nn.LayerNorm(epsilon=LAYERNORM_EPSILON, name="norm_mlp", **kinds)(x)
        if self.mlp == "swiglu":
            hidden = swiglu_hidden(self.d_model)
            gate = nn.Dense(hidden, kernel_init=normal, name="mlp_gate", **dense)(y)
            y = nn.Dense(hidden, kernel_init=normal, name="mlp_in", **dense)(y)
            y = jax.nn.silu(gate) * y
        else:
            y = nn.Dense(4 * self.d_model, kernel_init=normal, name="mlp_in", **dense)(y)
            y = jax.nn.gelu(y)
        y = nn.Dense(self.d_model, kernel_init=residual, name="mlp_out", **dense)(y)
        if self.dropout > 0:
            y = nn.Dropout(self.dropout)(y, deterministic=not train)
        return x + y, cache


class GPT(nn.Module):
    """Decoder-only transformer LM (GPT-2 / nanoGPT): tokens ``(B, T)`` int → next-token
    logits ``(B, T, vocab_size)`` float32.

    x = wte[tokens] (+ wpe[positions]); Dropout; ``n_layer`` ``GPTBlock``s (causal
    attention); LN; logits = x·wteᵀ (``tie_embeddings``) or x·``head/kernel``.

    Parameter paths: ``wte/embedding`` ``(V, d)``; ``wpe/embedding`` ``(block_size, d)``
    (``pos="learned"`` only; ``"rope"`` rotates q and k instead); ``block_i/norm_attention/
    {scale,bias}``; ``block_i/attention/{query,key,value}/{kernel,bias}`` ``(d, heads,
    d/heads)``, ``(heads, d/heads)``; ``block_i/attention/out/{kernel,bias}`` ``(heads,
    d/heads, d)``, ``(d,)``; ``block_i/norm_mlp/{scale,bias}``; ``block_i/mlp_in/{kernel,
    bias}`` ``(d, 4d)`` and ``block_i/mlp_out`` ``(4d, d)``; with ``mlp="swiglu"``
    ``mlp_gate`` and ``mlp_in`` ``(d, h)``, ``mlp_out`` ``(h, d)``, h = ``swiglu_hidden(d)``
    (8d/3 rounded up to a multiple of 64) and MLP(y) = mlp_out(silu(mlp_gate(y)) ⊙
    mlp_in(y)); ``norm_final/{scale,bias}``; ``head/kernel`` ``(d, V)`` (untied only, no
    bias). Initialization: ``INIT_STDDEV``. ``remat``: each block rematerialized in the
    backward pass (``nn.remat``; the paths stay). ``dtype`` is the compute dtype (e.g.
    bfloat16), ``param_dtype`` the stored one; the logits are returned in float32.

    Call::

        logits = model.apply(variables, tokens, train=False)            # (B, T, V)
        logits = model.apply(variables, tokens, train=True, segment_ids=ids,
                             rngs={"dropout": key})
        logits, cache = model.apply(variables, tokens, cache=cache)   # decoding

    ``segment_ids`` ``(B, T)`` (documents of a packed window) restrict attention to the
    query's own document when ``segment_mask=True`` (ignored otherwise); positions still
    count from the window's start. With a ``cache`` (``model.init_cache(batch)``), the
    ``T`` tokens are positions ``[index, index + T)`` of a sequence whose earlier keys and
    values the cache holds; ``index + T`` must not exceed the cache's length (for learned
    positions, ``block_size``).
    """

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.0
    pos: str = "learned"
    mlp: str = "gelu"
    tie_embeddings: bool = True
    segment_mask: bool = False
    dtype: Any = None
    param_dtype: Any = jnp.float32
    remat: bool = False

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def init_cache(self, batch: int, max_len: int | None = None) -> tuple[KVCache, ...]:
        """An empty cache per block for ``max_len`` [``block_size``] positions, in the
        compute dtype."""
        dtype = self.dtype or jnp.float32
        length = max_len or self.block_size
        return tuple(
            init_cache(batch, length, self.n_head, self.head_dim, dtype)
            for _ in range(self.n_layer)
        )

    @nn.compact
    def __call__(
        self,
        tokens: jax.Array,
        *,
        train: bool = False,
        segment_ids: jax.Array | None = None,
        cache: tuple[KVCache, ...] | None = None,
    ):
        kinds = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        normal = nn.initializers.normal(INIT_STDDEV)
        wte = nn.Embed(self.vocab_size, self.d_model, embedding_init=normal, name="wte", **kinds)
        tokens = tokens.astype(jnp.int32)
        x = wte(tokens)
        if self.pos == "learned":
            start = 0 if cache is None else cache[0].index
            positions = start + jnp.arange(tokens.shape[1], dtype=jnp.int32)
            wpe = nn.Embed(
                self.block_size, self.d_model, embedding_init=normal, name="wpe", **kinds
            )
            positions = wpe(positions)[None]
            x = x + positions.astype(x.dtype)
        if self.dropout > 0:
            x = nn.Dropout(self.dropout)(x, deterministic=not train)
        mask = None
        if self.segment_mask and segment_ids is not None:
            mask = segment_mask(segment_ids)
        block = nn.remat(GPTBlock, static_argnums=(2,)) if self.remat else GPTBlock
        new_cache = []
        for i in range(self.n_layer):
            x, layer_cache = block(
                self.d_model,
                self.n_head,
                self.n_layer,
                self.mlp,
                self.pos == "rope",
                self.dropout,
                self.dtype,
                self.param_dtype,
                name=f"block_{i}",
            )(x, train, mask, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        x = nn.LayerNorm(epsilon=LAYERNORM_EPSILON, name="norm_final", **kinds)(x)
        if self.tie_embeddings:
            logits = wte.attend(x)
        else:
            logits = nn.Dense(
                self.vocab_size, use_bias=False, kernel_init=normal, name="head", **kinds
            )(x)
        logits = logits.astype(jnp.float32)
        return logits if cache is None else (logits, tuple(new_cache))
