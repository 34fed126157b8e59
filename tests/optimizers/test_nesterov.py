"""nesterov: the look-ahead method (lectures 02, 03), run as PyTorch's reformulation."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13
MU, GAMMA = 0.9, 0.05

# A diagonal quadratic per leaf: ∇f(x) = a ⊙ x − c, so the gradient depends on where it is
# taken, which is what separates the look-ahead from plain momentum.
CURVATURE = {"dense": {"kernel": 0.5, "bias": 2.0}, "scale": 1.0}


def quadratic_grad(params, t):
    del t
    return {
        "dense": {
            "kernel": CURVATURE["dense"]["kernel"] * params["dense"]["kernel"] - 1.0,
            "bias": CURVATURE["dense"]["bias"] * params["dense"]["bias"] + 0.5,
        },
        "scale": CURVATURE["scale"] * params["scale"] - 0.3,
    }


def test_matches_literal_look_ahead_sutskever():
    # Lecture 03 / Sutskever et al.: v ← μv − γ∇f(θ + μv);  θ ← θ + v.
    # The reformulated iterate is the look-ahead point φ = θ + μv, so the reference
    # reports φ, and the harness hands it the gradient at φ = θ + μv, i.e. exactly
    # ∇f(θ + μv) of the literal algorithm.
    def ref_init(phi0):
        return {"theta": phi0, "v": np.zeros_like(phi0)}

    def ref_step(phi, grad_at_look_ahead, state):
        theta, v = state["theta"], state["v"]
        np.testing.assert_allclose(phi, theta + MU * v, rtol=1e-14)
        v = MU * v - GAMMA * grad_at_look_ahead
        theta = theta + v
        return theta + MU * v, {"theta": theta, "v": v}

    assert_matches_reference(
        optlab.nesterov(GAMMA, MU),
        ref_step,
        ref_init=ref_init,
        grad_fn=quadratic_grad,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


def lecture02_grad(params, t):
    # Lecture 02's surface f = 5x² + 2xy + 3y²: ∇f = (10x + 2y, 2x + 6y).
    del t
    x, y = params["xy"]
    return {"xy": np.array([10 * x + 2 * y, 2 * x + 6 * y])}


def test_matches_lecture02_corrected_ema_form():
    # Lecture 02 writes V ← βV + (1 − β)∇J(w + βV), w ← w − αV. The step is −αV, so the
    # point ahead is w − αβV (the lecture's "w + βV" is a slip). Corrected:
    #   V ← βV + (1 − β)∇J(w − αβV);  w ← w − αV,
    # which is nesterov(γ = α(1 − β), μ = β) with iterate φ = w − αβV.
    alpha, beta = 0.05, 0.8

    def ref_init(params):
        return {"w": params["xy"], "V": np.zeros(2)}

    def ref_step(phi, grad_at_phi, state):
        w, big_v = state["w"], state["V"]
        look_ahead = w - alpha * beta * big_v
        np.testing.assert_allclose(phi["xy"], look_ahead, rtol=1e-14)
        big_v = beta * big_v + (1 - beta) * grad_at_phi["xy"]
        w = w - alpha * big_v
        return {"xy": w - alpha * beta * big_v}, {"w": w, "V": big_v}

    report = assert_matches_reference(
        optlab.nesterov(alpha * (1 - beta), beta),
        ref_step,
        ref_init=ref_init,
        grad_fn=lecture02_grad,
        shapes={"xy": (2,)},
        per_leaf=False,
        num_steps=40,
        rtol=RTOL,
        atol=ATOL,
    )
    # And it is descending to the minimum (0, 0) of the positive-definite quadratic.
    assert np.linalg.norm(report.jax_params[-1]["xy"]) < 0.05 * np.linalg.norm(
        report.jax_params[0]["xy"]
    )


def test_parity_optax():
    # optax.sgd(γ, momentum=μ, nesterov=True).
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.nesterov(GAMMA, MU), params, grads),
        jax_rollout(optax.sgd(GAMMA, momentum=MU, nesterov=True), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_parity_torch(torch):
    # torch.optim.SGD(lr=γ, momentum=μ, dampening=0, nesterov=True).
    params, grads = problem()
    assert_same_trajectory(
        jax_rollout(optlab.nesterov(GAMMA, MU), params, grads),
        torch_rollout(
            lambda ps: torch.optim.SGD(ps, lr=GAMMA, momentum=MU, nesterov=True), params, grads
        ),
        rtol=RTOL,
        atol=ATOL,
    )


# like="optax" / like="torch": both libraries compute the reformulation, so the switch
# gives the default's numbers; each is checked against the library's own equations.


def schedule_np(t):
    return 0.05 * 0.9**t + 0.005


def schedule_jax(count):
    return 0.05 * 0.9 ** count.astype(jnp.float64) + 0.005


def optax_nesterov_reference(rate_of_t, mu):
    """optax.sgd docs: m_t ← g_t + μ·m_{t−1};  u_t ← −α_t·(g_t + μ·m_t)."""

    def step(theta, g, state):
        m, t = state
        m = g + mu * m
        return theta - rate_of_t(t) * (g + mu * m), (m, t + 1)

    return lambda p: (np.zeros_like(p), 0), step


def torch_nesterov_reference(lr, mu):
    """torch.optim.SGD docs (nesterov, τ = 0): b_1 = g_1, b_t = μ·b_{t−1} + g_t;
    g ← g_t + μ·b_t;  θ ← θ − γ·g."""

    def step(theta, g, buf):
        buf = g.copy() if buf is None else mu * buf + g
        return theta - lr * (g + mu * buf), buf

    return lambda p: None, step


@pytest.mark.parametrize(("mu", "scheduled"), [(MU, False), (0.5, True)])
def test_optax_formula(mu, scheduled):
    init, step = optax_nesterov_reference(schedule_np if scheduled else lambda t: GAMMA, mu)
    tx = optlab.nesterov(schedule_jax if scheduled else GAMMA, mu, like="optax")
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mu", [MU, 0.5])
def test_torch_formula(mu):
    init, step = torch_nesterov_reference(GAMMA, mu)
    tx = optlab.nesterov(GAMMA, mu, like="torch")
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(("lr", "mu"), [(GAMMA, MU), (schedule_jax, 0.5)])
def test_parity_optax_like(lr, mu):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.nesterov(lr, mu, like="optax"), params, grads),
        jax_rollout(optax.sgd(lr, momentum=mu, nesterov=True), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(("lr", "mu"), [(GAMMA, MU), (0.02, 0.5)])
def test_parity_torch_like(torch, lr, mu):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.nesterov(lr, mu, like="torch"), params, grads),
        torch_rollout(
            lambda ps: torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=True), params, grads
        ),
        rtol=RTOL,
        atol=ATOL,
    )


def test_like_forms_equal_the_default_and_keep_its_state():
    params, grads = problem(15)
    default = jax_rollout(optlab.nesterov(schedule_jax, MU), params, grads)
    for like in ("optax", "torch"):
        tx = optlab.nesterov(schedule_jax, MU, like=like)
        assert type(tx.init(jnp.zeros(2))[0]).__name__ == "NesterovState"
        assert_same_trajectory(jax_rollout(tx, params, grads), default, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"nesterov: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"mu": 1.0, "like": "torch"}, r"`mu` must be in \[0, 1\)"),
        ({"learning_rate": -0.1, "like": "optax"}, "nesterov: `learning_rate` must be"),
    ],
)
def test_bad_input_like(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        optlab.nesterov(**kwargs)
