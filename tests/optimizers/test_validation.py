"""Bad hyper-parameters fail early with a ValueError naming the argument; traced ones pass."""

import jax
import jax.numpy as jnp
import optax
import pytest

import optlab

ALL = {
    "sgd": optlab.sgd,
    "momentum": optlab.momentum,
    "nesterov": optlab.nesterov,
    "adagrad": optlab.adagrad,
    "rmsprop": optlab.rmsprop,
    "adam": optlab.adam,
    "nadam": optlab.nadam,
    "adamw": optlab.adamw,
}


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_learning_rate(name, bad):
    with pytest.raises(ValueError, match=rf"{name}: `learning_rate` must be"):
        ALL[name](bad)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adam", "nadam", "adamw"])
def test_negative_eps(name):
    with pytest.raises(ValueError, match="`eps` must be a finite number >= 0"):
        ALL[name](0.1, eps=-1e-8)


@pytest.mark.parametrize("name", ["adam", "nadam", "adamw"])
@pytest.mark.parametrize("arg", ["b1", "b2"])
@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_betas_outside_unit_interval(name, arg, bad):
    with pytest.raises(ValueError, match=rf"`{arg}` must be in \[0, 1\)"):
        ALL[name](0.1, **{arg: bad})


@pytest.mark.parametrize(
    ("factory", "kwargs", "arg"),
    [
        (optlab.momentum, {"mu": 1.0}, "mu"),
        (optlab.momentum, {"mu": -0.5, "form": "ema"}, "mu"),
        (optlab.momentum, {"mu": 2.0, "form": "velocity"}, "mu"),
        (optlab.nesterov, {"mu": 1.0}, "mu"),
        (optlab.rmsprop, {"decay": 1.0}, "decay"),
        (optlab.rmsprop, {"momentum": 1.0}, "momentum"),
        (optlab.adagrad, {"initial_accumulator": -1.0}, "initial_accumulator"),
        (optlab.nadam, {"momentum_decay": -0.004}, "momentum_decay"),
        (optlab.adamw, {"weight_decay": -0.01}, "weight_decay"),
    ],
)
def test_other_ranges(factory, kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        factory(0.1, **kwargs)


def test_unknown_choices():
    with pytest.raises(ValueError, match=r"`form` must be one of \('heavy_ball', 'ema'"):
        optlab.momentum(0.1, form="nesterov")
    with pytest.raises(ValueError, match="`decay_scaling`"):
        optlab.adamw(0.1, decay_scaling="paper")


def test_message_says_the_fix():
    with pytest.raises(ValueError, match=r"Kingma & Ba suggest b1=0\.9"):
        optlab.adam(0.1, b1=0.99999 + 1)


def test_traced_hyperparameters_are_not_checked_with_python_if():
    params = jnp.ones(3)

    @jax.jit
    def one_step(lr, b1):
        tx = optlab.adam(lr, b1=b1)
        return tx.update(params, tx.init(params))[0]

    assert one_step(0.1, 0.9).shape == (3,)

    tx = optax.inject_hyperparams(optlab.nadam)(learning_rate=0.1, b1=0.9, b2=0.99)
    jax.jit(tx.update)(params, tx.init(params), params)

    def run(lr, mu):
        tx = optlab.momentum(lr, mu, form="velocity")
        return tx.update(params, tx.init(params))[0]

    sweep = jax.vmap(run)(jnp.array([0.1, 0.01]), jnp.array([0.9, 0.5]))
    assert sweep.shape == (2, 3)
