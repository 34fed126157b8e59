"""``--parallel pmap``: the train step as a ``jax.pmap`` program.

The state is replicated with a leading device axis ``(n, ...)``, each batch is split over a
leading device axis ``(n, B/n, ...)``, and every device computes the gradient of its own
examples; the gradients are then reduced across devices through the axis name ``"batch"``.
This is the program people wrote before ``jit`` with shardings; the jit path
(``optlab.train.step``) is untouched.

The mean is weighted by each device's count of real examples (the mask), so a padded last
batch biases nothing: ``psum(masked loss sums) / psum(counts)`` — the same number as the jit
path's mean over the global batch. (``pmean`` of per-device means would weight a device of
padding like one of real examples.)

Batch normalization: optlab's models build ``nn.BatchNorm`` without an ``axis_name``, so
the forward pass normalizes with each device's *own* batch statistics (B/n examples) and
the updated running ``batch_stats`` are averaged with ``lax.pmean`` after the step. This is
not lecture 03's SyncBatchNorm, which ``psum``-s the statistics inside the forward so that
every device normalizes with the global batch's mean and variance:
  * the activations (hence loss and gradients) use per-device statistics, so they differ
    from the jit path (which normalizes over the global batch) whenever batch norm is on;
  * the running mean is the same (the mean of equal-sized per-device means is the global
    mean, padding aside), but the running variance is the mean of per-device variances,
    which lacks the variance of the per-device means (it is smaller than the global one).
The replicas' ``batch_stats`` are identical after every step.

Dropout (and ``--augment``) keys: the jit path draws one mask for the global batch from
``fold_in(rng, step)``. A mask cannot be split into the masks that a key would draw for a
smaller shape (the random bits depend on the whole array's shape), so each device uses
``fold_in(fold_in(rng, step), device_index)``: independent masks per device, same
distribution, but not the jit path's masks. Without dropout and augmentation the two paths
compute the same numbers up to float32 reduction order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.train import losses
from optlab.train.state import TrainState
from optlab.train.step import _per_layer

AXIS = "batch"


def make_pmap_step(
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    *,
    loss: str,
    learning_rate_fn: Callable[[jax.Array], jax.Array],
    axis_name: str = AXIS,
    skip_nonfinite: bool = True,
    stop_after_nonfinite: bool = False,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    monitor: bool = True,
    devices: Any = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """``jax.pmap`` of a train step: ``state`` replicated ``(n, ...)``, batch ``{"x", "y",
    "mask"}`` of shape ``(n, B/n, ...)``; returns the new replicated state and per-device
    metrics (identical on every device, returned once). Same metrics and non-finite policy as
    ``optlab.train.step.make_train_step`` (no accumulation, no dynamic loss scaling)."""

    def forward(variables, x, key, model_state):
        if not model_state:
            out = apply_fn(variables, x, train=True, rngs={"dropout": key})
            return (out[0] if isinstance(out, tuple) else out), {}
        return apply_fn(variables, x, train=True, rngs={"dropout": key}, mutable=list(model_state))

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.rng, state.step)  # the jit path's key for this step
        device_key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
        x = batch["x"]
        if augment is not None:
            x = augment(jax.random.fold_in(device_key, 1 << 20), x)
        mask = batch["mask"].astype(jnp.float32)
        count = jnp.maximum(jax.lax.psum(jnp.sum(mask), axis_name), 1.0)

        def local_loss(p):  # this device's masked sum over the global count
            logits, new_model_state = forward(
                {"params": p, **state.model_state}, x, device_key, state.model_state
            )
            per_example = losses.per_example_loss(loss, logits, batch["y"])
            correct = jnp.zeros([])
            if loss == "cross_entropy":
                correct = jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * mask)
            part = jnp.sum(per_example * mask) / count
            return part, (new_model_state, correct)

        (part, (model_state, correct)), grads = jax.value_and_grad(local_loss, has_aux=True)(
            state.params
        )
        # psum of the weighted parts = the count-weighted mean over all devices' real examples
        loss_value = jax.lax.psum(part, axis_name)
        grads = jax.lax.psum(grads, axis_name)
        correct = jax.lax.psum(correct, axis_name)
        model_state = jax.lax.pmean(model_state, axis_name)  # batch stats: averaged after

        def sumsq(tree):
            return optax.tree.sum(
                jax.tree.map(lambda g: jnp.sum(jnp.square(g.astype(jnp.float32))), tree)
            )

        layer_sumsq = jnp.stack([sumsq(layer) for layer in _per_layer(grads)])
        finite = jnp.isfinite(loss_value) & jnp.isfinite(jnp.sum(layer_sumsq))
        apply = finite & (state.first_nonfinite[0] < 0) if stop_after_nonfinite else finite

        def do_update(_):
            updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss_value)
            norm = optax.tree.norm(updates) if monitor else jnp.zeros([])
            return optax.apply_updates(state.params, updates), opt_state, model_state, norm

        def skip(_):
            return state.params, state.opt_state, state.model_state, jnp.zeros([])

        if skip_nonfinite:
            new_params, opt_state, model_state, update_norm = jax.lax.cond(
                apply, do_update, skip, None
            )
        else:
            new_params, opt_state, model_state, update_norm = do_update(None)
        first_bad_layer = jnp.argmin(jnp.isfinite(layer_sumsq)).astype(jnp.int32)
        record = (state.first_nonfinite[0] < 0) & ~finite
        first_nonfinite = jnp.where(
            record, jnp.stack([state.step, first_bad_layer]), state.first_nonfinite
        )
        metrics = {
            "loss": loss_value,
            "learning_rate": jnp.asarray(learning_rate_fn(state.step), jnp.float32),
            "finite": apply,
            "loss_scale": state.loss_scale,
        }
        if monitor:
            metrics["grad_norm"] = jnp.sqrt(jnp.sum(layer_sumsq))
            metrics["layer_grad_norms"] = jnp.sqrt(layer_sumsq)
            metrics["update_ratio"] = update_norm / jnp.maximum(
                optax.tree.norm(state.params), 1e-12
            )
        if loss == "cross_entropy":
            metrics["accuracy"] = correct / count
        new_state = state._replace(
            step=state.step + 1,
            params=new_params,
            opt_state=opt_state,
            model_state=model_state,
            first_nonfinite=first_nonfinite,
            skipped=state.skipped + (~apply).astype(jnp.int32),
        )
        return new_state, metrics

    # Metrics are reduced over the axis, the same on every device: out_axes=None returns
    # them once instead of (n, ...) copies the host would then have to index every step.
    return jax.pmap(
        step, axis_name=axis_name, donate_argnums=0, devices=devices, out_axes=(0, None)
    )


class PmapAdapter:
    """What the host loop needs to run a pmap step where it runs a jit step.

    ``replicate`` (after init/restore) gives the loop a replicated state; ``unreplicate``
    (before evaluation, checkpoints and the end of the run) takes replica 0 back onto the
    jit path's shardings, so checkpoints hold the same unreplicated state as a jit run and
    resume into either path. ``wrap`` turns a pmapped step into ``step(state, batch)`` on a
    global batch ``(B, ...)``: it splits the batch into ``(n, B/n, ...)`` and returns
    replica 0's metrics (they are identical on all devices).
    """

    def __init__(self, devices, state_sharding):
        self.devices = list(devices)
        self.n = len(self.devices)
        self.state_sharding = state_sharding

    def replicate(self, state):
        # stacked on the host: the first pmap call puts replica i on device i
        return jax.tree.map(lambda a: np.stack([a] * self.n), jax.device_get(state))

    def unreplicate(self, state):
        if not is_replicated(state, self.n):
            return state
        return jax.device_put(jax.tree.map(lambda a: a[0], state), self.state_sharding)

    def split(self, batch: dict) -> dict:
        # a batch already put on the mesh's data axis: device i's rows stay on device i
        return {k: v.reshape(self.n, -1, *v.shape[1:]) for k, v in batch.items()}

    def wrap(self, pmapped: Callable) -> Callable:
        def step(state, batch):
            return pmapped(state, self.split(batch))

        return step


def is_replicated(state, n: int) -> bool:
    """Whether ``state`` carries the leading device axis of a pmap program (``step``: (n,))."""
    return np.ndim(state.step) == 1 and np.shape(state.step)[0] == n
