"""One optimizer registry serves the config, minimize, the demo, --help and the tests."""

import inspect

import optax
import pytest

import optlab
from optlab import config
from optlab._demo import DEMO_OPTIMIZERS
from tests.optimizers.registry import SPECS


def test_every_entry_builds_a_transformation_from_a_learning_rate():
    for name, entry in optlab.OPTIMIZERS.items():
        assert entry.name == name and entry.help
        assert optlab.get_optimizer(name) is entry.factory
        tx = entry.factory(learning_rate=0.1)
        assert isinstance(tx, optax.GradientTransformation), name


def test_learning_rate_is_required_by_every_registered_optimizer():
    for name, entry in optlab.OPTIMIZERS.items():
        rate = inspect.signature(entry.factory).parameters["learning_rate"]
        assert rate.default is inspect.Parameter.empty, name


def test_the_config_the_demo_and_help_read_the_registry():
    assert config.OPTIMIZERS is optlab.OPTIMIZERS
    assert config.resolve_optimizer("nesterov") is optlab.nesterov
    demo_factories = {form.label for e in optlab.OPTIMIZERS.values() for form in e.demo}
    assert set(DEMO_OPTIMIZERS) == demo_factories
    from optlab.cli import parser

    help_text = " ".join(
        parser()._subparsers._group_actions[0].choices["train"].format_help().split()
    )
    for name in optlab.OPTIMIZERS:
        assert name in help_text


def test_the_contract_tests_cover_every_registered_optimizer():
    # A spec named ``name`` or ``name_<form>`` covers ``name`` (names may hold "_" too).
    untested = [
        name
        for name in optlab.OPTIMIZERS
        if not any(s.name == name or s.name.startswith(name + "_") for s in SPECS)
    ]
    assert not untested


def test_unknown_name_lists_the_registry():
    with pytest.raises(ValueError, match="choose from sgd, momentum"):
        optlab.get_optimizer("gd")


def test_minimize_takes_the_registrys_names():
    import jax.numpy as jnp

    from optlab._minimize import FIRST_ORDER

    assert FIRST_ORDER is optlab.OPTIMIZERS
    got = optlab.minimize(lambda x: jnp.sum(x**2), jnp.array([1.0]), "sgd", learning_rate=0.25)
    assert got.value < 1e-12
    with pytest.raises(ValueError, match="unknown `method` 'gd'"):
        optlab.minimize(lambda x: jnp.sum(x**2), jnp.array([1.0]), "gd", learning_rate=0.25)


@pytest.mark.slow  # one compile per registered optimizer
@pytest.mark.parametrize("name", list(optlab.OPTIMIZERS))
def test_every_optimizer_under_inject_hyperparams_and_with_state_dtype(name):
    # The learning rate injected (readable and changeable in the state without a
    # recompile), the state stored in bfloat16: three jitted steps, finite, the rate read.
    import jax
    import jax.numpy as jnp

    factory = optlab.OPTIMIZERS[name].factory
    shape_args = ("block_size", "max_precond_dim", "min_dim_size_to_factor")  # set shapes
    static = [a for a in shape_args if a in inspect.signature(factory).parameters]
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
    obj_fn = lambda p: sum(jnp.sum(x**2) for x in jax.tree.leaves(p))  # noqa: E731
    injected = optax.inject_hyperparams(factory, static_args=static)(learning_rate=0.01)
    tx = optlab.with_state_dtype(injected, jnp.bfloat16)
    state = tx.init(params)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p, value=jnp.ones([]), obj_fn=obj_fn))
    for i in range(3):
        grads = jax.tree.map(lambda p, i=i: p * (i + 1.0), params)
        updates, state = update(grads, state, params)
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), name
        params = optax.apply_updates(params, updates)
    hyper = next(
        s
        for s in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "hyperparams"))
        if hasattr(s, "hyperparams")
    )
    assert float(hyper.hyperparams["learning_rate"]) == pytest.approx(0.01, rel=1e-2)
    floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert all(x.dtype == jnp.bfloat16 for x in floats if x.ndim > 0), name  # the buffers
    assert hyper.hyperparams["learning_rate"].dtype == jnp.float32  # scalars stay exact
