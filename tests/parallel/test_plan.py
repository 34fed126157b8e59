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
from optlab.config import ConfigError
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
