"""The trainer on 8 simulated devices (issue 5): FSDP's shards, a checkpoint that restores
onto other layouts with the intended shardings and continues with the same numbers, and bad
layouts as one-line errors. The 20-step equivalence of every strategy with one device (MLP
and CNN) is tests/parallel/test_equivalence.py."""

import jax
import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.parallel import param_specs
from optlab.train import run
from optlab.train.checkpoint import Checkpointer
from optlab.train.setup import build_setup

FLAGS = ["--dataset", "digits", "--model-arg", "widths=[32,32]", "--batch-size", "64",
         "--steps", "20", "--log-every", "10", "--no-progress"]  # fmt: skip


def _run(tmp_path, name, *extra):
    args = cli.parser().parse_args(["train", *FLAGS, "--out", str(tmp_path / name), *extra])
    return run(config_from_args(args), progress=False)


def test_fsdp_shards_params_and_state(tmp_path):
    result = _run(tmp_path, "fsdp", "--mesh", "data=8", "--strategy", "fsdp")
    kernel = result.state.params["Dense_0"]["kernel"]  # (64, 32): 64 divides by 8
    assert kernel.addressable_shards[0].data.shape == (8, 32)
    mu = result.state.opt_state[0].mu["Dense_0"]["kernel"]
    assert mu.addressable_shards[0].data.shape == (8, 32)


def _restore(out, *flags):
    """(setup, state): the run's newest checkpoint restored under the layout of ``flags``."""
    args = cli.parser().parse_args(["train", *FLAGS, "--out", str(out), *flags])
    setup = build_setup(config_from_args(args))
    checkpointer = Checkpointer(str((out / "checkpoints").absolute()))
    try:
        state, _ = checkpointer.restore_latest_good(setup.abstract_state)
    finally:
        checkpointer.close()
    return setup, state


RESTORE_LAYOUTS = [  # (flags, strategy, per-device shard of Dense_0/kernel (64, 32))
    (["--mesh", "data=8"], "dp", (64, 32)),  # the layout it was saved under
    (["--mesh", "data=4,model=2", "--strategy", "dp+tp"], "dp+tp", (64, 16)),
    (["--mesh", "data=8", "--strategy", "fsdp"], "fsdp", (8, 32)),
    (["--mesh", "data=8", "--strategy", "zero1"], "zero1", (64, 32)),
]


@pytest.mark.slow  # several runs restored and resumed: the full tier
def test_checkpoint_restores_across_layouts(tmp_path):
    # Save under dp(8), continue under dp(4)×tp(2), then on one device: the same numbers as
    # an uninterrupted single-device run.
    straight = _run(tmp_path, "straight", "--steps", "30")
    _run(tmp_path, "moved", "--steps", "10", "--mesh", "data=8")
    # The step-10 checkpoint restored under the same mesh and under others: every array
    # (params, optimizer state, counters) carries the restoring layout's sharding, the
    # params the strategy's PartitionSpecs, and the values are the saved ones.
    saved = None
    for flags, strategy, shard in RESTORE_LAYOUTS:
        setup, state = _restore(tmp_path / "moved", *flags)
        same = jax.tree.map(lambda a, s: a.sharding == s.sharding, state, setup.abstract_state)
        assert all(jax.tree.leaves(same)), strategy
        specs = jax.tree.map(lambda a: a.sharding.spec, state.params)
        assert specs == param_specs(state.params, setup.mesh, strategy)[0]
        kernel = state.params["Dense_0"]["kernel"]
        assert kernel.addressable_shards[0].data.shape == shard
        mu = state.opt_state[0].mu["Dense_0"]["kernel"]  # zero1 splits only the state
        assert mu.addressable_shards[0].data.shape == ((8, 32) if strategy == "zero1" else shard)
        saved = saved or jax.device_get(state)
        for a, b in zip(
            jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(saved), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    _run(tmp_path, "moved", "--steps", "20", "--mesh", "data=4,model=2", "--strategy", "dp+tp")
    moved = _run(tmp_path, "moved", "--steps", "30")
    for got, want in zip(jax.tree.leaves(moved.state.params),
                         jax.tree.leaves(straight.state.params), strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=2e-5)


BAD_LAYOUTS = [
    (["--mesh", "data=3"], "--mesh"),  # 3 does not divide the 8 devices
    (["--mesh", "data=16"], "--mesh"),  # more than the devices
    (["--mesh", "data=8", "--batch-size", "36"], "--batch-size"),  # 36 over 8 shards
    (["--mesh", "data=8", "--mode", "online"], "--mode online"),
    (["--mesh", "data=4", "--strategy", "tp"], "model"),  # tp needs a model axis
    (["--strategy", "pipeline"], "--strategy"),
]


@pytest.mark.parametrize(("flags", "names"), BAD_LAYOUTS, ids=[" ".join(f) for f, _ in BAD_LAYOUTS])
def test_bad_layouts_are_one_line_errors(tmp_path, capsys, flags, names):
    out = tmp_path / "run"
    assert cli.main(["train", *FLAGS, "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and names in err, err
    assert not out.exists()
