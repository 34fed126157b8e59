"""create_model: shapes, calling convention, dropout, batch norm, PReLU, dtypes, bad options."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from optlab.models import ACTIVATIONS, MODEL_NAMES, create_model

KEYS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
SMALL = {
    "mlp": {"widths": (16, 8)},
    "cnn": {"channels": (4, 4)},
    "transformer": {"dim": 16, "heads": 2, "mlp_dim": 32, "depth": 1},
}


def init(model, input_shape, batch=3):
    x = jax.random.normal(jax.random.key(2), (batch, *input_shape))
    return jax.jit(lambda x: model.init(KEYS, x, train=False))(x), x


def abstract_init(model, input_shape, batch=3):
    """Shapes only (``jax.eval_shape``): no compilation."""
    x = jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init(KEYS, x, train=False), x), x


def paths(tree):
    return {"/".join(k) for k in traverse_util.flatten_dict(tree)}


def test_names():
    assert MODEL_NAMES == ("mlp", "cnn", "transformer", "gpt")
    assert ACTIVATIONS[:5] == ("sigmoid", "tanh", "relu", "leaky_relu", "prelu")


@pytest.mark.parametrize(
    ("name", "input_shape", "extra"),
    [
        ("mlp", (64,), {}),
        ("mlp", (6, 6, 2), {}),
        ("cnn", (40,), {}),
        ("cnn", (40, 3), {"spatial_dims": 1}),
        ("cnn", (12, 12), {}),
        ("cnn", (12, 12, 3), {"dropout": 0.2, "batchnorm": True}),
        ("transformer", (40,), {}),
        ("transformer", (12, 12), {"dropout": 0.1}),
        ("transformer", (6, 6, 3), {"activation": "prelu"}),
    ],
)
def test_shapes_for_every_model_and_input_rank(name, input_shape, extra):
    model = create_model(name, num_classes=5, input_shape=input_shape, **SMALL[name], **extra)
    variables, x = abstract_init(model, input_shape)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert logits.shape == (3, 5) and logits.dtype == jnp.float32
    out = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, rngs=KEYS, mutable=["batch_stats"]),
        variables,
        x,
    )
    assert out[0].shape == (3, 5)
    assert ("batch_stats" in variables) == bool(extra.get("batchnorm"))
    assert set(out[1]) == ({"batch_stats"} if extra.get("batchnorm") else set())


def test_default_cnn_follows_the_mnist1d_layout():
    model = create_model("cnn", num_classes=10, input_shape=(40,))
    variables, _ = abstract_init(model, (40,))
    shapes = {p: v.shape for p, v in traverse_util.flatten_dict(variables["params"]).items()}
    assert shapes[("Conv_0", "kernel")] == (5, 1, 25)
    assert shapes[("Conv_2", "kernel")] == (5, 25, 25)
    assert shapes[("Dense_0", "kernel")] == (5 * 25, 10)  # 40 → 20 → 10 → 5 positions


def test_parameter_paths_are_readable():
    mlp = create_model("mlp", num_classes=2, input_shape=(4,), widths=(3,), activation="prelu")
    assert paths(abstract_init(mlp, (4,))[0]["params"]) == {
        "Dense_0/kernel",
        "Dense_0/bias",
        "PReLU_0/slope",
        "Dense_1/kernel",
        "Dense_1/bias",
    }
    cnn = create_model("cnn", num_classes=2, input_shape=(8, 8), channels=(2,), batchnorm=True)
    variables = abstract_init(cnn, (8, 8))[0]
    assert paths(variables["params"]) == {
        "Conv_0/kernel",
        "BatchNorm_0/scale",
        "BatchNorm_0/bias",
        "Dense_0/kernel",
        "Dense_0/bias",
    }
    assert paths(variables["batch_stats"]) == {"BatchNorm_0/mean", "BatchNorm_0/var"}
    tf = create_model("transformer", num_classes=2, input_shape=(8,), **SMALL["transformer"])
    got = paths(abstract_init(tf, (8,))[0]["params"])
    assert {"embed/kernel", "pos_embedding", "head/kernel", "norm_final/scale"} <= got
    for sub in ("query", "key", "value", "out"):
        assert f"block_0/attention/{sub}/kernel" in got
    assert {"block_0/mlp_in/kernel", "block_0/mlp_out/kernel", "block_0/norm_mlp/bias"} <= got


@pytest.mark.parametrize(
    ("name", "options"),
    [("cnn", {"channels": (4,), "batchnorm": True}), ("transformer", {"dropout": 0.1})],
)
def test_jit_apply_train_and_eval_without_recompiling(name, options):
    model = create_model(name, num_classes=3, input_shape=(16,), **{**SMALL[name], **options})
    variables, x = init(model, (16,))

    @jax.jit
    def step(variables, x, key):
        logits, updates = model.apply(
            variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )
        return logits, {**variables, **updates}

    logits, variables = step(variables, x, jax.random.key(5))
    logits, variables = step(variables, x, jax.random.key(6))
    assert step._cache_size() == 1
    assert logits.shape == (3, 3)
    evaluated = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x)
    assert evaluated.shape == (3, 3) and np.all(np.isfinite(evaluated))


def test_inverted_dropout_scales_kept_units_at_train_time_and_is_identity_at_eval():
    p = 0.3
    model = create_model("mlp", num_classes=2, input_shape=(8,), widths=(4000,), dropout=p)
    variables, x = init(model, (8,), batch=2)

    def hidden(train, key):
        _, state = model.apply(
            variables, x, train=train, rngs={"dropout": key}, capture_intermediates=True
        )
        inter = state["intermediates"]
        relu = np.asarray(jax.nn.relu(inter["Dense_0"]["__call__"][0]))
        return relu, np.asarray(inter["Dropout_0"]["__call__"][0])

    relu, dropped = hidden(True, jax.random.key(7))
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], relu[kept] / (1 - p), rtol=1e-6)  # × 1/(1 − p)
    active = relu > 0
    assert np.mean(kept[active]) == pytest.approx(1 - p, abs=0.02)  # keep probability 1 − p
    assert np.array_equal(hidden(True, jax.random.key(7))[1], dropped)  # same key, same mask
    assert not np.array_equal(hidden(True, jax.random.key(8))[1], dropped)
    relu, evaluated = hidden(False, jax.random.key(7))
    np.testing.assert_array_equal(evaluated, relu)  # identity at evaluation
    # E[train output] = eval output: the expected value is kept
    assert dropped.sum() == pytest.approx(relu.sum(), rel=0.05)


def test_batchnorm_uses_batch_statistics_in_training_and_running_averages_at_eval():
    model = create_model(
        "mlp", num_classes=2, input_shape=(5,), widths=(6,), batchnorm=True, batchnorm_momentum=0.8
    )
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(3), (64, 5))
    variables = model.init(KEYS, x, train=False)
    assert "bias" not in variables["params"]["Dense_0"]  # BN's β replaces it
    np.testing.assert_array_equal(variables["batch_stats"]["BatchNorm_0"]["mean"], np.zeros(6))

    def normalized(variables, train):
        _, updates = model.apply(
            variables,
            x,
            train=train,
            mutable=["batch_stats", "intermediates"],
            capture_intermediates=True,
        )
        h = np.asarray(updates["intermediates"]["Dense_0"]["__call__"][0], np.float64)
        bn = np.asarray(updates["intermediates"]["BatchNorm_0"]["__call__"][0], np.float64)
        return h, bn, updates

    h, bn, updates = normalized(variables, train=True)
    np.testing.assert_allclose(bn.mean(0), 0, atol=1e-5)  # batch statistics
    np.testing.assert_allclose(bn.var(0), h.var(0) / (h.var(0) + 1e-5), rtol=1e-4)
    # running ← m·running + (1 − m)·batch, m = 0.8, from mean 0 and var 1
    stats = updates["batch_stats"]["BatchNorm_0"]
    np.testing.assert_allclose(stats["mean"], 0.2 * h.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats["var"], 0.8 + 0.2 * h.var(0), rtol=1e-4)

    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    h, bn, updates = normalized(variables, train=False)
    expected = (h - stats["mean"]) / np.sqrt(stats["var"] + 1e-5)
    np.testing.assert_allclose(bn, expected, rtol=1e-4, atol=1e-5)  # running averages
    assert np.abs(bn.mean(0)).max() > 0.1  # not the batch's own statistics
    # evaluation does not move the running averages
    np.testing.assert_array_equal(updates["batch_stats"]["BatchNorm_0"]["mean"], stats["mean"])


def test_prelu_has_a_learnable_slope_per_unit():
    model = create_model("mlp", num_classes=2, input_shape=(3,), widths=(4,), activation="prelu")
    variables, x = init(model, (3,))
    slope = variables["params"]["PReLU_0"]["slope"]
    np.testing.assert_array_equal(slope, np.full(4, 0.25, np.float32))
    _, state = model.apply(variables, x, train=False, capture_intermediates=True)
    h = np.asarray(state["intermediates"]["Dense_0"]["__call__"][0])
    out = np.asarray(state["intermediates"]["PReLU_0"]["__call__"][0])
    np.testing.assert_allclose(out, np.where(h > 0, h, 0.25 * h), rtol=1e-6)

    def loss(params):
        return model.apply({"params": params}, x, train=False).sum()

    assert np.abs(np.asarray(jax.grad(loss)(variables["params"])["PReLU_0"]["slope"])).max() > 0


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_runs(activation):
    model = create_model("mlp", num_classes=2, input_shape=(3,), widths=(4,), activation=activation)
    variables, x = init(model, (3,))
    assert np.all(np.isfinite(model.apply(variables, x, train=False)))


def test_bfloat16_compute_float32_params_and_logits():
    model = create_model("mlp", num_classes=4, input_shape=(6,), widths=(8,), dtype="bfloat16")
    variables, x = init(model, (6,))
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(variables))
    logits, state = model.apply(
        variables, x.astype(jnp.bfloat16), train=False, capture_intermediates=True
    )
    assert state["intermediates"]["Dense_0"]["__call__"][0].dtype == jnp.bfloat16
    assert logits.dtype == jnp.float32


def test_regression_head_and_custom_initializer():
    model = create_model(
        "mlp", num_classes=1, input_shape=(3,), widths=(4,), init=nn.initializers.ones
    )
    variables, x = init(model, (3,))
    assert model.apply(variables, x, train=False).shape == (3, 1)
    np.testing.assert_array_equal(variables["params"]["Dense_0"]["kernel"], np.ones((3, 4)))
    np.testing.assert_array_equal(variables["params"]["Dense_0"]["bias"], np.zeros(4))


@pytest.mark.parametrize(
    ("name", "input_shape", "options", "message"),
    [
        ("resnet", (4,), {}, r"`name` must be one of \('mlp', 'cnn', 'transformer', 'gpt'\)"),
        ("mlp", (4,), {"kernel_size": 3}, r"unknown option `kernel_size`.*Valid options.*widths"),
        ("cnn", (4,), {"widths": (3,)}, r"unknown option `widths`.*channels"),
        ("mlp", (4,), {"activation": "swish"}, r"`activation` must be one of .*prelu"),
        ("mlp", (4,), {"init": "glorot"}, r"`init` must be one of .*xavier"),
        ("mlp", (4,), {"dropout": 1.0}, r"`dropout` must be a drop probability in \[0, 1\)"),
        ("mlp", (4,), {"widths": (0, 3)}, r"`widths` must be a tuple of positive integers"),
        ("mlp", (4,), {"widths": 128}, r"`widths` must be a tuple"),
        ("mlp", (4,), {"batchnorm": "yes"}, r"`batchnorm` must be True or False"),
        ("mlp", (4,), {"batchnorm_momentum": 1.5}, r"`batchnorm_momentum` must be in \[0, 1\)"),
        ("mlp", (4,), {"dtype": "int32"}, r"`dtype` must be a floating dtype"),
        ("mlp", (), {}, r"`input_shape` must be a tuple of positive integers"),
        ("cnn", (4,), {"channels": ()}, r"`channels` must be .*at least one"),
        ("cnn", (4,), {"kernel_size": 0}, r"`kernel_size` must be a positive integer"),
        ("cnn", (4,), {"spatial_dims": 2}, r"`spatial_dims` must be 1 or 2 and compatible"),
        ("cnn", (4, 4, 4, 4), {}, r"`input_shape` must be of rank 1, 2 or 3"),
        ("transformer", (8,), {"dim": 10, "heads": 4}, r"`heads` must be a divisor of dim=10"),
        ("transformer", (10,), {"patch": 3}, r"`patch` must be a divisor .* Pick one of \[1, 2"),
        ("transformer", (10,), {}, r"`patch` must be a divisor of the input length 10"),
        ("transformer", (4, 4), {"patch": 2}, r"`patch` must be unset"),
    ],
)
def test_bad_options_raise_value_errors_naming_them(name, input_shape, options, message):
    with pytest.raises(ValueError, match=message):
        create_model(name, num_classes=3, input_shape=input_shape, **options)


def test_bad_num_classes():
    with pytest.raises(ValueError, match=r"`num_classes` must be a positive integer"):
        create_model("mlp", num_classes=0, input_shape=(4,))
