"""Which parameters of the built-in models are matrices, for the matrix optimizers (Muon).

``matrix_axes(model, params)`` gives, for each leaf, ``(reduction_axes, output_axes)``
when the leaf is the weight matrix of a hidden layer, and None for everything else:
biases, normalization scales, embeddings and the output head (Jordan et al. leave those
to AdamW). A conv kernel (k…, in, out) is the (k…·in) × out matrix of its im2col
product; an attention projection (d, heads, head_dim) is d × (heads·head_dim), its
output (heads, head_dim, d) is (heads·head_dim) × d.
"""

from __future__ import annotations

import re
from typing import Any

import jax

from optlab._param_groups import param_paths
from optlab.models._cnn import CNN
from optlab.models._mlp import MLP
from optlab.models._transformer import Transformer

_TRANSFORMER = [
    (re.compile(r"attention/(query|key|value)/kernel$"), ((0,), (1, 2))),
    (re.compile(r"attention/out/kernel$"), ((0, 1), (2,))),
    (re.compile(r"mlp_(in|out)/kernel$"), ((0,), (1,))),
]
_DENSE = re.compile(r"(^|/)Dense_(\d+)/kernel$")
_CONV = re.compile(r"(^|/)Conv_\d+/kernel$")


def _last_dense(paths: list[str]) -> int:
    indices = [int(m.group(2)) for p in paths if (m := _DENSE.search(p))]
    return max(indices, default=-1)


def matrix_axes(model: Any, params: Any) -> Any | None:
    """A tree like ``params`` of ``(reduction_axes, output_axes)`` or None per leaf; None
    (no tree) for a model optlab does not know, where Muon's own default applies.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.models import CNN, matrix_axes
      >>> model = CNN(10, channels=(4,), kernel_size=3)
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 8)))["params"]
      >>> axes = matrix_axes(model, params)
      >>> axes["Conv_0"]  # the (3·1) × 4 matrix of the kernel (3, 1, 4)
      {'bias': None, 'kernel': ((0, 1), (2,))}
      >>> axes["Dense_0"]  # the output head: AdamW's
      {'bias': None, 'kernel': None}
    """
    paths = param_paths(params)
    if isinstance(model, Transformer):

        def rule(path, leaf):
            return next((axes for regex, axes in _TRANSFORMER if regex.search(path)), None)

    elif isinstance(model, MLP | CNN):
        head = _last_dense(jax.tree.leaves(paths))  # the output layer: AdamW's

        def rule(path, leaf):
            if _CONV.search(path):
                return (tuple(range(leaf.ndim - 1)), (leaf.ndim - 1,))
            match = _DENSE.search(path)
            if match and int(match.group(2)) != head:
                return ((0,), (1,))
            return None

    else:
        return None
    return jax.tree.map(rule, paths, params)
