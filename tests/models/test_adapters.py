"""Bring-your-own models: NNX modules and pure functions under the linen calling convention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab.models import create_model, from_apply, from_nnx
from optlab.models.adapters import Model, from_linen

X = jax.random.normal(jax.random.key(0), (16, 4)) * 2.0 + 1.0


class Normalized(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(4, 6, rngs=rngs)
        self.norm = nnx.BatchNorm(6, momentum=0.9, rngs=rngs)
        self.head = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.norm(self.linear(x))))


class Dropped(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(4, 64, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.linear(x))


def test_from_nnx_params_and_batch_stats_follow_linen_conventions():
    module = Normalized(nnx.Rngs(0))
    apply_fn, variables = model = from_nnx(module)
    assert isinstance(model, Model)
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["params"]) == {"linear", "norm", "head"}
    assert set(variables["params"]["linear"]) == {"kernel", "bias"}
    assert set(variables["batch_stats"]["norm"]) == {"mean", "var"}

    # evaluation: the running averages, as the module itself in eval mode
    out = apply_fn(variables, X, train=False)
    reference = nnx.view(nnx.clone(module), use_running_average=True)(X)
    np.testing.assert_allclose(out, reference, rtol=1e-6)

    # training: batch statistics, and the updated running averages come back
    out, updates = jax.jit(lambda v, x: apply_fn(v, x, train=True, mutable=["batch_stats"]))(
        variables, X
    )
    trained = nnx.clone(module)
    np.testing.assert_allclose(out, trained(X), rtol=1e-5)
    np.testing.assert_allclose(
        updates["batch_stats"]["norm"]["mean"], trained.norm.mean[...], rtol=1e-5
    )
    h = np.asarray(module.linear(X))
    np.testing.assert_allclose(updates["batch_stats"]["norm"]["mean"], 0.1 * h.mean(0), rtol=1e-4)
    # the module given to from_nnx is left alone
    np.testing.assert_array_equal(module.norm.mean[...], np.zeros(6))

    # gradients flow to every parameter, with the params' structure
    def loss(params):
        return apply_fn({**variables, "params": params}, X, train=False).sum()

    grads = jax.grad(loss)(variables["params"])
    assert jax.tree.structure(grads) == jax.tree.structure(variables["params"])
    assert all(np.abs(g).max() > 0 for g in jax.tree.leaves(grads["linear"]))


def test_from_nnx_dropout_follows_train_and_rngs():
    apply_fn, variables = from_nnx(Dropped(nnx.Rngs(0)))
    apply = jax.jit(apply_fn, static_argnames=("train",))
    evaluated = apply(variables, X, train=False)
    np.testing.assert_array_equal(evaluated, apply(variables, X, train=False))
    a = apply(variables, X, train=True, rngs={"dropout": jax.random.key(1)})
    b = apply(variables, X, train=True, rngs={"dropout": jax.random.key(1)})
    c = apply(variables, X, train=True, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(a, b)  # same key, same mask
    assert not np.array_equal(a, c)
    kept = np.asarray(a) != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(np.asarray(a)[kept], 2 * np.asarray(evaluated)[kept], rtol=1e-5)
    with pytest.raises(ValueError, match=r"training needs `rngs="):
        apply_fn(variables, X, train=True)


def test_from_nnx_rejects_other_mutable_collections():
    apply_fn, variables = from_nnx(nnx.Linear(4, 2, rngs=nnx.Rngs(0)))
    assert set(variables) == {"params"}
    out, updates = apply_fn(variables, X, mutable=["batch_stats"])
    assert out.shape == (16, 2) and updates == {}
    with pytest.raises(ValueError, match=r"`mutable` may only name 'batch_stats'"):
        apply_fn(variables, X, mutable=["intermediates"])


def test_from_apply_wraps_a_pure_function():
    def mlp(params, x):
        return jnp.tanh(x @ params["w1"]) @ params["w2"]

    params = {"w1": jnp.ones((4, 5)) * 0.1, "w2": jnp.ones((5, 2))}
    apply_fn, variables = from_apply(mlp, params)
    assert variables == {"params": params}
    out = apply_fn(variables, X, train=True, rngs={"dropout": jax.random.key(0)})
    np.testing.assert_allclose(out, mlp(params, X))
    out, updates = jax.jit(lambda v, x: apply_fn(v, x, mutable=["batch_stats"]))(variables, X)
    assert updates == {} and out.shape == (16, 2)
    grads = jax.grad(lambda p: apply_fn({"params": p}, X).sum())(params)
    assert grads["w1"].shape == (4, 5)
    with pytest.raises(ValueError, match=r"`apply_fn` must be a function"):
        from_apply(params, mlp)


def test_from_linen_initializes_a_created_model():
    module = create_model("mlp", num_classes=3, input_shape=(4,), widths=(8,), batchnorm=True)
    apply_fn, variables = from_linen(module, (4,), key=jax.random.key(0))
    assert set(variables) == {"params", "batch_stats"}
    out, updates = apply_fn(variables, X, train=True, mutable=["batch_stats"])
    assert out.shape == (16, 3) and set(updates) == {"batch_stats"}
