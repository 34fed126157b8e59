"""Flax models (MLP, CNN, small transformer, GPT language model), lecture 03's
initializers and activations.

``create_model(name, num_classes=..., input_shape=..., **options)`` returns a Flax linen
Module; every model is initialized and called the same way::

    variables = model.init({"params": key, "dropout": key}, x, train=False)
    logits = model.apply(variables, x, train=False)
    logits, updates = model.apply(
        variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )

``summary(model, input_shape)`` prints lecture 04's per-layer table (output shape, params,
FLOPs). Parameter paths (for sharding rules) are linen's: ``Dense_0/kernel``,
``Conv_0/kernel``, ``BatchNorm_0/scale``, ``block_0/attention/query/kernel``; each model's
docstring (``MLP``, ``CNN``, ``Transformer``, ``GPT``) lists them.

The language model: ``create_model("gpt", num_classes=vocab, input_shape=(block_size,))``
maps tokens ``(B, T)`` to logits ``(B, T, vocab)``; ``sample(model, params, prompt, ...)``
generates with a key-value cache; ``param_count``, ``flops_per_token`` (PaLM's 6N +
12LHQT) and ``activation_bytes`` are the hand counts behind ``optlab plan`` and MFU.

Bring your own model (``optlab.models.adapters``), both returning
``Model(apply, variables)``, a pair with the calling convention above:

- a Flax NNX module: ``apply_fn, variables = from_nnx(module)`` (``nnx.split`` /
  ``nnx.merge``). ``nnx.Param`` become ``variables["params"]`` and ``nnx.BatchStat``
  ``variables["batch_stats"]``; ``train`` switches ``nnx.Dropout`` and ``nnx.BatchNorm``;
  ``rngs`` reseeds the module's RNG streams. Other NNX variables are frozen.
- any pure function ``apply_fn(params, x)``: ``apply_fn, variables = from_apply(fn, params)``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from optlab.models import create_model
  >>> model = create_model("cnn", num_classes=10, input_shape=(40,))
  >>> x = jnp.zeros((2, 40))
  >>> variables = model.init({"params": jax.random.key(0)}, x, train=False)
  >>> model.apply(variables, x, train=False).shape
  (2, 10)
"""

from optlab.models import initializers
from optlab.models._attention import KVCache, SelfAttention
from optlab.models._cnn import CNN
from optlab.models._factory import MODEL_NAMES, create_model
from optlab.models._flops import activation_bytes, flops_per_token, param_count
from optlab.models._gpt import GPT
from optlab.models._layers import ACTIVATIONS, LayeredModel
from optlab.models._matrices import matrix_axes
from optlab.models._mlp import MLP
from optlab.models._sampling import logits_by_recompute, sample
from optlab.models._summary import summary
from optlab.models._transformer import Transformer
from optlab.models.adapters import from_apply, from_nnx
from optlab.models.initializers import NAMES as INITIALIZERS

__all__ = [
    "ACTIVATIONS",
    "CNN",
    "GPT",
    "INITIALIZERS",
    "MLP",
    "MODEL_NAMES",
    "KVCache",
    "LayeredModel",
    "SelfAttention",
    "Transformer",
    "activation_bytes",
    "create_model",
    "flops_per_token",
    "from_apply",
    "from_nnx",
    "initializers",
    "logits_by_recompute",
    "matrix_axes",
    "param_count",
    "sample",
    "summary",
]
