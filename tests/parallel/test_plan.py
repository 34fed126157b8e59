"""plan's per-device bytes against arrays actually placed, and a jitted step with these
shardings on a dp(4)×tp(2) mesh of Auto axes against one device."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import optlab
from optlab.config import ConfigError, RunConfig
from optlab.models import create_model
from optlab.parallel import (
    GRADIENTS_NOTE,
    STRATEGIES,
    abstract_mesh,
    make_mesh,
    opt_state_specs,
    param_specs,
    plan,
    shardings,
)


def materialize(abstract, seed=0):
    keys = iter(jax.random.split(jax.random.key(seed), len(jax.tree.leaves(abstract))))
    return jax.tree.map(lambda s: jax.random.normal(next(keys), s.shape, s.dtype), abstract)


def bytes_on(device, tree):
    """Bytes of ``tree``'s placed arrays that live on ``device``."""
    return sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(tree)
        for shard in leaf.addressable_shards
        if shard.device == device
    )


def test_fsdp_bytes_are_an_eighth_as_planned(params_of):
    mesh = make_mesh("data=8")
    params = materialize(params_of("mlp", (64,)))
    tx = optlab.adam(1e-3)
    specs, fallbacks = param_specs(params, mesh, "fsdp")
    # From the specs alone: an array split on data holds 1/8 per device, a fallback all of it.
    by_specs = sum(
        leaf.nbytes // (8 if spec != P() else 1)
        for leaf, spec in zip(jax.tree.leaves(params), jax.tree.leaves(specs), strict=True)
    )
    full = sum(leaf.nbytes for leaf in jax.tree.leaves(params))
    assert [f.path for f in fallbacks] == ["Dense_2/bias"]
    assert by_specs == (full - 40) // 8 + 40  # the 10-class bias stays whole
    assert abs(by_specs / full - 1 / 8) < 0.002

    placed = jax.device_put(params, shardings(specs, mesh))
    o_specs = opt_state_specs(tx, jax.eval_shape(tx.init, params), params, specs, mesh, "fsdp")
    state = jax.jit(tx.init, out_shardings=shardings(o_specs, mesh))(placed)
    device = mesh.devices.flat[3]
    predicted = plan(params, tx, mesh, ["dp", "fsdp", "zero1"])
    assert bytes_on(device, placed) == by_specs == predicted["fsdp"].params
    assert bytes_on(device, state) == predicted["fsdp"].opt_state == 2 * by_specs + 2 * 4
    assert predicted["dp"].params == predicted["zero1"].params == full
    assert predicted["zero1"].opt_state == predicted["fsdp"].opt_state
    assert predicted["zero1"].grads == full and predicted["fsdp"].grads == by_specs
    assert predicted["zero1"].fallbacks == predicted["fsdp"].fallbacks == tuple(fallbacks)


def test_plan_table(params_of):
    table = plan(params_of("cnn", (40,)), optlab.adam(1e-3), make_mesh("data=4,model=2"))
    assert [row.strategy for row in table.rows] == list(STRATEGIES)
    assert table.mesh == {"data": 4, "model": 2}
    assert table["krizhevsky"].fallbacks == ()
    assert len(table["tp"].fallbacks) == 6  # the 25-channel convs over model=2
    text = str(table)
    lines = text.splitlines()
    assert lines[0].startswith("per-device bytes on mesh data=4,model=2 (8 devices)")
    assert lines[1].split() == ["strategy", "params", "grads", "opt", "state", "total", "fallbacks"]
    assert lines[2].split()[0] == "dp" and lines[2].split()[-1] == "0"
    assert "  tp         Conv_0/kernel (5, 1, 25): wanted P(None, None, 'model')," in text
    assert text.endswith(GRADIENTS_NOTE)
    with pytest.raises(KeyError, match="'pp' was not planned"):
        table["pp"]


def test_plan_takes_an_init_function_and_checks_strategies():
    params = {"w": jax.ShapeDtypeStruct((64, 8), jnp.float32)}
    by_fn = plan(params, optax.sgd(0.1, momentum=0.9).init, make_mesh("data=8"), ["fsdp"])
    assert by_fn["fsdp"].params == by_fn["fsdp"].opt_state == 64 * 8 * 4 // 8
    with pytest.raises(ConfigError, match="--strategy: unknown 'ddp'"):
        plan(params, optax.sgd(0.1), make_mesh(), ["ddp"])


def test_jitted_step_on_dp_tp_matches_one_device():
    model = create_model("mlp", num_classes=10, input_shape=(16,), widths=(32, 32))
    x = jax.random.normal(jax.random.key(1), (32, 16))
    y = jax.random.randint(jax.random.key(2), (32,), 0, 10)
    params = model.init({"params": jax.random.key(0)}, x[:1], train=False)["params"]
    tx = optlab.adam(1e-2)

    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply({"params": p}, x, train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    mesh = make_mesh("data=4,model=2")
    p_specs, fallbacks = param_specs(params, mesh, "dp+tp")
    o_specs = opt_state_specs(tx, jax.eval_shape(tx.init, params), params, p_specs, mesh, "dp+tp")
    p_sh, o_sh = shardings(p_specs, mesh), shardings(o_specs, mesh)
    batch, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    sharded_step = jax.jit(
        step, in_shardings=(p_sh, o_sh, batch, batch), out_shardings=(p_sh, o_sh, replicated)
    )
    state = (jax.device_put(params, p_sh), jax.jit(tx.init, out_shardings=o_sh)(params))
    single = (params, tx.init(params))
    one_device = jax.jit(step)
    for _ in range(3):
        *state, loss = sharded_step(*state, jax.device_put(x, batch), jax.device_put(y, batch))
        *single, single_loss = one_device(*single, x, y)
        np.testing.assert_allclose(loss, single_loss, rtol=1e-5, atol=1e-5)
    assert fallbacks == []
    kernel = state[0]["Dense_1"]["kernel"]
    assert kernel.sharding.spec == P(None, "model")
    assert kernel.addressable_shards[0].data.shape == (32, 16)
    assert state[1][0].mu["Dense_1"]["kernel"].sharding.spec == P(None, "model")
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(single), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", ["data=8", "data=4,model=2", "data=2,model=4"])
def test_plan_on_an_abstract_mesh_equals_the_real_one(params_of, spec):
    params, tx = params_of("cnn", (40,)), optlab.adam(1e-3)
    strategies = STRATEGIES if "model" in spec else ("dp", "fsdp", "zero1")
    real = plan(params, tx, make_mesh(spec), strategies)
    assert plan(params, tx, abstract_mesh(spec), strategies) == real
    assert str(plan(params, tx, abstract_mesh(spec), strategies)) == str(real)


# --- optlab plan --model gpt -------------------------------------------------------------

GPT2_SMALL = "n_layer=12,n_head=12,d_model=768,block_size=1024,vocab_size=50304"
# Pythia-1B's shape (Biderman et al. 2023, table 1: 1,011,781,632 parameters): rotary
# positions, untied head, GELU MLP 4d, LayerNorm with biases.
PYTHIA_1B = (
    "n_layer=16,n_head=8,d_model=2048,block_size=2048,vocab_size=50304,pos=rope,"
    "tie_embeddings=false"
)


def gpt_hand_count(n_layer, d, vocab, block, *, learned=True, tied=True):
    """Parameters of a GPT-2-shaped model counted from its weight shapes (Radford et al.
    2019 and nanoGPT's model.py), independently of optlab.models.param_count."""
    layer_norm = d + d  # scale, bias
    qkv = 3 * (d * d + d)  # c_attn: d → 3d with bias
    attn_out = d * d + d  # c_proj
    mlp = (d * 4 * d + 4 * d) + (4 * d * d + d)  # c_fc, c_proj
    block_params = 2 * layer_norm + qkv + attn_out + mlp
    embeddings = vocab * d + (block * d if learned else 0)
    head = 0 if tied else d * vocab
    return embeddings + n_layer * block_params + layer_norm + head


def test_gpt2_small_plan_against_a_hand_count(capsys):
    from optlab.cli import main
    from optlab.cli.plan import abstract_lm_params, language_model
    from optlab.models import activation_bytes
    from optlab.parallel._plan import _fmt

    hand = gpt_hand_count(12, 768, 50304, 1024)
    assert hand == 124_475_904  # 124,439,808 at GPT-2's own 50,257 + 47·768 of padding
    argv = ["plan", "--model", "gpt", "--model-arg", GPT2_SMALL, "--mesh", "data=8"]
    assert main([*argv, "--strategy", "fsdp"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"gpt ({hand:,} params; n_layer=12, n_head=12, d_model=768, ")
    assert lines[0].endswith("tied head), adamw")  # the LM recipe's optimizer

    cfg = RunConfig()
    cfg.model.options.update(n_layer=12, n_head=12, d_model=768, block_size=1024, vocab_size=50304)
    model = language_model(cfg)
    params = abstract_lm_params(model)
    assert sum(x.size for x in jax.tree.leaves(params)) == hand
    table = plan(params, optlab.adamw(1e-3), abstract_mesh("data=8"), ["fsdp"])
    # every dimension fsdp splits (768, 1024, 3072, 50304, 64) divides by 8: no padding
    assert table["fsdp"].fallbacks == ()
    assert table.params_bytes == hand * 4
    assert table["fsdp"].params == table["fsdp"].grads == hand * 4 // 8
    counters = sum(  # the state's scalars (step counts), whole on every device
        x.dtype.itemsize
        for x in jax.tree.leaves(jax.eval_shape(optlab.adamw(1e-3).init, params))
        if x.ndim == 0
    )
    assert table["fsdp"].opt_state == 2 * hand * 4 // 8 + counters  # mu, nu split
    assert str(table) in out
    row = lines[lines.index(next(x for x in lines if x.startswith("activations per"))) + 2]
    acts = activation_bytes(model, 1), activation_bytes(model, 1, remat="block")
    assert "global batch 8 of 1024 tokens" in out  # default: one sequence per device
    assert row.split()[:2] == ["fsdp", "1"]
    assert f"{_fmt(acts[0]):>12}{_fmt(acts[1]):>12}" in row
    total = table["fsdp"].total
    assert row.endswith(f"{_fmt(total + acts[0]):>12}{_fmt(total + acts[1]):>12}")


def test_plan_1b_on_data16_model4_without_allocating():
    from optlab.cli.plan import abstract_lm_params, language_model
    from optlab.config import resolve_recipe
    from optlab.parallel import activation_plan

    cfg = RunConfig()
    cfg.model.model, cfg.data.dataset = "gpt", "text"
    cfg.model.options.update(
        n_layer=16, n_head=8, d_model=2048, block_size=2048, vocab_size=50304,
        pos="rope", tie_embeddings=False,
    )  # fmt: skip
    model = language_model(resolve_recipe(cfg)[0])
    params = abstract_lm_params(model)
    hand = gpt_hand_count(16, 2048, 50304, 2048, learned=False, tied=False)
    assert hand == 1_011_781_632  # Pythia-1B's published count
    assert sum(x.size for x in jax.tree.leaves(params)) == hand
    assert all(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(params))
    mesh = abstract_mesh("data=16,model=4")
    table = plan(params, optlab.adamw(1e-3), mesh)
    assert [r.strategy for r in table.rows] == list(STRATEGIES)
    assert all(r.fallbacks == () for r in table.rows)
    assert table["fsdp"].params == hand * 4 // 16
    # tp replicates LayerNorms (4d a block, 2d final) and the row-parallel out and mlp_out
    # biases (d each); every other array splits 4 ways
    whole = 16 * 6 * 2048 + 2 * 2048
    assert table["tp"].params == table["dp+tp"].params == (hand - whole) * 4 // 4 + whole * 4
    acts = activation_plan(model, 64, mesh, table)
    assert acts["dp"].batch == acts["tp"].batch == 4
    assert acts["tp"].tensor_parallel == 4 and acts["fsdp"].tensor_parallel == 1
    assert acts["tp"].none < acts["fsdp"].none == acts["dp"].none
    assert acts["fsdp"].block < acts["fsdp"].none
    with pytest.raises(ValueError, match="global batch 12 must be a positive multiple"):
        activation_plan(model, 12, mesh, table)


# Runs optlab's CLI, then writes the process's own peak resident memory (VmHWM, in KiB) to the
# file named by argv[1]. VmHWM belongs to the address space made at exec; ``ru_maxrss`` does not
# reset at exec, so a child's rusage carries its parent's resident size (the xdist worker's: CI
# read 1.93 GiB for a 0.3 GiB plan), and RUSAGE_CHILDREN is the largest child ever reaped.
_PEAK_WRAPPER = """
import sys
from optlab.cli import main
peak_file = sys.argv.pop(1)
try:
    code = main(sys.argv[1:])
finally:
    status = open("/proc/self/status").read()
    open(peak_file, "w").write(status.split("VmHWM:")[1].split()[0])
sys.exit(code)
"""


@pytest.mark.slow  # a subprocess
def test_plan_1b_cli_is_quick_and_small(tmp_path):
    """The 1B plan in a fresh process: its peak resident memory stays far below the 3.8 GiB
    the float32 params alone would take (measured here: 0.3 GiB, 2 s).

    The peak is the child's own VmHWM, written by the child as it exits (see _PEAK_WRAPPER)."""
    import subprocess
    import sys
    import time

    peak_file = tmp_path / "peak_kib"
    argv = [sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), "plan", "--model", "gpt"]
    start = time.perf_counter()
    result = subprocess.run(
        [*argv, "--model-arg", PYTHIA_1B, "--mesh", "data=16,model=4", "--batch-size", "64"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    peak = int(peak_file.read_text()) * 1024
    print(f"1B plan: {seconds:.1f} s, peak resident {peak / 2**30:.2f} GiB")
    assert result.stdout.startswith("gpt (1,011,781,632 params; n_layer=16, n_head=8, ")
    assert "per-device bytes on mesh data=16,model=4 (64 devices)" in result.stdout
    assert "global batch 64 of 2048 tokens" in result.stdout
    assert peak < 1.5 * 2**30 and seconds < 120


def test_plan_gpt_defaults_are_the_recipe_and_the_byte_tokenizer(capsys):
    from optlab.cli import main
    from optlab.cli import plan as plan_cli
    from optlab.data._tokenizers import ByteTokenizer
    from optlab.train import lm

    assert plan_cli._BLOCK_DEFAULT == lm.DEFAULT_BLOCK_SIZE
    assert plan_cli._VOCAB_DEFAULT == ByteTokenizer.vocab_size
    assert main(["plan", "--model", "gpt", "--mesh", "data=4,model=2"]) == 0
    out = capsys.readouterr().out
    hand = gpt_hand_count(4, 128, 256, 64)
    assert out.startswith(
        f"gpt ({hand:,} params; n_layer=4, n_head=4, d_model=128, block_size=64, "
        "vocab_size=256, pos=learned, mlp=gelu, tied head), adamw\n"
    )
    assert "global batch 4 of 64 tokens" in out
    acts = [line.split() for line in out.splitlines()]
    start = next(i for i, w in enumerate(acts) if w[:1] == ["strategy"] and "batch" in w)
    assert [w[0] for w in acts[start + 1 : start + 7]] == list(STRATEGIES)
    assert main(["plan", "--model", "gpt", "--dataset", "pystdlib", "--optimizer", "sgd"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(", sgd") and "global batch 1 of 64" in out
    assert "dp              1    2.97 MiB    1.03 MiB" in out  # float32 activations
    bf16 = ["plan", "--model", "gpt", "--strategy", "dp", "--model-arg", "dtype=bfloat16"]
    assert main(bf16) == 0
    # bf16 activations, float32 logits terms
    assert "dp              1    1.55 MiB  592.00 KiB" in capsys.readouterr().out


def test_split_pairs():
    from optlab.cli._flags import split_pairs

    assert split_pairs(["a=1,b=[2,3]", "widths=[256,256]", "c=x"]) == [
        "a=1",
        "b=[2,3]",
        "widths=[256,256]",
        "c=x",
    ]


GPT = ["plan", "--model", "gpt", "--model-arg"]


@pytest.mark.parametrize(
    "argv, words",
    [
        ([*GPT, "n_head=5,d_model=768"], "--model-arg: create_model('gpt'): `n_head`"),
        ([*GPT, "block_size=0"], "--model-arg block_size=0: must be a positive integer"),
        ([*GPT, "block_size=-3"], "--model-arg block_size=-3: must be a positive integer"),
        ([*GPT, "block_size=1.5"], "--model-arg block_size=1.5: must be a positive"),
        ([*GPT, "vocab_size=0"], "--model-arg vocab_size=0: must be a positive integer"),
        ([*GPT, "vocab_size=true"], "--model-arg vocab_size=True: must be a positive"),
        ([*GPT, "n_layer=0"], "--model-arg: create_model('gpt'): `n_layer`"),
        ([*GPT, "activation=relu"], "--model-arg: create_model('gpt'): unknown option"),
        ([*GPT, "pos=alibi"], "--model-arg: create_model('gpt'): `pos`"),
        ([*GPT, "n_layer"], "--model-arg: expected KEY=VALUE"),
        ([*GPT, "n_layer=2", "--mesh", "data=8", "--batch-size", "12"], "--batch-size 12: "),
        ([*GPT, "n_layer=2", "--batch-size", "0"], "--batch-size 0: the global batch must"),
        (["plan", "--model", "gpt", "--dataset", "digits"], "--dataset digits: --model gpt"),
        (["plan", "--dataset", "pystdlib"], "--model mlp: --dataset pystdlib is token data"),
        (["plan", "--batch-size", "8"], "--batch-size: activations are planned for --model"),
    ],
)
def test_plan_gpt_bad_input_exits_2(capsys, argv, words):
    from optlab.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("optlab: error: ") and words in err, err
    assert err.count("\n") == 1
