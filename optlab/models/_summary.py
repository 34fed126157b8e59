"""``summary``: a per-layer table of output shapes, parameters and FLOPs (lecture 04)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from optlab.models._attention import SelfAttention


class LayerRow(NamedTuple):
    """One row of a ``Summary``: the layer's own parameters and FLOPs (not its children's)."""

    path: str
    """The layer's scope path, as in the parameter tree (``"Dense_0"``, ``"block_0/attention"``)."""
    kind: str
    """The Flax module class (``"Dense"``, ``"Conv"``, ``"BatchNorm"``, ...)."""
    output_shape: tuple[int, ...]
    params: int
    flops: int


def _human(n: float) -> str:
    """1234 → '1.23K', 34_000_000 → '34M' (lecture 04's table style)."""
    for unit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= unit:
            return f"{n / unit:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) else str(n)


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per-layer output shapes, parameter counts and FLOPs of one forward pass.

    ``rows`` lists the layers in call order. ``str(summary)`` prints them as lecture 04's
    Inception-v1 table does (type, output size, params, ops), with totals. FLOPs count the
    matrix products only, a multiply-add being 2 FLOPs: dense 2·n_in·n_out per position,
    convolution 2·k·C_in·C_out per output position (k = window size), attention's
    2·T·S·d for Q·Kᵀ plus as much for the weights times V (its projections are rows of
    their own; the GPT's causal ``SelfAttention`` is counted in full, T×T, as PaLM's
    appendix B does), and a tied head (``Embed.attend``, a row ``wte.attend``) 2·d·V per
    position. Element-wise work (activations, normalization, softmax, residual adds,
    dropout) is left out, and so is any other layer type (an ``Embed`` lookup, ``Einsum``, ...).
    Lecture 04's "ops" column counts multiply-adds, i.e. FLOPs / 2.
    """

    rows: tuple[LayerRow, ...]
    input_shape: tuple[int, ...]
    batch: int
    xla_flops: float | None = None
    """XLA's own count (``compiled.cost_analysis()["flops"]``) when asked for: it adds the
    element-wise operations but skips multiplies by a convolution's zero padding, so it is
    close to ``total_flops`` without being equal."""

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(row.flops for row in self.rows)

    def __str__(self) -> str:
        header = ("layer", "type", "output shape", "params", "FLOPs")
        table = [
            (r.path, r.kind, str(r.output_shape), _human(r.params), _human(r.flops))
            for r in self.rows
        ]
        table.append(("total", "", "", _human(self.total_params), _human(self.total_flops)))
        widths = [max(len(line[i]) for line in [header, *table]) for i in range(5)]

        def fmt(line):
            left = [line[i].ljust(widths[i]) for i in range(3)]
            right = [line[i].rjust(widths[i]) for i in range(3, 5)]
            return "  ".join(left + right).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        lines = [fmt(header), rule, *map(fmt, table[:-1]), rule, fmt(table[-1])]
        lines.append(
            f"input {(self.batch, *self.input_shape)}: {self.total_params:,} parameters, "
            f"{self.total_flops:,} FLOPs"
        )
        lines.append("FLOPs of matrix products, a multiply-add = 2 (lecture 04's ops = FLOPs/2)")
        if self.xla_flops is not None:
            lines.append(f"XLA cost analysis: {self.xla_flops:,.0f} FLOPs.")
        return "\n".join(lines)


def _size(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def _layer_flops(
    module: nn.Module, method: str, args: tuple, kwargs: dict, out: Any, kernel
) -> int:
    """Analytic FLOPs of one call of ``module`` (0 for layers without matrix products)."""
    if method == "attend":  # Embed.attend: x (…, d) @ embeddingᵀ (d, V), a tied head
        return 2 * _size(args[0].shape) * out.shape[-1] if hasattr(out, "shape") else 0
    if isinstance(module, SelfAttention):
        x = args[0] if args else kwargs["x"]
        cache = kwargs.get("cache")
        s = x.shape[-2] if cache is None else cache.key.shape[1]
        return 2 * 2 * _size(x.shape[:-1]) * s * x.shape[-1]  # Q·Kᵀ and weights·V
    if isinstance(module, nn.MultiHeadDotProductAttention):
        inputs_q = args[0] if args else kwargs["inputs_q"]
        inputs_k = args[1] if len(args) > 1 else kwargs.get("inputs_k")
        inputs_k = inputs_q if inputs_k is None else inputs_k
        d = module.qkv_features or inputs_q.shape[-1]
        t, s = inputs_q.shape[-2], inputs_k.shape[-2]
        batch = _size(inputs_q.shape[:-2])
        return 2 * 2 * batch * t * s * d  # Q·Kᵀ and weights·V
    if kernel is None or not hasattr(out, "shape"):
        return 0
    if isinstance(module, nn.Dense | nn.Conv):
        out_units = out.shape[-1]
    elif isinstance(module, nn.DenseGeneral):
        features = module.features if isinstance(module.features, tuple) else (module.features,)
        out_units = _size(features)
    else:
        return 0
    # Dense: positions · n_in · n_out; Conv: output positions · (k · C_in/groups) · C_out.
    return 2 * _size(kernel.shape) * (_size(out.shape) // out_units)


def summary(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch: int = 1,
    dtype: Any = jnp.float32,
    xla: bool = False,
) -> Summary:
    """Per-layer table of a linen model on inputs of shape ``(batch, *input_shape)``.

    Shapes only: the model is traced with ``jax.eval_shape``, nothing is computed. With
    ``xla=True`` the evaluation-mode forward pass is also compiled once, and XLA's FLOP
    count is stored in ``xla_flops`` for comparison.

    Args:
      model: a Flax linen Module called as ``model(x, train=False)``, e.g. from
        ``create_model``.
      input_shape: one example's shape, without the batch axis.
      batch: the batch size the FLOPs are counted for.
      dtype: the input's dtype.
      xla: also ask XLA's cost analysis (compiles the model; slower).

    Returns:
      A ``Summary``; ``print`` it for the table.

    Example:
      >>> from optlab.models import create_model
      >>> model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(32,))
      >>> s = summary(model, (64,))
      >>> [(r.path, r.params, r.flops) for r in s.rows]
      [('Dense_0', 2080, 4096), ('Dense_1', 330, 640)]
      >>> print(s)
      layer    type   output shape  params  FLOPs
      -------------------------------------------
      Dense_0  Dense  (1, 32)        2.08K   4.1K
      Dense_1  Dense  (1, 10)          330    640
      -------------------------------------------
      total                          2.41K  4.74K
      input (1, 64): 2,410 parameters, 4,736 FLOPs
      FLOPs of matrix products, a multiply-add = 2 (lecture 04's ops = FLOPs/2)
    """
    input_shape = tuple(int(d) for d in input_shape)
    x = jax.ShapeDtypeStruct((batch, *input_shape), dtype)
    calls: list[list] = []

    def interceptor(next_fun, args, kwargs, context):
        method = context.method_name
        tied_head = method == "attend" and isinstance(context.module, nn.Embed)
        if (method != "__call__" and not tied_head) or context.module.scope is None:
            return next_fun(*args, **kwargs)
        record = [context.module, method, args, kwargs, None]
        calls.append(record)
        record[4] = out = next_fun(*args, **kwargs)
        return out

    def init(x):
        key = jax.random.key(0)
        with nn.intercept_methods(interceptor):
            return model.init({"params": key, "dropout": key}, x, train=False)

    variables = jax.eval_shape(init, x)
    params = traverse_util.flatten_dict(dict(variables.get("params", {})))
    own: dict[str, dict[str, Any]] = {}
    for key, leaf in params.items():
        own.setdefault("/".join(key[:-1]), {})[key[-1]] = leaf

    paths = ["/".join(module.scope.path) for module, *_ in calls]
    rows, seen = [], set()
    for path, (module, method, args, kwargs, out) in zip(paths, calls, strict=True):
        if not path:
            continue  # the model itself
        leaves = own.get(path, {}) if path not in seen else {}
        seen.add(path)
        n_params = sum(_size(leaf.shape) for leaf in leaves.values())
        kernel = own.get(path, {}).get("kernel")
        flops = _layer_flops(module, method, args, kwargs, out, kernel)
        is_container = any(p.startswith(path + "/") for p in paths)
        if is_container and not n_params and not flops:
            continue
        shape = tuple(out.shape) if hasattr(out, "shape") else ()
        kind = type(module).__name__
        if method != "__call__":
            path, kind = f"{path}.{method}", f"{kind}.{method}"
        rows.append(LayerRow(path, kind, shape, n_params, flops))

    for path, leaves in own.items():  # parameters of the model itself, or of uncalled layers
        if path not in seen:
            for name, leaf in leaves.items():
                label = f"{path}/{name}" if path else name
                rows.append(LayerRow(label, "param", tuple(leaf.shape), _size(leaf.shape), 0))

    xla_flops = None
    if xla:
        apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
        cost = apply.lower(variables, x).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        xla_flops = float(cost["flops"]) if cost and "flops" in cost else None
    return Summary(tuple(rows), input_shape, batch, xla_flops)
