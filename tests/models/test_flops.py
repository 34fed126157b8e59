"""param_count against the real tree, PaLM's FLOPs per token by hand, and the activation
formula against XLA's memory analysis of a compiled gradient."""

import math

import jax
import jax.numpy as jnp
import pytest

from optlab.models import GPT, activation_bytes, flops_per_token, param_count


def shapes(model):
    x = jnp.zeros((1, model.block_size), jnp.int32)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x)["params"])


def tree_count(params):
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"tie_embeddings": False},
        {"pos": "rope"},
        {"mlp": "swiglu"},
        {"mlp": "swiglu", "pos": "rope", "tie_embeddings": False, "n_layer": 3, "d_model": 48},
        {"d_model": 100, "n_head": 5, "n_layer": 1},  # 20 features a head
        {"mlp": "swiglu", "d_model": 100, "n_head": 5},  # 8·100/3 = 266.7 → 320
    ],
)
def test_param_count_formula_equals_the_tree(config):
    cfg = {"vocab_size": 64, "block_size": 16, "n_layer": 2, "n_head": 4, "d_model": 32, **config}
    model = GPT(**cfg)
    want = param_count(
        model.n_layer,
        model.d_model,
        model.vocab_size,
        model.block_size,
        mlp=model.mlp,
        tie=model.tie_embeddings,
        pos=model.pos,
    )
    assert tree_count(shapes(model)) == want


def test_gpt2_small_is_124m_and_its_flops_by_hand():
    model = GPT(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, d_model=768)
    assert param_count(12, 768, 50257, 1024) == 124_439_808  # GPT-2 small, tied
    n = 124_439_808 - 1024 * 768  # wpe is a lookup: not counted
    want = 6 * n + 12 * 12 * 12 * 64 * 1024
    assert flops_per_token(model) == want
    untied = model.clone(tie_embeddings=False)
    # untied: wte is a lookup, head/kernel (d, V) a matmul: the same N
    assert flops_per_token(untied) == want
    assert flops_per_token(model, seq_len=2048) == want + 12 * 12 * 12 * 64 * 1024


def test_flops_from_params_equal_flops_from_formula():
    model = GPT(vocab_size=64, block_size=16, n_layer=2, n_head=4, d_model=32, mlp="swiglu")
    assert flops_per_token(model, shapes(model)) == flops_per_token(model)


def test_activation_formula_by_hand():
    model = GPT(vocab_size=64, block_size=8, n_layer=2, n_head=2, d_model=4)
    n, d, h = 3 * 8, 4, 16
    block = 10 * n * d + 2 * h * n + 2 * 2 * 3 * 8 * 8
    outside = 3 * n * d * 4 + 2 * n * 64 * 4
    assert activation_bytes(model, 3) == 2 * block * 4 + outside
    assert activation_bytes(model, 3, remat="block") == (2 * n * d + block) * 4 + outside
    assert activation_bytes(model.clone(dtype=jnp.bfloat16), 3) == 2 * block * 2 + outside - (
        3 * n * d * 2
    )
    with pytest.raises(ValueError, match=r"`remat` must be one of \('none', 'block'\)"):
        activation_bytes(model, 3, remat="full")


@pytest.mark.parametrize("size", [(2, 32, 64, 8, 64), (2, 64, 32, 16, 256)])
def test_activation_formula_against_compiled_memory_analysis(size):
    """XLA:CPU's temp bytes of jit(grad(loss)) vs the formula, remat none: measured ratios
    formula / temp of 0.81 and 0.72 here (XLA keeps some workspace the formula does not
    count); the test allows [0.5, 1.5]. (With remat="block" XLA:CPU reports the *same*
    temp bytes as without, so that setting cannot be checked this way on CPU.)"""
    layers, d, t, b, v = size
    model = GPT(vocab_size=v, block_size=t, n_layer=layers, n_head=4, d_model=d)

    def loss(p, x):
        logp = jax.nn.log_softmax(model.apply({"params": p}, x[:, :-1]))
        return -jnp.mean(jnp.take_along_axis(logp, x[:, 1:, None], -1))

    x = jax.ShapeDtypeStruct((b, t + 1), jnp.int32)
    analysis = jax.jit(jax.grad(loss)).lower(shapes(model), x).compile().memory_analysis()
    ratio = activation_bytes(model, b) / analysis.temp_size_in_bytes
    print(f"formula / XLA temp bytes = {ratio:.2f} at {size}")
    assert 0.5 <= ratio <= 1.5, ratio
