"""Pure train and eval steps: ``state, metrics = train_step(state, batch)``; no I/O.

``make_train_step(apply_fn, tx, spec)`` builds the jit path's step from a ``StepSpec``;
``optlab.train.pmap_step`` builds the pmap path's from the same spec. Both end in
``finish_step``, which composes three small pure functions: ``nonfinite_guard`` (is the
step finite, and where not), ``update_loss_scale`` (float16's dynamic scale) and
``step_metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab.optimizers import SkipSpikesState, evaluation_point
from optlab.train import losses
from optlab.train.spec import StepSpec
from optlab.train.state import TrainState


def layer_names(params: Any) -> list[str]:
    """Top-level layer names (``Dense_0``...): the granularity of per-layer monitoring."""
    return [str(getattr(k, "key", k)) for k in params] if isinstance(params, dict) else ["all"]


def _per_layer(params: Any) -> list[Any]:
    return [params[k] for k in params] if isinstance(params, dict) else [params]


def training_forward(apply_fn: Callable) -> Callable:
    """``forward(variables, x, key, model_state) -> (logits, new model_state)`` in training
    mode, with ``key`` as the dropout key; shared by the jit and pmap steps."""

    def forward(variables, x, key, model_state):
        if not model_state:  # nothing mutable (no batch norm): plain output
            out = apply_fn(variables, x, train=True, rngs={"dropout": key})
            return (out[0] if isinstance(out, tuple) else out), {}
        return apply_fn(variables, x, train=True, rngs={"dropout": key}, mutable=list(model_state))

    return forward


def batch_loss(spec: StepSpec, logits: jax.Array, batch: dict, count: jax.Array):
    """(this batch's share of the mean loss over ``count`` real examples, correct count)."""
    per_example = losses.per_example_loss(spec.loss, logits, batch["y"])
    mask = batch["mask"].astype(jnp.float32)
    correct = jnp.zeros([])
    if spec.loss == "cross_entropy":
        correct = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * mask)
    return jnp.sum(per_example * mask) / count, correct


class Gradient(NamedTuple):
    """A whole batch's loss and gradient (already reduced across devices under pmap)."""

    loss: jax.Array
    grads: Any
    model_state: Any
    correct: jax.Array  # correctly classified real examples (0 for regression)
    count: jax.Array  # real examples in the batch
    # params -> this batch's mean loss (same dropout key, model state not updated), handed
    # to the optimizer as the ``obj_fn`` extra argument (SAM, Sophia; optax's name).
    obj_fn: Callable[[Any], jax.Array] | None = None


class Guard(NamedTuple):
    finite: jax.Array  # the loss and every gradient are finite
    layer_sumsq: jax.Array  # Σg² per top-level layer (norms for monitoring)


def nonfinite_guard(loss_value: jax.Array, grads: Any) -> Guard:
    """One pass over the gradients: finiteness and each layer's Σg²."""

    def sumsq(tree):
        return optax.tree.sum(
            jax.tree.map(lambda g: jnp.sum(jnp.square(g.astype(jnp.float32))), tree)
        )

    layer_sumsq = jnp.stack([sumsq(layer) for layer in _per_layer(grads)])
    return Guard(jnp.isfinite(loss_value) & jnp.isfinite(jnp.sum(layer_sumsq)), layer_sumsq)


def update_loss_scale(
    state: TrainState, finite: jax.Array, loss_value: jax.Array, growth_interval: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Dynamic loss scaling: ``(loss_scale, good_steps, failed)``. An overflow (non-finite
    gradients with a finite loss, while the scale can still shrink) halves the scale and
    is not a failure; ``growth_interval`` good steps in a row double it."""
    overflow = ~finite & jnp.isfinite(loss_value) & (state.loss_scale > 1.0)
    grow = finite & (state.good_steps + 1 >= growth_interval)
    scale = state.loss_scale
    scale = jnp.where(overflow, scale / 2, jnp.where(grow, scale * 2, scale))
    good_steps = jnp.where(finite & ~grow, state.good_steps + 1, 0)
    return scale, good_steps, ~finite & ~overflow


def step_metrics(
    spec: StepSpec,
    state: TrainState,
    gradient: Gradient,
    guard: Guard,
    applied: jax.Array,
    update_norm: jax.Array,
    loss_scale: jax.Array,
) -> dict:
    """The step's metrics (the host pulls them at the logging cadence only)."""
    metrics = {
        "loss": gradient.loss,
        "learning_rate": jnp.asarray(spec.learning_rate_fn(state.step), jnp.float32),
        "finite": applied,
        "loss_scale": loss_scale,
    }
    if spec.monitor:
        param_norm = optax.tree.norm(state.params)
        metrics["grad_norm"] = jnp.sqrt(jnp.sum(guard.layer_sumsq))
        metrics["layer_grad_norms"] = jnp.sqrt(guard.layer_sumsq)
        metrics["update_ratio"] = update_norm / jnp.maximum(param_norm, 1e-12)
    if spec.loss == "cross_entropy":
        metrics["accuracy"] = gradient.correct / gradient.count
    # optlab.skip_spikes: the updates it skipped so far (``state`` holds the new opt state).
    skipped = [s.skipped for s in jax.tree.leaves(state.opt_state, is_leaf=_is_skip) if _is_skip(s)]
    if skipped:
        metrics["skipped_spikes"] = sum(skipped)
    return metrics


def _is_skip(x: Any) -> bool:
    return isinstance(x, SkipSpikesState)


def finish_step(
    spec: StepSpec, tx: optax.GradientTransformation, state: TrainState, gradient: Gradient
) -> tuple[TrainState, dict]:
    """The step after the gradient (the same for the jit and pmap steps): the non-finite
    guard, the update (or its skip: a skipped step computes no update), the loss scale,
    the metrics and the new state."""
    guard = nonfinite_guard(gradient.loss, gradient.grads)
    applied = guard.finite
    if spec.stop_after_nonfinite:
        applied = applied & (state.first_nonfinite[0] < 0)
    loss_scale, good_steps, failed = state.loss_scale, state.good_steps, ~guard.finite
    if spec.loss_scaling:
        loss_scale, good_steps, failed = update_loss_scale(
            state, guard.finite, gradient.loss, spec.scale_growth_interval
        )

    def do_update(_):
        extra = {"value": gradient.loss}
        if gradient.obj_fn is not None:
            extra["obj_fn"] = gradient.obj_fn
        updates, opt_state = tx.update(gradient.grads, state.opt_state, state.params, **extra)
        norm = optax.tree.norm(updates) if spec.monitor else jnp.zeros([])
        return optax.apply_updates(state.params, updates), opt_state, gradient.model_state, norm

    def skip(_):
        return state.params, state.opt_state, state.model_state, jnp.zeros([])

    params, opt_state, model_state, update_norm = jax.lax.cond(applied, do_update, skip, None)

    first_bad_layer = jnp.argmin(jnp.isfinite(guard.layer_sumsq)).astype(jnp.int32)
    record = (state.first_nonfinite[0] < 0) & failed
    first_nonfinite = jnp.where(
        record, jnp.stack([state.step, first_bad_layer]), state.first_nonfinite
    )
    metrics = step_metrics(
        spec,
        state._replace(opt_state=opt_state),
        gradient,
        guard,
        applied,
        update_norm,
        loss_scale,
    )
    new_state = state._replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        model_state=model_state,
        first_nonfinite=first_nonfinite,
        skipped=state.skipped + (~applied).astype(jnp.int32),
        loss_scale=loss_scale,
        good_steps=good_steps,
    )
    return new_state, metrics


def make_train_step(
    apply_fn: Callable, tx: optax.GradientTransformation, spec: StepSpec
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """The jit path's train step for ``apply_fn(variables, x, train=, rngs=, mutable=)``.

    A batch is ``{"x", "y", "mask"}``; with ``spec.accumulate = K > 1`` its arrays have a
    leading micro-batch axis (K, B, ...) and the K micro-batches are summed with
    ``lax.scan`` before one update, which equals one update on the K·B examples. A step
    whose loss or gradient is not finite leaves params and optimizer state unchanged; the
    state records the first such step and layer, and ``metrics["finite"]`` says whether
    the update was applied (``StepSpec.nonfinite`` says what happens next).

    Example:
      >>> import jax, jax.numpy as jnp, optlab
      >>> from optlab.train import StepSpec, create_state, make_train_step
      >>> apply = lambda v, x, train=False, rngs=None: x @ v["params"]["w"]
      >>> params = {"w": jnp.zeros((3, 2))}
      >>> tx = optlab.sgd(0.1)
      >>> step = jax.jit(make_train_step(apply, tx, StepSpec(loss="cross_entropy")))
      >>> batch = {"x": jnp.ones((4, 3)), "y": jnp.array([0, 1, 0, 1]), "mask": jnp.ones(4)}
      >>> state, metrics = step(create_state(params, tx.init(params), seed=0), batch)
      >>> int(state.step), round(float(metrics["loss"]), 4)
      (1, 0.6931)
    """
    forward = training_forward(apply_fn)

    def micro_loss(model_state, batch, key, scale, count):
        """``scaled_loss(params) -> (share·scale, (model state, correct, share))``."""
        x = batch["x"]
        if spec.augment is not None:
            x = spec.augment(jax.random.fold_in(key, 1 << 20), x)

        def scaled_loss(p):
            logits, new_model_state = forward({"params": p, **model_state}, x, key, model_state)
            part, correct = batch_loss(spec, logits, batch, count)  # this batch's share
            return part * scale, (new_model_state, correct, part)

        return scaled_loss

    def micro_gradient(params, model_state, batch, key, scale, count):
        scaled_loss = micro_loss(model_state, batch, key, scale, count)
        (_, (model_state, correct, part)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(
            params
        )
        return part, grads, model_state, correct

    def objective(state: TrainState, batch: dict, key, count):
        """params -> the batch's mean loss, as the step's gradient sees it (for obj_fn)."""
        one = jnp.ones([], jnp.float32)

        def obj_fn(p):
            if spec.accumulate == 1:
                return micro_loss(state.model_state, batch, key, one, count)(p)[1][2]

            def body(total, micro_i):
                micro, i = micro_i
                loss = micro_loss(state.model_state, micro, jax.random.fold_in(key, i), one, count)
                return total + loss(p)[1][2], None

            steps = jnp.arange(spec.accumulate)
            return jax.lax.scan(body, jnp.zeros([]), (batch, steps))[0]

        return obj_fn

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.rng, state.step)
        scale = state.loss_scale if spec.loss_scaling else jnp.ones([], jnp.float32)
        # The mean over real examples: divide inside the differentiated loss (no extra pass).
        count = jnp.maximum(jnp.sum(batch["mask"].astype(jnp.float32)), 1.0)
        if spec.accumulate > 1:

            def body(carry, micro):
                total, grads, model_state, correct, i = carry
                t, g, model_state, c = micro_gradient(
                    state.params, model_state, micro, jax.random.fold_in(key, i), scale, count
                )
                grads = jax.tree.map(jnp.add, grads, g)
                return (total + t, grads, model_state, correct + c, i + 1), None

            zeros = jax.tree.map(jnp.zeros_like, state.params)
            init = (jnp.zeros([]), zeros, state.model_state, jnp.zeros([]), 0)
            (loss_value, grads, model_state, correct, _), _ = jax.lax.scan(body, init, batch)
        else:
            loss_value, grads, model_state, correct = micro_gradient(
                state.params, state.model_state, batch, key, scale, count
            )
        if spec.loss_scaling:
            grads = jax.tree.map(lambda g: (g / scale).astype(g.dtype), grads)
        obj_fn = objective(state, batch, key, count)
        return finish_step(
            spec, tx, state, Gradient(loss_value, grads, model_state, correct, count, obj_fn)
        )

    return train_step


def make_eval_step(apply_fn: Callable, *, loss: str, num_classes: int) -> Callable:
    """``counts = eval_step(state, batch)``: masked sums for ``losses.summarize``, at the
    optimizer's evaluation point (``optlab.evaluation_point``)."""

    def eval_step(state: TrainState, batch: dict) -> dict:
        # Schedule-Free's x, Lookahead's slow weights, the EMA average; else the params.
        params = evaluation_point(state.opt_state, state.params)
        variables = {"params": params, **state.model_state}
        logits = apply_fn(variables, batch["x"], train=False)
        if isinstance(logits, tuple):  # an adapter that returns (logits, state)
            logits = logits[0]
        return losses.batch_counts(loss, logits, batch, num_classes)

    return eval_step
