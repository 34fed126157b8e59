"""The GPT's parameter count, training FLOPs per token and activation memory, by hand.

These are formulas, not measurements: ``param_count`` is checked against the real
parameter tree, ``activation_bytes`` against XLA's memory analysis of a compiled step
(tests/models/test_flops.py), and ``flops_per_token`` is what MFU divides by.
"""

from __future__ import annotations

from typing import Any

import jax

from optlab.models._gpt import GPT, swiglu_hidden

REMATS: tuple[str, ...] = ("none", "block")


def param_count(
    n_layer: int,
    d_model: int,
    vocab_size: int,
    block_size: int,
    *,
    mlp: str = "gelu",
    tie: bool = True,
    pos: str = "learned",
) -> int:
    """The number of parameters of ``GPT`` with these settings (d = ``d_model``, V the
    vocabulary, L = ``n_layer``, h the MLP width: 4d, or ``swiglu_hidden(d)``)::

        wte V·d  +  wpe block_size·d (learned positions only)
        + L · [ 2 LayerNorms 4d
                + attention: q, k, v, out kernels 4d² and biases 4d
                + MLP gelu: d·h + h + h·d + d;  swiglu: 3·d·h + 2h + d ]
        + final LayerNorm 2d  +  head d·V (untied only; no bias).

    The head count does not enter: q/k/v are (d, heads, d/heads), d² each whatever the
    heads. GPT-2 small (12, 768, 50257, 1024, tied) is 124,439,808.
    """
    d = d_model
    if mlp == "swiglu":
        h = swiglu_hidden(d)
        mlp_params = 3 * d * h + 2 * h + d
    else:
        h = 4 * d
        mlp_params = 2 * d * h + h + d
    block = 4 * d + 4 * d * d + 4 * d + mlp_params
    total = vocab_size * d + n_layer * block + 2 * d
    if pos == "learned":
        total += block_size * d
    if not tie:
        total += d * vocab_size
    return total


def _count(params: Any) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def matmul_params(model: GPT, params: Any = None) -> int:
    """N of ``flops_per_token``: the parameters that multiply an activation once per token,
    i.e. all of them except the position table ``wpe`` and, when the head is untied, the
    token table ``wte`` (a lookup, not a matmul; tied, ``wte`` is the head's matrix and
    counts). LayerNorm scales and biases count too (tiny)."""
    if params is None:
        total = param_count(
            model.n_layer,
            model.d_model,
            model.vocab_size,
            model.block_size,
            mlp=model.mlp,
            tie=model.tie_embeddings,
            pos=model.pos,
        )
    else:
        total = _count(params)
    if model.pos == "learned":
        total -= model.block_size * model.d_model
    if not model.tie_embeddings:
        total -= model.vocab_size * model.d_model
    return total


def flops_per_token(model: GPT, params: Any = None, *, seq_len: int | None = None) -> float:
    """Training FLOPs per token, as PaLM's appendix B counts them (Chowdhery et al. 2022):

        6·N + 12·L·H·Q·T

    - 6·N: each parameter that multiplies an activation costs 2 FLOPs (a multiply and an
      add) per token in the forward pass and 4 in the backward pass (the gradients with
      respect to the activation and to the weight). PaLM writes N for "the number of
      parameters"; we take N = ``matmul_params``: every parameter except those that are only
      looked up (``wpe``; ``wte`` when untied), as nanoGPT's ``estimate_mfu`` does (its N
      excludes ``wpe``; its ``wte`` is tied). Counting the tables would credit FLOPs that
      are never done.
    - 12·L·H·Q·T: attention's two matmuls q·kᵀ and weights·v, 2·T·Q FLOPs each per head
      per token forward, ×3 for forward + backward: L layers, H = ``n_head`` heads,
      Q = ``d_model / n_head`` the head dimension, T = ``seq_len`` [``block_size``] the
      sequence length. The full T×T product is counted, as PaLM does, although the
      causal mask makes half of it unneeded.

    Elementwise work (LayerNorm, softmax, GELU, the loss) is not counted, as in PaLM.
    GPT-2 small at T = 1024: N = 124.4M (tied wte counted, wpe's 0.79M not), so
    6N ≈ 0.742 GFLOP and the attention term 12·12·12·64·1024 ≈ 0.113 GFLOP per token.

    Args:
      model: the ``GPT``.
      params: its parameter tree (or ``jax.ShapeDtypeStruct`` s); None counts by
        ``param_count``.
      seq_len: T; default the model's ``block_size``.
    """
    t = model.block_size if seq_len is None else seq_len
    n = matmul_params(model, params)
    return float(6 * n + 12 * model.n_layer * model.n_head * model.head_dim * t)


def activation_bytes(
    model: GPT,
    batch: int,
    *,
    remat: str = "none",
    seq_len: int | None = None,
    bytes_per_element: int | None = None,
    tensor_parallel: int = 1,
) -> int:
    """Bytes of activations one device keeps for the backward pass of a training step on
    ``batch`` sequences (its share of the global batch) of T = ``seq_len`` [block_size]
    tokens; with dropout 0 (masks not counted).

    Per block, for n = batch·T tokens of width d, a heads, MLP width h, the arrays saved
    for the gradient (the count of Korthikanti et al. 2022, "Reducing activation
    recomputation", §4.1, without dropout masks)::

        A_block = n·d·(2 LN inputs/outputs ×2 + q, k, v 3 + attention output 1 + residual
                  input 1 + 1) + n·MLP + 2·a·batch·T² (attention scores and probabilities)
                = 10·n·d + n·MLP + 2·a·batch·T²,   MLP = 2h (gelu: pre- and post-GELU)
                  or 4h (swiglu: gate, silu(gate), up, product)

    (the named arrays make 9·n·d; the tenth n·d is an allowance for a branch output kept
    before its residual add, which the ratios measured below include).

    and outside the blocks ``A_out`` = 3·n·d (embedding sum, final LayerNorm in/out) +
    2·n·V (in float32: the log-softmax of the logits, saved for the backward pass, and the
    logits' gradient, live as the backward pass starts).

    - ``remat="none"``: L·A_block + A_out.
    - ``remat="block"`` (``--remat``): only each block's input is kept, L·n·d, plus one
      block's A_block live while it is recomputed in the backward pass, + A_out.

    Elements are ``bytes_per_element`` [the compute dtype's: 4 for float32, 2 for bf16]
    wide, except the float32 logits terms (4 bytes). XLA fuses elementwise operations and
    may keep fewer arrays, but also keeps workspace this does not count: on XLA:CPU the
    formula came to 0.72-0.83 of the compiled gradient's temp bytes, with the batch split
    on ``data`` or the heads on ``model`` alike (tests/models/test_flops.py). XLA:CPU
    reports the same temp bytes with and without remat, so ``remat="block"`` is the
    formula's alone there.

    ``tensor_parallel`` = p, the ``model`` axis under Megatron-style tensor parallelism
    (``--strategy tp``/``dp+tp``; Korthikanti et al. §4.2.1, without sequence parallelism):
    what lives per head or per MLP unit is split p ways, i.e. q, k, v and the attention
    output (4·n·d), the MLP's hidden arrays and the attention scores, and the logits terms
    (the vocabulary-parallel head splits V); LayerNorm inputs/outputs, the residual input,
    the embedding sum and the remat checkpoints stay whole on every device::

        A_block(p) = 6·n·d + (4·n·d + n·MLP + 2·a·batch·T²) / p,  logits 2·n·V / p

    Each split is rounded up (a head count or width that p does not divide is an
    imbalance, which the sharding rules resolve by replicating: see ``plan``'s fallbacks).
    The batch split (dp, fsdp: ``batch`` is already the device's share) is the caller's.
    """
    if remat not in REMATS:
        raise ValueError(f"activation_bytes: `remat` must be one of {REMATS}, got {remat!r}")
    if not (isinstance(tensor_parallel, int) and tensor_parallel >= 1):
        raise ValueError(
            f"activation_bytes: `tensor_parallel` must be a positive integer, got "
            f"{tensor_parallel!r}"
        )
    t = model.block_size if seq_len is None else seq_len
    size = bytes_per_element
    if size is None:
        size = 4 if model.dtype is None else jax.numpy.dtype(model.dtype).itemsize
    d, n, tp = model.d_model, batch * t, tensor_parallel
    h = swiglu_hidden(d) if model.mlp == "swiglu" else 4 * d
    per_mlp = 4 * h if model.mlp == "swiglu" else 2 * h
    split = 4 * n * d + n * per_mlp + 2 * model.n_head * batch * t * t
    block = 6 * n * d + -(-split // tp)
    outside = 3 * n * d * size + -(-2 * n * model.vocab_size // tp) * 4
    if remat == "none":
        return model.n_layer * block * size + outside
    return (model.n_layer * n * d + block) * size + outside
