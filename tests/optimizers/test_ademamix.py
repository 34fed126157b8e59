"""ademamix: Pagliardini et al.'s Algorithm 1 with the α and β3 warm-up schedulers."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13


def f_alpha(t, alpha, warmup):
    """The paper's α scheduler, min(tα/T, α)."""
    return min(t * alpha / warmup, alpha)


def f_beta3(t, beta3, beta_start, warmup):
    """The paper's β3 scheduler (its half-life grows linearly in t)."""
    a = t / warmup
    log_s, log_e = math.log(beta_start), math.log(beta3)
    return min(math.exp(log_s * log_e / ((1 - a) * log_e + a * log_s)), beta3)


def algorithm_1(eta, b1, b2, eps, lam, alpha_of, beta3_of, eps_root=0.0):
    """Algorithm 1 line by line; α(·), β3(·) are read at the argument the caller chose."""

    def init(theta0):
        z = np.zeros_like(theta0)
        return {"m1": z, "m2": z, "nu": z, "t": 0}

    def step(theta, g, s):
        t = s["t"] + 1
        alpha, beta3 = alpha_of(t), beta3_of(t)
        m1 = b1 * s["m1"] + (1 - b1) * g
        m2 = beta3 * s["m2"] + (1 - beta3) * g
        nu = b2 * s["nu"] + (1 - b2) * g * g
        m1_hat, nu_hat = m1 / (1 - b1**t), nu / (1 - b2**t)
        u = (m1_hat + alpha * m2) / (np.sqrt(nu_hat + eps_root) + eps)
        theta = theta - eta * (u + lam * theta)
        return theta, {"m1": m1, "m2": m2, "nu": nu, "t": t}

    return init, step


CASES = [
    # eta, b1, b2, b3, alpha, eps, lam, T_alpha, T_b3
    (1e-3, 0.9, 0.999, 0.9999, 5.0, 1e-8, 0.0, None, None),  # optax's defaults
    (0.01, 0.9, 0.999, 0.9999, 8.0, 1e-8, 0.1, 10, 8),  # warm-ups ending inside the run
    (0.05, 0.5, 0.9, 0.99, 4.0, 1e-3, 0.01, 20, 20),  # still warming up at step 15
]


@pytest.mark.parametrize(("eta", "b1", "b2", "b3", "alpha", "eps", "lam", "ta", "tb"), CASES)
def test_algorithm_1(eta, b1, b2, b3, alpha, eps, lam, ta, tb):
    # The paper's schedulers read its t = 1, 2, ...
    alpha_of = (lambda t: f_alpha(t, alpha, ta)) if ta else (lambda t: alpha)
    beta3_of = (lambda t: f_beta3(t, b3, b1, tb)) if tb else (lambda t: b3)
    init, step = algorithm_1(eta, b1, b2, eps, lam, alpha_of, beta3_of)
    tx = optlab.ademamix(
        eta, b1, b2, b3, alpha, eps, weight_decay=lam, alpha_warmup=ta, b3_warmup=tb
    )
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("eta", "b1", "b2", "b3", "alpha", "eps", "lam", "ta", "tb"), CASES)
def test_optax_source(eta, b1, b2, b3, alpha, eps, lam, ta, tb):
    # optax.contrib.scale_by_ademamix reads alpha(count_m2), b3(count_m2): count_m2 = t − 1.
    alpha_of = (lambda t: f_alpha(t - 1, alpha, ta)) if ta else (lambda t: alpha)
    beta3_of = (lambda t: f_beta3(t - 1, b3, 0.6, tb)) if tb else (lambda t: b3)
    init, step = algorithm_1(eta, b1, b2, eps, lam, alpha_of, beta3_of, eps_root=1e-6)
    tx = optlab.ademamix(
        eta, b1, b2, b3, alpha, eps, 1e-6, weight_decay=lam, alpha_warmup=ta, b3_warmup=tb,
        b3_start=0.6, like="optax",
    )  # fmt: skip
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_callable_alpha_and_b3_read_the_count_in_both_forms():
    # Schedules given as alpha=/b3= read the number of updates made (optax's convention).
    alpha_of, beta3_of = (lambda t: 2.0 + 0.5 * (t - 1)), (lambda t: 0.9 + 0.005 * (t - 1))
    init, step = algorithm_1(0.01, 0.9, 0.999, 1e-8, 0.0, alpha_of, beta3_of)
    for like in (None, "optax"):
        tx = optlab.ademamix(
            0.01, b3=lambda n: 0.9 + 0.005 * n, alpha=lambda n: 2.0 + 0.5 * n, like=like
        )
        assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_defaults_are_optax():
    for ours, theirs in (
        (optlab.ademamix, optax.contrib.ademamix),
        (optlab.scale_by_ademamix, optax.contrib.scale_by_ademamix),
    ):
        mine = inspect.signature(ours).parameters
        for name, p in inspect.signature(theirs).parameters.items():
            assert mine[name].default == p.default, (ours.__name__, name)


def jax_alpha(alpha, warmup):
    return lambda n: jnp.minimum(n * alpha / warmup, alpha)


def jax_beta3(beta3, beta_start, warmup):
    def schedule(n):
        a = n.astype(jnp.float64) / warmup  # int32 / int would be float32
        log_s, log_e = jnp.log(beta_start), jnp.log(beta3)
        return jnp.minimum(jnp.exp(log_s * log_e / ((1 - a) * log_e + a * log_s)), beta3)

    return schedule


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "b3": 0.999, "alpha": 8.0, "eps": 1e-6},
        {"learning_rate": 0.02, "weight_decay": 0.1, "eps_root": 1e-8},
        {"learning_rate": 0.02, "weight_decay": 0.1, "mask": {"w": True, "b": False}},
    ],
)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    for like in (None, "optax"):  # without warm-ups the forms agree
        assert_same_trajectory(
            jax_rollout(optlab.ademamix(**kwargs, like=like), params, grads),
            jax_rollout(optax.contrib.ademamix(**kwargs), params, grads),
            rtol=RTOL,
            atol=ATOL,
        )


def test_parity_optax_with_the_paper_schedulers():
    # optax takes the schedulers as alpha=, b3= (the authors' JAX usage); like="optax".
    params, grads = problem(15)
    ours = optlab.ademamix(0.01, b3=0.999, alpha=8.0, alpha_warmup=10, b3_warmup=12, like="optax")
    theirs = optax.contrib.ademamix(0.01, b3=jax_beta3(0.999, 0.9, 12), alpha=jax_alpha(8.0, 10))
    assert_same_trajectory(
        jax_rollout(ours, params, grads), jax_rollout(theirs, params, grads), rtol=RTOL, atol=ATOL
    )


def test_warmups_differ_by_one_step():
    params, grads = problem(15)
    kwargs = {"b3": 0.999, "alpha": 8.0, "alpha_warmup": 10, "b3_warmup": 12}
    paper = jax_rollout(optlab.ademamix(0.01, **kwargs), params, grads)
    lib = jax_rollout(optlab.ademamix(0.01, **kwargs, like="optax"), params, grads)
    diff = max(np.max(np.abs(paper[-1][k] - lib[-1][k]) / np.abs(lib[-1][k])) for k in lib[-1])
    assert diff > 1e-4, diff  # the paper's α(1) = α/T_α; optax's α(1) = f_α(0) = 0


def test_traced_hyperparameters_pass():
    tx = optax.inject_hyperparams(optlab.ademamix)(learning_rate=0.1, b3=0.999, alpha=5.0)
    updates, _ = jax.jit(tx.update)(jnp.ones(2), tx.init(jnp.ones(2)), jnp.ones(2))
    assert updates.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"ademamix: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no ademamix"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.5}, r"`b2` must be in \[0, 1\)"),
        ({"b3": 1.5}, r"`b3` must be in \[0, 1\)"),
        ({"alpha": -1.0}, "`alpha` must be a finite number >= 0"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"weight_decay": -0.1}, "`weight_decay` must be a finite number >= 0"),
        ({"alpha_warmup": 0}, "`alpha_warmup` must be a positive int"),
        ({"b3_warmup": 10, "b1": 0.0}, r"`b3_start` must be in \(0, 1\)"),
        ({"alpha_warmup": 10, "alpha": lambda n: 1.0}, "`alpha` is already a schedule"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.ademamix(**kwargs)
