"""One device vs every layout (issue 5): dp(8), dp(4)×tp(2), fsdp(8), zero1(8), tp(2×4),
krizhevsky(4×2), pmap(8) and ``--remat``, for the MLP and for the CNN with batch norm,
over 20 steps of the trainer's own compiled steps: the same losses, parameters, optimizer
state and batch statistics, and every array laid out as its strategy says.

The runs (tests/parallel/_layouts.py) start from one initial state and train in-process;
a padded batch (the end of epoch 1, step 11) is among the steps on every layout. No
dropout: the pmap path draws per-device dropout masks, not the jit path's
(optlab.train.pmap_step), so with dropout the paths differ by design. The CNN's batch norm
under pmap is synchronized over the devices (SyncBatchNorm); without that, the same
comparison fails by far (see test_pmap.py).

Tolerance: float32, the same data and order; layouts differ only in how reductions are
split (per-device partial sums, all-reduces). Measured over 20 Adam steps, the largest gap
to one device over all layouts: losses 2.1e-7 relative; parameters 1.2e-7, optimizer
state 6e-8 and batch statistics 4.8e-7 absolute (``--remat``: bit for bit). Asserted:
rtol 1e-5 for the losses; rtol 1e-5 with atol 2e-6 for parameters, optimizer state and
batch statistics (Adam's normalized step can turn last-bit differences of tiny gradients
into updates up to α = 1e-3; over ten times the measured gaps leaves room for other CPUs'
reduction orders).
"""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from optlab.parallel import param_specs
from tests.parallel._layouts import LAYOUTS, MODELS, STEPS

RTOL, ATOL = 1e-5, 2e-6


def _close(got, want, what):
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL, err_msg=f"{what}{path}"
        )


# The quick tier runs the MLP under every layout and the CNN (BatchNorm's statistics over the
# global batch) under dp8; the CNN's other layouts run in the full tier.
CASES = [
    pytest.param(
        model, layout, id=f"{model}-{layout}",
        marks=() if model == "mlp" or layout == "dp8" else pytest.mark.slow,
    )
    for model in MODELS
    for layout in LAYOUTS
]  # fmt: skip


@pytest.mark.parametrize(("model", "layout"), CASES)
def test_layout_reproduces_one_device(layout_runs, model, layout):
    one = layout_runs.get(model, "one")
    run = layout_runs.get(model, layout)
    assert len(run.losses) == STEPS and np.all(np.isfinite(run.losses))
    assert run.losses[-1] < run.losses[0]  # it trained
    assert run.setup.train_iter.steps_per_epoch < STEPS  # a padded batch was among the steps
    np.testing.assert_allclose(run.losses, one.losses, rtol=RTOL)
    _close(run.state.params, one.state.params, "params")
    _close(run.state.opt_state, one.state.opt_state, "opt_state")
    _close(run.state.model_state, one.state.model_state, "model_state")
    assert int(run.state.step) == STEPS and np.shape(run.state.step) == ()
    if model == "cnn":
        assert set(run.state.model_state["batch_stats"]) == {"BatchNorm_0", "BatchNorm_1"}
    assert run.replicas_equal


@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k not in ("pmap8", "remat")])
def test_state_keeps_the_strategy_layout_after_steps(layout_runs, layout):
    """After 20 steps, params and optimizer state carry the PartitionSpecs the strategy's
    rules give (the jitted step's out_shardings keep the layout the state was put in)."""
    run = layout_runs.get("cnn", layout)
    flags = LAYOUTS[layout]
    strategy = flags[flags.index("--strategy") + 1] if "--strategy" in flags else "dp"
    specs = lambda tree: jax.tree.map(lambda a: a.sharding.spec, tree)  # noqa: E731
    planned = specs(run.setup.abstract_state)
    rules, _ = param_specs(run.placed.params, run.setup.mesh, strategy)
    assert specs(run.placed.params) == planned.params == rules
    assert specs(run.placed.opt_state) == planned.opt_state
    split_params = {k for k, v in rules.items() if any(s != P() for s in jax.tree.leaves(v))}
    split_state = [s for s in jax.tree.leaves(planned.opt_state) if s != P()]
    # the 10-class head splits over model=2 but falls back to replicated over model=4
    head = {"Dense_0"} if 10 % run.setup.mesh.shape.get("model", 1) == 0 else set()
    expected = {
        "dp": set(),
        "zero1": set(),
        "krizhevsky": head,  # conv layers data-parallel, the dense head model-parallel
        "fsdp": {"Conv_0", "Conv_1", "Dense_0", "BatchNorm_0", "BatchNorm_1"},  # all on data=8
    }.get(strategy, {"Conv_0", "Conv_1"} | head)
    assert split_params == expected
    assert bool(split_state) == (strategy != "dp")  # zero1 and fsdp split the moments
