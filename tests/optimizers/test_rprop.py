"""rprop: Riedmiller & Braun's Rprop with weight-backtracking; torch's iRprop−; optax's form."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._rprop import rprop, scale_by_rprop
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import (
    assert_same_trajectory,
    jax_rollout,
    problem,
    torch_rollout,
)

# Rprop multiplies step sizes by η± and adds ±Δ: the same roundings on both sides.
RTOL, ATOL = 1e-11, 1e-13
PARITY_RTOL = 1e-10


def paper_rprop(delta0, eta_minus, eta_plus, dmin, dmax, events):
    """Riedmiller & Braun (1993), the pseudo-code with weight-backtracking, per weight.

    ``events`` counts how often each branch ran (so a test can show sign changes happened).
    """

    def init(theta0):
        theta0 = np.asarray(theta0, float)
        return {
            "delta": np.full(theta0.shape, float(delta0)),
            "dE_prev": np.zeros(theta0.shape),  # ∂E/∂w(t−1)
            "dw_prev": np.zeros(theta0.shape),  # Δw(t−1)
        }

    def step(theta, g, s):
        theta, g = np.array(theta, float), np.asarray(g, float)
        delta, dE_prev, dw_prev = s["delta"].copy(), s["dE_prev"].copy(), s["dw_prev"].copy()
        flat = [a.reshape(-1) for a in (theta, g, delta, dE_prev, dw_prev)]
        th, dE, dl, dEp, dwp = flat
        for i in range(th.size):
            if dEp[i] * dE[i] > 0:
                events["same"] += 1
                dl[i] = min(dl[i] * eta_plus, dmax)
                dw = -np.sign(dE[i]) * dl[i]
                th[i] += dw
                dwp[i], dEp[i] = dw, dE[i]
            elif dEp[i] * dE[i] < 0:
                events["change"] += 1
                dl[i] = max(dl[i] * eta_minus, dmin)
                th[i] -= dwp[i]  # w(t+1) = w(t) − Δw(t−1)
                dEp[i] = 0.0  # ∂E/∂w(t) := 0
            else:
                events["zero"] += 1
                dw = -np.sign(dE[i]) * dl[i]
                th[i] += dw
                dwp[i], dEp[i] = dw, dE[i]
        shape = theta.shape
        new = {
            "delta": dl.reshape(shape),
            "dE_prev": dEp.reshape(shape),
            "dw_prev": dwp.reshape(shape),
        }
        return th.reshape(shape), new

    return init, step


def irprop_minus_torch(delta0, eta_minus, eta_plus, dmin, dmax, events):
    """torch.optim.Rprop's documented algorithm (iRprop−), with its code's clamp of η
    on every step (also when g_prev·g_t = 0)."""

    def init(theta0):
        return {
            "eta": np.full(np.shape(theta0), float(delta0)),
            "g_prev": np.zeros(np.shape(theta0)),
        }

    def step(theta, g, s):
        g = np.array(g, float)
        prod = s["g_prev"] * g
        factor = np.where(prod > 0, eta_plus, np.where(prod < 0, eta_minus, 1.0))
        eta = np.clip(s["eta"] * factor, dmin, dmax)
        events["change"] += int(np.sum(prod < 0))
        g[prod < 0] = 0.0
        theta = np.asarray(theta, float) - eta * np.sign(g)
        return theta, {"eta": eta, "g_prev": g}

    return init, step


def optax_rprop_equations(delta0, eta_minus, eta_plus, dmin, dmax, events):
    """optax.scale_by_rprop's source as equations: s = g·P_{t−1}, θ moves by −P_{t−1}."""

    def init(theta0):
        return {"delta": np.full(np.shape(theta0), float(delta0)), "P": np.zeros(np.shape(theta0))}

    def step(theta, g, s):
        g = np.asarray(g, float)
        sgn = g * s["P"]
        adapted = np.clip(s["delta"] * np.where(sgn > 0, eta_plus, eta_minus), dmin, dmax)
        delta = np.where(sgn == 0, s["delta"], adapted)
        events["change"] += int(np.sum(sgn < 0))
        move = np.where(sgn < 0, 0.0, s["P"])
        P = np.where(sgn < 0, 0.0, delta * np.sign(g))
        return np.asarray(theta, float) - move, {"delta": delta, "P": P}

    return init, step


REFERENCES = {None: paper_rprop, "torch": irprop_minus_torch, "optax": optax_rprop_equations}
FORMS = [None, "torch", "optax"]


def oscillating(params, t):
    # ∇ of Σ 2·(θ − 0.3)²: large steps overshoot 0.3, so the signs keep flipping.
    return jax.tree.map(lambda p: 4.0 * (np.asarray(p) - 0.3), params)


def alternating(params, t):
    # a fixed gradient whose sign flips every other step, with exact zeros at t % 3 == 0
    def leaf(p):
        h = np.linspace(-1.0, 2.0, np.size(p)).reshape(np.shape(p)) + 0.05
        return ((-1.0) ** (t // 2)) * h * (t % 3 != 0)

    return jax.tree.map(leaf, params)


CASES = [
    # delta0, eta_minus, eta_plus, min, max
    (0.1, 0.5, 1.2, 1e-6, 50.0),  # the paper's values
    (0.5, 0.3, 1.5, 0.05, 0.8),  # both bounds reached
    (2.0, 0.5, 1.2, 1e-6, 0.5),  # Δ_0 above Δ_max: torch clips at once, the others on change
    (0.01, 0.9, 1.01, 0.0, 1.0),  # mild factors, Δ_min = 0
]


@pytest.mark.parametrize("like", FORMS)
@pytest.mark.parametrize("grad_fn", [None, oscillating, alternating], ids=["random", "osc", "alt"])
@pytest.mark.parametrize(("delta0", "eta_m", "eta_p", "dmin", "dmax"), CASES)
def test_formula(like, grad_fn, delta0, eta_m, eta_p, dmin, dmax):
    events = {"same": 0, "change": 0, "zero": 0}
    init, step = REFERENCES[like](delta0, eta_m, eta_p, dmin, dmax, events)
    tx = rprop(delta0, eta_m, eta_p, dmin, dmax, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_fn=grad_fn, rtol=RTOL, atol=ATOL
    )
    assert events["change"] > 0, "the gradient sequence had no sign change"


@pytest.mark.parametrize("like", FORMS)
def test_schedule_gives_the_initial_step(like):
    # Δ_0 = schedule(0); the schedule is read by init only.
    events = {"same": 0, "change": 0, "zero": 0}
    init, step = REFERENCES[like](0.3, 0.5, 1.2, 1e-6, 50.0, events)
    tx = rprop(lambda n: 0.3 + n, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_fn=oscillating, rtol=RTOL, atol=ATOL
    )


def _sign_changing_problem(num_steps):
    params, grads = problem(num_steps, seed=3)
    for t, g in enumerate(grads):  # exact zeros now and then: the s = 0 branch via g = 0
        if t % 5 == 2:
            g["b"][1] = 0.0
    return params, grads


PARITY_KWARGS = [
    {"learning_rate": 0.01},
    {"learning_rate": 0.05, "eta_minus": 0.3, "eta_plus": 1.5},
    {"learning_rate": 0.05, "min_step_size": 1e-3, "max_step_size": 0.1},
    {"learning_rate": 2.0, "max_step_size": 1.0},  # Δ_0 above Δ_max
]


def _torch_args(kwargs):
    return {
        "lr": kwargs["learning_rate"],
        "etas": (kwargs.get("eta_minus", 0.5), kwargs.get("eta_plus", 1.2)),
        "step_sizes": (kwargs.get("min_step_size", 1e-6), kwargs.get("max_step_size", 50.0)),
    }


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("kwargs", PARITY_KWARGS)
def test_parity_torch(kwargs, foreach):
    torch = pytest.importorskip("torch")
    params, grads = _sign_changing_problem(40)
    assert_same_trajectory(
        jax_rollout(rprop(**kwargs, like="torch"), params, grads),
        torch_rollout(
            lambda ps: torch.optim.Rprop(ps, **_torch_args(kwargs), foreach=foreach),
            params,
            grads,
        ),
        rtol=PARITY_RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("kwargs", PARITY_KWARGS)
def test_parity_optax(kwargs):
    params, grads = _sign_changing_problem(40)
    assert_same_trajectory(
        jax_rollout(rprop(**kwargs, like="optax"), params, grads),
        jax_rollout(optax.rprop(**kwargs), params, grads),
        rtol=PARITY_RTOL,
        atol=ATOL,
    )


def test_parity_scale_by_rprop_state():
    # scale_by_rprop(like="optax") is optax.scale_by_rprop: same updates and same state.
    params, grads = _sign_changing_problem(12)
    ours, theirs = scale_by_rprop(0.1, like="optax"), optax.scale_by_rprop(0.1)
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        s1, s2 = ours.init(p), theirs.init(p)
        for g in grads:
            g = jax.tree.map(jnp.asarray, g)
            u1, s1 = ours.update(g, s1, p)
            u2, s2 = theirs.update(g, s2, p)
            jax.tree.map(np.testing.assert_array_equal, u1, u2)
        assert type(s1).__name__ == type(s2).__name__ == "ScaleByRpropState"
        assert s1._fields == s2._fields
        jax.tree.map(np.testing.assert_array_equal, tuple(s1), tuple(s2))


def test_forms_differ():
    params, grads = _sign_changing_problem(30)
    runs = {like: jax_rollout(rprop(0.05, like=like), params, grads) for like in FORMS}
    # optax moves by the step chosen one update earlier: its first update is 0.
    np.testing.assert_array_equal(runs["optax"][0]["w"], params["w"])
    assert not np.allclose(runs[None][0]["w"], params["w"])
    # the paper's and torch's first steps agree (−Δ_0·sign(g_1)); they part at a sign change
    np.testing.assert_allclose(runs[None][0]["w"], runs["torch"][0]["w"], rtol=1e-15)
    for a, b in [(None, "torch"), (None, "optax"), ("torch", "optax")]:
        gap = max(np.max(np.abs(x["w"] - y["w"])) for x, y in zip(runs[a], runs[b], strict=True))
        assert gap > 1e-2, (a, b, gap)


def test_sign_change_backtracks_or_waits():
    # one coordinate, gradients +1, −1, −1: the paper steps back, torch stays, optax lags.
    steps = {}
    for like in FORMS:
        tx = rprop(0.1, like=like)
        state = tx.init(jnp.zeros(1))
        steps[like] = []
        for g in (1.0, -1.0, -1.0):
            u, state = tx.update(jnp.array([g]), state)
            steps[like].append(float(u[0]))
    np.testing.assert_allclose(steps[None], [-0.1, 0.1, 0.05])  # back, then Δ·η⁻ = 0.05
    np.testing.assert_allclose(steps["torch"], [-0.1, 0.0, 0.05])
    np.testing.assert_allclose(steps["optax"], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("like", FORMS)
def test_complex_parts_are_separate_coordinates(like):
    # A complex leaf runs as its real and imaginary parts side by side (torch's view_as_real).
    rng = np.random.default_rng(1)
    grads = rng.standard_normal((12, 2, 3))
    tx = rprop(0.1, like=like)
    update = jax.jit(tx.update)
    with jax.enable_x64(True):
        z, state_z = jnp.zeros(3, jnp.complex128), tx.init(jnp.zeros(3, jnp.complex128))
        x, state_x = jnp.zeros(6), tx.init(jnp.zeros(6))
        for g in grads:
            uz, state_z = update(jnp.asarray(g[0] + 1j * g[1]), state_z)
            ux, state_x = update(jnp.asarray(g.reshape(-1)), state_x)
            z, x = z + uz, x + ux
            np.testing.assert_array_equal(np.concatenate([z.real, z.imag]), x)


def test_complex_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    grads = rng.standard_normal((30, 4)) + 1j * rng.standard_normal((30, 4))
    p0 = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    t = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.Rprop([t], lr=0.05)
    tx = rprop(0.05, like="torch")
    update = jax.jit(tx.update)
    with jax.enable_x64(True):
        p = jnp.asarray(p0)
        state = tx.init(p)
        for g in grads:
            t.grad = torch.tensor(g)
            opt.step()
            u, state = update(jnp.asarray(g), state)
            p = p + u
            np.testing.assert_allclose(np.asarray(p), t.detach().numpy(), rtol=PARITY_RTOL)


def test_defaults():
    ours = inspect.signature(rprop).parameters
    theirs = inspect.signature(optax.rprop).parameters
    assert list(ours)[:5] == list(theirs)
    for name in ("eta_minus", "eta_plus", "min_step_size", "max_step_size"):
        assert ours[name].default == theirs[name].default, name
    assert ours["learning_rate"].default is inspect.Parameter.empty
    assert ours["like"].kind is inspect.Parameter.KEYWORD_ONLY and ours["like"].default is None
    assert list(inspect.signature(scale_by_rprop).parameters)[:5] == list(
        inspect.signature(optax.scale_by_rprop).parameters
    )
    torch = pytest.importorskip("torch")
    torch_defaults = inspect.signature(torch.optim.Rprop).parameters
    assert torch_defaults["etas"].default == (ours["eta_minus"].default, ours["eta_plus"].default)
    assert torch_defaults["step_sizes"].default == (
        ours["min_step_size"].default,
        ours["max_step_size"].default,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta_minus": 0.0}, r"`eta_minus` must be in \(0, 1\)"),
        ({"eta_minus": 1.0}, r"`eta_minus` must be in \(0, 1\)"),
        ({"eta_minus": -0.5}, r"`eta_minus` must be in \(0, 1\)"),
        ({"eta_plus": 1.0}, "`eta_plus` must be > 1"),
        ({"eta_plus": 0.5}, "`eta_plus` must be > 1"),
        ({"min_step_size": 1.0, "max_step_size": 0.5}, "`min_step_size` must be <= max_step"),
        ({"min_step_size": -1e-6}, "`min_step_size` must be a finite number >= 0"),
        ({"max_step_size": float("inf")}, "`max_step_size` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "rprop: `learning_rate` must be"),
        ({"like": "keras"}, r"rprop: `like` must be one of \(None, 'optax', 'torch'\)"),
    ],
)
@pytest.mark.parametrize("factory", [rprop, scale_by_rprop])
def test_bad_input(factory, kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


@pytest.mark.parametrize("like", FORMS)
def test_inject_hyperparams(like):
    # every hyper-parameter traced; the same numbers as the plain optimizer
    hp = {"eta_minus": 0.4, "eta_plus": 1.3, "min_step_size": 1e-3, "max_step_size": 0.2}
    tx = optax.inject_hyperparams(rprop, static_args=("like",))(0.05, **hp, like=like)
    plain = rprop(0.05, **hp, like=like)
    params, grads = _sign_changing_problem(10)
    got = jax_rollout(tx, params, grads)
    assert_same_trajectory(got, jax_rollout(plain, params, grads), rtol=1e-14, atol=0)
    state = tx.init(jax.tree.map(jnp.asarray, params))
    assert set(state.hyperparams) == {"learning_rate", *hp}


def test_is_exported_alias():
    # until the lead exports it, at least the module's names are the public ones
    from optlab.optimizers import _rprop

    assert {"rprop", "scale_by_rprop", "ScaleByRpropState"} <= set(dir(_rprop))
    if hasattr(optlab.optimizers, "rprop"):
        assert optlab.optimizers.rprop is rprop
