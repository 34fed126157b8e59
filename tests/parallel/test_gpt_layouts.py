"""The GPT under every parallel layout (issue 12, "Many devices and processes").

On 8 simulated CPU devices, a tiny GPT (tests/parallel/_gpt_layouts.py: 2 layers, 4 heads,
width 32, block 16, bytes, dropout 0) trained 20 steps on a small text corpus gives the
losses, parameters and optimizer state of one device under dp(8), fsdp(8), tp(2×4),
dp(4)×tp(2) and pmap(8), with every array laid out as its strategy's rules say; two local
processes reproduce one process; a checkpoint saved under fsdp(8) or tp(2×4) resumes under
dp(8) or one device and ends as the uninterrupted run does.

Tolerance: float32 with reductions split differently (per-device partial sums, all-reduces,
row-parallel matmuls summed over ``model``). Measured over the 20 steps, the largest gaps to
one device over the five layouts: losses 1.8e-7 relative, optimizer state 4.5e-8 absolute,
parameters 3.9e-6 absolute (tp 2×4; dp8 1.2e-6). The parameters' gap is made at step 1
(3.7e-6 after one step, measured): Adam's first update is α·g/(|g| + ε) with ε = 1e-8, and
for the elements whose gradient is comparable to ε (823 of them have |g| < 1e-6 at step 1,
e.g. rows of byte values the batch lacks) last-bit differences of g move the update by a
visible fraction of α = 1e-3. Asserted: rtol 1e-5 on the losses (as for the MLP and CNN,
test_equivalence.py); rtol 1e-5 with atol 2e-6 on the optimizer state (theirs); rtol 1e-5
with atol 2e-5 on the parameters (5× the measured gap, 2% of one Adam step).
"""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from optlab.parallel import param_specs
from optlab.parallel._distributed import launch_local, local_env
from optlab.train import loop
from tests.parallel._gpt_layouts import GPT_LAYOUTS, STEPS, GptRuns, gpt_flags, write_corpus

pytestmark = pytest.mark.slow  # 6 in-process layouts, 4 `optlab train` runs, 2 processes

RTOL, ATOL, PARAMS_ATOL = 1e-5, 2e-6, 2e-5


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """The corpus folder and the per-layout runs; token caches go to a temporary folder."""
    folder = write_corpus(tmp_path_factory.mktemp("gpt"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPTLAB_CACHE", str(folder / "cache"))
        yield folder, GptRuns(folder)


def _paths(tree) -> dict[str, object]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, P))
    return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in flat}


def _close(got, want, what, atol=ATOL):
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a), np.asarray(b), rtol=RTOL, atol=atol, err_msg=f"{what}{path}"
        )


@pytest.mark.parametrize("layout", list(GPT_LAYOUTS))
def test_gpt_layout_reproduces_one_device(gpt, layout):
    _, runs = gpt
    one, run = runs.get("one"), runs.get(layout)
    assert one.setup.mesh.devices.size == 1 and run.setup.mesh.devices.size == 8
    assert len(run.losses) == STEPS and np.all(np.isfinite(run.losses))
    assert abs(one.losses[0] - np.log(256)) < 0.3  # a fresh byte model: about ln 256
    assert run.losses[-1] < run.losses[0] - 0.4  # it trained
    np.testing.assert_allclose(run.losses, one.losses, rtol=RTOL)
    _close(run.state.params, one.state.params, "params", PARAMS_ATOL)
    _close(run.state.opt_state, one.state.opt_state, "opt_state")
    assert int(run.state.step) == STEPS and np.shape(run.state.step) == ()
    assert run.replicas_equal  # pmap: every replica identical after steps 1 and 20


# The PartitionSpec of each parameter, written out by hand from the strategies' rules
# (optlab.parallel._rules), for the shapes of the tiny GPT: q/k/v kernels (32, 4, 8),
# biases (4, 8); attention out (4, 8, 32); mlp_in (32, 128); mlp_out (128, 32); the tied
# token table wte (256, 32); positions wpe (16, 32); LayerNorm scales and biases (32,).
TP = {
    "attention/query/kernel": P(None, "model", None),  # column-parallel: split on the heads
    "attention/key/kernel": P(None, "model", None),
    "attention/value/kernel": P(None, "model", None),
    "attention/query/bias": P("model", None),
    "attention/key/bias": P("model", None),
    "attention/value/bias": P("model", None),
    "attention/out/kernel": P("model", None, None),  # row-parallel: split on its input heads
    "attention/out/bias": P(),
    "mlp_in/kernel": P(None, "model"),  # column-parallel
    "mlp_in/bias": P("model"),
    "mlp_out/kernel": P("model", None),  # row-parallel
    "mlp_out/bias": P(),
    "wte/embedding": P("model", None),  # vocabulary-parallel (tied: also the head)
}
# fsdp: each array on `data` along its largest dimension that data=8 divides (the first of
# equals): here every parameter, LayerNorm vectors included.
FSDP = {
    **{f"attention/{name}/kernel": P("data") for name in ("query", "key", "value")},  # 32 > 8
    **{f"attention/{name}/bias": P(None, "data") for name in ("query", "key", "value")},
    "attention/out/kernel": P(None, None, "data"),
    "attention/out/bias": P("data"),
    "mlp_in/kernel": P(None, "data"),
    "mlp_in/bias": P("data"),
    "mlp_out/kernel": P("data"),
    "mlp_out/bias": P("data"),
    **{
        f"{norm}/{name}": P("data")
        for norm in ("norm_attention", "norm_mlp", "norm_final")
        for name in ("scale", "bias")
    },
    "wte/embedding": P("data"),
    "wpe/embedding": P(None, "data"),
}


def _expected(strategy: str, path: str) -> P:
    table = {"fsdp": FSDP, "tp": TP, "dp+tp": TP}.get(strategy, {})
    matches = [spec for suffix, spec in table.items() if path.endswith(suffix)]
    if strategy == "fsdp":
        assert matches, path  # the table names every kind of fsdp parameter
    return matches[0] if matches else P()


@pytest.mark.parametrize("layout", [k for k in GPT_LAYOUTS if k != "pmap8"])
def test_gpt_state_is_laid_out_by_the_strategy_rules(gpt, layout):
    """After 20 steps, params and both Adam moments carry the specs written out above
    (read from the arrays' ``.sharding.spec``), the strategy's ``param_specs`` and the
    setup's plan, and the arrays really are split across devices."""
    _, runs = gpt
    run = runs.get(layout)
    flags = GPT_LAYOUTS[layout]
    strategy = flags[flags.index("--strategy") + 1] if "--strategy" in flags else "dp"
    specs = lambda tree: jax.tree.map(lambda a: a.sharding.spec, tree)  # noqa: E731
    got = specs(run.placed.params)
    want = {path: _expected(strategy, path) for path in _paths(got)}
    assert _paths(got) == want
    rules, fallbacks = param_specs(run.placed.params, run.setup.mesh, strategy)
    assert got == rules and not fallbacks
    assert got == specs(run.setup.abstract_state.params)
    assert specs(run.placed.opt_state) == specs(run.setup.abstract_state.opt_state)
    params_def = jax.tree.structure(run.placed.params)
    moments = [
        node
        for node in jax.tree.leaves(
            run.placed.opt_state, is_leaf=lambda n: jax.tree.structure(n) == params_def
        )
        if jax.tree.structure(node) == params_def
    ]
    assert len(moments) >= 2  # Adam's mu and nu (the clip and decay mask hold no such tree)
    for moment in moments:
        assert specs(moment) == got  # each moment laid out as its parameter
    wte = run.placed.params["wte"]["embedding"]
    shard_rows = {s.data.shape[0] for s in wte.addressable_shards}
    split = run.setup.mesh.shape["model" if strategy in ("tp", "dp+tp") else "data"]
    assert shard_rows == {256 // split if strategy != "dp" else 256}


def _train_cli(folder, out, *extra, steps=STEPS, devices=8):
    """``optlab train`` of the tiny GPT in a subprocess of ``devices`` CPU devices: a
    collective that deadlocks (XLA's CPU rendezvous aborts the process after 40 s) fails
    this test with the child's last words instead of aborting the whole session."""
    args = [*gpt_flags(folder, steps=steps), "--log-every", "1", "--out", str(out), *extra]
    proc = subprocess.run(
        [sys.executable, "-m", "optlab", "train", *args],
        env=local_env(devices),
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-1500:]}"


def _losses(out) -> np.ndarray:
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return np.array([r["train_loss"] for r in rows if "train_loss" in r])


@pytest.mark.parametrize(
    "first, then",
    [("fsdp8", "dp8"), ("tp2x4", "one")],
    ids=["fsdp8-to-dp8", "tp2x4-to-one-device"],
)
def test_gpt_checkpoint_saved_under_one_layout_resumes_under_another(gpt, first, then):
    # `optlab train` 10 steps under `first` with a checkpoint at step 10, the same command
    # resumed to 20 steps under `then`: the 20 logged losses and the final state are those
    # of the uninterrupted one-device run (trained in-process by the shared runs).
    folder, runs = gpt
    out = folder / f"resume-{first}-{then}"
    layout = lambda name: [] if name == "one" else GPT_LAYOUTS[name]  # noqa: E731
    half = ["--checkpoint-every", "10", "--eval-every", "10"]
    _train_cli(folder, out, *half, *layout(first), steps=10)
    assert len(_losses(out)) == 10
    _train_cli(folder, out, *half, *layout(then))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == STEPS
    assert summary["mesh"] == ({"data": 1} if then == "one" else {"data": 8})  # the second's
    straight = runs.get("one")
    np.testing.assert_allclose(_losses(out), straight.losses, rtol=RTOL)
    _, setup, state = loop.restore_run(str(out))  # the step-20 checkpoint, on `then`'s mesh
    assert int(state.step) == STEPS and setup.mesh.devices.size == (1 if then == "one" else 8)
    assert {a.sharding.spec for a in jax.tree.leaves(state.params)} == {P()}  # replicated
    _close(jax.device_get(state.params), straight.state.params, "params", PARAMS_ATOL)
    _close(jax.device_get(state.opt_state), straight.state.opt_state, "opt_state")


def test_gpt_two_processes_reproduce_one_process(gpt, tmp_path):
    # dp(2)×tp(2) over 4 devices: one process of 4 devices against 2 processes of 2 devices
    # each (jax.distributed on loopback, gloo collectives), each process reading its own
    # share of the token windows. Same logged losses and evaluation, 20 steps.
    folder, _ = gpt
    args = [*gpt_flags(folder), "--mesh", "data=2,model=2", "--strategy", "dp+tp"]
    args += ["--log-every", "1", "--eval-every", "20"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    _train_cli_args = [sys.executable, "-m", "optlab", "train", *args, "--out", str(single)]
    proc = subprocess.run(
        _train_cli_args, env=local_env(4), timeout=300, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    launch_local(
        2,
        [*args, "--out", str(multi)],
        devices_per_process=2,
        timeout=300,
        init_timeout=60,
        log_dir=str(tmp_path / "logs"),
    )
    one = json.loads((single / "summary.json").read_text())
    two = json.loads((multi / "summary.json").read_text())
    assert two["devices"] == one["devices"] == 4 and two["steps"] == one["steps"] == STEPS
    assert two["mesh"] == one["mesh"] == {"data": 2, "model": 2}
    losses_one, losses_two = _losses(single), _losses(multi)
    assert len(losses_one) == len(losses_two) == STEPS  # process 1 logs nothing
    np.testing.assert_allclose(losses_two, losses_one, rtol=RTOL)
    # 24 files hash to train/val only (the test split is empty, so it is not evaluated)
    assert "test_loss" not in one and "test_loss" not in two
    for key in ("train_loss", "val_loss", "val_perplexity", "val_bits_per_byte"):
        np.testing.assert_allclose(two[key], one[key], rtol=RTOL, err_msg=key)
