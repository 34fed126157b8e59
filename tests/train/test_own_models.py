"""Bring your own model to the trainer: a Flax NNX module, or a pure apply(params, x)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from optlab.config import RunConfig
from optlab.models import from_apply
from optlab.train import run


def _cfg(out):
    cfg = RunConfig(out=str(out))
    cfg.train.epochs, cfg.train.log_every = 4, 20
    cfg.optimizer.learning_rate = 3e-3
    return cfg


class Net(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(64, 32, rngs=rngs)
        self.out = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


def test_nnx_module(tmp_path):
    result = run(_cfg(tmp_path), model=Net(nnx.Rngs(0)), progress=False)
    assert result.summary["test_accuracy"] > 0.8
    assert set(result.state.params) == {"hidden", "out"}


def test_pure_apply_function(tmp_path):
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "w1": jax.random.normal(key1, (64, 32)) / 8.0,
        "b1": jnp.zeros(32),
        "w2": jax.random.normal(key2, (32, 10)) / np.sqrt(32),
        "b2": jnp.zeros(10),
    }

    def apply(p, x):
        h = jax.nn.relu(x.reshape(x.shape[0], -1) @ p["w1"] + p["b1"])
        return h @ p["w2"] + p["b2"]

    result = run(_cfg(tmp_path), model=from_apply(apply, params), progress=False)
    assert result.summary["test_accuracy"] > 0.8
