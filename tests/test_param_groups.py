"""optlab.param_groups (optlab/_param_groups.py): groups by path patterns, optax.partition."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import optlab
from optlab import group_labels, param_groups, param_paths, path_mask
from optlab._param_groups import DEFAULT_GROUP
from optlab.regularizers import l2_penalty

RTOL, ATOL = 1e-11, 1e-13  # float64 trajectories, as in tests/optimizers
LR, WD = 0.01, 0.1
SHAPES = {"Dense_0": {"kernel": (3, 4), "bias": (4,)}, "Dense_1": {"kernel": (4, 2), "bias": (2,)}}
PATHS = ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]  # sorted keys


def tree(seed: int, dtype=np.float64):
    """A two-layer MLP's params (Flax linen naming), random normals."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: rng.standard_normal(s).astype(dtype), SHAPES, is_leaf=lambda x: type(x) is tuple
    )


def rollout(tx, params, grads):
    """Params after each jitted update, float64."""
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        state, update, out = tx.init(p), jax.jit(tx.update), []
        for g in grads:
            updates, state = update(jax.tree.map(jnp.asarray, g), state, p)
            p = optax.apply_updates(p, updates)
            out.append(jax.tree.map(np.asarray, p))
    return out


def pick(params, layer_key):
    """The sub-tree with only ``layer_key`` ("kernel" or "bias") of every layer."""
    return {name: {layer_key: layer[layer_key]} for name, layer in params.items()}


def assert_close(got, want, *, rtol=RTOL, atol=ATOL):
    want_leaves = jax.tree_util.tree_leaves_with_path(want)
    for (path, w), g in zip(want_leaves, jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=jax.tree_util.keystr(path))


# --- paths ----------------------------------------------------------------------------------


def test_param_paths_join_keys_with_slashes():
    params = {"Dense_0": {"kernel": 1.0}, "layers": [{"bias": 2.0}, (3.0,)]}
    assert param_paths(params) == {
        "Dense_0": {"kernel": "Dense_0/kernel"},
        "layers": [{"bias": "layers/0/bias"}, ("layers/1/0",)],
    }
    assert param_paths(jnp.ones(3)) == ""


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(3, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)])
        self.norm = nnx.LayerNorm(2, rngs=rngs)

    def __call__(self, x):
        return self.norm(self.layers[1](jax.nn.relu(self.layers[0](x))))


NNX_PATHS = [
    "layers/0/bias",
    "layers/0/kernel",
    "layers/1/bias",
    "layers/1/kernel",
    "norm/bias",
    "norm/scale",
]


def test_nnx_paths_are_attribute_paths_with_or_without_variables():
    state = nnx.state(MLP(nnx.Rngs(0)), nnx.Param)  # what nnx.Optimizer's init passes to tx
    assert jax.tree.leaves(param_paths(state)) == NNX_PATHS
    assert jax.tree.leaves(param_paths(nnx.as_pure(state))) == NNX_PATHS  # what update passes


# --- groups ---------------------------------------------------------------------------------


def test_biases_get_no_decay_while_kernels_do():
    params, grads = tree(0), [tree(s) for s in range(1, 11)]
    tx = param_groups([(r"bias$", optlab.adam(LR))], default=optlab.adamw(LR, weight_decay=WD))
    got = rollout(tx, params, grads)
    # the same optimizers run separately on the two sub-trees
    biases = rollout(optlab.adam(LR), pick(params, "bias"), [pick(g, "bias") for g in grads])
    kernels = rollout(
        optlab.adamw(LR, weight_decay=WD),
        pick(params, "kernel"),
        [pick(g, "kernel") for g in grads],
    )
    for step, b, k in zip(got, biases, kernels, strict=True):
        assert_close(pick(step, "bias"), b)
        assert_close(pick(step, "kernel"), k)
    # and adamw with a path mask is the same thing in one transformation
    masked = optlab.adamw(LR, weight_decay=WD, mask=path_mask(r"bias$", exclude=True))
    for a, b in zip(got, rollout(masked, params, grads), strict=True):
        assert_close(a, b)


def test_a_smaller_rate_for_the_first_layer():
    params, grads = tree(0, np.float32), tree(1, np.float32)
    tx = param_groups([(r"^Dense_0/", optlab.sgd(0.1 * LR))], default=optlab.sgd(LR))
    updates, _ = tx.update(grads, tx.init(params), params)
    for key in ("kernel", "bias"):
        np.testing.assert_array_equal(
            updates["Dense_0"][key], -np.float32(0.1 * LR) * grads["Dense_0"][key]
        )
        np.testing.assert_array_equal(
            updates["Dense_1"][key], -np.float32(LR) * grads["Dense_1"][key]
        )


def test_masks_inside_a_group_see_only_that_group():
    # Each group's adamw gets a path mask; inside optax.partition its tree has placeholders
    # for the other group's leaves, and the paths of its own leaves are unchanged.
    params, grads = tree(0), [tree(s) for s in range(1, 6)]
    no_bias = path_mask(r"bias$", exclude=True)
    tx = param_groups(
        [(r"^Dense_0/", optlab.adamw(0.1 * LR, weight_decay=WD, mask=no_bias))],
        default=optlab.adamw(LR, weight_decay=WD, mask=no_bias),
    )
    got = rollout(tx, params, grads)
    for name, rate in (("Dense_0", 0.1 * LR), ("Dense_1", LR)):
        alone = rollout(
            optlab.adamw(rate, weight_decay=WD, mask={name: {"kernel": True, "bias": False}}),
            {name: params[name]},
            [{name: g[name]} for g in grads],
        )
        for a, b in zip(got, alone, strict=True):
            assert_close({name: a[name]}, b)


def test_regularizer_with_path_mask_leaves_biases_alone():
    params, grads = tree(0, np.float32), tree(1, np.float32)
    tx = l2_penalty(0.5, mask=path_mask("bias", exclude=True))
    updates, _ = tx.update(grads, tx.init(params), params)
    for name in SHAPES:
        np.testing.assert_array_equal(updates[name]["bias"], grads[name]["bias"])
        np.testing.assert_allclose(
            updates[name]["kernel"], grads[name]["kernel"] + params[name]["kernel"], rtol=1e-6
        )


def test_jit_does_not_recompile():
    tx = param_groups(
        [(r"bias$", optlab.sgd(LR)), (r"^Dense_0/", optlab.adam(LR))],
        default=optlab.adamw(LR, weight_decay=WD),
    )
    traces = [0]

    def update(g, s, p):
        traces[0] += 1
        return tx.update(g, s, p)

    update = jax.jit(update)
    params = tree(0, np.float32)
    state = tx.init(params)
    for seed in range(1, 4):
        _, state = update(tree(seed, np.float32), state, params)
    assert traces[0] == 1
    # init needs only shapes
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert jax.tree.structure(jax.eval_shape(tx.init, abstract)) == jax.tree.structure(state)


def test_works_in_flax_nnx_optimizer():
    model = MLP(nnx.Rngs(0))
    tx = param_groups(
        [(r"bias$", optax.set_to_zero()), (r"^layers/0/", optlab.sgd(0.1 * LR))],
        default=optlab.adamw(LR, weight_decay=WD, mask=path_mask(r"scale$", exclude=True)),
    )
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 3)), jnp.float32)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
        optimizer.update(model, grads)
        return grads

    before = nnx.as_pure(nnx.state(model, nnx.Param))
    grads = nnx.as_pure(nnx.state(step(model, optimizer), nnx.Param))
    after = nnx.as_pure(nnx.state(model, nnx.Param))

    # the pure-array reference: one adamw (no decay on the norm scale) on the default group
    adamw = optlab.adamw(LR, weight_decay=WD, mask={"kernel": True, "scale": False})
    default = {"kernel": before["layers"][1]["kernel"], "scale": before["norm"]["scale"]}
    default_grads = {"kernel": grads["layers"][1]["kernel"], "scale": grads["norm"]["scale"]}
    want, _ = adamw.update(default_grads, adamw.init(default), default)
    np.testing.assert_allclose(
        after["layers"][1]["kernel"], default["kernel"] + want["kernel"], rtol=1e-6
    )
    np.testing.assert_allclose(after["norm"]["scale"], default["scale"] + want["scale"], rtol=1e-6)
    np.testing.assert_allclose(
        after["layers"][0]["kernel"],
        before["layers"][0]["kernel"] - 0.1 * LR * grads["layers"][0]["kernel"],
        rtol=1e-6,
    )
    for path in (("layers", 0), ("layers", 1), ("norm",)):
        b, a = before, after
        for key in path:
            b, a = b[key], a[key]
        np.testing.assert_array_equal(a["bias"], b["bias"])
    assert set(optimizer.opt_state.inner_states) == {r"bias$", r"^layers/0/", DEFAULT_GROUP}


# --- labels and errors ----------------------------------------------------------------------


def test_group_labels_first_match_wins():
    groups = [(r"bias$", optlab.sgd(LR)), (r"^Dense_0/", optlab.sgd(LR))]
    labels = group_labels(tree(0), groups)
    assert jax.tree.leaves(labels) == ["bias$", "^Dense_0/", "bias$", DEFAULT_GROUP]
    assert group_labels(tree(0), [r"bias$", r"^Dense_0/"]) == labels  # bare patterns
    assert group_labels(tree(0), dict(groups)) == labels


def test_a_pattern_that_matches_nothing_fails_at_init_naming_it():
    tx = param_groups([(r"^Dense_2/", optlab.sgd(LR))], default=optlab.sgd(LR))  # a typo
    with pytest.raises(ValueError, match=r"'\^Dense_2/' matches no parameter path") as err:
        tx.init(tree(0))
    assert all(repr(p) in str(err.value) for p in PATHS)


def test_a_pattern_shadowed_by_an_earlier_group_fails_at_init():
    tx = param_groups(
        [(r"Dense", optlab.sgd(LR)), (r"bias", optlab.sgd(0.0))], default=optlab.sgd(LR)
    )
    with pytest.raises(ValueError, match=r"'bias' takes no parameter.*earlier group"):
        tx.init(tree(0))


@pytest.mark.parametrize(
    ("groups", "default", "message"),
    [
        ([(r"bias(", optlab.sgd(LR))], optlab.sgd(LR), r"'bias\(' is not a valid regular"),
        ([("bias", optlab.sgd(LR)), ("bias", optlab.sgd(LR))], optlab.sgd(LR), "listed twice"),
        ([("default", optlab.sgd(LR))], optlab.sgd(LR), "reserved"),
        ([("bias", 0.1)], optlab.sgd(LR), "'bias' needs an optax.GradientTransformation"),
        ([("bias",)], optlab.sgd(LR), "pair"),
        ([(3, optlab.sgd(LR))], optlab.sgd(LR), "regular expression string"),
        ("bias", optlab.sgd(LR), "sequence of"),
        ([("bias", optlab.sgd(LR))], None, "`default` must be"),
    ],
)
def test_bad_groups_fail_at_construction(groups, default, message):
    with pytest.raises(ValueError, match=message):
        param_groups(groups, default)


def test_path_mask_rejects_an_invalid_regex():
    with pytest.raises(ValueError, match=r"path_mask: pattern '\[' is not a valid"):
        path_mask("[")
