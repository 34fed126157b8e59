"""The GPT: known answers at init, causality, segment masking, init statistics, remat, bf16,
tensor-parallel specs and option errors. Tiny sizes (d=32, 2 layers, V=64, block 16)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.sharding import PartitionSpec as P

from optlab.models import GPT, create_model
from optlab.parallel import make_mesh, param_specs

V, T, D, L, H = 64, 16, 32, 2, 4


def model_of(**kw):
    opts = {"n_layer": L, "n_head": H, "d_model": D, **kw}
    return create_model("gpt", num_classes=V, input_shape=(T,), **opts)


# Jitted: one compiled program a model instead of one per operation (eager flax compiles each
# primitive it meets; these tests' numbers are the same either way).
@functools.partial(jax.jit, static_argnums=(0, 1))
def init(model, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((1, T), jnp.int32))["params"]


@functools.partial(jax.jit, static_argnames=("model", "train"))
def apply(model, params, x, *, train=False, segment_ids=None, rngs=None):
    return model.apply({"params": params}, x, train=train, segment_ids=segment_ids, rngs=rngs)


def tokens(seed, shape=(4, T)):
    return jnp.asarray(np.random.default_rng(seed).integers(0, V, shape), jnp.int32)


def loss(model, params, x, **kw):
    logits = apply(model, params, x[:, :-1], **kw)
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, x[:, 1:, None], axis=-1))


def test_logits_shape_dtype_and_initial_loss_is_log_v():
    # At init the logits are tiny (x·wteᵀ with wte ~ N(0, 0.02²) after a LayerNorm: std
    # ≈ 0.02·√d ≈ 0.11), so the softmax is nearly uniform and the loss ≈ log V.
    model = GPT(vocab_size=256, block_size=T, n_layer=L, n_head=H, d_model=D)
    params = init(model)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, T + 1)), jnp.int32)
    logits = apply(model, params, x[:, :-1])
    assert logits.shape == (8, T, 256) and logits.dtype == jnp.float32
    assert abs(float(loss(model, params, x)) - math.log(256)) < 0.1


@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_causality_later_tokens_do_not_change_earlier_logits(pos):
    model = model_of(pos=pos)
    params = init(model)
    x = tokens(1)
    for t in (0, 7, T - 2):
        y = x.at[:, t + 1 :].set(tokens(2)[:, t + 1 :])
        a = apply(model, params, x)
        b = apply(model, params, y)
        np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
        assert not np.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-3)  # the change matters


def test_segment_mask_blocks_other_documents():
    model = model_of(segment_mask=True)
    params = init(model)
    x = tokens(3)
    seg = jnp.asarray(np.repeat([[0] * 6 + [1] * 10], 4, axis=0), jnp.int32)
    y = x.at[:, :6].set(tokens(4)[:, :6])  # change document 0 only
    a = apply(model, params, x, segment_ids=seg)
    b = apply(model, params, y, segment_ids=seg)
    np.testing.assert_allclose(a[:, 6:], b[:, 6:], atol=1e-6)  # document 1 unaffected
    # without the mask, document 1 does see document 0
    plain = model_of()
    c = apply(plain, params, x, segment_ids=seg)
    d = apply(plain, params, y, segment_ids=seg)
    assert not np.allclose(c[:, 6:], d[:, 6:], atol=1e-3)


def test_gpt2_initialization_statistics():
    model = model_of(n_layer=4, d_model=64)
    flat = traverse_util.flatten_dict(init(model), sep="/")
    residual = 0.02 / math.sqrt(2 * 4)
    for path, x in flat.items():
        x = np.asarray(x, np.float64)
        if path.endswith("bias"):
            assert np.all(x == 0), path
        elif "norm" in path:
            assert np.all(x == 1), path
        else:
            want = residual if ("out/kernel" in path or "mlp_out" in path) else 0.02
            # std of n ≥ 4096 normal draws: relative sampling error ≈ 1/√(2n) < 1.2%
            assert abs(x.std() / want - 1) < 0.06, (path, x.std(), want)
            assert abs(x.mean()) < 5 * want / math.sqrt(x.size), path  # 5 standard errors


def test_remat_gives_identical_loss_and_gradients():
    x = tokens(5, (4, T + 1))
    model = model_of()
    params = init(model)
    plain = jax.jit(jax.value_and_grad(lambda p: loss(model, p, x)))(params)
    remat = model.clone(remat=True)
    assert jax.tree.structure(init(remat)) == jax.tree.structure(params)  # same paths
    again = jax.jit(jax.value_and_grad(lambda p: loss(remat, p, x)))(params)
    np.testing.assert_allclose(plain[0], again[0], rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8), plain[1], again[1]
    )


def test_dropout_is_random_in_training_and_off_at_evaluation():
    model = model_of(dropout=0.2)
    params = init(model)
    x = tokens(6)
    e1, e2 = (apply(model, params, x) for _ in range(2))
    np.testing.assert_array_equal(e1, e2)
    t1 = apply(model, params, x, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(t1, e1, atol=1e-3)


def test_bf16_compute_with_float32_params():
    model = model_of(dtype="bfloat16")
    params = init(model)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    x = tokens(7, (2, T + 1))
    logits = jax.jit(model.apply)({"params": params}, x[:, :-1])
    assert logits.dtype == jnp.float32
    full = jax.jit(model_of().apply)({"params": params}, x[:, :-1])
    np.testing.assert_allclose(logits, full, atol=0.05)  # bf16 has 8 mantissa bits
    grads = jax.jit(jax.grad(lambda p: loss(model, p, x)))(params)
    assert all(g.dtype == jnp.float32 and np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("tie", [True, False])
def test_tensor_parallel_specs_of_every_parameter(mlp, tie):
    model = model_of(mlp=mlp, tie_embeddings=tie)
    shapes = jax.eval_shape(lambda: init(model))
    specs, fallbacks = param_specs(shapes, make_mesh("data=2,model=4"), "tp")
    assert fallbacks == []
    flat = traverse_util.flatten_dict(specs, sep="/")
    want = {
        "wte/embedding": P("model", None),  # vocabulary-parallel
        "wpe/embedding": P(),
        "norm_final/scale": P(),
        "norm_final/bias": P(),
    }
    if not tie:
        want["head/kernel"] = P(None, "model")
    for i in range(L):
        b = f"block_{i}"
        for name in ("query", "key", "value"):  # column-parallel on the heads
            want[f"{b}/attention/{name}/kernel"] = P(None, "model", None)
            want[f"{b}/attention/{name}/bias"] = P("model", None)
        want[f"{b}/attention/out/kernel"] = P("model", None, None)  # row-parallel
        want[f"{b}/attention/out/bias"] = P()
        ups = ("mlp_in", "mlp_gate") if mlp == "swiglu" else ("mlp_in",)
        for name in ups:
            want[f"{b}/{name}/kernel"] = P(None, "model")
            want[f"{b}/{name}/bias"] = P("model")
        want[f"{b}/mlp_out/kernel"] = P("model", None)
        want[f"{b}/mlp_out/bias"] = P()
        for norm in ("norm_attention", "norm_mlp"):
            want[f"{b}/{norm}/scale"] = want[f"{b}/{norm}/bias"] = P()
    assert flat == want


@pytest.mark.parametrize(
    ("input_shape", "options", "message"),
    [
        ((T,), {"n_head": 3, "d_model": 128}, r"`n_head`.*n_head 3 does not divide d_model 128"),
        ((T,), {"n_layer": 0}, r"`n_layer` must be a positive integer"),
        ((T,), {"d_model": 12.5}, r"`d_model` must be a positive integer"),
        ((T,), {"n_head": True}, r"`n_head` must be a positive integer"),
        ((T,), {"pos": "alibi"}, r"`pos` must be one of \('learned', 'rope'\)"),
        ((T,), {"mlp": "relu"}, r"`mlp` must be one of \('gelu', 'swiglu'\)"),
        ((T,), {"pos": "rope", "d_model": 12, "n_head": 4}, r"`pos` must be used with an even"),
        ((T,), {"tie_embeddings": "yes"}, r"`tie_embeddings` must be True or False"),
        ((T,), {"segment_mask": 1}, r"`segment_mask` must be True or False"),
        ((T,), {"dropout": 1.0}, r"`dropout` must be a drop probability"),
        ((T,), {"dtype": "int8"}, r"`dtype` must be a floating dtype"),
        ((T,), {"heads": 4}, r"unknown option `heads`.*n_layer"),
        ((4, 4), {}, r"`input_shape` must be \(block_size,\)"),
    ],
)
def test_bad_options_raise_value_errors_naming_them(input_shape, options, message):
    with pytest.raises(ValueError, match=message):
        create_model("gpt", num_classes=V, input_shape=input_shape, **options)


def test_factory_defaults_are_nanogpt_cpu_scale():
    model = create_model("gpt", num_classes=256, input_shape=(64,))
    assert (model.n_layer, model.n_head, model.d_model) == (4, 4, 128)
    assert (model.vocab_size, model.block_size, model.pos, model.mlp) == (
        256,
        64,
        "learned",
        "gelu",
    )
    assert model.tie_embeddings and not model.segment_mask
