"""adadelta: Zeiler's Algorithm 1 (α = 1 is the paper), optax's and torch's forms."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._adadelta import ScaleByAdaDeltaState, adadelta, scale_by_adadelta
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13


def algorithm_1(alpha_of, rho, eps, lam_of=lambda t: 0.0, square=lambda x: x * x):
    """Zeiler's box, RMS[y] = √(E[y²] + ε), with the step scaled by α_t after E[Δx²] took
    Δx_t, and λ_t·x added to g first; ``square`` is how the form squares (complex) values."""

    def init(x0):
        return {"eg": np.zeros_like(x0), "ex": np.zeros_like(x0), "t": 0}

    def step(x, g, state):
        t = state["t"]
        g = g + lam_of(t) * x
        eg = rho * state["eg"] + (1 - rho) * square(g)
        dx = -np.sqrt(state["ex"] + eps) / np.sqrt(eg + eps) * g
        ex = rho * state["ex"] + (1 - rho) * square(dx)
        return x + alpha_of(t) * dx, {"eg": eg, "ex": ex, "t": t + 1}

    return init, step


def torch_source(lr, rho, eps, weight_decay):
    """torch.optim.Adadelta's _single_tensor_adadelta on one real tensor, in NumPy."""

    def init(x0):
        return {"square_avg": np.zeros_like(x0), "acc_delta": np.zeros_like(x0)}

    def step(param, grad, state):
        grad = grad + weight_decay * param
        square_avg = state["square_avg"] * rho + (1 - rho) * grad * grad
        std = np.sqrt(square_avg + eps)
        delta = np.sqrt(state["acc_delta"] + eps) / std * grad
        acc_delta = state["acc_delta"] * rho + (1 - rho) * delta * delta
        return param - lr * delta, {"square_avg": square_avg, "acc_delta": acc_delta}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # alpha, rho, eps, lambda, grad_scale
    (1.0, 0.9, 1e-6, 0.0, 1.0),  # Zeiler's method (α = 1) with the defaults
    (1.0, 0.95, 1e-6, 0.0, 1.0),  # the paper's experiments' ρ
    (10.0, 0.9, 1e-6, 0.0, 1.0),  # α scales the applied step only
    (0.5, 0.5, 1e-2, 0.1, 1.0),  # short memory, large ε, coupled L2
    (1.0, 0.0, 1e-6, 0.0, 1.0),  # ρ = 0: Δx = −√ε/√(g² + ε)·g
    (1.0, 1.0, 1e-6, 0.0, 1.0),  # ρ = 1: both EMAs stay 0, Δx = −g
    (1.0, 0.9, 1e-6, 0.0, 1e-5),  # gradients below √ε
]


@pytest.mark.parametrize("like", [None, "optax", "torch"])
@pytest.mark.parametrize(("alpha", "rho", "eps", "lam", "scale"), CASES)
def test_algorithm_1(like, alpha, rho, eps, lam, scale):
    # On real parameters optax's and torch's sources compute the same numbers as the box
    # (test_torch_source_formula writes torch's out separately); complex ones part below.
    init, step = algorithm_1(constant(alpha), rho, eps, constant(lam))
    tx = adadelta(alpha, rho, eps, lam, like=like)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_scale=scale, rtol=RTOL, atol=ATOL
    )


def test_torch_source_formula():
    init, step = torch_source(0.7, 0.8, 1e-4, 0.05)
    tx = adadelta(0.7, 0.8, 1e-4, 0.05, like="torch")
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def test_schedules():
    alpha_of, lam_of = (lambda t: 2.0 / (1 + t)), (lambda t: 0.1 * t)
    init, step = algorithm_1(alpha_of, 0.9, 1e-6, lam_of)
    tx = adadelta(lambda n: 2.0 / (1 + n), weight_decay=lambda n: 0.1 * n)
    assert_matches_reference(tx, step, ref_init=init, num_steps=15, rtol=RTOL, atol=ATOL)


def _complex_rollout(tx, x0, grads):
    with jax.enable_x64(True):
        x = jnp.asarray(x0)
        state, update = tx.init(x), jax.jit(tx.update)
        out = []
        for g in grads:
            updates, state = update(jnp.asarray(g), state, x)
            x = x + updates
            out.append(np.asarray(x))
    return np.array(out)


def _complex_reference(step, init, x0, grads):
    x, state, out = x0, init(x0), []
    for g in grads:
        x, state = step(x, g, state)
        out.append(x)
    return np.array(out)


def _componentwise(init, step):
    """A real rule applied to the real and imaginary parts separately (view_as_real)."""

    def c_init(x0):
        return init(x0.real), init(x0.imag)

    def c_step(x, g, state):
        re, s_re = step(x.real, g.real, state[0])
        im, s_im = step(x.imag, g.imag, state[1])
        return re + 1j * im, (s_re, s_im)

    return c_init, c_step


def test_complex_forms():
    # Three readings of g² for complex g: |g|² (paper), g·g (optax), per part (torch).
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal(5) + 1j * rng.standard_normal(5)
    grads = [rng.standard_normal(5) + 1j * rng.standard_normal(5) for _ in range(15)]
    alpha, rho, eps = 0.7, 0.9, 1e-4
    squares = {None: lambda x: (np.conj(x) * x).real, "optax": lambda x: x * x}
    want = {}
    for like, square in squares.items():
        init, step = algorithm_1(constant(alpha), rho, eps, square=square)  # complex buffers
        want[like] = _complex_reference(step, init, x0, grads)
    init, step = _componentwise(*torch_source(alpha, rho, eps, 0.0))
    want["torch"] = _complex_reference(step, init, x0, grads)
    got = {like: _complex_rollout(adadelta(alpha, rho, eps, like=like), x0, grads) for like in want}
    for like in want:
        np.testing.assert_allclose(got[like], want[like], rtol=RTOL, atol=ATOL, err_msg=str(like))
    for a, b in ((None, "optax"), (None, "torch"), ("optax", "torch")):
        assert np.max(np.abs(got[a][-1] - got[b][-1])) > 1e-3, (a, b)


def test_complex_parity_with_the_libraries():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    grads = [rng.standard_normal(4) + 1j * rng.standard_normal(4) for _ in range(12)]
    lib = _complex_rollout(optax.adadelta(0.7, weight_decay=0.1), x0, grads)
    ours = _complex_rollout(adadelta(0.7, weight_decay=0.1, like="optax"), x0, grads)
    np.testing.assert_allclose(ours, lib, rtol=RTOL, atol=ATOL)

    tensor = torch.tensor(x0, requires_grad=True)
    opt = torch.optim.Adadelta([tensor], lr=0.7, weight_decay=0.1)
    want = []
    for g in grads:
        tensor.grad = torch.tensor(g)
        opt.step()
        want.append(tensor.detach().numpy().copy())
    ours = _complex_rollout(adadelta(0.7, weight_decay=0.1, like="torch"), x0, grads)
    np.testing.assert_allclose(ours, np.array(want), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("like", [None, "optax"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 1.0},
        {"learning_rate": 3.0, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1},
        {"learning_rate": 1.0, "weight_decay": 0.1, "weight_decay_mask": {"w": True, "b": False}},
        {"learning_rate": lambda n: 2.0 / (1 + n), "weight_decay": lambda n: 0.01 * n},
    ],
)
def test_parity_optax(like, kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(adadelta(**kwargs, like=like), params, grads),
        jax_rollout(optax.adadelta(**kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("like", [None, "torch"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1.0},
        {"lr": 3.0, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1},
        {"lr": 0.5, "rho": 0.95, "eps": 1e-6, "weight_decay": 1e-2},
    ],
)
def test_parity_torch(like, kwargs):
    torch = pytest.importorskip("torch")
    params, grads = problem(15)
    ours = dict(kwargs)
    ours["learning_rate"] = ours.pop("lr")
    assert_same_trajectory(
        jax_rollout(adadelta(**ours, like=like), params, grads),
        torch_rollout(lambda p: torch.optim.Adadelta(p, **kwargs), params, grads),
        rtol=RTOL,
        atol=ATOL,
    )


def test_defaults_match_the_libraries():
    ours = inspect.signature(adadelta).parameters
    theirs = inspect.signature(optax.adadelta).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name in ("rho", "eps", "weight_decay", "weight_decay_mask"):
        assert ours[name].default == theirs[name].default, name
    # required here (the registry needs it); optax's default None is the trap below
    assert ours["learning_rate"].default is inspect.Parameter.empty
    assert theirs["learning_rate"].default is None
    scale_ours = inspect.signature(scale_by_adadelta).parameters
    for name, param in inspect.signature(optax.scale_by_adadelta).parameters.items():
        assert scale_ours[name].default == param.default, name
    torch = pytest.importorskip("torch")
    torch_defaults = inspect.signature(torch.optim.Adadelta).parameters
    assert torch_defaults["lr"].default == 1.0  # Zeiler's method
    for name in ("rho", "eps", "weight_decay"):
        assert ours[name].default == torch_defaults[name].default, name


def test_optax_without_a_learning_rate_climbs():
    # optax.adadelta(learning_rate=None) drops the final −α scale, sign flip included:
    # its update points along +g (the docstring's warning); α = 1 here descends.
    g, params = jnp.array([3.0, -2.0]), jnp.zeros(2)
    lib = optax.adadelta()
    lib_updates, _ = lib.update(g, lib.init(params), params)
    ours = adadelta(1.0)
    updates, _ = ours.update(g, ours.init(params), params)
    np.testing.assert_array_equal(np.sign(lib_updates), np.sign(g))
    np.testing.assert_allclose(updates, -lib_updates, rtol=1e-6)
    np.testing.assert_allclose(updates, -np.sqrt(1e-6 / 0.1) * np.sign(g), rtol=1e-3)


def test_weight_decay_needs_params_only_when_nonzero():
    tx = adadelta(1.0)
    tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))  # optax would ask for params here
    tx = adadelta(1.0, weight_decay=0.1)
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))


def test_state_is_optax_s():
    state = scale_by_adadelta().init({"a": jnp.zeros(3)})
    assert isinstance(state, ScaleByAdaDeltaState)
    assert state._fields == optax.ScaleByAdaDeltaState._fields


def test_traced_hyperparameters_pass():
    kwargs = {"learning_rate": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.1}
    for like in (None, "optax", "torch"):
        tx = optax.inject_hyperparams(adadelta, static_args=("like",))(**kwargs, like=like)
        plain = adadelta(**kwargs, like=like)
        params = jnp.array([1.0, -2.0])
        state, plain_state = tx.init(params), plain.init(params)
        for g in (jnp.array([0.5, 1.0]), jnp.array([-1.0, 2.0])):
            updates, state = jax.jit(tx.update)(g, state, params)
            want, plain_state = plain.update(g, plain_state, params)
            np.testing.assert_allclose(updates, want, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adadelta: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"rho": 1.5}, r"`rho` must be in \[0, 1\]"),
        ({"rho": -0.1}, r"`rho` must be in \[0, 1\]"),
        ({"eps": -1e-6}, "`eps` must be a finite number >= 0"),
        ({"weight_decay": -1e-2}, "`weight_decay` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "adadelta: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        adadelta(**kwargs)
