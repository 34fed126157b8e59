"""One registry of optimizers by name: the config, ``optlab.minimize``, the demo, the
command line's ``--help`` and the tests all read it.

Each entry carries the factory (``factory(learning_rate, **args)``), a line of help, and
the forms the demo runs on lecture 02's quadratic with the rate chosen for it (the
quadratic's Hessian has eigenvalues 8 ± 2√2, so plain GD needs α < 0.18).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import optax

from optlab.optimizers._adagrad import adagrad
from optlab.optimizers._adam import adam
from optlab.optimizers._adamw import adamw
from optlab.optimizers._adan import adan
from optlab.optimizers._ademamix import ademamix
from optlab.optimizers._adopt import adopt
from optlab.optimizers._lion import lion
from optlab.optimizers._momentum import momentum
from optlab.optimizers._nadam import nadam
from optlab.optimizers._nesterov import nesterov
from optlab.optimizers._rmsprop import rmsprop
from optlab.optimizers._sgd import sgd


@dataclasses.dataclass(frozen=True)
class DemoForm:
    """One line of ``optlab demo``: the optimizer with ``args`` at ``learning_rate``."""

    label: str
    learning_rate: float
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class OptimizerEntry:
    """A registered optimizer: ``factory(learning_rate, **args) -> GradientTransformation``."""

    name: str
    factory: Callable[..., optax.GradientTransformation]
    help: str
    demo: tuple[DemoForm, ...] = ()


def _entry(name, factory, help, *demo) -> tuple[str, OptimizerEntry]:
    return name, OptimizerEntry(name, factory, help, tuple(demo))


OPTIMIZERS: Mapping[str, OptimizerEntry] = MappingProxyType(
    dict(
        [
            _entry("sgd", sgd, "θ ← θ − α g (lectures 01, 04, 05)", DemoForm("sgd", 0.05)),
            _entry(
                "momentum",
                momentum,
                "momentum in three forms: heavy_ball, ema, velocity (lectures 01, 02, 04)",
                DemoForm("momentum_heavy_ball", 0.02, {"mu": 0.9, "form": "heavy_ball"}),
                DemoForm("momentum_ema", 0.2, {"mu": 0.9, "form": "ema"}),
                DemoForm("momentum_velocity", 0.02, {"mu": 0.9, "form": "velocity"}),
            ),
            _entry(
                "nesterov",
                nesterov,
                "Nesterov's look-ahead momentum (lectures 02, 03)",
                DemoForm("nesterov", 0.02, {"mu": 0.9}),
            ),
            _entry("adagrad", adagrad, "AdaGrad (lectures 01-03)", DemoForm("adagrad", 0.5)),
            _entry("rmsprop", rmsprop, "RMSProp (lectures 01, 02)", DemoForm("rmsprop", 0.05)),
            _entry(
                "adam", adam, "Adam, Kingma & Ba's Algorithm 1 (lecture 04)", DemoForm("adam", 0.1)
            ),
            _entry(
                "nadam", nadam, "Nesterov-accelerated Adam (Dozat 2016)", DemoForm("nadam", 0.1)
            ),
            _entry(
                "adamw",
                adamw,
                "Adam with decoupled weight decay (Loshchilov & Hutter 2019)",
                DemoForm("adamw", 0.1),
            ),
            _entry(
                "lion",
                lion,
                "Lion, evolved sign momentum (Chen et al. 2023)",
                DemoForm("lion", 0.02),
            ),
            _entry(
                "adopt",
                adopt,
                "ADOPT, Adam with the current gradient out of v (Taniguchi et al. 2024)",
                DemoForm("adopt", 0.05),
            ),
            _entry(
                "ademamix",
                ademamix,
                "AdEMAMix, Adam with a second, slow momentum (Pagliardini et al. 2024)",
                DemoForm("ademamix", 0.1),
            ),
            _entry(
                "adan",
                adan,
                "Adan, adaptive Nesterov momentum (Xie et al. 2022)",
                DemoForm("adan", 0.02),
            ),
        ]
    )
)


def optimizer_names() -> tuple[str, ...]:
    """The registered names, in the registry's order."""
    return tuple(OPTIMIZERS)


def get_optimizer(name: str) -> Callable[..., optax.GradientTransformation]:
    """The factory registered as ``name``.

    Raises:
      ValueError: naming the registered optimizers, for an unknown ``name``.

    Example:
      >>> from optlab.optimizers import get_optimizer
      >>> tx = get_optimizer("adam")(learning_rate=1e-3)
    """
    entry = OPTIMIZERS.get(name)
    if entry is None:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return entry.factory


def optimizers_help() -> str:
    """``name: help`` for each registered optimizer, one per line (for ``--help``)."""
    return "\n".join(f"{e.name}: {e.help}" for e in OPTIMIZERS.values())
