"""like="torch" on complex parameters: torch.optim works on the real view (Re and Im each a
coordinate with its own second moment), while the default forms and optax use |g|²."""

import numpy as np
import pytest

import optlab
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def complex_problem(num_steps=15):
    (p_re, g_re), (p_im, g_im) = problem(num_steps, seed=0), problem(num_steps, seed=1)
    params = {k: p_re[k] + 1j * p_im[k] for k in p_re}
    grads = [{k: a[k] + 1j * b[k] for k in a} for a, b in zip(g_re, g_im, strict=True)]
    return params, grads


CASES = [
    # name, optlab transformation (like="torch"), torch optimizer
    ("sgd", lambda: optlab.sgd(0.1, like="torch"), lambda t, ps: t.optim.SGD(ps, lr=0.1)),
    (
        "momentum",
        lambda: optlab.momentum(0.1, dampening=0.3, like="torch"),
        lambda t, ps: t.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3),
    ),
    (
        "nesterov",
        lambda: optlab.nesterov(0.05, like="torch"),
        lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    ),
    (
        "adagrad",
        lambda: optlab.adagrad(0.5, lr_decay=0.1, eps=1e-3, like="torch"),
        lambda t, ps: t.optim.Adagrad(ps, lr=0.5, lr_decay=0.1, eps=1e-3),
    ),
    (
        "rmsprop",
        lambda: optlab.rmsprop(0.01, centered=True, momentum=0.5, like="torch"),
        lambda t, ps: t.optim.RMSprop(ps, lr=0.01, centered=True, momentum=0.5),
    ),
    ("adam", lambda: optlab.adam(0.01, like="torch"), lambda t, ps: t.optim.Adam(ps, lr=0.01)),
    ("nadam", lambda: optlab.nadam(0.01, like="torch"), lambda t, ps: t.optim.NAdam(ps, lr=0.01)),
    (
        "adamw",
        lambda: optlab.adamw(0.01, weight_decay=0.1, like="torch"),
        lambda t, ps: t.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
def test_complex_parity_torch(torch, name, ours, theirs):
    params, grads = complex_problem()
    assert_same_trajectory(
        jax_rollout(ours(), params, grads),
        torch_rollout(lambda ps: theirs(torch, ps), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda like: optlab.adagrad(0.5, eps=1e-3, eps_in_sqrt=False, like=like),
        lambda like: optlab.rmsprop(0.01, 0.99, eps_in_sqrt=False, like=like),
        lambda like: optlab.adam(0.01, like=like),
        lambda like: optlab.nadam(0.01, like=like),
        lambda like: optlab.adamw(0.01, like=like),
    ],
    ids=["adagrad", "rmsprop", "adam", "nadam", "adamw"],
)
def test_complex_default_uses_abs_squared_not_the_real_view(make):
    # Same hyper-parameters: only the complex convention differs.
    params, grads = complex_problem()
    default = jax_rollout(make(None), params, grads)
    torch_form = jax_rollout(make("torch"), params, grads)
    assert np.max(np.abs(default[-1]["w"] - torch_form[-1]["w"])) > 1e-4
    real_params, real_grads = problem(15)
    assert_same_trajectory(
        jax_rollout(make(None), real_params, real_grads),
        jax_rollout(make("torch"), real_params, real_grads),
        rtol=RTOL,
        atol=ATOL,
    )
