"""adagrad: s ← s + g⊙g, w ← w − α g ⊘ √(s + ε) (lectures 01, 02, 03)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


@pytest.mark.parametrize("s0", [0.0, 0.1])
def test_lecture02_formula(s0):
    alpha, eps = 0.5, 1e-10

    def ref_step(w, g, s):
        s = s + g * g  # s ← s + ∇J ⊗ ∇J
        return w - alpha * g / np.sqrt(s + eps), s  # w ← w − α ∇J ⊘ √(s + ε)

    assert_matches_reference(
        optlab.adagrad(alpha, eps, initial_accumulator=s0),
        ref_step,
        ref_init=lambda p: np.full_like(p, s0),
        rtol=RTOL,
        atol=ATOL,
    )


def test_lecture01_formula_without_eps():
    # Lecture 01: Δθ_j = −η g_j / √(Σ_{τ=1}^{t} g²_{τ,j}); the history is kept explicitly.
    eta = 0.3

    def ref_step(theta, g, history):
        history = [*history, g]
        return theta - eta * g / np.sqrt(sum(h**2 for h in history)), history

    assert_matches_reference(
        optlab.adagrad(eta, eps=0.0), ref_step, ref_init=lambda p: [], rtol=RTOL, atol=ATOL
    )


def test_torch_epsilon_placement():
    alpha, eps = 0.5, 1e-3  # a visible ε, so the placement matters

    def ref_step(w, g, s):
        s = s + g * g
        return w - alpha * g / (np.sqrt(s) + eps), s

    assert_matches_reference(
        optlab.adagrad(alpha, eps, eps_in_sqrt=False),
        ref_step,
        ref_init=np.zeros_like,
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_optax():
    # optax.adagrad keeps ε inside the root; match its defaults explicitly.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(0.5, 1e-7, initial_accumulator=0.1), params, grads),
        jax_rollout(optax.adagrad(0.5, initial_accumulator_value=0.1, eps=1e-7), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.Adagrad(lr, lr_decay=0, initial_accumulator_value=0, eps=1e-10):
    # ε outside the root, so eps_in_sqrt=False.
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(0.5, 1e-10, eps_in_sqrt=False), params, grads),
        torch_rollout(lambda ps: torch.optim.Adagrad(ps, lr=0.5, eps=1e-10), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


# like="optax" (optax.scale_by_rss) and like="torch" (torch.optim.Adagrad), each against
# the library's equations, with the library's defaults and with passed arguments.


def optax_adagrad_reference(rate_of_t, s0, eps):
    """optax.scale_by_rss: s_t = s_{t−1} + g_t²;  u_t = −α_t·g_t·rsqrt(s_t + ε) where s_t > 0."""

    def step(w, g, state):
        s, t = state
        s = s + g * g
        scale = np.where(s > 0, 1 / np.sqrt(s + eps), 0.0)
        return w - rate_of_t(t) * scale * g, (s, t + 1)

    return lambda p: (np.full_like(p, s0), 0), step


def torch_adagrad_reference(lr, lr_decay, s0, eps):
    """torch.optim.Adagrad docs: γ̃ = γ/(1 + (t − 1)η);  s_t = s_{t−1} + g_t²;
    θ_t = θ_{t−1} − γ̃·g_t/(√s_t + ε)."""

    def step(w, g, state):
        s, t = state
        t = t + 1
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        return w - clr * g / (np.sqrt(s) + eps), (s, t)

    return lambda p: (np.full_like(p, s0), 0), step


def schedule_np(t):
    return 0.5 * 0.9**t + 0.05


def schedule_jax(count):
    return 0.5 * 0.9 ** count.astype(np.float64) + 0.05


@pytest.mark.parametrize(
    ("kwargs", "s0", "eps", "scheduled"),
    [
        ({}, 0.1, 1e-7, False),  # optax's defaults: s_0 = 0.1, ε = 1e-7 (inside the root)
        ({"eps": 1e-3, "initial_accumulator": 0.0}, 0.0, 1e-3, True),
        ({"eps": 0.0, "initial_accumulator": 2.0, "eps_in_sqrt": True}, 2.0, 0.0, False),
    ],
)
def test_optax_formula(kwargs, s0, eps, scheduled):
    init, step = optax_adagrad_reference(schedule_np if scheduled else lambda t: 0.5, s0, eps)
    tx = optlab.adagrad(schedule_jax if scheduled else 0.5, like="optax", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("kwargs", "lr_decay", "s0", "eps"),
    [
        ({}, 0.0, 0.0, 1e-10),  # torch's defaults: lr_decay 0, s_0 = 0, ε = 1e-10 (outside)
        ({"lr_decay": 0.1, "initial_accumulator": 0.2, "eps": 1e-3}, 0.1, 0.2, 1e-3),
        ({"lr_decay": 0.0, "eps_in_sqrt": False, "eps": 0.5}, 0.0, 0.0, 0.5),
    ],
)
def test_torch_formula(kwargs, lr_decay, s0, eps):
    init, step = torch_adagrad_reference(0.5, lr_decay, s0, eps)
    tx = optlab.adagrad(0.5, like="torch", **kwargs)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_torch_lr_decay_divides_a_schedule():
    # lr_decay multiplies a schedule by 1/(1 + t·η), t the updates made before.
    def step(w, g, state):
        s, t = state
        s = s + g * g
        return w - schedule_np(t) / (1 + t * 0.2) * g / (np.sqrt(s) + 1e-10), (s, t + 1)

    assert_matches_reference(
        optlab.adagrad(schedule_jax, lr_decay=0.2, like="torch"),
        step,
        ref_init=lambda p: (np.zeros_like(p), 0),
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("lr", "kwargs", "theirs"),
    [
        (0.5, {}, {}),
        (
            schedule_jax,
            {"eps": 1e-3, "initial_accumulator": 0.0},
            {"eps": 1e-3, "initial_accumulator_value": 0.0},
        ),
    ],
)
def test_parity_optax_like(lr, kwargs, theirs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(lr, like="optax", **kwargs), params, grads),
        jax_rollout(optax.adagrad(lr, **theirs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("kwargs", "theirs"),
    [
        ({}, {}),
        (
            {"lr_decay": 0.1, "initial_accumulator": 0.2, "eps": 1e-3},
            {"lr_decay": 0.1, "initial_accumulator_value": 0.2, "eps": 1e-3},
        ),
    ],
)
def test_parity_torch_like(torch, kwargs, theirs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.adagrad(0.5, like="torch", **kwargs), params, grads),
        torch_rollout(lambda ps: torch.optim.Adagrad(ps, lr=0.5, **theirs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_defaults_resolve_per_form():
    # None → the lecture's (1e-10, 0, inside) for like=None, exactly as before the switch.
    params, grads = problem(15)
    before = jax_rollout(
        optlab.adagrad(0.5, 1e-10, initial_accumulator=0.0, eps_in_sqrt=True), params, grads
    )
    assert_same_trajectory(jax_rollout(optlab.adagrad(0.5), params, grads), before, rtol=0, atol=0)
    # The forms differ: optax's s_0 = 0.1, torch's ε outside the root (visible at ε = 0.1).
    optax_form = jax_rollout(optlab.adagrad(0.5, like="optax"), params, grads)
    assert np.max(np.abs(optax_form[-1]["w"] - before[-1]["w"])) > 1e-3
    a = jax_rollout(optlab.adagrad(0.5, 0.1, like="torch"), params, grads)
    b = jax_rollout(optlab.adagrad(0.5, 0.1), params, grads)
    assert np.max(np.abs(a[-1]["w"] - b[-1]["w"])) > 1e-3


def test_traced_lr_decay_and_eps():
    tx = optax.inject_hyperparams(optlab.adagrad)(
        learning_rate=0.5, eps=1e-3, lr_decay=0.1, like="torch"
    )
    state = tx.init(jnp.ones(2))
    _, state = jax.jit(tx.update)(jnp.ones(2), state)
    updates, _ = jax.jit(tx.update)(jnp.ones(2), state)
    np.testing.assert_allclose(updates, -0.5 / 1.1 / (np.sqrt(2) + 1e-3), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adagrad: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"eps_in_sqrt": True, "like": "torch"}, "eps_in_sqrt=True conflicts with like='torch'"),
        ({"eps_in_sqrt": False, "like": "optax"}, "eps_in_sqrt=False conflicts with like='optax'"),
        ({"lr_decay": 0.1}, "lr_decay=0.1 needs like='torch'"),
        ({"lr_decay": 0.1, "like": "optax"}, "lr_decay=0.1 needs like='torch'"),
        ({"lr_decay": -0.1, "like": "torch"}, "`lr_decay` must be a finite number >= 0"),
        ({"eps": -1e-3, "like": "optax"}, "`eps` must be a finite number >= 0"),
        ({"initial_accumulator": -1.0, "like": "torch"}, "`initial_accumulator` must be"),
        ({"learning_rate": -0.1, "like": "torch"}, "adagrad: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.adagrad(**kwargs)
