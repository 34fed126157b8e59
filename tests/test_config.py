"""The run config: an optimizer given as a factory from Python, written as module:qualname."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.config import ConfigError, RunConfig, build_optimizer


def signed_descent(learning_rate, *, power=1.0):
    """A user's own optimizer: w ← w − α·sign(g)·|g|^power (power=0 is signSGD)."""
    return optax.chain(
        optax.stateless(
            lambda g, p=None: jax.tree.map(lambda x: jnp.sign(x) * jnp.abs(x) ** power, g)
        ),
        optlab.scale_by_learning_rate(learning_rate),
    )


def test_factory_is_called_with_the_schedule_and_args_and_chained_with_clipping():
    cfg = RunConfig()
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = signed_descent, 0.5
    cfg.optimizer.args, cfg.optimizer.clip_norm = {"power": 0.0}, 1.0
    tx, lr = build_optimizer(cfg.optimizer, total_steps=10)
    params = {"w": jnp.array([3.0, -4.0])}
    updates, _ = tx.update({"w": jnp.array([30.0, -40.0])}, tx.init(params), params)
    # clipped to norm 1 first (sign unchanged), then α·sign(g): exactly ∓0.5
    np.testing.assert_array_equal(np.asarray(updates["w"]), [-0.5, 0.5])
    assert lr == 0.5


def test_factory_round_trips_through_config_json():
    cfg = RunConfig()
    cfg.optimizer.optimizer = signed_descent
    raw = json.loads(json.dumps(cfg.to_dict()))  # what config.json holds
    assert raw["optimizer"]["optimizer"] == "tests.test_config:signed_descent"
    again = RunConfig.from_dict(raw)
    tx, _ = build_optimizer(again.optimizer, total_steps=1)  # imported again by name
    assert isinstance(tx, optax.GradientTransformation)


def test_factory_with_an_unknown_argument_names_it():
    cfg = RunConfig()
    cfg.optimizer.optimizer, cfg.optimizer.args = signed_descent, {"beta": 0.9}
    with pytest.raises(ConfigError, match=r"signed_descent has no argument\(s\) \['beta'\]"):
        build_optimizer(cfg.optimizer, total_steps=1)
