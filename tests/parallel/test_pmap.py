"""--parallel pmap: a jax.pmap program (replicated state, batch split over devices,
count-weighted psum of gradients) against the jit path on the same 8 simulated devices.

Tolerance: float32, the same data and order; the programs differ only in reduction order
(per-device partial sums then an all-reduce vs XLA's own split), so after 20 Adam steps
losses agree to rtol 1e-5 and parameters to rtol 1e-4 / atol 1e-5 (Adam's normalized
update amplifies last-bit differences of small gradients a little).
"""

import json

import jax
import numpy as np
import pytest

from optlab import cli
from optlab._cli_train import config_from_args
from optlab.config import ConfigError
from optlab.train import loop
from optlab.train.checkpoint import Checkpointer

TINY = ["--dataset", "digits", "--model-arg", "widths=[32]", "--batch-size", "32",
        "--no-progress", "--log-every", "1", "--steps", "20"]  # fmt: skip


def _cfg(out, *extra):
    return config_from_args(cli._parser().parse_args(["train", *TINY, "--out", str(out), *extra]))


def _run(out, *extra):
    result = loop.run(_cfg(out, *extra), progress=False)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    return result, np.array(losses)


def _close(a, b, rtol=1e-4, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


PMAP = ("--parallel", "pmap", "--mesh", "data=8")


def test_pmap_equals_jit_dp_and_one_device(tmp_path):
    one, l1 = _run(tmp_path / "one")
    dp, l8 = _run(tmp_path / "dp", "--mesh", "data=8")
    pm, lp = _run(tmp_path / "pmap", *PMAP)
    assert len(lp) == 20
    np.testing.assert_allclose(lp, l8, rtol=1e-5)
    np.testing.assert_allclose(lp, l1, rtol=1e-5)
    _close(pm.state.params, dp.state.params)
    _close(pm.state.params, one.state.params)
    assert int(pm.state.step) == 20  # the result is the unreplicated state
    assert np.shape(pm.state.step) == ()
    assert pm.summary["test_accuracy"] == pytest.approx(dp.summary["test_accuracy"], abs=0.01)


def test_pmap_batchnorm_statistics_are_averaged(tmp_path):
    from optlab.parallel._pmap import is_replicated
    from optlab.train.setup import build_setup

    bn = ("--model-arg", "batchnorm=true")
    cfg = _cfg(tmp_path / "s", *PMAP, *bn)
    setup = build_setup(cfg)
    state = setup.replicate(setup.init_state())
    assert is_replicated(state, 8)
    for _ in range(5):
        batch = setup.next_batch()
        state, _ = setup.train_step(state, jax.device_put(batch, setup.batch_sharding))
    stats = jax.device_get(state.model_state["batch_stats"])
    for leaf in jax.tree.leaves(stats):
        assert leaf.shape[0] == 8
        np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))  # all replicas

    # Against the jit path (global-batch statistics): the running means agree closely (the mean
    # of equal-sized per-device means is the global mean); the variances are a bit smaller
    # (per-device variances lack the spread of the device means) — see _pmap's docstring.
    pm = loop.run(_cfg(tmp_path / "p", *PMAP, *bn), progress=False).state
    dp = loop.run(_cfg(tmp_path / "j", "--mesh", "data=8", *bn), progress=False).state
    for path, a in jax.tree_util.tree_leaves_with_path(pm.model_state["batch_stats"]):
        b = dict(jax.tree_util.tree_leaves_with_path(dp.model_state["batch_stats"]))[path]
        a, b = np.asarray(a), np.asarray(b)
        scale = np.abs(b).mean() + 1e-6
        assert np.abs(a - b).mean() / scale < 0.25, path


def test_pmap_checkpoint_is_unreplicated_and_resumes_into_jit(tmp_path):
    out = tmp_path / "run"
    half = ("--checkpoint-every", "10", "--eval-every", "10")
    loop.run(_cfg(out, *PMAP, *half, "--steps", "10"), progress=False)
    _, setup, state = loop.restore_run(str(out))
    assert np.shape(state.step) == () and int(state.step) == 10
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(setup.abstract_state), strict=True):
        assert a.shape == b.shape
    # resume the pmap checkpoint as a jit dp run, against a straight jit run of 20 steps
    resumed = loop.run(_cfg(out, "--mesh", "data=8", *half), progress=False).state
    straight = loop.run(_cfg(tmp_path / "jit", "--mesh", "data=8", *half), progress=False).state
    assert int(resumed.step) == 20
    _close(resumed.params, straight.params)
    ck = Checkpointer(str((out / "checkpoints").absolute()))
    try:
        assert ck.restore_latest_good(setup.abstract_state) is not None
    finally:
        ck.close()


@pytest.mark.parametrize(
    "extra, flag",
    [
        (("--strategy", "fsdp"), "--strategy"),
        (("--accumulate", "2"), "--accumulate"),
        (("--batch-size", "36"), "--batch-size"),
        (("--parallel", "pmapp"), "--parallel"),
    ],
)
def test_pmap_bad_flags(tmp_path, extra, flag):
    from optlab.train.setup import build_setup

    args = [*PMAP, *extra] if extra[0] != "--parallel" else extra
    with pytest.raises(ConfigError) as err:
        build_setup(_cfg(tmp_path, *args))
    message = str(err.value)
    assert flag in message and "\n" not in message
