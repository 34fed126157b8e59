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

from optlab.optimizers._adabelief import adabelief
from optlab.optimizers._adadelta import adadelta
from optlab.optimizers._adafactor import adafactor
from optlab.optimizers._adagrad import adagrad
from optlab.optimizers._adam import adam
from optlab.optimizers._adam_variants import adamax, amsgrad, radam
from optlab.optimizers._adamw import adamw
from optlab.optimizers._adan import adan
from optlab.optimizers._ademamix import ademamix
from optlab.optimizers._adopt import adopt
from optlab.optimizers._lion import lion
from optlab.optimizers._momentum import momentum
from optlab.optimizers._muon import muon
from optlab.optimizers._nadam import nadam
from optlab.optimizers._nesterov import nesterov
from optlab.optimizers._novograd import novograd
from optlab.optimizers._prodigy import prodigy
from optlab.optimizers._rmsprop import rmsprop
from optlab.optimizers._rprop import rprop
from optlab.optimizers._schedule_free import schedule_free_adamw, schedule_free_sgd
from optlab.optimizers._sgd import sgd
from optlab.optimizers._shampoo import shampoo
from optlab.optimizers._soap import soap
from optlab.optimizers._sophia import sophia
from optlab.optimizers._trust_ratio import lamb, lars
from optlab.optimizers._yogi import yogi


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
                "amsgrad",
                amsgrad,
                "AMSGrad, Adam with a never-shrinking v (Reddi et al. 2018)",
                DemoForm("amsgrad", 0.1),
            ),
            _entry(
                "adamax",
                adamax,
                "AdaMax, Adam with the infinity norm (Kingma & Ba 2015, sec. 7.1)",
                DemoForm("adamax", 0.1),
            ),
            _entry(
                "radam",
                radam,
                "RAdam, Adam with a rectified adaptive rate (Liu et al. 2020)",
                DemoForm("radam", 0.1),
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
            _entry(
                "adabelief",
                adabelief,
                "AdaBelief, Adam with the belief (g - m)^2 (Zhuang et al. 2020)",
                DemoForm("adabelief", 0.1),
            ),
            _entry(
                "yogi",
                yogi,
                "Yogi, Adam with an additive, sign-controlled v (Zaheer et al. 2018)",
                DemoForm("yogi", 0.2),
            ),
            _entry(
                "adadelta",
                adadelta,
                "ADADELTA, steps in the units of the parameters (Zeiler 2012)",
                DemoForm("adadelta", 10.0),
            ),
            _entry(
                "rprop",
                rprop,
                "Rprop, sign-based adaptive step sizes (Riedmiller & Braun 1993)",
                DemoForm("rprop", 0.1),
            ),
            _entry(
                "novograd",
                novograd,
                "NovoGrad, layer-wise normalized momentum (Ginsburg et al. 2019)",
                DemoForm("novograd", 0.01),
            ),
            _entry(
                "lars",
                lars,
                "LARS, momentum with layer-wise trust ratios (You, Gitman & Ginsburg 2017)",
                DemoForm("lars", 50.0),
            ),
            _entry(
                "lamb",
                lamb,
                "LAMB, Adam with layer-wise trust ratios (You et al. 2020)",
                DemoForm("lamb", 0.1),
            ),
            _entry(
                "adafactor",
                adafactor,
                "Adafactor, factored second moments and relative steps (Shazeer & Stern 2018)",
                DemoForm("adafactor", 0.1),
            ),
            # Muon acts on matrices; the demo's point is a vector (AdamW's part), so no line.
            _entry(
                "muon",
                muon,
                "Muon, momentum orthogonalized by Newton-Schulz; AdamW for non-matrices "
                "(Jordan et al. 2024)",
            ),
            _entry(
                "shampoo",
                shampoo,
                "Shampoo, Kronecker-factored preconditioning with Adam grafting "
                "(Gupta et al. 2018; Anil et al. 2020)",
                DemoForm("shampoo", 0.1),
            ),
            _entry(
                "soap",
                soap,
                "SOAP, Adam in Shampoo's eigenbasis (Vyas et al. 2024)",
                DemoForm("soap", 0.02),
            ),
            # Sophia's update needs obj_fn (the trainer passes it; the demo does not).
            _entry(
                "sophia",
                sophia,
                "Sophia-H, clipped steps preconditioned by a Hutchinson Hessian-diagonal EMA "
                "(Liu et al. 2023; update needs obj_fn)",
            ),
            _entry(
                "schedule_free_sgd",
                schedule_free_sgd,
                "Schedule-Free SGD, averaging instead of a schedule (Defazio et al. 2024)",
                DemoForm("schedule_free_sgd", 0.1),
            ),
            _entry(
                "schedule_free_adamw",
                schedule_free_adamw,
                "Schedule-Free AdamW (Defazio et al. 2024)",
                DemoForm("schedule_free_adamw", 0.1),
            ),
            _entry(
                "prodigy",
                prodigy,
                "Prodigy, Adam with an on-line step-size estimate (Mishchenko & Defazio 2024)",
                DemoForm("prodigy", 1.0),
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
