"""A run config's optimizer with chosen hyper-parameters held as arrays in its state.

``optax.inject_hyperparams`` stores the numeric arguments of a factory in the optimizer
state and calls the factory again inside every update. With the factory below (the
config's whole chain: clipping, the optimizer with its schedule, decoupled weight decay,
the state dtype — as ``optlab.config.build_optimizer`` builds it), one compiled step can
train a configuration axis of different rates under ``vmap`` (``sweep``) or change its
rate every step (``lr_find``). Only the swept names become arrays; every other
hyper-parameter stays the Python constant the trainer would use.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import optax

from optlab import config as config_lib

# The CLI's --momentum names a different argument per optimizer (as optlab train maps it).
MOMENTUM_ALIAS = {"momentum": "mu", "nesterov": "mu", "rmsprop": "momentum"}
CONFIG_FIELDS = ("learning_rate", "weight_decay")  # OptimizerConfig fields; others are args


def _factory(name: Any) -> Callable:
    return config_lib.resolve_optimizer(name)


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def sweepable(ocfg: config_lib.OptimizerConfig) -> tuple[str, ...]:
    """The hyper-parameters of ``ocfg``'s optimizer that can become arrays: the learning
    rate, the weight decay and every numeric argument of the optimizer's factory (a float
    default, a ``float | None`` one such as RMSProp's momentum, or a number in ``args``)."""
    names = list(CONFIG_FIELDS)
    for name, p in inspect.signature(_factory(ocfg.optimizer)).parameters.items():
        if name in names or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        optional_float = p.default is None and "float" in str(p.annotation)
        if is_number(p.default) or optional_float or is_number(ocfg.args.get(name)):
            names.append(name)
    return tuple(names)


def resolve_key(ocfg: config_lib.OptimizerConfig, key: str, owner: str = "sweep") -> str:
    """``key`` as the optimizer's own argument name (``learning-rate`` → ``learning_rate``,
    ``momentum`` → ``mu`` for momentum/nesterov), or a ConfigError listing the valid ones."""
    name = str(key).replace("-", "_")
    if name == "momentum" and ocfg.optimizer in MOMENTUM_ALIAS:
        name = MOMENTUM_ALIAS[ocfg.optimizer]
    valid = sweepable(ocfg)
    if name not in valid:
        hint = " (Adam's β1 is b1)" if name == "momentum" else ""
        raise config_lib.ConfigError(
            f"{owner}: {key!r} is not a numeric hyper-parameter of the {ocfg.optimizer} "
            f"optimizer{hint}; it takes {', '.join(valid)}"
        )
    return name


def with_values(
    ocfg: config_lib.OptimizerConfig, values: Mapping[str, float]
) -> config_lib.OptimizerConfig:
    """A copy of ``ocfg`` with the (resolved) hyper-parameters set to concrete numbers."""
    fields = {k: float(v) for k, v in values.items() if k in CONFIG_FIELDS}
    args = {**ocfg.args, **{k: float(v) for k, v in values.items() if k not in CONFIG_FIELDS}}
    return dataclasses.replace(ocfg, args=args, **fields)


def injected_optimizer(
    ocfg: config_lib.OptimizerConfig, total_steps: int, names: tuple[str, ...]
) -> Callable[..., optax.GradientTransformationExtraArgs]:
    """``optax.inject_hyperparams`` over the config's chain, with ``names`` as its numeric
    hyper-parameters (the rest fixed as in ``build_optimizer``). Call it with a value for
    each name (floats, or traced arrays under ``vmap``) to get the transformation.

    A swept learning rate under a non-constant schedule scales the whole schedule:
    α_t = schedule(t) · α / ``ocfg.learning_rate`` (the config's schedule has peak
    ``ocfg.learning_rate``; the swept α becomes its peak, the shape unchanged). Decoupled
    weight decay uses the same α_t, as ``build_optimizer`` does.
    """
    config_lib.build_optimizer(ocfg, total_steps)  # validates the fixed parts once
    factory = _factory(ocfg.optimizer)
    base = config_lib.build_schedule(ocfg, total_steps)
    decay = bool(ocfg.weight_decay) or "weight_decay" in names
    adamw = ocfg.optimizer == "adamw"

    def chain(**hp: Any) -> optax.GradientTransformation:
        learning_rate: Any = base
        if "learning_rate" in hp:
            peak = hp["learning_rate"]
            learning_rate = (
                (lambda t: base(t) * (peak / ocfg.learning_rate)) if callable(base) else peak
            )
        weight_decay = hp.get("weight_decay", ocfg.weight_decay)
        args = {**ocfg.args, **{k: v for k, v in hp.items() if k not in CONFIG_FIELDS}}
        if decay and adamw:
            args["weight_decay"] = weight_decay
        tx = factory(learning_rate=learning_rate, **args)
        return config_lib.assemble(ocfg, tx, learning_rate, weight_decay if decay else 0)

    chain.__signature__ = inspect.Signature(  # inject_hyperparams binds by this signature
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    )
    return optax.inject_hyperparams(chain)


def set_hyperparams(opt_state: Any, values: Mapping[str, Any]) -> Any:
    """The state of an ``injected_optimizer`` with some hyper-parameters replaced (arrays
    of the state's dtype); the next update uses them."""
    hyper = dict(opt_state.hyperparams)
    hyper.update({k: jnp.asarray(v, hyper[k].dtype) for k, v in values.items()})
    return opt_state._replace(hyperparams=hyper)
