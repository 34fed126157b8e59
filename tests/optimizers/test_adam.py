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
