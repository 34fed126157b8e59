"""summary: per-layer parameters and FLOPs against hand counts (lecture 04's table)."""

import math

import jax
import jax.numpy as jnp
import pytest

from optlab.models import create_model, summary


def param_count(model, input_shape):
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    return sum(math.prod(v.shape) for v in jax.tree.leaves(variables["params"]))


def table(s):
    return {row.path: (row.kind, row.output_shape, row.params, row.flops) for row in s.rows}


def test_mlp_hand_count():
    # 64 → 32 → 16 → 10, batch 3: dense FLOPs = 2·n_in·n_out per example.
    model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(32, 16))
    s = summary(model, (64,), batch=3)
    assert table(s) == {
        "Dense_0": ("Dense", (3, 32), 64 * 32 + 32, 2 * 64 * 32 * 3),
        "Dense_1": ("Dense", (3, 16), 32 * 16 + 16, 2 * 32 * 16 * 3),
        "Dense_2": ("Dense", (3, 10), 16 * 10 + 10, 2 * 16 * 10 * 3),
    }
    assert s.total_params == 2080 + 528 + 170 == param_count(model, (64,))
    assert s.total_flops == 6 * (64 * 32 + 32 * 16 + 16 * 10)


def test_mlp_with_batchnorm_prelu_and_dropout_rows():
    model = create_model(
        "mlp",
        num_classes=2,
        input_shape=(4, 2),  # flattened to 8 features
        widths=(5,),
        batchnorm=True,
        activation="prelu",
        dropout=0.5,
    )
    assert table(summary(model, (4, 2))) == {
        "Dense_0": ("Dense", (1, 5), 8 * 5, 2 * 8 * 5),  # no bias under batch norm
        "BatchNorm_0": ("BatchNorm", (1, 5), 2 * 5, 0),  # γ, β (running stats not params)
        "PReLU_0": ("PReLU", (1, 5), 5, 0),
        "Dropout_0": ("Dropout", (1, 5), 0, 0),
        "Dense_1": ("Dense", (1, 2), 5 * 2 + 2, 2 * 5 * 2),
    }


def test_cnn_1d_hand_count():
    # MNIST-1D default: length 40 → 20 → 10 → 5 (stride 2, SAME), 25 channels, kernel 5.
    # conv FLOPs = 2·k·C_in·C_out·outputs.
    model = create_model("cnn", num_classes=10, input_shape=(40,))
    s = summary(model, (40,))
    assert table(s) == {
        "Conv_0": ("Conv", (1, 20, 25), 5 * 1 * 25 + 25, 2 * 5 * 1 * 25 * 20),
        "Conv_1": ("Conv", (1, 10, 25), 5 * 25 * 25 + 25, 2 * 5 * 25 * 25 * 10),
        "Conv_2": ("Conv", (1, 5, 25), 5 * 25 * 25 + 25, 2 * 5 * 25 * 25 * 5),
        "Dense_0": ("Dense", (1, 10), 125 * 10 + 10, 2 * 125 * 10),
    }
    assert s.total_params == param_count(model, (40,)) == 150 + 3150 + 3150 + 1260


def test_cnn_2d_hand_count():
    model = create_model(
        "cnn", num_classes=3, input_shape=(12, 12, 2), channels=(4,), kernel_size=3
    )
    s = summary(model, (12, 12, 2), batch=2)
    assert table(s) == {
        "Conv_0": ("Conv", (2, 6, 6, 4), 3 * 3 * 2 * 4 + 4, 2 * (3 * 3) * 2 * 4 * 36 * 2),
        "Dense_0": ("Dense", (2, 3), 144 * 3 + 3, 2 * 144 * 3 * 2),
    }


def test_transformer_counts_attention_matmuls():
    dim, heads, mlp_dim, tokens = 16, 2, 32, 10  # input (40,) in patches of 4
    model = create_model(
        "transformer", num_classes=3, input_shape=(40,), dim=dim, heads=heads, mlp_dim=mlp_dim
    )
    rows = table(summary(model, (40,)))
    assert rows["embed"] == ("Dense", (1, tokens, dim), 4 * dim + dim, 2 * 4 * dim * tokens)
    # Q·Kᵀ and weights·V: 2·T·T·d each
    assert rows["block_0/attention"] == (
        "MultiHeadDotProductAttention",
        (1, tokens, dim),
        0,
        4 * tokens**2 * dim,
    )
    for proj in ("query", "key", "value"):
        assert rows[f"block_0/attention/{proj}"] == (
            "DenseGeneral",
            (1, tokens, heads, dim // heads),
            dim * dim + dim,
            2 * dim * dim * tokens,
        )
    assert rows["block_1/mlp_in"][2:] == (dim * mlp_dim + mlp_dim, 2 * dim * mlp_dim * tokens)
    assert rows["block_0/norm_attention"][2:] == (2 * dim, 0)
    assert rows["pos_embedding"] == ("param", (tokens, dim), tokens * dim, 0)
    assert rows["head"][2:] == (dim * 3 + 3, 2 * dim * 3)
    assert "block_0" not in rows  # containers without their own parameters are not rows
    assert sum(r[2] for r in rows.values()) == param_count(model, (40,))


def test_str_is_a_table_with_totals():
    model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(32,))
    text = str(summary(model, (64,)))
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "output", "shape", "params", "FLOPs"]
    assert lines[2].split() == ["Dense_0", "Dense", "(1,", "32)", "2.08K", "4.1K"]
    assert lines[5].split() == ["total", "2.41K", "4.74K"]
    assert "2,410 parameters, 4,736 FLOPs" in text


def test_xla_cost_analysis_agrees_for_a_dense_network():
    """Information: XLA also counts element-wise work (bias, ReLU), a few percent here."""
    model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(64, 64))
    s = summary(model, (64,), batch=8, xla=True)
    if s.xla_flops is None:
        pytest.skip("this backend gives no cost analysis")
    assert s.total_flops <= s.xla_flops <= 1.1 * s.total_flops
    assert "XLA cost analysis" in str(s)


@pytest.mark.parametrize("tied", [True, False])
def test_gpt_counts_attention_scores_and_the_tied_head(tied):
    # 2 layers, d 32, 4 heads, T 16, V 64, batch 2, GELU MLP 4d: per position each kernel
    # costs 2·n_in·n_out, attention's scores and weighted values 2·2·T·d per layer (the full
    # T×T, as PaLM's appendix B counts), the head 2·d·V whether tied (wte.attend) or not.
    L, d, t, v, b = 2, 32, 16, 64, 2
    model = create_model(
        "gpt", num_classes=v, input_shape=(t,), n_layer=L, n_head=4, d_model=d,
        tie_embeddings=tied,
    )  # fmt: skip
    s = summary(model, (t,), batch=b, dtype=jnp.int32)
    rows = table(s)
    kernels = 4 * d * d + 2 * d * 4 * d  # q, k, v, out; mlp_in, mlp_out
    assert rows["block_0/attention"] == ("SelfAttention", (b, t, d), 0, 2 * 2 * b * t * t * d)
    head = "wte.attend" if tied else "head"
    assert rows[head][3] == 2 * b * t * d * v
    assert ("head" in rows) is not tied and ("wte.attend" in rows) is tied
    want = b * t * (L * (2 * kernels + 2 * 2 * t * d) + 2 * d * v)
    assert s.total_flops == want
