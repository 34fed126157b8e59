"""Pure train and eval steps: ``state, metrics = train_step(state, batch)``; no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab.train import losses
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


def finish_step(
    state: TrainState,
    tx: optax.GradientTransformation,
    loss_value: jax.Array,
    grads: Any,
    model_state: Any,
    correct: jax.Array,
    count: jax.Array,
    *,
    loss: str,
    learning_rate_fn: Callable[[jax.Array], jax.Array],
    skip_nonfinite: bool,
    stop_after_nonfinite: bool,
    monitor: bool,
    dynamic_loss_scale: bool = False,
    scale_growth_interval: int = 2000,
) -> tuple[TrainState, dict]:
    """The step after the gradient (the same for the jit and pmap steps): the non-finite
    policy, the update (or its skip), the dynamic loss scale, the metrics and the new state.
    ``loss_value``, ``grads`` and ``correct`` are the whole batch's (already reduced across
    devices under pmap); ``count`` is its number of real examples."""

    # One pass over the gradients gives finiteness, the first bad layer and the norms.
    def sumsq(tree):
        return optax.tree.sum(
            jax.tree.map(lambda g: jnp.sum(jnp.square(g.astype(jnp.float32))), tree)
        )

    layer_sumsq = jnp.stack([sumsq(layer) for layer in _per_layer(grads)])
    finite = jnp.isfinite(loss_value) & jnp.isfinite(jnp.sum(layer_sumsq))
    apply = finite & (state.first_nonfinite[0] < 0) if stop_after_nonfinite else finite
    loss_scale, good_steps = state.loss_scale, state.good_steps
    failed = ~finite
    if dynamic_loss_scale:  # an overflow with a finite loss only shrinks the scale
        overflow = ~finite & jnp.isfinite(loss_value) & (state.loss_scale > 1.0)
        failed = ~finite & ~overflow
        grow = finite & (good_steps + 1 >= scale_growth_interval)
        loss_scale = jnp.where(
            overflow, loss_scale / 2, jnp.where(grow, loss_scale * 2, loss_scale)
        )
        good_steps = jnp.where(finite & ~grow, good_steps + 1, 0)

    def do_update(_):
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss_value)
        norm = optax.tree.norm(updates) if monitor else jnp.zeros([])
        return optax.apply_updates(state.params, updates), opt_state, model_state, norm

    def skip(_):
        return state.params, state.opt_state, state.model_state, jnp.zeros([])

    if skip_nonfinite:  # a skipped step costs nothing: the update is not even computed
        new_params, opt_state, model_state, update_norm = jax.lax.cond(apply, do_update, skip, None)
    else:
        new_params, opt_state, model_state, update_norm = do_update(None)

    first_bad_layer = jnp.argmin(jnp.isfinite(layer_sumsq)).astype(jnp.int32)
    record = (state.first_nonfinite[0] < 0) & failed
    first_nonfinite = jnp.where(
        record, jnp.stack([state.step, first_bad_layer]), state.first_nonfinite
    )
    metrics = {
        "loss": loss_value,
        "learning_rate": jnp.asarray(learning_rate_fn(state.step), jnp.float32),
        "finite": apply,
        "loss_scale": loss_scale,
    }
    if monitor:
        param_norm = optax.tree.norm(state.params)
        metrics["grad_norm"] = jnp.sqrt(jnp.sum(layer_sumsq))
        metrics["layer_grad_norms"] = jnp.sqrt(layer_sumsq)
        metrics["update_ratio"] = update_norm / jnp.maximum(param_norm, 1e-12)
    if loss == "cross_entropy":
        metrics["accuracy"] = correct / count
    new_state = TrainState(
        step=state.step + 1,
        params=new_params,
        opt_state=opt_state,
        rng=state.rng,
        model_state=model_state,
        first_nonfinite=first_nonfinite,
        skipped=state.skipped + (~apply).astype(jnp.int32),
        loss_scale=loss_scale,
        good_steps=good_steps,
    )
    return new_state, metrics


def make_train_step(
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    *,
    loss: str,
    learning_rate_fn: Callable[[jax.Array], jax.Array],
    accumulate: int = 1,
    skip_nonfinite: bool = True,
    stop_after_nonfinite: bool = False,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    dynamic_loss_scale: bool = False,
    scale_growth_interval: int = 2000,
    monitor: bool = True,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A train step for ``apply_fn(variables, x, train=, rngs=, mutable=)``.

    A batch is ``{"x", "y", "mask"}``; with gradient accumulation its arrays have a leading
    micro-batch axis (K, B, ...) and the K micro-batches are summed with ``lax.scan`` before
    one update, which equals one update on the K·B examples. A step whose loss or gradient
    is not finite leaves params and optimizer state unchanged; the state records the first
    such step and layer, and ``metrics["finite"]`` says whether the update was applied.
    With ``stop_after_nonfinite`` every later update is skipped too, so the state stays the
    one from just before the first bad step until the host loop notices and stops.
    ``augment(key, x)`` (jit-able) transforms each batch's inputs on device.

    ``monitor`` adds the gradient norms (global and per layer) and the update-to-parameter
    ratio to the metrics; they cost extra passes over the parameters, so the host loop
    compiles a second, monitored step and runs it only on the steps it logs.

    ``dynamic_loss_scale`` (float16 training): the loss is multiplied by ``state.loss_scale``
    before differentiation and the gradients divided by it; an overflow (non-finite
    gradients with a finite loss) halves the scale and skips the update without counting as
    a failure, and ``scale_growth_interval`` good steps in a row double it.
    """

    forward = training_forward(apply_fn)

    def micro_sums(params, model_state, batch, key, scale, count):
        x = batch["x"]
        if augment is not None:
            x = augment(jax.random.fold_in(key, 1 << 20), x)

        def scaled_loss(p):
            variables = {"params": p, **model_state}
            logits, new_model_state = forward(variables, x, key, model_state)
            per_example = losses.per_example_loss(loss, logits, batch["y"])
            mask = batch["mask"].astype(jnp.float32)
            correct = jnp.zeros([])
            if loss == "cross_entropy":
                correct = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * mask)
            mean_part = jnp.sum(per_example * mask) / count  # this batch's share of the mean
            return mean_part * scale, (new_model_state, correct, mean_part)

        (_, aux), grads = jax.value_and_grad(scaled_loss, has_aux=True)(params)
        model_state, correct, mean_part = aux
        return mean_part, grads, (model_state, correct)

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.rng, state.step)
        scale = state.loss_scale if dynamic_loss_scale else jnp.ones([], jnp.float32)
        # The mean over real examples: divide inside the differentiated loss (no extra pass).
        count = jnp.maximum(jnp.sum(batch["mask"].astype(jnp.float32)), 1.0)
        if accumulate > 1:

            def body(carry, micro):
                total, grads, model_state, correct, i = carry
                t, g, (model_state, c) = micro_sums(
                    state.params, model_state, micro, jax.random.fold_in(key, i), scale, count
                )
                grads = jax.tree.map(jnp.add, grads, g)
                return (total + t, grads, model_state, correct + c, i + 1), None

            zeros = jax.tree.map(jnp.zeros_like, state.params)
            init = (jnp.zeros([]), zeros, state.model_state, jnp.zeros([]), 0)
            (loss_value, grads, model_state, correct, _), _ = jax.lax.scan(body, init, batch)
        else:
            loss_value, grads, (model_state, correct) = micro_sums(
                state.params, state.model_state, batch, key, scale, count
            )
        if dynamic_loss_scale:
            grads = jax.tree.map(lambda g: (g / scale).astype(g.dtype), grads)
        return finish_step(
            state,
            tx,
            loss_value,
            grads,
            model_state,
            correct,
            count,
            loss=loss,
            learning_rate_fn=learning_rate_fn,
            skip_nonfinite=skip_nonfinite,
            stop_after_nonfinite=stop_after_nonfinite,
            dynamic_loss_scale=dynamic_loss_scale,
            scale_growth_interval=scale_growth_interval,
            monitor=monitor,
        )

    return train_step


def make_eval_step(apply_fn: Callable, *, loss: str, num_classes: int) -> Callable:
    """``counts = eval_step(state, batch)``: masked sums for ``losses.summarize``."""

    def eval_step(state: TrainState, batch: dict) -> dict:
        variables = {"params": state.params, **state.model_state}
        logits = apply_fn(variables, batch["x"], train=False)
        if isinstance(logits, tuple):  # an adapter that returns (logits, state)
            logits = logits[0]
        return losses.batch_counts(loss, logits, batch, num_classes)

    return eval_step
