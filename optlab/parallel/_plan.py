"""``plan``: per-device bytes of params, gradients and optimizer state under each strategy,
from shapes alone (nothing is compiled or placed)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import AbstractMesh, Mesh
from jax.sharding import PartitionSpec as P

from optlab.parallel._rules import (
    STRATEGIES,
    Fallback,
    _axes,
    _check_strategy,
    opt_state_specs,
    param_specs,
)


def device_bytes(tree: Any, specs: Any, mesh: Mesh | AbstractMesh) -> int:
    """Bytes one device holds of ``tree`` laid out by ``specs``: each array's ``nbytes``
    over the product of the sizes of the mesh axes its spec names.

    Example:
      >>> import jax.numpy as jnp
      >>> from jax.sharding import PartitionSpec as P
      >>> from optlab.parallel import device_bytes, make_mesh
      >>> device_bytes({"w": jnp.ones((8, 4))}, {"w": P("data")}, make_mesh())
      128
    """
    total = 0
    for leaf, spec in zip(jax.tree.leaves(tree), jax.tree.leaves(specs), strict=True):
        nbytes = math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
        total += nbytes // math.prod(mesh.shape[a] for e in spec for a in _axes(e))
    return total


class StrategyPlan(NamedTuple):
    """Bytes per device under one strategy, and the arrays that fell back to replication."""

    strategy: str
    params: int
    grads: int
    opt_state: int
    fallbacks: tuple[Fallback, ...]

    @property
    def total(self) -> int:
        return self.params + self.grads + self.opt_state


def _fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


GRADIENTS_NOTE = (
    "gradients take the params' layout: dp and tp all-reduce them, fsdp reduce-scatters "
    "them to the param shards (XLA's SPMD partitioner does so only for sharded arrays; "
    "replicated fall-backs get full gradients); zero1 keeps full all-reduced gradients "
    "(sharding them too is ZeRO-2). Persistent arrays only: activations and the params that "
    "fsdp all-gathers for a layer's compute are not counted."
)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What ``plan`` found: one ``StrategyPlan`` per strategy; ``str(plan)`` is a table."""

    mesh: dict[str, int]
    params_bytes: int  # all params, one full copy
    opt_state_bytes: int  # the whole optimizer state, one full copy
    rows: tuple[StrategyPlan, ...]

    def __getitem__(self, strategy: str) -> StrategyPlan:
        for row in self.rows:
            if row.strategy == strategy:
                return row
        raise KeyError(f"{strategy!r} was not planned; planned: {[r.strategy for r in self.rows]}")

    def __str__(self) -> str:
        devices = math.prod(self.mesh.values())
        mesh = ",".join(f"{k}={v}" for k, v in self.mesh.items())
        lines = [
            f"per-device bytes on mesh {mesh} ({devices} device{'s' * (devices != 1)}); "
            f"unsharded: params {_fmt(self.params_bytes)}, "
            f"optimizer state {_fmt(self.opt_state_bytes)}",
            f"{'strategy':<11}{'params':>12}{'grads':>12}{'opt state':>12}{'total':>12}"
            f"{'fallbacks':>11}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.strategy:<11}{_fmt(r.params):>12}{_fmt(r.grads):>12}"
                f"{_fmt(r.opt_state):>12}{_fmt(r.total):>12}{len(r.fallbacks):>11}"
            )
        fallbacks = [(r.strategy, f) for r in self.rows for f in r.fallbacks]
        if fallbacks:
            lines.append("replicated instead (the mesh axis does not divide the dimension):")
            for strategy, f in fallbacks:
                lines.append(
                    f"  {strategy:<10} {f.path} {f.shape}: wanted {f.wanted_spec}, {f.reason}"
                )
        lines.append(GRADIENTS_NOTE)
        return "\n".join(lines)


def plan(
    params: Any,
    opt_state_fn_or_tx: Callable[[Any], Any] | Any,
    mesh: Mesh | AbstractMesh,
    strategies: Sequence[str] = STRATEGIES,
) -> Plan:
    """Per-device bytes of params, gradients and optimizer state for each strategy.

    Computed from shapes (``jax.eval_shape`` of the optimizer's ``init``): nothing is
    compiled or placed, so a model too large for one device can be planned on a laptop, and
    for a mesh larger than the machine's: pass ``abstract_mesh("data=64,model=8")`` (axis
    sizes, no devices) instead of a ``make_mesh`` mesh; the bytes are the same.
    Under zero1 and fsdp the state's fallbacks are those of fsdp's specs. tp, dp+tp and
    krizhevsky need the mesh axes their rules name (``"model"`` for the defaults): plan
    ``("dp", "fsdp", "zero1")`` on a mesh without one.

    Args:
      params: arrays or ``jax.ShapeDtypeStruct`` (e.g. ``jax.eval_shape(model.init, ...)``).
      opt_state_fn_or_tx: an ``optax.GradientTransformation`` or its ``init`` function.
      mesh: the mesh to plan for: ``make_mesh(...)`` or ``abstract_mesh(...)``.
      strategies: the strategies to plan (default all of ``STRATEGIES``).

    Returns:
      A ``Plan``; ``print(plan)`` shows the table.

    Example:
      >>> import jax, jax.numpy as jnp, optlab
      >>> from optlab.parallel import make_mesh, plan
      >>> params = {"w": jax.ShapeDtypeStruct((1024, 256), jnp.float32)}
      >>> p = plan(params, optlab.adam(1e-3), make_mesh(), ["dp", "zero1"])
      >>> p["dp"].params, p["dp"].opt_state, p["zero1"].grads
      (1048576, 2097160, 1048576)
    """
    for strategy in strategies:
        _check_strategy(strategy)
    init = opt_state_fn_or_tx.init if hasattr(opt_state_fn_or_tx, "init") else opt_state_fn_or_tx
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), params)
    opt_state = jax.eval_shape(init, abstract)
    replicated = jax.tree.map(lambda _: P(), abstract)
    full_params = device_bytes(abstract, replicated, mesh)
    full_state = device_bytes(opt_state, jax.tree.map(lambda _: P(), opt_state), mesh)
    rows = []
    for strategy in strategies:
        p_specs, fallbacks = param_specs(abstract, mesh, strategy)
        if strategy == "zero1":
            fallbacks = param_specs(abstract, mesh, "fsdp")[1]
        o_specs = opt_state_specs(init, opt_state, abstract, p_specs, mesh, strategy)
        p_bytes = device_bytes(abstract, p_specs, mesh)
        rows.append(
            StrategyPlan(
                strategy=strategy,
                params=p_bytes,
                grads=full_params if strategy == "zero1" else p_bytes,
                opt_state=device_bytes(opt_state, o_specs, mesh),
                fallbacks=tuple(fallbacks),
            )
        )
    return Plan(
        mesh=dict(mesh.shape),
        params_bytes=full_params,
        opt_state_bytes=full_state,
        rows=tuple(rows),
    )


class ActivationRow(NamedTuple):
    """Activation bytes per device under one strategy, for each remat setting."""

    strategy: str
    batch: int  # sequences per device: the global batch over the mesh's data axis
    tensor_parallel: int  # the model axis that splits heads and MLP units (1: none)
    none: int  # remat none
    block: int  # remat block (--remat)
    state: int  # params + gradients + optimizer state (the Plan's total)


ACTIVATIONS_NOTE = (
    "activations: optlab.models.activation_bytes (Korthikanti et al. 2022's count without "
    "dropout masks; on XLA:CPU it came to 0.72-0.83 of the compiled step's temp bytes, "
    "split or not, see tests/models/test_flops.py); the batch splits on data under every "
    "strategy, and tp, dp+tp and krizhevsky split heads, MLP units and logits on model "
    "(Megatron); fsdp's all-gathered layer params are not counted."
)


@dataclasses.dataclass(frozen=True)
class ActivationPlan:
    """What ``activation_plan`` found; ``str(plan)`` is a table."""

    global_batch: int
    seq_len: int
    rows: tuple[ActivationRow, ...]

    def __getitem__(self, strategy: str) -> ActivationRow:
        for row in self.rows:
            if row.strategy == strategy:
                return row
        raise KeyError(f"{strategy!r} was not planned; planned: {[r.strategy for r in self.rows]}")

    def __str__(self) -> str:
        lines = [
            f"activations per device, global batch {self.global_batch} of {self.seq_len} "
            "tokens; total = params + grads + opt state + activations",
            f"{'strategy':<11}{'batch':>6}{'acts none':>12}{'acts block':>12}"
            f"{'total none':>12}{'total block':>12}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.strategy:<11}{r.batch:>6}{_fmt(r.none):>12}{_fmt(r.block):>12}"
                f"{_fmt(r.state + r.none):>12}{_fmt(r.state + r.block):>12}"
            )
        lines.append(ACTIVATIONS_NOTE)
        return "\n".join(lines)


_SPLITS_MODEL = ("tp", "dp+tp", "krizhevsky")


def activation_plan(
    model: Any, global_batch: int, mesh: Mesh | AbstractMesh, state: Plan
) -> ActivationPlan:
    """Per-device activation bytes of the GPT ``model`` for each strategy of ``state``.

    Each device runs ``global_batch / data`` sequences of ``model.block_size`` tokens (the
    trainer splits the batch on ``data`` whatever the strategy); under tp, dp+tp and
    krizhevsky (whose rules split the GPT's dense layers as tp's) the ``model`` axis splits
    the per-head and per-unit arrays too (``activation_bytes(..., tensor_parallel=...)``).

    Args:
      model: an ``optlab.models.GPT``.
      global_batch: sequences per step over all devices; must divide by the data axis.
      mesh: the mesh ``state`` was planned on.
      state: ``plan(...)``'s result, whose strategies and totals the rows take.

    Example:
      >>> import jax, jax.numpy as jnp, optlab
      >>> from optlab.models import GPT
      >>> from optlab.parallel import abstract_mesh, plan
      >>> from optlab.parallel._plan import activation_plan
      >>> gpt = GPT(vocab_size=256, block_size=64)
      >>> x = jax.ShapeDtypeStruct((1, 64), jnp.int32)
      >>> params = jax.eval_shape(lambda t: gpt.init(jax.random.key(0), t), x)["params"]
      >>> mesh = abstract_mesh("data=2")
      >>> acts = activation_plan(gpt, 4, mesh, plan(params, optlab.adam(1e-3), mesh, ["dp"]))
      >>> acts["dp"].batch, acts["dp"].none > acts["dp"].block
      (2, True)
    """
    from optlab.models import activation_bytes

    data = mesh.shape.get("data", 1)
    if global_batch < 1 or global_batch % data:
        raise ValueError(
            f"activation_plan: the global batch {global_batch} must be a positive multiple of "
            f"the data axis {data}"
        )
    batch = global_batch // data
    rows = []
    for r in state.rows:
        tp = mesh.shape.get("model", 1) if r.strategy in _SPLITS_MODEL else 1
        none, block = (
            activation_bytes(model, batch, remat=remat, tensor_parallel=tp)
            for remat in ("none", "block")
        )
        rows.append(ActivationRow(r.strategy, batch, tp, none, block, r.total))
    return ActivationPlan(global_batch, model.block_size, tuple(rows))
