"""adam: Kingma & Ba's Algorithm 1 as lecture 04 prints it."""

import inspect

import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def algorithm_1(alpha, beta1, beta2, epsilon):
    """Lecture 04, line by line: t ← t+1; m_t, v_t; m̂_t, v̂_t; θ_t."""

    def init(theta0):
        return {"m": np.zeros_like(theta0), "v": np.zeros_like(theta0), "t": 0}

    def step(theta, g, s):
        t = s["t"] + 1
        m = beta1 * s["m"] + (1 - beta1) * g
        v = beta2 * s["v"] + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - alpha * m_hat / (np.sqrt(v_hat) + epsilon)
        return theta, {"m": m, "v": v, "t": t}

    return init, step


@pytest.mark.parametrize(
    ("alpha", "b1", "b2", "eps", "grad_scale"),
    [
        (1e-3, 0.9, 0.999, 1e-8, 1.0),  # the paper's defaults
        (0.1, 0.5, 0.9, 1e-3, 1.0),  # a visible ε and short memories
        (0.01, 0.9, 0.999, 1e-8, 1e-6),  # gradients near ε
        (0.01, 0.0, 0.0, 1e-8, 1e4),  # β = 0: sign-like steps
    ],
)
def test_algorithm_1(alpha, b1, b2, eps, grad_scale):
    init, step = algorithm_1(alpha, b1, b2, eps)
    assert_matches_reference(
        optlab.adam(alpha, b1, b2, eps),
        step,
        ref_init=init,
        num_steps=15,
        grad_scale=grad_scale,
        rtol=RTOL,
        atol=ATOL,
    )


def test_defaults_are_the_papers():
    # Lecture 03's "β2 = 0.888" is a typo for 0.999. The paper's α = 1e-3 is not a default:
    # the learning rate is required, as in optax (tests/optimizers/test_registry.py).
    defaults = {k: p.default for k, p in inspect.signature(optlab.adam).parameters.items()}
    assert defaults == {
        "learning_rate": inspect.Parameter.empty,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
        "like": None,
    }


def test_parity_optax():
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adam(0.01, 0.9, 0.99, 1e-6), params, grads),
        jax_rollout(optax.adam(0.01, 0.9, 0.99, 1e-6), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.Adam(lr, betas, eps, weight_decay=0, amsgrad=False).
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adam(0.01, 0.9, 0.99, 1e-6), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-6), params, grads
        ),
        rtol=RTOL,
        atol=ATOL,
    )


# like="optax" / like="torch": both libraries compute Algorithm 1 with the paper's
# defaults; each is checked against the library's own written form.


def optax_adam_reference(alpha, b1, b2, eps, eps_root=0.0):
    """optax.adam docs: m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), u = −α m̂/(√(v̂ + ε̄) + ε)."""

    def step(theta, g, s):
        t = s["t"] + 1
        m = (1 - b1) * g + b1 * s["m"]
        v = (1 - b2) * g**2 + b2 * s["v"]
        u = -alpha * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t) + eps_root) + eps)
        return theta + u, {"m": m, "v": v, "t": t}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0}, step


def torch_adam_reference(lr, b1, b2, eps):
    """torch.optim.Adam (non-capturable): step_size = lr/(1 − β1^t),
    denom = √v/√(1 − β2^t) + ε, θ ← θ − step_size·m/denom."""

    def step(theta, g, s):
        t = s["t"] + 1
        m = s["m"] + (1 - b1) * (g - s["m"])  # exp_avg.lerp_(grad, 1 − β1)
        v = b2 * s["v"] + (1 - b2) * g * g
        denom = np.sqrt(v) / np.sqrt(1 - b2**t) + eps
        return theta - lr / (1 - b1**t) * m / denom, {"m": m, "v": v, "t": t}

    return lambda p: {"m": 0 * p, "v": 0 * p, "t": 0}, step


LIKE_CASES = [
    # alpha, kwargs, (b1, b2, eps)
    (1e-3, {}, (0.9, 0.999, 1e-8)),  # the defaults (the paper's = both libraries')
    (0.1, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}, (0.5, 0.9, 1e-3)),
]


@pytest.mark.parametrize(("alpha", "kwargs", "hyper"), LIKE_CASES)
@pytest.mark.parametrize("like", ["optax", "torch"])
def test_library_formula(like, alpha, kwargs, hyper):
    reference = optax_adam_reference if like == "optax" else torch_adam_reference
    init, step = reference(alpha, *hyper)
    assert_matches_reference(
        optlab.adam(alpha, like=like, **kwargs),
        step,
        ref_init=init,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(("alpha", "kwargs", "hyper"), LIKE_CASES)
def test_parity_optax_like(alpha, kwargs, hyper):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adam(alpha, like="optax", **kwargs), params, grads),
        jax_rollout(optax.adam(alpha, **kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(("alpha", "kwargs", "hyper"), LIKE_CASES)
def test_parity_torch_like(torch, alpha, kwargs, hyper):
    b1, b2, eps = hyper
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adam(alpha, like="torch", **kwargs), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Adam(ps, lr=alpha, betas=(b1, b2), eps=eps), params, grads
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def test_like_forms_equal_the_default_for_real_params():
    params, grads = problem(15)
    default = jax_rollout(optlab.adam(0.01), params, grads)
    assert_same_trajectory(
        jax_rollout(optlab.adam(0.01, like="optax"), params, grads), default, rtol=0, atol=0
    )
    assert_same_trajectory(
        jax_rollout(optlab.adam(0.01, like="torch"), params, grads), default, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adam: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"b1": 1.0, "like": "torch"}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1, "like": "optax"}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8, "like": "torch"}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1, "like": "torch"}, "adam: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.adam(**kwargs)
