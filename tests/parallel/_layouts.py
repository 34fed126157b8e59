"""The same 20 training steps under each parallel layout, trained once per test session
(the ``layout_runs`` fixture of conftest.py) and shared by test_equivalence and test_pmap.

Every layout starts from the same initial state (initialized once per model on one device,
then put onto the layout's shardings) and runs the trainer's own compiled train step
(``build_setup``) in-process, without evaluation, checkpoints or logs; it pulls its losses
once at the end, so each layout costs one compilation of its step.
"""

import jax
import numpy as np

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train.pmap_step import is_replicated
from optlab.train.setup import build_setup

STEPS = 20
# Batch 128 on digits' 1294 training examples: step 11 ends the first epoch with a padded
# batch (14 real rows, 114 padded; under pmap devices 1-7 then hold padding only).
FLAGS = ["--dataset", "digits", "--batch-size", "128", "--steps", str(STEPS), "--no-progress"]
MODELS = {
    "mlp": ["--model", "mlp", "--model-arg", "widths=[32,32]"],
    "cnn": ["--model", "cnn", "--model-arg", "channels=[8,8]", "--model-arg", "batchnorm=true"],
}
LAYOUTS = {
    "dp8": ["--mesh", "data=8"],
    "dp4xtp2": ["--mesh", "data=4,model=2", "--strategy", "dp+tp"],
    "fsdp8": ["--mesh", "data=8", "--strategy", "fsdp"],
    "zero1": ["--mesh", "data=8", "--strategy", "zero1"],
    "tp2x4": ["--mesh", "data=2,model=4", "--strategy", "tp"],
    "krizhevsky": ["--mesh", "data=4,model=2", "--strategy", "krizhevsky"],
    "pmap8": ["--parallel", "pmap", "--mesh", "data=8"],
    "remat": ["--remat"],  # one device, each layer rematerialized in the backward pass
}


class Run:
    def __init__(self, setup, losses, state, placed, replicas_equal):
        self.setup = setup  # the layout's Setup (mesh, abstract_state, ...)
        self.losses = losses  # (STEPS,) float32
        self.state = state  # the final TrainState on the host
        self.placed = placed  # the final TrainState as the layout placed it
        self.replicas_equal = replicas_equal  # pmap: all replicas identical after each step


def _setup(tmp, model, flags):
    args = ["train", *FLAGS, *MODELS[model], *flags, "--out", str(tmp / "unused")]
    return build_setup(config_from_args(cli.parser().parse_args(args)))


def _same_replicas(state) -> bool:
    return all(
        np.array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))
        for leaf in jax.tree.leaves(jax.device_get((state.params, state.model_state)))
    )


def _train(setup, initial) -> Run:
    state = jax.device_put(initial, jax.tree.map(lambda a: a.sharding, setup.abstract_state))
    state = setup.replicate(state)
    replicated = is_replicated(state, jax.device_count())
    losses, replicas_equal = [], True
    for _ in range(STEPS):
        batch = jax.device_put(setup.next_batch(), setup.batch_sharding)
        state, metrics = setup.train_step(state, batch)
        losses.append(metrics["loss"])
        if replicated and setup.train_iter.step in (1, STEPS):  # a few pulls, not every step
            replicas_equal &= _same_replicas(state)
    placed = setup.unreplicate(state)
    losses = np.asarray(jax.device_get(losses))
    return Run(setup, losses, jax.device_get(placed), placed, replicas_equal)


class Runs:
    """Trains each (model, layout) once, on first use; layout ``"one"`` is one device."""

    def __init__(self, tmp):
        self.tmp, self.cache, self.initial = tmp, {}, {}

    def get(self, model: str, layout: str) -> Run:
        if model not in self.initial:
            one = _setup(self.tmp, model, [])
            self.initial[model] = jax.device_get(one.init_state())
            self.cache[model, "one"] = _train(one, self.initial[model])
        if (model, layout) not in self.cache:
            setup = _setup(self.tmp, model, LAYOUTS[layout])
            self.cache[model, layout] = _train(setup, self.initial[model])
        return self.cache[model, layout]
