"""Sharding rules as data, the strategies, and the PartitionSpecs they give params and state.

A rule is a pair ``(regex, PartitionSpec)``: the first rule whose regex ``re.search``
finds in a parameter's path (``optlab.param_paths``: ``"Dense_0/kernel"``,
``"block_0/attention/query/kernel"``) gives its spec. A spec may start with ``...`` to
count from the last dimension: ``P(..., "model")`` puts the last dimension on ``"model"``
whatever the rank (a 1-D conv kernel is 3-D, a 2-D one 4-D).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from optlab._param_groups import _key_name, param_paths
from optlab.errors import ConfigError

STRATEGIES: tuple[str, ...] = ("dp", "fsdp", "tp", "dp+tp", "zero1", "krizhevsky")
"""dp: all replicated; fsdp: params and state split on ``data``; tp, dp+tp: kernels split on
``model`` by the rules (they differ only in the batch, which dp+tp also splits on ``data``);
zero1: params replicated, optimizer state split on ``data``; krizhevsky: conv layers
data-parallel (replicated), dense layers model-parallel by the rules (Krizhevsky 2014)."""

Rule = tuple[str, P]

DEFAULT_TP_RULES: list[Rule] = [
    # flax MultiHeadDotProductAttention: query/key/value kernels (dim, heads, head_dim) and
    # biases (heads, head_dim) split on the heads; the output projection (heads, head_dim,
    # dim) on its input heads (row-parallel, Megatron), its bias replicated.
    (r"(^|/)(query|key|value)/kernel$", P(None, "model", None)),
    (r"(^|/)(query|key|value)/bias$", P("model", None)),
    (r"(^|/)[^/]*[Aa]ttention[^/]*/out/kernel$", P("model", None, None)),
    # Conv kernels (*window, C_in, C_out) and biases (C_out,) on the output channels.
    (r"(^|/)Conv_\d+/kernel$", P(..., "model")),
    (r"(^|/)Conv_\d+/bias$", P("model")),
    # The transformer's MLP: mlp_in column-parallel (below), mlp_out row-parallel.
    (r"(^|/)mlp_out/kernel$", P("model", None)),
    # Dense kernels (in, out) and biases (out,) on the output features (column-parallel).
    (r"(^|/)(Dense_\d+|mlp_in|embed|head)/kernel$", P(None, "model")),
    (r"(^|/)(Dense_\d+|mlp_in|embed|head)/bias$", P("model")),
    # The GPT (optlab.models.GPT): the token table (V, d) split on the vocabulary (Megatron's
    # vocabulary-parallel embedding; tied, it is also the head, so the logits come out split
    # on V; an untied head/kernel (d, V) is column-parallel by the rule above). The
    # position table wpe has no rule: replicated. SwiGLU's gate is column-parallel like
    # mlp_in, so silu(gate) ⊙ up is local to each shard.
    (r"(^|/)wte/embedding$", P("model", None)),
    (r"(^|/)mlp_gate/kernel$", P(None, "model")),
    (r"(^|/)mlp_gate/bias$", P("model")),
]

CONV_PATTERN = r"(^|/)Conv(_\d+)?/"
"""Parameters that the krizhevsky strategy keeps data-parallel (replicated)."""


class Fallback(NamedTuple):
    """An array replicated because its wanted spec did not fit: a mesh axis does not divide
    the dimension (25 conv channels over model=2), or the spec has more entries than the
    array has dimensions."""

    path: str
    shape: tuple[int, ...]
    wanted_spec: P
    reason: str


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def _axes(entry: Any) -> tuple[str, ...]:
    if entry is None:
        return ()
    return (entry,) if isinstance(entry, str) else tuple(entry)


def _expand(spec: P, ndim: int) -> P | None:
    """``spec`` for a rank-``ndim`` array, a leading ``...`` filled in; None if too long."""
    entries = tuple(spec)
    if entries and entries[0] is Ellipsis:
        rest = entries[1:]
        return None if len(rest) > ndim else P(*([None] * (ndim - len(rest))), *rest)
    return None if len(entries) > ndim else spec


def _misfit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> str | None:
    """Why ``spec`` cannot shard an array of ``shape`` on ``mesh`` (None if it can)."""
    for dim, entry in enumerate(spec):
        axes = _axes(entry)
        size = math.prod(mesh.shape[a] for a in axes)
        if shape[dim] % size:
            over = "×".join(f"{a}={mesh.shape[a]}" for a in axes)
            return f"dim {dim} of size {shape[dim]} is not divisible by {over}"
    return None


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> tuple[P, P, str | None]:
    """(the spec to use, the wanted spec with ``...`` filled in, why it fell back or None)."""
    expanded = _expand(spec, len(shape))
    if expanded is None:
        return P(), spec, f"the spec has more entries than the rank-{len(shape)} array"
    reason = _misfit(expanded, shape, mesh)
    return (P() if reason else expanded), expanded, reason


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy: unknown {strategy!r}; choose from {', '.join(STRATEGIES)}")


def _check_rules(rules: Sequence[Rule], mesh: Mesh) -> list[tuple[re.Pattern, P]]:
    out = []
    for rule in rules:
        if not (isinstance(rule, tuple | list) and len(rule) == 2 and isinstance(rule[1], P)):
            raise ConfigError(
                f"sharding rule {rule!r}: expected a (regex, PartitionSpec) pair, "
                "e.g. (r'Dense_\\d+/kernel$', P(None, 'model'))"
            )
        pattern, spec = rule
        try:
            regex = re.compile(pattern)
        except (re.error, TypeError) as err:
            raise ConfigError(f"sharding rule {pattern!r}: not a valid regex ({err})") from None
        entries = tuple(spec)
        if Ellipsis in entries[1:]:
            raise ConfigError(f"sharding rule {pattern!r}: `...` may only start the spec {spec}")
        named = [a for e in entries if e is not Ellipsis for a in _axes(e)]
        for axis in named:
            if axis not in mesh.axis_names:
                raise ConfigError(
                    f"sharding rule ({pattern!r}, {spec}) names mesh axis {axis!r} but the "
                    f"mesh has axes {mesh.axis_names}; add it to --mesh (e.g. --mesh "
                    f"data=-1,{axis}=2) or change the rule"
                )
        if len(set(named)) < len(named):
            raise ConfigError(f"sharding rule {pattern!r}: {spec} uses a mesh axis twice")
        out.append((regex, spec))
    return out


def _fsdp(shape: tuple[int, ...], mesh: Mesh) -> tuple[P, P | None, str | None]:
    """(spec, wanted spec if it fell back, reason): the largest dim ``data`` divides."""
    data = mesh.shape["data"]
    if not shape or math.prod(shape) == 0:
        return P(), None, None  # a scalar (or empty array): nothing to split
    dims = [d for d, n in enumerate(shape) if n % data == 0]
    if dims:
        best = max(dims, key=lambda d: (shape[d], -d))
        return P(*([None] * best), "data"), None, None
    largest = max(range(len(shape)), key=lambda d: (shape[d], -d))
    wanted = P(*([None] * largest), "data")
    if math.prod(shape) < data:
        return P(), wanted, f"{math.prod(shape)} elements cannot be split over data={data}"
    return P(), wanted, f"no dimension of {shape} is divisible by data={data}"


def param_specs(
    params: Any, mesh: Mesh, strategy: str, *, rules: Sequence[Rule] | None = None
) -> tuple[Any, list[Fallback]]:
    """The PartitionSpec of every parameter under ``strategy``, and the arrays that fell back.

    - ``dp``, ``zero1``: every parameter ``P()`` (replicated).
    - ``tp``, ``dp+tp``: the first rule whose regex is found in the path (``rules``, default
      ``DEFAULT_TP_RULES``); unmatched parameters ``P()``.
    - ``fsdp``: each array split on ``"data"`` along its largest dimension that the data
      axis divides (ties: the first); scalars replicated.
    - ``krizhevsky``: parameters under ``Conv_i/`` replicated (data-parallel), the others
      by the rules (the dense layers model-parallel).

    A spec that does not fit its array (a mesh axis that does not divide the dimension)
    becomes ``P()`` for that array and is reported as a ``Fallback``.

    Args:
      params: a pytree of arrays or ``jax.ShapeDtypeStruct``.
      mesh: the mesh (``make_mesh``); its axes must include those the rules name.
      strategy: one of ``STRATEGIES``.
      rules: ``(regex, PartitionSpec)`` pairs for tp, dp+tp and krizhevsky.

    Returns:
      ``(specs, fallbacks)``: a pytree of ``PartitionSpec`` like ``params``, and a list.

    Raises:
      ConfigError: for an unknown strategy, a malformed rule, or a rule naming an axis that
        the mesh lacks.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from optlab.parallel import make_mesh, param_specs
      >>> params = {"Dense_0": {"kernel": jnp.ones((4, 6)), "bias": jnp.ones(6)}}
      >>> specs, fallbacks = param_specs(params, make_mesh("data=1,model=1"), "tp")
      >>> specs
      {'Dense_0': {'bias': P('model',), 'kernel': P(None, 'model')}}
    """
    _check_strategy(strategy)
    checked: list[tuple[re.Pattern, P]] = []
    if strategy in ("tp", "dp+tp", "krizhevsky"):
        checked = _check_rules(DEFAULT_TP_RULES if rules is None else rules, mesh)
    conv = re.compile(CONV_PATTERN)
    fallbacks: list[Fallback] = []

    def one(path: str, leaf: Any) -> P:
        shape = _shape(leaf)
        if strategy in ("dp", "zero1"):
            return P()
        if strategy == "fsdp":
            spec, wanted, reason = _fsdp(shape, mesh)
            if reason:
                fallbacks.append(Fallback(path, shape, wanted, reason))
            return spec
        if strategy == "krizhevsky" and conv.search(path):
            return P()
        wanted = next((spec for regex, spec in checked if regex.search(path)), P())
        spec, wanted, reason = _fit(wanted, shape, mesh)
        if reason:
            fallbacks.append(Fallback(path, shape, wanted, reason))
        return spec

    specs = jax.tree.map(one, param_paths(params), params)
    return specs, fallbacks


_param_specs = param_specs  # opt_state_specs's argument `param_specs` hides the function


def _by_path(opt_state: Any, params: Any, wanted: Any, mesh: Mesh) -> Any:
    """Specs for ``opt_state`` by matching each leaf's key path suffix and shape to a param."""
    table = {}
    for (path, leaf), spec in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(wanted), strict=True
    ):
        table[tuple(_key_name(k) for k in path)] = (_shape(leaf), spec)

    def one(path: Any, leaf: Any) -> P:
        keys, shape = tuple(_key_name(k) for k in path), _shape(leaf)
        for start in range(len(keys) + 1):
            hit = table.get(keys[start:])
            if hit is not None and hit[0] == shape:
                return _fit(hit[1], shape, mesh)[0]
        return P()

    return jax.tree_util.tree_map_with_path(one, opt_state)


def opt_state_specs(
    tx: Any, opt_state: Any, params: Any, param_specs: Any, mesh: Mesh, strategy: str
) -> Any:
    """The PartitionSpec of every optimizer-state leaf.

    Params-shaped leaves (Adam's m and v, momentum buffers) take their parameter's spec,
    except under ``zero1``, where they take the fsdp spec (state split on ``"data"``, params
    replicated); other leaves (step counters, schedule state) are ``P()``. The state's
    params-shaped trees are found by ``optax.tree_map_params``; where ``tx.init`` cannot run
    on its placeholder (``optax.masked``, ``optlab.param_groups``) each leaf is matched to
    the parameter whose path ends its key path and whose shape it has.

    Args:
      tx: the ``optax.GradientTransformation`` (or its ``init`` function).
      opt_state: its state, arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape(tx.init,
        params)``).
      params: the parameters (arrays or ``jax.ShapeDtypeStruct``).
      param_specs: the params' specs (``param_specs(params, mesh, strategy)[0]``).
      mesh: the mesh.
      strategy: one of ``STRATEGIES``.

    Returns:
      A pytree of ``PartitionSpec`` with the structure of ``opt_state``.

    Example:
      >>> import jax, jax.numpy as jnp, optlab
      >>> from optlab.parallel import make_mesh, opt_state_specs, param_specs
      >>> params = {"w": jnp.ones((8, 4))}
      >>> tx = optlab.adam(1e-3)
      >>> mesh = make_mesh()
      >>> specs, _ = param_specs(params, mesh, "zero1")
      >>> adam_state, _ = opt_state_specs(tx, tx.init(params), params, specs, mesh, "zero1")
      >>> adam_state
      ScaleByAdamState(count=P(), mu={'w': P('data',)}, nu={'w': P('data',)})
    """
    _check_strategy(strategy)
    wanted = _param_specs(params, mesh, "fsdp")[0] if strategy == "zero1" else param_specs
    init = tx.init if hasattr(tx, "init") else tx
    try:
        specs = optax.tree_map_params(
            init,
            lambda leaf, spec: _fit(spec, _shape(leaf), mesh)[0],
            opt_state,
            wanted,
            transform_non_params=lambda value: jax.tree.map(lambda _: P(), value),
        )
        if jax.tree.structure(specs) == jax.tree.structure(opt_state):
            return specs
    except Exception:  # init cannot run on optax's placeholder: match leaves by path instead
        pass
    return _by_path(opt_state, params, wanted, mesh)


def shardings(spec_tree: Any, mesh: Mesh) -> Any:
    """``NamedSharding(mesh, spec)`` for every spec of ``spec_tree``.

    Example:
      >>> from jax.sharding import PartitionSpec as P
      >>> from optlab.parallel import make_mesh, shardings
      >>> shardings({"w": P("data")}, make_mesh())["w"].spec
      P('data',)
    """
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), spec_tree)
