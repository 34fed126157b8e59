"""``--parallel pmap``: the train step as a ``jax.pmap`` program.

The state is replicated with a leading device axis ``(n, ...)``, each batch is split over a
leading device axis ``(n, B/n, ...)``, and every device computes the gradient of its own
examples; the gradients are then reduced across devices through the axis name ``"batch"``.
This is the program people wrote before ``jit`` with shardings; the jit path
(``optlab.train.step``) is untouched; both take the same ``StepSpec``.

The mean is weighted by each device's count of real examples (the mask), so a padded last
batch biases nothing: ``psum(masked loss sums) / psum(counts)`` — the same number as the jit
path's mean over the global batch. (``pmean`` of per-device means would weight a device of
padding like one of real examples.)

Batch normalization (lecture 03's SyncBatchNorm): normalizing with the statistics of the
B/n examples a device holds would make the forward pass depend on the device count. So the
step is built from a model whose ``nn.BatchNorm`` carries ``axis_name=AXIS``:
``optlab.train.setup`` clones optlab's MLP and CNN with ``batchnorm_axis_name=AXIS`` for
this path (``PMAP_AXIS`` in ``optlab.parallel``; your own model sets
``nn.BatchNorm(axis_name=PMAP_AXIS)`` itself). Each device's batch mean and mean square are
then ``lax.pmean``-averaged inside the forward pass: with equal per-device shares that is
the global batch's mean and variance, so activations, loss, gradients and the running
``batch_stats`` equal the jit path's (which normalizes the global batch as one array), up
to float32 reduction order. The gradient flows through the ``pmean`` too, as it does
through the global mean under jit. Padded rows of a partial batch count in the statistics
on both paths alike (the jit path gives ``BatchNorm`` no mask either; they are copies of
real examples of the epoch, and their loss weight is 0). After the step the
``batch_stats`` are ``pmean``-averaged once more: a no-op up to rounding for a
synchronized model, and for a model without an axis name it keeps the replicas equal
(running means of per-device statistics; their variance then lacks the spread of the
device means, and the forward pass uses per-device statistics: not the jit path's numbers).

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

from optlab.errors import ConfigError
from optlab.parallel import PMAP_AXIS
from optlab.train.spec import StepSpec
from optlab.train.state import TrainState
from optlab.train.step import Gradient, batch_loss, finish_step, training_forward

AXIS = PMAP_AXIS


def make_pmap_step(
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    spec: StepSpec,
    *,
    axis_name: str = AXIS,
    devices: Any = None,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """``jax.pmap`` of a train step: ``state`` replicated ``(n, ...)``, batch ``{"x", "y",
    "mask"}`` of shape ``(n, B/n, ...)``; returns the new replicated state and per-device
    metrics (identical on every device, returned once). The same ``StepSpec`` as
    ``optlab.train.step.make_train_step`` (no accumulation, no dynamic loss scaling).
    ``apply_fn``'s batch norm, if any, should average its statistics over ``axis_name``
    (SyncBatchNorm, see the module docstring) to compute the jit path's numbers."""

    if spec.accumulate > 1 or spec.loss_scaling:
        raise ValueError("make_pmap_step: no accumulation or loss scaling under pmap")
    forward = training_forward(apply_fn)

    def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.rng, state.step)  # the jit path's key for this step
        device_key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
        x = batch["x"]
        if spec.augment is not None:
            x = spec.augment(jax.random.fold_in(device_key, 1 << 20), x)
        mask = batch["mask"].astype(jnp.float32)
        count = jnp.maximum(jax.lax.psum(jnp.sum(mask), axis_name), 1.0)

        def local_loss(p):  # this device's masked sum over the global count
            logits, new_model_state = forward(
                {"params": p, **state.model_state}, x, device_key, state.model_state
            )
            part, correct = batch_loss(spec, logits, batch, count)
            return part, (new_model_state, correct)

        (part, (model_state, correct)), grads = jax.value_and_grad(local_loss, has_aux=True)(
            state.params
        )
        # psum of the weighted parts = the count-weighted mean over all devices' real examples
        loss_value = jax.lax.psum(part, axis_name)
        grads = jax.lax.psum(grads, axis_name)
        correct = jax.lax.psum(correct, axis_name)
        # batch stats: already global with a synchronized BatchNorm; replicas kept equal
        model_state = jax.lax.pmean(model_state, axis_name)

        gradient = Gradient(loss_value, grads, model_state, correct, count)
        return finish_step(spec, tx, state, gradient)

    # Metrics are reduced over the axis, the same on every device: out_axes=None returns
    # them once instead of (n, ...) copies the host would then have to index every step.
    return jax.pmap(
        step, axis_name=axis_name, donate_argnums=0, devices=devices, out_axes=(0, None)
    )


def check_pmap(cfg: Any, mesh) -> None:
    """``--parallel``: jit, or pmap under the layouts a pmap program can express (a
    ``ConfigError`` naming the flag and the fix otherwise)."""
    dc, tc = cfg.data, cfg.train
    if tc.parallel not in ("jit", "pmap"):
        raise ConfigError(f"train.parallel: unknown {tc.parallel!r}; choose jit or pmap")
    if tc.parallel != "pmap":
        return
    if tc.strategy != "dp":
        raise ConfigError(
            f"train.parallel pmap replicates the state: use train.strategy dp, not {tc.strategy}"
        )
    if tc.accumulate > 1:
        raise ConfigError(
            "train.parallel pmap does not accumulate gradients: use train.accumulate 1"
        )
    if tc.precision == "fp16":
        raise ConfigError(
            "train.parallel pmap has no dynamic loss scaling: use train.precision fp32 or bf16"
        )
    if any(size > 1 for axis, size in mesh.shape.items() if axis != "data"):
        raise ConfigError(
            "train.parallel pmap splits the batch only: use a train.mesh with data axis alone"
        )
    if jax.process_count() > 1:
        raise ConfigError(
            "train.parallel pmap runs in one process: use train.parallel jit for several"
        )
    n = mesh.size
    if dc.mode != "full" and dc.batch_size % n:
        raise ConfigError(
            f"data.batch_size {dc.batch_size} must divide by the {n} devices of train.parallel pmap"
        )


def sync_batchnorm(model: Any, apply_fn: Callable, layered: bool) -> Callable:
    """The ``apply_fn`` of the pmap step: for optlab's MLP/CNN (``layered``) with batch norm,
    a clone whose BatchNorm averages its statistics over ``AXIS`` (SyncBatchNorm, lecture 03)
    so that every device normalizes with the global batch's statistics, as the jit path
    does; the same parameters and paths. Other models are used as given."""
    if layered and getattr(model, "batchnorm", False):
        return model.clone(batchnorm_axis_name=AXIS).apply
    return apply_fn


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
