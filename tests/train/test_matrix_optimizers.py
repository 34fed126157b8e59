"""optlab train --optimizer muon: the built-in models say which parameters are matrices
(conv kernels flattened to all-but-output × output), the rest goes to AdamW, the
assignment is printed, and path patterns override it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.models import CNN, MLP, Transformer, matrix_axes
from optlab.train import loop

TINY = ["--dataset", "digits", "--batch-size", "32", "--no-progress", "--optimizer", "muon",
        "--learning-rate", "0.02"]  # fmt: skip


def _cfg(out, *extra):
    return config_from_args(cli.parser().parse_args(["train", *TINY, "--out", str(out), *extra]))


def _params(model, shape):
    return model.init(jax.random.key(0), jnp.zeros((1, *shape)))["params"]


@pytest.mark.slow  # a model's init or a training run
def test_matrix_axes_of_the_built_in_models():
    mlp = _params(MLP(10, (8, 8)), (5,))
    assert matrix_axes(MLP(10, (8, 8)), mlp) == {
        "Dense_0": {"kernel": ((0,), (1,)), "bias": None},
        "Dense_1": {"kernel": ((0,), (1,)), "bias": None},
        "Dense_2": {"kernel": None, "bias": None},  # the output head
    }
    cnn_model = CNN(10, spatial_dims=2, channels=(4, 4), kernel_size=3)
    axes = matrix_axes(cnn_model, _params(cnn_model, (8, 8, 1)))
    assert axes["Conv_0"]["kernel"] == ((0, 1, 2), (3,))  # HWIO → (H·W·I) × O
    assert axes["Dense_0"]["kernel"] is None
    vit = Transformer(10, patch=4, depth=1, heads=2, dim=8, mlp_dim=16)
    axes = matrix_axes(vit, _params(vit, (8, 8, 1)))
    block = axes["block_0"]
    assert block["attention"]["query"]["kernel"] == ((0,), (1, 2))  # d × (heads·head_dim)
    assert block["attention"]["out"]["kernel"] == ((0, 1), (2,))
    assert block["mlp_in"]["kernel"] == ((0,), (1,))
    assert axes["embed"]["kernel"] is None and axes["head"]["kernel"] is None
    assert axes["pos_embedding"] is None and block["norm_mlp"]["scale"] is None
    assert matrix_axes(object(), mlp) is None  # not a built-in model: Muon's own rule


@pytest.mark.slow  # a model's init or a training run
def test_cnn_kernels_step_along_the_orthogonalized_im2col_matrix(tmp_path, capsys):
    run = loop.run(_cfg(tmp_path, "--model", "cnn", "--steps", "3"), progress=False)
    err = capsys.readouterr().err
    assert "optlab: muon on 3 matrices: Conv_0/kernel 5x5x1x25" in err
    assert "adamw on 5:" in err and "Dense_0/kernel 25x10" in err
    inner = run.state.opt_state.inner_states
    muon_state = inner["muon"].inner_state[0]
    kernels = muon_state.mu["Conv_1"]["kernel"]
    assert not isinstance(kernels, optax.MaskedNode) and kernels.shape == (5, 5, 25, 25)
    assert isinstance(inner["muon"].inner_state[0].mu["Dense_0"]["kernel"], optax.MaskedNode)
    # one update of a conv kernel = −η·NS5(M) of its (5·5·25) × 25 matrix: singular values
    # of the step in Newton–Schulz's band, not the gradient's spread.
    tx = optlab.muon(1.0, muon_weight_dimension_numbers=optlab.MuonDimensionNumbers((0, 1, 2), 3))
    g = jax.random.normal(jax.random.key(1), (5, 5, 25, 25)) * jnp.linspace(0.1, 3, 25)
    update, _ = tx.update({"k": g}, tx.init({"k": g}), {"k": g})
    s = np.linalg.svd(np.asarray(update["k"]).reshape(625, 25), compute_uv=False)
    assert 0.6 < s.min() and s.max() < 1.25


@pytest.mark.slow  # a model's init or a training run
def test_train_with_muon_learns_and_resumes_exactly(tmp_path):
    first = loop.run(_cfg(tmp_path, "--steps", "60", "--checkpoint-every", "30"), progress=False)
    assert first.summary["test_accuracy"] > 0.8
    again = loop.run(_cfg(tmp_path, "--steps", "60", "--checkpoint-every", "30"), progress=False)
    for a, b in zip(jax.tree.leaves(first.state), jax.tree.leaves(again.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # a model's init or a training run
def test_adam_paths_override_the_assignment(tmp_path, capsys):
    loop.run(
        _cfg(tmp_path, "--steps", "2", "--opt-arg", 'adam_paths=["^Dense_0/"]'), progress=False
    )
    err = capsys.readouterr().err
    assert "muon on 1 matrices: Dense_1/kernel" in err
    assert "Dense_0/kernel 64x128" in err.split("adamw on")[1]


@pytest.mark.parametrize("flags", [["--opt-arg", "fallback=null"]])
def test_muon_without_fallback_on_a_model_with_vectors_is_one_line(tmp_path, capsys, flags):
    code = cli.main(["train", *TINY, "--out", str(tmp_path), "--steps", "2", *flags])
    err = capsys.readouterr().err
    assert code != 0
    assert "fallback=None" in err and "Traceback" not in err
