"""Bring your own model: Flax NNX modules and pure functions under the linen calling convention.

The trainer calls every model as::

    out = apply_fn(variables, x, train=bool, rngs={"dropout": key}, mutable=[...])

with ``variables = {"params": ..., "batch_stats": ...}`` (plain nested dicts of arrays). A
non-empty ``mutable`` returns ``(out, updates)``, ``updates`` holding the mutated
collections, as ``flax.linen.Module.apply`` does. ``from_nnx``, ``from_apply`` and
``from_linen`` return a ``Model(apply, variables)`` that follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx


class Model(NamedTuple):
    """``(apply, variables)``: unpacks as a pair; ``model.apply(model.variables, x, ...)``."""

    apply: Callable[..., Any]
    variables: dict[str, Any]


def _mutable_names(mutable: Any) -> tuple[str, ...]:
    if mutable is False or mutable is None:
        return ()
    if mutable is True:
        return ("batch_stats",)
    if isinstance(mutable, str):
        return (mutable,)
    return tuple(mutable)


def _copy_with(template: nnx.State, pure: Mapping[str, Any]) -> nnx.State:
    """A fresh copy of ``template`` (new Variables) holding the arrays of ``pure``."""
    state = jax.tree.map(lambda a: a, template)
    nnx.replace_by_pure_dict(state, pure)
    return state


def from_nnx(module: nnx.Module) -> Model:
    """Wraps a Flax NNX module into ``(apply_fn, variables)`` with ``nnx.split``/``nnx.merge``.

    Supported, and how:

    - ``nnx.Param`` → ``variables["params"]``, a plain nested dict keyed by attribute names
      (``{"linear": {"kernel": ..., "bias": ...}}``), the same paths the sharding rules see.
    - ``nnx.BatchStat`` (``nnx.BatchNorm``'s running mean and var) → ``"batch_stats"``;
      ``mutable=["batch_stats"]`` returns their updated values as linen does (with
      ``train=True`` and no ``mutable`` the updates are dropped, where linen would raise).
    - ``train`` sets ``deterministic=not train`` and ``use_running_average=not train`` on
      every sub-module that has them (``nnx.view``), so ``nnx.Dropout`` and ``nnx.BatchNorm``
      switch mode as the linen models do.
    - ``rngs``: each RNG stream of the module (created with ``rngs=nnx.Rngs(...)``) is
      reseeded from ``rngs[stream]``; the ``"default"`` stream from ``rngs["dropout"]``
      (``nnx.Dropout`` falls back to it). The same key gives the same mask.

    Not supported: every other variable (``nnx.Cache``, ``nnx.Intermediate``, custom
    ``nnx.Variable`` types, RNG counters) is frozen at its value when ``from_nnx`` is called
    and changes made during a call are discarded; other collections in ``mutable`` raise.
    ``apply_fn`` is pure and jit-able; ``module`` itself is never modified.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> apply_fn, variables = from_nnx(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> sorted(variables["params"]), apply_fn(variables, jnp.ones((4, 3)), train=False).shape
      (['bias', 'kernel'], (4, 2))
    """
    graphdef, params, batch_stats, rest = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
    has_stats = bool(nnx.to_pure_dict(batch_stats))
    variables: dict[str, Any] = {"params": nnx.to_pure_dict(params)}
    if has_stats:
        variables["batch_stats"] = nnx.to_pure_dict(batch_stats)
    streams = sorted({v.tag for _, v in nnx.iter_graph(module) if isinstance(v, nnx.RngKey)})

    def apply_fn(variables, x, *, train: bool = False, rngs=None, mutable: Any = False):
        names = _mutable_names(mutable)
        if set(names) - {"batch_stats"}:
            raise ValueError(
                f"from_nnx: `mutable` may only name 'batch_stats', got {mutable!r}. Other NNX "
                "variables are not exposed as collections."
            )
        states = [_copy_with(params, variables["params"])]
        if has_stats:
            states.append(_copy_with(batch_stats, variables["batch_stats"]))
        model = nnx.merge(graphdef, *states, rest, copy=True)
        model = nnx.view(
            model, deterministic=not train, use_running_average=not train, raise_if_not_found=False
        )
        rngs = dict(rngs or {})
        if train and streams and not rngs:
            raise ValueError(
                f"from_nnx: the module has RNG streams {streams}; training needs "
                "`rngs={'dropout': key}` (fold the step into the key for a new mask each step)."
            )
        keys = {s: rngs.get(s, rngs.get("dropout") if s == "default" else None) for s in streams}
        keys = {s: k for s, k in keys.items() if k is not None}
        if keys:
            nnx.reseed(model, **keys)
        out = model(x)
        if not names:
            return out
        updates = {}
        if "batch_stats" in names and has_stats:
            updates["batch_stats"] = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
        return out, updates

    return Model(apply_fn, variables)


def from_apply(apply_fn: Callable[[Any, jax.Array], Any], params: Any) -> Model:
    """Wraps a pure function ``apply_fn(params, x) -> out`` into the calling convention.

    ``variables = {"params": params}``; ``train`` and ``rngs`` are accepted and ignored (a
    pure function has no dropout or batch statistics); a non-empty ``mutable`` returns
    ``(out, {})``. The output is returned unchanged (cast it to float32 yourself if needed).

    Example:
      >>> import jax.numpy as jnp
      >>> def linear(params, x):
      ...     return x @ params["w"] + params["b"]
      >>> apply_fn, variables = from_apply(linear, {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)})
      >>> apply_fn(variables, jnp.ones((1, 3)), train=True, rngs={}).tolist()
      [[3.0, 3.0]]
    """
    if not callable(apply_fn):
        raise ValueError(
            f"from_apply: `apply_fn` must be a function apply_fn(params, x), got {apply_fn!r}."
        )

    def wrapped(variables, x, *, train: bool = False, rngs=None, mutable: Any = False):
        del train, rngs
        out = apply_fn(variables["params"], x)
        return (out, {}) if _mutable_names(mutable) else out

    return Model(wrapped, {"params": params})


def from_linen(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    key: jax.Array,
    dtype: Any = jnp.float32,
) -> Model:
    """Initializes a linen module (e.g. from ``create_model``) into ``Model(module.apply,
    variables)`` with a batch of one zero input of shape ``(1, *input_shape)``.

    Example:
      >>> import jax
      >>> from optlab.models import create_model
      >>> m = create_model("mlp", num_classes=3, input_shape=(5,), widths=(4,))
      >>> apply_fn, variables = from_linen(m, (5,), key=jax.random.key(0))
      >>> sorted(variables["params"])
      ['Dense_0', 'Dense_1']
    """
    x = jnp.zeros((1, *input_shape), dtype)
    params_key, dropout_key = jax.random.split(key)
    variables = module.init({"params": params_key, "dropout": dropout_key}, x, train=False)
    return Model(module.apply, dict(variables))


def as_apply(model: Any) -> tuple[Callable[..., Any], dict[str, Any] | None]:
    """``(apply_fn, variables or None)`` for any model the trainer takes: a flax linen Module
    (its variables come from ``init``: None), a flax NNX module, or a ``Model``.

    Raises:
      TypeError: anything else (the message lists what is accepted).
    """
    if isinstance(model, nnx.Module):
        model = from_nnx(model)
    if isinstance(model, Model):
        return model.apply, dict(model.variables)
    if hasattr(model, "apply") and hasattr(model, "init"):
        return model.apply, None
    raise TypeError(
        "model: pass a flax linen Module, a flax.nnx Module, or "
        "optlab.models.from_apply(apply_fn, params) for a pure function"
    )
