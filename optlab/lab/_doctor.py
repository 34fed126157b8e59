"""Lecture 03's sanity checks before a long run ("proper methodology", "sanity checking").

``doctor(cfg)`` builds the run a ``RunConfig`` describes (the same data, model, loss and
optimizer as ``optlab train``, through ``optlab.train.setup.build_setup``) and checks:

1. ``initial_loss``: at initialization the cross-entropy is about −log(1/C) for C classes
   (every class equally likely; lecture 03: "−log(p) ... where p = 0.5" for two).
2. ``overfit_subset``: the model and optimizer can drive the loss on a tiny subset (32
   examples, full batch, no regularization) to ~0 and fit every example ("make sure your
   model can properly (over)-fit before applying regularization").
3. ``regularization_raises_loss``: adding lecture 03's L2 penalty λ‖θ‖² raises the
   loss ("start without regularization and make sure loss goes up when added").
4. ``gradient_check``: autodiff's gradient against central finite differences in float64.

Each check is a ``Check`` with its numbers and a one-line explanation; ``DoctorReport``
prints ``PASS name: numbers`` / ``FAIL name: numbers``. ``optlab doctor`` is the CLI.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab import config as config_lib
from optlab.lab._gradient_check import (  # noqa: F401 (FD_*: re-exported)
    FD_FLOOR,
    FD_RESOLUTION,
    FD_STEPS,
    FD_TOLERANCE,
    gradient_check,
)
from optlab.train.losses import per_example_loss

__all__ = ["CHECKS", "Check", "DoctorReport", "doctor"]

CHECKS = ("initial_loss", "overfit_subset", "regularization_raises_loss", "gradient_check")

INITIAL_LOSS_TOLERANCE = (0.25, 0.3)
"""|loss₀ − log C| ≤ max(0.25·log C, 0.3): a logit spread s at init adds about s²/2 to
log C, so this allows logits of standard deviation up to about 1 and rejects the ×10 or
×100 scales of a wrong initialization or a missing normalization."""
OVERFIT_ACCURACY = 0.99
OVERFIT_LOSS_RATIO = 0.1  # the subset's loss must fall below a tenth of its initial value
REGULARIZATION_MARGIN = 0.05  # the penalized run's data loss at least 5% higher


@dataclasses.dataclass(frozen=True)
class Check:
    """One sanity check: its ``name``, whether it ``passed``, the ``numbers`` it measured and
    an ``explanation`` (what was compared, and what a failure suggests)."""

    name: str
    passed: bool
    numbers: dict[str, float]
    explanation: str

    def __str__(self) -> str:
        shown = ", ".join(f"{key}={_format(value)}" for key, value in self.numbers.items())
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {shown}"


@dataclasses.dataclass(frozen=True)
class DoctorReport:
    """The checks of ``doctor``; ``passed`` when all passed; ``report["name"]`` is one check."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def __getitem__(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check {name!r}; the checks are {[c.name for c in self.checks]}")

    def __str__(self) -> str:
        lines = []
        for check in self.checks:
            lines += [str(check), f"    {check.explanation}"]
        failed = sum(not check.passed for check in self.checks)
        lines.append(
            f"all {len(self.checks)} checks passed"
            if not failed
            else f"{failed} of {len(self.checks)} checks failed"
        )
        return "\n".join(lines)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _positive_int(name: str, value: Any, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + name.replace("_", "-")
        raise config_lib.ConfigError(
            f"doctor: `{name}` ({flag}) must be a positive integer, got {value!r}. {fix}"
        )
    return value


def _logits(out: Any) -> jax.Array:
    return out[0] if isinstance(out, tuple) else out


def doctor(
    cfg: config_lib.RunConfig | None = None,
    *,
    model: Any = None,
    dataset: Any = None,
    subset: int = 32,
    overfit_steps: int = 300,
    l2: float = 1e-2,
    fd_examples: int = 64,
    fd_coordinates: int = 4,
    init_examples: int = 512,
    checks: Sequence[str] = CHECKS,
) -> DoctorReport:
    """Lecture 03's sanity checks on the run ``cfg`` describes; nothing is written to disk.

    The data, model, loss and optimizer come from ``build_setup(cfg, model=, dataset=)``,
    as in ``optlab.train.train``, so the checks see exactly what training would. They run
    on one device in float32 whatever ``--mesh``/``--strategy``/``--parallel``/
    ``--precision`` say: they examine the model, loss and optimizer, not the layout.

    1. ``initial_loss`` (classification): the mean cross-entropy of the initialized model
       on up to ``init_examples`` training examples is within max(0.25·log C, 0.3) of
       −log(1/C) = log C. Regression: the mean ½‖z − y‖² is at most twice ½·mean‖y‖², the
       loss of predicting 0 (what small random weights do).
    2. ``overfit_subset``: ``overfit_steps`` full-batch steps of the config's optimizer and
       schedule (its weight decay left out) on the first ``subset`` training examples reach
       ≥ 99% accuracy on them (classification) and a loss below a tenth of the initial one.
       A too-small learning rate, a model that cannot learn or a broken update fail here.
    3. ``regularization_raises_loss``: the same run with lecture 03's L2 penalty λ‖θ‖²
       (``optlab.l2_penalty(l2)`` before the optimizer) ends with a data loss at least 5%
       higher than without it; the numbers also show the penalized loss L + λ‖θ‖² at the
       unregularized run's params.
    4. ``gradient_check``: ``fd_coordinates`` random coordinates of every parameter array,
       the gradient of the mean loss on ``fd_examples`` training examples (training mode,
       a fixed dropout key) against central differences (L(θ + h eᵢ) − L(θ − h eᵢ)) / 2h in
       float64 (``jax.enable_x64``), the best of h ∈ ``FD_STEPS``; the largest relative
       error |g − ĝ| / max(|g|, |ĝ|, 0.01·max|g of that array|, ``FD_RESOLUTION``·max(|L|,
       1)) must be ≤ ``FD_TOLERANCE`` (both 0, or both below the differences' resolution:
       agreement).

    Args:
      cfg: the run config (default ``RunConfig()``: an MLP with Adam on digits).
      model: your own model instead of ``cfg.model`` (as ``build_setup`` takes it).
      dataset: your own ``optlab.data.Dataset`` instead of ``cfg.data.dataset``.
      subset, overfit_steps, l2, fd_examples, fd_coordinates, init_examples: see above.
      checks: which checks to run, in ``CHECKS`` order (default: all four).

    Returns:
      A ``DoctorReport``; ``str(report)`` is what ``optlab doctor`` prints.

    Raises:
      optlab.config.ConfigError: a bad config or argument (the message names it).
    """
    from optlab.train.setup import build_setup

    _positive_int("subset", subset, "Use e.g. subset=32.")
    _positive_int("overfit_steps", overfit_steps, "Use e.g. overfit_steps=300.")
    _positive_int("fd_examples", fd_examples, "Use e.g. fd_examples=64.")
    _positive_int("fd_coordinates", fd_coordinates, "Use e.g. fd_coordinates=4.")
    _positive_int("init_examples", init_examples, "Use e.g. init_examples=512.")
    if isinstance(l2, bool) or not isinstance(l2, int | float) or not 0 < l2 < math.inf:
        raise config_lib.ConfigError(
            f"doctor: `l2` (--l2) must be a number > 0, got {l2!r}. Use e.g. 1e-2."
        )
    if isinstance(checks, str) or not checks or set(checks) - set(CHECKS):
        raise config_lib.ConfigError(
            f"doctor: `checks` (--check) must be names from {', '.join(CHECKS)}; got {checks!r}"
        )
    cfg = copy.deepcopy(cfg if cfg is not None else config_lib.RunConfig())
    cfg.train.precision, cfg.train.parallel = "fp32", "jit"
    cfg.train.mesh, cfg.train.strategy = None, "dp"
    setup = build_setup(cfg, model=model, dataset=dataset)
    cfg = setup.cfg  # with the recipe of its dataset and model
    apply_fn = setup.apply_fn
    ds = setup.dataset
    classification = ds.task == "classification"
    loss_name = "cross_entropy" if classification else "mse"
    state = setup.init_state()
    params = jax.device_get(state.params)
    model_state = jax.device_get(state.model_state)

    def evaluate(params, model_state, x, y):
        logits = _logits(apply_fn({"params": params, **model_state}, x, train=False))
        loss = jnp.mean(per_example_loss(loss_name, logits, y))
        correct = jnp.mean(jnp.argmax(logits, -1) == y) if classification else jnp.zeros([])
        return loss, correct, jnp.std(logits)

    evaluate = jax.jit(evaluate)
    done: list[Check] = []
    if "initial_loss" in checks:
        done.append(_initial_loss(evaluate, params, model_state, ds, init_examples))
    fits = [name for name in ("overfit_subset", "regularization_raises_loss") if name in checks]
    if fits:
        done += _overfit_and_regularize(
            cfg, setup.spec, apply_fn, evaluate, params, model_state, ds, subset, overfit_steps, l2
        )
        done = [check for check in done if check.name in checks]
    if "gradient_check" in checks:
        args = (loss_name, params, model_state, ds, fd_examples, fd_coordinates, cfg.train.seed)
        done.append(_gradient_check(apply_fn, *args))
    return DoctorReport(tuple(done))


def _initial_loss(evaluate, params, model_state, ds, n: int) -> Check:
    x, y = ds.x_train[:n], ds.y_train[:n]
    loss, _, spread = (float(v) for v in evaluate(params, model_state, x, y))
    if ds.task == "classification":
        expected = math.log(ds.num_classes)
        tolerance = max(INITIAL_LOSS_TOLERANCE[0] * expected, INITIAL_LOSS_TOLERANCE[1])
        passed = math.isfinite(loss) and abs(loss - expected) <= tolerance
        numbers = {"loss": loss, "expected": expected, "tolerance": tolerance, "logit_std": spread}
        explanation = f"cross-entropy at init vs −log(1/C) for C={ds.num_classes} classes" + (
            ""
            if passed
            else ": the initial logits are too large (or the loss is wrong); scale down the "
            "last layer's initialization, e.g. --init xavier or normal"
            if loss > expected
            else ": the initial loss is below chance level; is the loss or the data wrong?"
        )
    else:
        reference = float(0.5 * np.mean(np.sum(np.reshape(y, (len(y), -1)) ** 2, axis=-1)))
        passed = math.isfinite(loss) and loss <= 2 * reference
        numbers = {"loss": loss, "predict_zero_loss": reference, "output_std": spread}
        explanation = "½‖z − y‖² at init vs the loss of predicting 0 (at most twice as large)" + (
            "" if passed else ": the initial outputs are too large; scale down the initialization"
        )
    return Check("initial_loss", passed, numbers, explanation)


def _overfit_and_regularize(
    cfg, spec, apply_fn, evaluate, params, model_state, ds, n, steps, l2
) -> list[Check]:
    from optlab import l2_penalty
    from optlab.train.state import create_state
    from optlab.train.step import make_train_step

    optimizer = dataclasses.replace(cfg.optimizer, weight_decay=0.0)
    tx, learning_rate = config_lib.build_optimizer(optimizer, steps)
    lr_fn = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
    x, y = ds.x_train[:n], ds.y_train[:n]
    batch = {"x": jnp.asarray(x), "y": jnp.asarray(y), "mask": jnp.ones(len(x), jnp.float32)}

    # One compiled step for both runs: the L2 strength λ lives in the optimizer state
    # (inject_hyperparams), 0 for the plain run; g + 2·0·θ = g leaves it unregularized.
    def chained(lam: float):
        return optax.chain(optax.inject_hyperparams(l2_penalty)(lam=lam), tx)

    # the trainer's step on one full batch of n examples: no accumulation, augmentation or
    # loss scaling, and a non-finite step is skipped (the check then fails on its numbers)
    spec = dataclasses.replace(
        spec,
        learning_rate_fn=lr_fn,
        accumulate=1,
        augment=None,
        loss_scaling=False,
        nonfinite="skip",
    )
    step = jax.jit(make_train_step(apply_fn, chained(0.0), spec))

    def fit(lam: float):
        state = create_state(params, chained(lam).init(params), cfg.train.seed, model_state)
        for _ in range(steps):
            state, _ = step(state, batch)
        return state

    start_loss = float(evaluate(params, model_state, x, y)[0])
    plain = fit(0.0)
    loss, accuracy, _ = (float(v) for v in evaluate(plain.params, plain.model_state, x, y))
    classification = ds.task == "classification"
    fitted = math.isfinite(loss) and loss <= OVERFIT_LOSS_RATIO * start_loss
    if classification:
        fitted = fitted and accuracy >= OVERFIT_ACCURACY
    numbers = {"examples": len(x), "steps": steps, "start_loss": start_loss, "loss": loss}
    if classification:
        numbers["accuracy"] = accuracy
    overfit = Check(
        "overfit_subset",
        fitted,
        numbers,
        f"{steps} full-batch steps of {cfg.optimizer.optimizer} on {len(x)} examples, no "
        "regularization: the loss must fall below a tenth of its start"
        + (f" and accuracy reach {OVERFIT_ACCURACY:.0%}" if classification else "")
        + (
            ""
            if fitted
            else "; it did not: a larger learning rate, more steps or a bigger model, or a bug "
            "in the model or update"
        ),
    )

    regularized = fit(l2)
    reg_loss = float(evaluate(regularized.params, regularized.model_state, x, y)[0])
    penalty = l2 * sum(float(jnp.sum(jnp.square(p))) for p in jax.tree.leaves(plain.params))
    raised = math.isfinite(reg_loss) and reg_loss > (1 + REGULARIZATION_MARGIN) * loss
    regularization = Check(
        "regularization_raises_loss",
        bool(raised and penalty > 0),
        {"loss": loss, "l2_loss": reg_loss, "l2": l2, "penalized_loss": loss + penalty},
        f"the same {steps} steps with the L2 penalty λ‖θ‖², λ={l2:g}, must end with a data "
        f"loss over {1 + REGULARIZATION_MARGIN:g}× the unregularized one"
        + (
            ""
            if raised
            else "; it did not: the penalty does not reach the update (or the steps barely "
            "move the weights: see overfit_subset)"
        ),
    )
    return [overfit, regularization]


def _gradient_check(*args: Any) -> Check:
    return Check("gradient_check", *gradient_check(*args))
