"""param_specs / opt_state_specs per strategy on the MLP, the MNIST-1D CNN and the transformer,
and arrays placed with the resulting shardings."""

import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import optlab
from optlab.config import ConfigError
from optlab.parallel import (
    DEFAULT_TP_RULES,
    STRATEGIES,
    Fallback,
    make_mesh,
    opt_state_specs,
    param_specs,
    shardings,
)

DP_TP = "data=4,model=2"


def flat(specs):
    """{path: spec} of a spec tree."""
    paths = jax.tree.leaves(optlab.param_paths(specs), is_leaf=lambda x: isinstance(x, P))
    return dict(zip(paths, jax.tree.leaves(specs), strict=True))


def test_strategies_and_rules_are_data():
    assert STRATEGIES == ("dp", "fsdp", "tp", "dp+tp", "zero1", "krizhevsky")
    assert all(isinstance(r, str) and isinstance(s, P) for r, s in DEFAULT_TP_RULES)


@pytest.mark.parametrize("strategy", ["dp", "zero1"])
def test_replicated_strategies(params_of, strategy):
    specs, fallbacks = param_specs(params_of("mlp", (64,)), make_mesh(DP_TP), strategy)
    assert set(flat(specs).values()) == {P()} and fallbacks == []


@pytest.mark.parametrize("strategy", ["tp", "dp+tp"])
def test_mlp_tensor_parallel(params_of, strategy):
    specs, fallbacks = param_specs(params_of("mlp", (64,)), make_mesh(DP_TP), strategy)
    for i in range(3):
        assert flat(specs)[f"Dense_{i}/kernel"] == P(None, "model")
        assert flat(specs)[f"Dense_{i}/bias"] == P("model")
    assert fallbacks == []


def test_mlp_fsdp(params_of):
    specs, fallbacks = param_specs(params_of("mlp", (64,)), make_mesh("data=8"), "fsdp")
    assert flat(specs) == {
        "Dense_0/kernel": P(None, "data"),  # (64, 128): the largest dimension
        "Dense_0/bias": P("data"),
        "Dense_1/kernel": P("data"),  # (128, 128): a tie goes to the first
        "Dense_1/bias": P("data"),
        "Dense_2/kernel": P("data"),  # (128, 10)
        "Dense_2/bias": P(),  # (10,) over data=8
    }
    assert fallbacks == [
        Fallback("Dense_2/bias", (10,), P("data"), "no dimension of (10,) is divisible by data=8")
    ]


def test_fsdp_scalars_and_tiny_arrays():
    params = {"scale": jnp.ones(()), "tiny": jnp.ones((3,)), "w": jnp.ones((5, 16))}
    specs, fallbacks = param_specs(params, make_mesh("data=8"), "fsdp")
    assert specs == {"scale": P(), "tiny": P(), "w": P(None, "data")}
    assert [(f.path, f.reason) for f in fallbacks] == [
        ("tiny", "3 elements cannot be split over data=8")
    ]


def test_mnist1d_cnn_falls_back_under_tp(params_of):
    params = params_of("cnn", (40,))  # 3 conv layers of 25 channels, a (125, 10) head
    specs, fallbacks = param_specs(params, make_mesh(DP_TP), "tp")
    convs = {f"Conv_{i}/{p}" for i in range(3) for p in ("kernel", "bias")}
    assert {f.path for f in fallbacks} == convs
    assert all(flat(specs)[path] == P() for path in convs)
    kernel = next(f for f in fallbacks if f.path == "Conv_1/kernel")
    assert kernel.shape == (5, 25, 25)
    assert kernel.wanted_spec == P(None, None, "model")
    assert kernel.reason == "dim 2 of size 25 is not divisible by model=2"
    assert flat(specs)["Dense_0/kernel"] == P(None, "model")
    assert flat(specs)["Dense_0/bias"] == P("model")


def test_krizhevsky_convs_data_parallel_dense_model_parallel(params_of):
    specs, fallbacks = param_specs(params_of("cnn", (40,)), make_mesh(DP_TP), "krizhevsky")
    assert fallbacks == []
    assert all(spec == P() for path, spec in flat(specs).items() if path.startswith("Conv"))
    assert flat(specs)["Dense_0/kernel"] == P(None, "model")


def test_conv_rule_counts_from_the_last_dimension(params_of):
    params = params_of("cnn", (8, 8, 1), channels=(8, 8))  # 2-D: kernels (5, 5, C_in, C_out)
    specs, fallbacks = param_specs(params, make_mesh(DP_TP), "tp")
    assert flat(specs)["Conv_1/kernel"] == P(None, None, None, "model")
    assert flat(specs)["Conv_1/bias"] == P("model")
    assert fallbacks == []


def test_transformer_tensor_parallel(params_of):
    params = params_of("transformer", (40,))  # dim 64, 4 heads of 16, mlp 128
    specs, fallbacks = param_specs(params, make_mesh(DP_TP), "dp+tp")
    s = flat(specs)
    for name in ("query", "key", "value"):
        assert params["block_0"]["attention"][name]["kernel"].shape == (64, 4, 16)
        assert s[f"block_0/attention/{name}/kernel"] == P(None, "model", None)  # heads
        assert s[f"block_1/attention/{name}/bias"] == P("model", None)
    assert s["block_0/attention/out/kernel"] == P("model", None, None)  # its input heads
    assert s["block_0/attention/out/bias"] == P()
    assert s["block_0/mlp_in/kernel"] == P(None, "model")
    assert s["block_0/mlp_out/kernel"] == P("model", None)
    assert s["block_0/norm_mlp/scale"] == P() and s["pos_embedding"] == P()
    assert s["head/kernel"] == P(None, "model")
    assert fallbacks == []


def test_transformer_fsdp_one_fallback(params_of):
    _, fallbacks = param_specs(params_of("transformer", (40,)), make_mesh("data=8"), "fsdp")
    assert [f.path for f in fallbacks] == ["head/bias"]


def test_custom_rules_and_rank_mismatch():
    params = {"enc": {"kernel": jnp.ones((8, 6))}, "proj": {"kernel": jnp.ones((6,))}}
    rules = [(r"^enc/", P("data", None)), (r"kernel$", P(None, "data"))]
    specs, fallbacks = param_specs(params, make_mesh("data=4"), "tp", rules=rules)
    assert specs == {"enc": {"kernel": P("data", None)}, "proj": {"kernel": P()}}
    assert fallbacks[0].path == "proj/kernel"
    assert "more entries than the rank-1 array" in fallbacks[0].reason


def test_rule_naming_a_missing_axis():
    with pytest.raises(ConfigError, match=r"names mesh axis 'model' but the mesh has axes"):
        param_specs({"Dense_0": {"kernel": jnp.ones((2, 2))}}, make_mesh("data=8"), "tp")
    rules = [(r"kernel$", P("expert"))]
    with pytest.raises(ConfigError, match=r"\('kernel\$', P\('expert',\)\).*\('data', 'model'\)"):
        param_specs({"w": jnp.ones(2)}, make_mesh(DP_TP), "tp", rules=rules)


@pytest.mark.parametrize(
    "rules, words",
    [
        ([("(", P())], "not a valid regex"),
        (["kernel"], "expected a (regex, PartitionSpec) pair"),
        ([("k", P("model", ..., None))], "`...` may only start"),
        ([("k", P("model", "model"))], "uses a mesh axis twice"),
    ],
)
def test_malformed_rules(rules, words):
    with pytest.raises(ConfigError, match="sharding rule") as err:
        param_specs({"k": jnp.ones((2, 2))}, make_mesh(DP_TP), "tp", rules=rules)
    assert words in str(err.value)


def test_unknown_strategy():
    with pytest.raises(ConfigError, match="--strategy: unknown 'ddp'; choose from dp, fsdp"):
        param_specs({"w": jnp.ones(2)}, make_mesh(), "ddp")


@pytest.mark.parametrize("strategy", ["dp", "zero1", "fsdp", "tp"])
def test_adam_state_specs(params_of, strategy):
    params = params_of("mlp", (64,))
    mesh = make_mesh(DP_TP)
    tx = optlab.adam(1e-3)
    state = jax.eval_shape(tx.init, params)
    p_specs, _ = param_specs(params, mesh, strategy)
    specs = opt_state_specs(tx, state, params, p_specs, mesh, strategy)
    adam = specs[0]
    assert adam.count == P() and specs[1].count == P()
    expected = param_specs(params, mesh, "fsdp")[0] if strategy == "zero1" else p_specs
    assert adam.mu == expected and adam.nu == expected
    if strategy == "zero1":  # state split on data, params replicated
        assert set(flat(p_specs).values()) == {P()}
        assert flat(adam.mu)["Dense_1/kernel"] == P("data")
    if strategy == "dp":
        assert set(flat(adam.mu).values()) == {P()}


@pytest.mark.parametrize(
    "tx",
    [
        optlab.param_groups([(r"bias$", optlab.momentum(0.1, mu=0.9))], optlab.adam(1e-3)),
        optax.masked(optax.adam(1e-3), lambda p: jax.tree.map(lambda x: x.ndim > 1, p)),
        optax.chain(
            optlab.clip_by_global_norm(1.0), optlab.with_state_dtype(optlab.adam(1.0), "bfloat16")
        ),
    ],
    ids=["param_groups", "masked", "chain"],
)
def test_state_specs_of_composed_optimizers(tx):
    params = {"Dense_0": {"kernel": jnp.ones((8, 16)), "bias": jnp.ones(16)}}
    mesh = make_mesh("data=8")
    state = jax.eval_shape(tx.init, params)
    p_specs, _ = param_specs(params, mesh, "fsdp")
    specs = opt_state_specs(tx, state, params, p_specs, mesh, "fsdp")
    assert jax.tree.structure(specs) == jax.tree.structure(state)
    by_shape = {P(None, "data"): (8, 16), P("data"): (16,)}
    for leaf, spec in zip(jax.tree.leaves(state), jax.tree.leaves(specs), strict=True):
        assert by_shape.get(spec, leaf.shape) == leaf.shape
        assert spec != P() or leaf.shape not in by_shape.values()


def test_placed_arrays(params_of):
    mesh = make_mesh(DP_TP)
    params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), params_of("cnn", (40,)))
    specs, _ = param_specs(params, mesh, "tp")
    placed = jax.device_put(params, shardings(specs, mesh))
    kernel = placed["Dense_0"]["kernel"]
    assert kernel.sharding == NamedSharding(mesh, P(None, "model"))
    assert kernel.sharding.spec == P(None, "model")
    assert kernel.addressable_shards[0].data.shape == (125, 5)
    conv = placed["Conv_1"]["kernel"]
    assert conv.sharding.spec == P() and conv.addressable_shards[0].data.shape == (5, 25, 25)

    mesh8 = make_mesh("data=8")
    mlp = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), params_of("mlp", (64,)))
    specs, _ = param_specs(mlp, mesh8, "fsdp")
    placed = jax.device_put(mlp, shardings(specs, mesh8))
    assert placed["Dense_0"]["kernel"].sharding.spec == P(None, "data")
    assert placed["Dense_0"]["kernel"].addressable_shards[0].data.shape == (64, 16)
    assert placed["Dense_2"]["bias"].addressable_shards[0].data.shape == (10,)
