"""Smoke test of benchmarks/lm_throughput.py: a --quick run of one round prints every
contestant's tokens/s and FLOP rate and the paired ratios with their targets (not the
timings); the contestants' batches are the trainer's; bad flags are refused."""

import contextlib
import importlib.util
import io
import pathlib
import re
import sys

import numpy as np
import pytest

import optlab.data
from optlab import config as config_lib
from optlab.train import lm

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "lm_throughput.py"
NUMBER = r"\d+(?:\.\d+)?"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("lm_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lm_throughput"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("lm_throughput", None)


@pytest.mark.slow  # compiles the GPT step twice and torch.compile: 25-50 s on 2 cores
def test_quick_run_prints_every_contestant_and_ratio(bench):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.main(["--quick", "--rounds", "1"])
    printed = out.getvalue()
    print(printed)  # the numbers, for whoever runs it with -s
    assert re.search(rf"matmul probe {NUMBER} GFLOP/s", printed)
    assert re.search(r"\(a\) GPT 4x4x128, block 64, batch 12 +\[0\.8\dM params", printed)
    assert "(b) GPT" not in printed  # --quick: the small size only
    names = ["optlab", "bare"] + (["eager", "compile"] if HAS_TORCH else [])
    for name in names:
        row = re.search(
            rf"^  {name} +({NUMBER}) tokens/s .* ({NUMBER}) GFLOP/s = +({NUMBER})% of the matmul",
            printed,
            re.M,
        )
        assert row, name
        assert float(row.group(1)) > 0 and float(row.group(2)) > 0
    trained = re.search(
        r"mean train loss over the run, 8 steps \(optlab 9: .*?\): (.*)$", printed, re.M
    )
    losses = dict(pair.split() for pair in trained.group(1).split(", "))
    assert sorted(losses) == sorted(names)
    assert all(0 < float(v) < 6.0 for v in losses.values()), losses  # log 256 = 5.55 at start
    # the same init, batches and AdamW: the means differ only by optlab's one extra step
    # (a loss falling < 1 nat over these 9 warm-up steps moves a mean of 9 by < 0.1)
    assert abs(float(losses["optlab"]) - float(losses["bare"])) < 0.1, losses
    ratio = rf"{NUMBER} +\(per-round {NUMBER}\.\.{NUMBER}\)"
    assert re.search(rf"optlab/bare +{ratio} +target >= 0\.95: (MET|MISSED)", printed)
    if HAS_TORCH:
        assert re.search(rf"optlab/compile +{ratio} +target >= 1\.10: (MET|MISSED)", printed)
        assert re.search(rf"bare/eager +{ratio}$", printed, re.M)
    else:
        assert "optlab/compile: skipped (torch is not installed)" in printed


@pytest.fixture(scope="module")
def tiny_tokens(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_throughput")
    text = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(400))
    (root / "corpus.txt").write_text(text)
    return optlab.data.prepare_text(root / "corpus.txt", root / "tokens")


def test_contestants_get_the_trainers_batches(bench, tiny_tokens):
    size = bench.SIZES["small"]
    cfg = bench.make_config(size, 10, str(tiny_tokens), "unused")
    cfg, _ = config_lib.resolve_recipe(cfg)
    data = lm.load_token_data(cfg, size.block)
    trainer = lm.train_iterator(
        data, batch_size=size.batch, seed=cfg.train.seed, process_index=0, process_count=1
    )
    ours = bench.same_batches(data, cfg, 3)
    for x, y in ours:
        batch = next(trainer)
        assert x.shape == (12, 64) and np.array_equal(x, batch["x"])
        assert np.array_equal(y, batch["y"])
    assert not np.array_equal(ours[0][0], ours[1][0])  # different windows each step
    step = bench._checked(lambda state, batch: (state, {}), ours[1][0])
    with pytest.raises(AssertionError, match="not the same batches"):
        step(None, {"x": ours[0][0]})


def test_the_contestants_optimizer_is_the_recipes(bench, tiny_tokens):
    cfg = bench.make_config(bench.SIZES["small"], 10, str(tiny_tokens), "unused")
    cfg, _ = config_lib.resolve_recipe(cfg)
    adamw = bench.AdamW.of(cfg.optimizer, 10)
    assert (adamw.b1, adamw.b2, adamw.weight_decay, adamw.clip) == (0.9, 0.99, 0.1, 1.0)
    # linear warm-up over 100 steps from 0 to 1e-3 (the schedule spans the recipe's 2,000)
    np.testing.assert_allclose(adamw.rates[:3], [0.0, 1e-5, 2e-5], rtol=1e-6, atol=1e-12)


@pytest.mark.slow  # importing torch alone takes ~5 s
@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_torch_copy_has_the_flax_models_parameter_count(bench):
    size = bench.SIZES["small"]
    net = sys.modules["lm_torch"].torch_gpt(size, 256)  # imported by lm_throughput
    flax = bench.Bare(size, 256, bench.AdamW(1e-3, 0.9, 0.99, 1e-8, 0.1, 1.0, np.ones(2)), [], 0)
    import jax

    n_flax = sum(a.size for a in jax.tree.leaves(flax.params))
    v, t, d, layers = 256, 64, 128, 4  # wte, wpe, per block 12·d² + 13·d, the final LN
    hand = v * d + t * d + layers * (12 * d * d + 13 * d) + 2 * d
    assert sum(p.numel() for p in net.parameters()) == n_flax == hand == 834_304


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--rounds", "0"], "--rounds must be at least 1"), (["--size", "huge"], "'huge'")],
)
def test_bad_flags_are_refused(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err
