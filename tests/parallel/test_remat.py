"""``--remat`` (issue 5): each layer of optlab's MLP and CNN rematerialized in the backward
pass, with the same numbers and the same parameter paths, keeping less for the backward.

What remat saves is what the forward pass keeps for the backward pass (the residuals). We
count them from ``jax.vjp``'s closure, traced abstractly (``jax.eval_shape``): the same
count on every backend. For the MLP below (8 hidden layers of 128, batch 512), measured:
5.09 MiB → 2.63 MiB without batch norm, 9.11 MiB → 2.63 MiB with it (each layer keeps only
its input; the parameters, 0.48 MiB, are among the residuals both ways).

The compiled program's own temp bytes (``jit(...).lower(...).compile().memory_analysis()``)
do not show it on the CPU: 5.28 MiB with and without remat for 8×512 at batch 256 (9.31
MiB with batch norm). The program handed to XLA does recompute (8 optimization barriers,
34 dot_generals instead of 26, asserted below), but XLA:CPU removes the barriers and
merges the recomputed dots with the forward ones (26 dots after compilation): its
common-subexpression pass undoes remat, so on the CPU remat costs nothing and saves nothing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.config import ConfigError
from optlab.models import create_model
from optlab.train import losses


def _loss_fn(model, variables, x, y):
    """loss(params) -> (loss, new batch stats), training mode, a fixed dropout key."""
    rest = {k: v for k, v in variables.items() if k != "params"}

    def loss(params):
        logits, updates = model.apply(
            {"params": params, **rest},
            x,
            train=True,
            rngs={"dropout": jax.random.key(3)},
            mutable=list(rest),
        )
        return jnp.mean(losses.per_example_loss("cross_entropy", logits, y)), updates

    return loss


def _value(loss):
    return lambda params: loss(params)[0]


def test_remat_keeps_paths_and_numbers():
    # Batch norm (mutable stats), dropout (its mask redrawn in the recompute from the same
    # key) and PReLU (a parameter created inside the rematerialized layer). The CNN's layers
    # use the same mechanism; its 20 trainer steps with --remat are in test_equivalence.py.
    options = {"widths": (32, 32), "batchnorm": True, "dropout": 0.3, "activation": "prelu"}
    model = create_model("mlp", num_classes=10, input_shape=(8, 8, 1), **options)
    x = jax.random.normal(jax.random.key(1), (32, 8, 8, 1))
    y = jnp.arange(32) % 10
    variables = jax.jit(lambda x: model.init({"params": jax.random.key(0)}, x, train=False))(x)
    remat = model.clone(remat=True)
    init = lambda x: remat.init({"params": jax.random.key(0)}, x, train=False)  # noqa: E731
    # the same parameter and batch-stat paths (sharding rules and checkpoints match them)
    assert jax.tree.structure(jax.eval_shape(init, x)) == jax.tree.structure(variables)
    results = [
        jax.jit(jax.value_and_grad(_loss_fn(m, variables, x, y), has_aux=True))(variables["params"])
        for m in (model, remat)
    ]
    (v0, s0), g0 = results[0]
    (v1, s1), g1 = results[1]
    # Recomputation repeats the same float32 operations (bit-for-bit equal on the CPU,
    # measured); the tolerance leaves room for a backend that fuses the recompute otherwise.
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    for a, b in zip(jax.tree.leaves((g1, s1)), jax.tree.leaves((g0, s0)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert set(s1["batch_stats"]) == {"BatchNorm_0", "BatchNorm_1"}


def _residual_bytes(model, batch):
    """Bytes the forward pass keeps for the backward pass (abstract: nothing is computed)."""
    x = jax.ShapeDtypeStruct((batch, 64), jnp.float32)
    y = jnp.arange(batch) % 10
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)

    def kept(variables, x):
        return jax.vjp(_value(_loss_fn(model, variables, x, y)), variables["params"])[1]

    closure = jax.eval_shape(kept, variables, x)
    return sum(np.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(closure))


@pytest.mark.parametrize(("batchnorm", "at_most"), [(False, 0.55), (True, 0.32)])
def test_remat_keeps_less_for_the_backward_pass(batchnorm, at_most):
    model = create_model(
        "mlp", num_classes=10, input_shape=(64,), widths=(128,) * 8, batchnorm=batchnorm
    )
    kept = _residual_bytes(model, 512)
    kept_remat = _residual_bytes(model.clone(remat=True), 512)
    # measured 2.63/5.09 = 0.52 without batch norm and 2.63/9.11 = 0.29 with it
    assert kept_remat / kept < at_most, (kept_remat, kept)


def test_remat_is_in_the_program_handed_to_xla():
    model = create_model("mlp", num_classes=10, input_shape=(64,), widths=(64,) * 4)
    x, y = jax.ShapeDtypeStruct((16, 64), jnp.float32), jnp.zeros(16, jnp.int32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)

    def grad(module):
        return jax.jit(lambda p, x: jax.grad(_value(_loss_fn(module, variables, x, y)))(p))

    texts = {
        m.remat: grad(m).lower(variables["params"], x).as_text()
        for m in (model, model.clone(remat=True))
    }
    assert texts[False].count("optimization_barrier") == 0
    assert texts[True].count("optimization_barrier") == 4  # one per hidden layer
    # 5 dense layers: 5 forward dots, 9 backward (the first layer needs no input gradient),
    # and the 4 hidden layers' forward dots once more in the backward pass
    assert texts[False].count("dot_general") == 14
    assert texts[True].count("dot_general") == 18


@pytest.mark.slow  # the GPT's remat equivalence (tests/models/test_gpt.py) runs in the quick tier
def test_transformer_blocks_rematerialized_with_the_same_paths_and_numbers():
    model = create_model("transformer", num_classes=10, input_shape=(8, 8, 1), depth=2)
    x = jax.random.normal(jax.random.key(1), (8, 8, 8, 1))
    y = jnp.arange(8)
    variables = jax.jit(lambda x: model.init({"params": jax.random.key(0)}, x, train=False))(x)
    remat = model.clone(remat=True)
    init = lambda x: remat.init({"params": jax.random.key(0)}, x, train=False)  # noqa: E731
    assert jax.tree.structure(jax.eval_shape(init, x)) == jax.tree.structure(variables)

    def grad(module):
        return jax.jit(lambda p, x: jax.grad(_value(_loss_fn(module, variables, x, y)))(p))

    g0, g1 = (grad(m)(variables["params"], x) for m in (model, remat))
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    text = grad(remat).lower(variables["params"], x).as_text()
    assert text.count("optimization_barrier") == 2  # one per block


def test_remat_flag_and_unsupported_models(tmp_path, capsys):
    from flax import nnx

    from optlab.train import train

    args = cli.parser().parse_args(["train", "--remat"])
    assert config_from_args(args).train.remat is True
    assert config_from_args(cli.parser().parse_args(["train"])).train.remat is False
    args.out, args.steps = str(tmp_path / "run"), 1
    cfg = config_from_args(args)
    own = nnx.Linear(64, 10, rngs=nnx.Rngs(0))  # a user's model: optlab cannot remat it
    with pytest.raises(ConfigError, match=r"train\.remat: .* wrap your model's blocks") as err:
        train(cfg, model=own, progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()
