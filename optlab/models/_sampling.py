"""Autoregressive sampling from a ``GPT`` with a key-value cache, jitted once per shape.

Two compiled functions serve any prompt and any number of tokens:

- ``prefill``: the context, right-padded to ``block_size`` (so its shape never changes),
  runs through the model once with an empty cache; the cache keeps the keys and values of
  positions ``[0, n)`` (the padding's are written too, but every later query masks keys
  past its own position and the next step overwrites position ``n``), and the logits at
  position ``n − 1`` give the next token.
- ``step``: one token at position ``index`` against the cache → the next token.

The context window: the logits for the next token always come from the last
``min(n, block_size)`` tokens, as in nanoGPT's ``generate``. While the sequence fits, the
cache grows by one position per token; once it holds ``block_size`` positions (learned
positions cannot go further, and RoPE keeps the same rule), each new token re-runs
``prefill`` on the last ``block_size`` tokens, i.e. recomputes the cropped window (one
full forward per token from then on).

Choosing a token: logits / temperature, the ``top_k`` largest kept (the others −∞), then a
draw from the softmax with key ``fold_in(PRNGKey(seed), i)`` for the i-th new token, so a
seed gives the same text; ``temperature=0`` takes the arg-max (greedy).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.models._gpt import GPT


def _choose(logits: jax.Array, key: jax.Array, temperature: jax.Array, top_k: int | None):
    """The next token from ``logits`` ``(V,)`` (see the module docstring)."""
    greedy = jnp.argmax(logits).astype(jnp.int32)
    scaled = logits / jnp.maximum(temperature, 1e-6)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(scaled, top_k)[0][-1]
        scaled = jnp.where(scaled < kth, -jnp.inf, scaled)
    drawn = jax.random.categorical(key, scaled).astype(jnp.int32)
    return jnp.where(temperature > 0, drawn, greedy)


@functools.partial(jax.jit, static_argnames=("model", "top_k"))
def prefill(
    model: GPT, params: Any, window: jax.Array, length: jax.Array, key, temperature, top_k=None
):
    """``window`` ``(block_size,)`` holds the context in ``[0, length)``: → (next token,
    its logits ``(V,)``, the cache with ``index = length``)."""
    cache = model.init_cache(1)
    logits, cache = model.apply({"params": params}, window[None], cache=cache)
    cache = tuple(c._replace(index=length.astype(jnp.int32)) for c in cache)
    last = jax.lax.dynamic_index_in_dim(logits[0], length - 1, keepdims=False)
    return _choose(last, key, temperature, top_k), last, cache


@functools.partial(jax.jit, static_argnames=("model", "top_k"))
def step(model: GPT, params: Any, token: jax.Array, cache: Any, key, temperature, top_k=None):
    """One token at position ``cache.index`` → (next token, its logits, the cache)."""
    logits, cache = model.apply({"params": params}, token.reshape(1, 1), cache=cache)
    return _choose(logits[0, 0], key, temperature, top_k), logits[0, 0], cache


def _check(model: Any, prompt: np.ndarray, max_tokens: Any, temperature: Any, top_k: Any):
    if not isinstance(model, GPT):
        raise ValueError(f"sample: `model` must be an optlab GPT, got {type(model).__name__}")
    if prompt.ndim != 1 or prompt.size == 0 or not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(
            f"sample: `prompt` must be a non-empty 1-D array of token ids, got shape "
            f"{prompt.shape} dtype {prompt.dtype}"
        )
    if prompt.min() < 0 or prompt.max() >= model.vocab_size:
        raise ValueError(
            f"sample: `prompt` ids must be in [0, {model.vocab_size}), got "
            f"[{prompt.min()}, {prompt.max()}]"
        )
    whole = isinstance(max_tokens, numbers.Integral) and not isinstance(max_tokens, bool)
    if not (whole and max_tokens >= 0):
        raise ValueError(f"sample: `max_tokens` must be an integer >= 0, got {max_tokens!r}")
    if not (isinstance(temperature, numbers.Real) and temperature >= 0):
        raise ValueError(f"sample: `temperature` must be a number >= 0, got {temperature!r}")
    if top_k is not None and not (
        isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k > 0
    ):
        raise ValueError(f"sample: `top_k` must be a positive integer or None, got {top_k!r}")


def sample(
    model: GPT,
    params: Any,
    prompt: Any,
    *,
    max_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    return_logits: bool = False,
):
    """The prompt followed by ``max_tokens`` sampled tokens, a 1-D int32 NumPy array.

    Args:
      model: the ``GPT`` (dropout is off: ``train=False``).
      params: its parameters (``variables["params"]``).
      prompt: 1-D token ids, at least one.
      max_tokens: how many tokens to add.
      temperature: logits are divided by it; 0 is greedy (arg-max).
      top_k: keep only the ``top_k`` most likely tokens (None: all).
      seed: the i-th new token is drawn with ``fold_in(PRNGKey(seed), i)``.
      return_logits: also return the ``(max_tokens, V)`` float32 logits each token was
        drawn from (for tests).

    Returns:
      ``tokens`` (and ``logits`` with ``return_logits``).

    Raises:
      ValueError: naming the argument, for a bad prompt, count, temperature or top_k.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from optlab.models import GPT, sample
      >>> model = GPT(vocab_size=16, block_size=8, n_layer=1, n_head=2, d_model=8)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
      >>> sample(model, params, np.array([1, 2]), max_tokens=3, temperature=0).shape
      (5,)
    """
    prompt = np.asarray(prompt)
    _check(model, prompt, max_tokens, temperature, top_k)
    if model.dropout:
        model = model.clone(dropout=0.0)  # the same parameters; dropout is off anyway
    block = model.block_size
    base = jax.random.PRNGKey(seed)
    temp = jnp.float32(temperature)
    seq = [int(t) for t in prompt]
    chosen_logits = []
    cache = None
    for i in range(max_tokens):
        key = jax.random.fold_in(base, i)
        n = len(seq)
        if cache is None or n > block:  # first token, or a full cache: crop and recompute
            context = seq[-block:]
            window = np.zeros(block, np.int32)
            window[: len(context)] = context
            token, logits, cache = prefill(
                model, params, jnp.asarray(window), jnp.int32(len(context)), key, temp, top_k
            )
        else:
            token, logits, cache = step(model, params, jnp.int32(seq[-1]), cache, key, temp, top_k)
        seq.append(int(token))
        chosen_logits.append(np.asarray(logits))
    tokens = np.asarray(seq, np.int32)
    if return_logits:
        vocab = model.vocab_size
        return tokens, np.stack(chosen_logits) if chosen_logits else np.zeros((0, vocab))
    return tokens


def logits_by_recompute(model: GPT, params: Any, tokens: Any) -> np.ndarray:
    """The next-token logits ``(len(tokens), V)`` of a 1-D sequence by one full forward
    without a cache (row t predicts token t + 1); at most ``block_size`` tokens."""
    tokens = jnp.asarray(tokens, jnp.int32)[None]
    return np.asarray(model.apply({"params": params}, tokens, train=False)[0])
