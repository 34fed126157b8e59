"""sam: Foret et al.'s Algorithm 1 in one update call, and optax.contrib.sam's forms.

The NumPy references use the objectives' analytic gradients (a coupled quadratic and a
logistic regression over the whole parameter vector); the transformation gets the same
objective as a JAX ``obj_fn`` and differentiates it itself at θ + ε̂.
"""

import inspect

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._sam import SAMState, ascent_direction, sam
from optlab.optimizers._sophia import sophia
from optlab.testing import assert_matches_reference

RTOL, ATOL = 1e-11, 1e-13
N = 17  # parameters in assert_matches_reference's default tree: kernel 3×4, bias 4, scale
SLOW = pytest.mark.slow


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def unflat(v, like):
    leaves, treedef = jax.tree.flatten(like)
    out, i = [], 0
    for leaf in leaves:
        n = np.size(leaf)
        out.append(np.asarray(v[i : i + n]).reshape(np.shape(leaf)))
        i += n
    return jax.tree.unflatten(treedef, out)


def ravel(params):
    return jax.flatten_util.ravel_pytree(params)[0]


def quadratic(seed=1):
    """L(v) = ½vᵀAv − bᵀv (A SPD, coupled): (JAX loss of the tree, NumPy ∇L of a vector)."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((N, N))
    a, b = m @ m.T / N + np.eye(N), rng.standard_normal(N)

    def loss(params):
        v = ravel(params)
        return 0.5 * v @ jnp.asarray(a) @ v - jnp.asarray(b) @ v

    return loss, lambda v: a @ v - b


def logistic(seed=2, mu=0.1):
    """L(v) = mean log(1 + exp(−y·Xv)) + ½μ‖v‖²; ∇L = −Xᵀ(y·σ(−y·Xv))/n + μv."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((30, N)), np.sign(rng.standard_normal(30))

    def loss(params):
        v = ravel(params)
        z = jnp.asarray(y) * (jnp.asarray(x) @ v)
        return jnp.mean(jnp.logaddexp(0.0, -z)) + 0.5 * mu * v @ v

    def grad(v):
        z = y * (x @ v)
        return -(x.T @ (y / (1 + np.exp(z)))) / len(y) + mu * v

    return loss, grad


OBJECTIVES = {"quadratic": quadratic, "logistic": logistic}


def algorithm_1(grad, rho, base, ascents=1):
    """Algorithm 1 in NumPy: ε̂ = ρ g/‖g‖₂ (repeated ``ascents`` times at the new point),
    g_SAM = ∇L(θ + ε̂), then the base step ``base(θ, g_SAM, state)``."""

    def init(params):
        return {"base": None}

    def step(params, grads, s):
        theta, g = flat(params), flat(grads)
        point = theta
        for _ in range(ascents):
            norm = np.sqrt(np.sum(g * g))
            point = point + (rho * g / norm if norm > 0 else 0.0)
            g = grad(point)
        theta, base_state = base(theta, g, s["base"])
        return unflat(theta, params), {"base": base_state}

    return init, step


def sgd_step(lr):
    return lambda theta, g, s: (theta - lr * g, None)


def momentum_step(lr, mu):
    # optax.sgd(lr, momentum=mu): the trace t ← μ·t + g, θ ← θ − lr·t
    def step(theta, g, trace):
        trace = g if trace is None else mu * trace + g
        return theta - lr * trace, trace

    return step


CASES = [
    # objective, rho, optimizer, reference base, sync_period
    ("quadratic", 0.05, lambda: optax.sgd(0.05), sgd_step(0.05), 2),
    ("logistic", 0.5, lambda: optax.sgd(0.5, momentum=0.9), momentum_step(0.5, 0.9), 2),
    pytest.param("logistic", 0.0, lambda: optax.sgd(0.3), sgd_step(0.3), 2, marks=SLOW),
    pytest.param("quadratic", 0.2, lambda: optax.sgd(0.02), sgd_step(0.02), 3, marks=SLOW),
    pytest.param("logistic", 1.0, lambda: optax.sgd(0.3), sgd_step(0.3), 1, marks=SLOW),
]


@pytest.mark.parametrize(("objective", "rho", "optimizer", "base", "sync_period"), CASES)
def test_algorithm_1(objective, rho, optimizer, base, sync_period):
    # sync_period − 1 ascent steps (1: the paper's; 0: plain base optimizer; 2: twice).
    loss, grad = OBJECTIVES[objective]()
    init, step = algorithm_1(grad, rho, base, ascents=sync_period - 1)
    assert_matches_reference(
        sam(optimizer(), sync_period=sync_period, rho=rho),
        step,
        ref_init=init,
        num_steps=15,
        grad_fn=lambda params, t: unflat(grad(flat(params)), params),
        per_leaf=False,
        update_kwargs={"obj_fn": loss},
        rtol=RTOL,
        atol=ATOL,
    )


def test_algorithm_1_with_an_adversarial_optimizer():
    # adv_optimizer = normalize + sgd(ρ) is eq. 2 again (its updates are negated).
    loss, grad = logistic()
    init, step = algorithm_1(grad, 0.3, sgd_step(0.2))
    adv = optax.chain(optax.contrib.normalize(), optax.sgd(0.3))
    assert_matches_reference(
        sam(optax.sgd(0.2), adv, rho=123.0),  # ρ unused when adv_optimizer is given
        step,
        ref_init=init,
        num_steps=15,
        grad_fn=lambda params, t: unflat(grad(flat(params)), params),
        per_leaf=False,
        update_kwargs={"obj_fn": loss},
        rtol=RTOL,
        atol=ATOL,
    )


# --- parity with optax.contrib.sam ---------------------------------------------------

SHAPES = {"w": (3, 4), "b": (4,)}


def problem(seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((20, 3)), np.sign(rng.standard_normal((20, 4)))
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}

    def loss(p):
        z = jnp.asarray(y) * (jnp.asarray(x) @ p["w"] + p["b"])
        return jnp.mean(jnp.logaddexp(0.0, -z)) + 0.05 * (
            jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)
        )

    return params, loss


def rollout(tx, params, loss, steps=24, **kwargs):
    """Parameters after each call; the caller's gradient is taken at the current params."""
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)

        @jax.jit
        def step(p, state):
            updates, state = tx.update(jax.grad(loss)(p), state, p, **kwargs)
            return optax.apply_updates(p, updates), state

        state, out = tx.init(p), []
        for _ in range(steps):
            p, state = step(p, state)
            out.append(jax.tree.map(np.asarray, p))
    return out


def assert_same(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=atol, err_msg=f"step {t} {k}")


def normalized_sgd(rho):
    return optax.chain(optax.contrib.normalize(), optax.sgd(rho))


PARITY = [
    # optimizer, adversarial optimizer (None: ours = normalize + sgd(ρ)), optax kwargs
    (lambda: optax.sgd(0.1), None, {}),
    (lambda: optax.adam(0.05), lambda: optax.chain(optax.contrib.normalize(), optax.adam(0.1)), {}),
    pytest.param(lambda: optax.sgd(0.1, momentum=0.9), None, {"sync_period": 3}, marks=SLOW),
    pytest.param(
        lambda: optax.adam(0.05),
        lambda: optax.chain(optax.contrib.normalize(), optax.adam(0.1)),
        {"sync_period": 3, "reset_state": False},
        marks=SLOW,
    ),
]


@pytest.mark.parametrize(("optimizer", "adv", "kwargs"), PARITY)
def test_parity_optax_alternating(optimizer, adv, kwargs):
    params, loss = problem()
    rho = 0.05
    ours = sam(optimizer(), adv and adv(), **kwargs, rho=rho, like="optax")
    theirs = optax.contrib.sam(optimizer(), adv() if adv else normalized_sgd(rho), **kwargs)
    assert_same(rollout(ours, params, loss), rollout(theirs, params, loss))


@pytest.mark.parametrize("sync_period", [2, pytest.param(3, marks=SLOW)])
@pytest.mark.parametrize("reset_state", [True, False])
def test_parity_optax_opaque(sync_period, reset_state):
    params, loss = problem(1)
    kwargs = {"sync_period": sync_period, "reset_state": reset_state, "opaque_mode": True}

    def grad_fn(p, i):
        del i
        return jax.grad(loss)(p)

    adv = optax.chain(optax.contrib.normalize(), optax.adam(0.1))
    ours = sam(optax.adam(0.05), adv, **kwargs, like="optax")
    theirs = optax.contrib.sam(optax.adam(0.05), adv, **kwargs)
    want = rollout(theirs, params, loss, grad_fn=grad_fn)
    assert_same(rollout(ours, params, loss, grad_fn=grad_fn), want)
    # obj_fn is accepted in place of grad_fn; and the default form is this mode.
    assert_same(rollout(ours, params, loss, obj_fn=loss), want)
    paper = sam(optax.adam(0.05), adv, sync_period, reset_state)
    assert_same(rollout(paper, params, loss, obj_fn=loss), want)


def test_forms_differ():
    # One call of the default form is the whole SAM step; optax's first call (alternating)
    # only ascends: it returns +ε̂ = ρ·g/‖g‖, and descends on the next call.
    params, loss = problem(2)
    rho, lr = 0.1, 0.2
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        g = jax.grad(loss)(p)
        norm = jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))
        eps = jax.tree.map(lambda x: rho * x / norm, g)
        g_sam = jax.grad(loss)(jax.tree.map(jnp.add, p, eps))
        lib = sam(optax.sgd(lr), rho=rho, like="optax")
        paper = sam(optax.sgd(lr), rho=rho)
        u_lib, _ = lib.update(g, lib.init(p), p)
        u_paper, _ = paper.update(g, paper.init(p), p, obj_fn=loss)
        for k in params:
            np.testing.assert_allclose(u_lib[k], eps[k], rtol=1e-13)
            np.testing.assert_allclose(u_paper[k], -lr * g_sam[k], rtol=1e-13)
    a = rollout(lib, params, loss, obj_fn=loss)
    b = rollout(paper, params, loss, obj_fn=loss)
    assert max(np.max(np.abs(a[-1][k] - b[-1][k])) for k in params) > 1e-3


# --- facts and edges -----------------------------------------------------------------


def test_zero_gradient_has_no_ascent():
    # ε̂ = 0 at g = 0 (the paper's 0/0); optax.contrib.normalize would give NaN there.
    params = {"x": jnp.array([1.0, 2.0])}

    def loss(p):
        return jnp.sum((p["x"] - 1.0) ** 2)

    zeros = {"x": jnp.zeros(2)}
    assert float(jnp.max(jnp.abs(ascent_direction(zeros)["x"]))) == 0.0
    tx = sam(optax.sgd(0.1))
    u, _ = tx.update(zeros, tx.init(params), params, obj_fn=loss)
    np.testing.assert_allclose(u["x"], -0.1 * jax.grad(loss)(params)["x"])
    lib = sam(optax.sgd(0.1), like="optax")
    u, _ = lib.update(zeros, lib.init(params), params)
    assert bool(jnp.all(u["x"] == 0))


def test_ascent_direction_is_scale_free():
    # g/‖g‖ for g of 1e-30 and 1e30 in float32 (a plain Σg² under/overflows).
    for scale in (1e-30, 1.0, 1e30):
        g = {
            "a": jnp.array([3.0 * scale], jnp.float32),
            "b": jnp.array([[4.0 * scale]], jnp.float32),
        }
        unit = ascent_direction(g)
        np.testing.assert_allclose(unit["a"], [0.6], rtol=1e-6)
        np.testing.assert_allclose(unit["b"], [[0.8]], rtol=1e-6)
        assert unit["b"].dtype == jnp.float32


def test_complex_ascent_uses_the_modulus():
    # ε̂ = ρ·g/‖g‖ with ‖g‖² = Σ|g|²; the ascent gradient is conj(jax.grad), optax's update
    # convention, so L = |z − c|² gives g_SAM = 2(z + ε̂ − c).
    c = jnp.array([1.0 + 1.0j, -2.0j])
    z = jnp.array([0.0 + 0.0j, 1.0 + 1.0j])

    def loss(p):
        return jnp.sum(jnp.abs(p - c) ** 2)

    g = jnp.conj(jax.grad(loss)(z))
    np.testing.assert_allclose(g, 2 * (z - c), rtol=1e-6)
    tx = sam(optax.sgd(0.1), rho=0.5)
    u, _ = tx.update(g, tx.init(z), z, obj_fn=loss)
    eps = 0.5 * g / jnp.sqrt(jnp.sum(jnp.abs(g) ** 2))
    np.testing.assert_allclose(u, -0.1 * 2 * (z + eps - c), rtol=1e-6)


def test_extra_args_reach_the_base_optimizer():
    # SAM around Sophia: obj_fn is handed on; Sophia preconditions g_SAM at θ.
    params = {"x": jnp.array([1.0, -2.0])}

    def loss(p):
        return jnp.sum(jnp.array([3.0, 1.0]) * p["x"] ** 2)

    base = sophia(0.1, gamma=1.0)
    tx = sam(base, rho=0.1)
    g = jax.grad(loss)(params)
    u, state = tx.update(g, tx.init(params), params, obj_fn=loss, value=loss(params))
    unit = ascent_direction(g)
    g_sam = jax.grad(loss)(jax.tree.map(lambda p, e: p + 0.1 * e, params, unit))
    want, _ = base.update(g_sam, base.init(params), params, obj_fn=loss)
    np.testing.assert_allclose(u["x"], want["x"], rtol=1e-6)
    assert isinstance(state, SAMState) and state.cache is None


def test_traced_rho():
    # inject_hyperparams traces ρ (and sync_period, which then runs in a fori_loop).
    params = {"x": jnp.array([1.0, -2.0, 0.5])}

    def loss(p):
        return jnp.sum(jnp.array([3.0, 1.0, 2.0]) * p["x"] ** 2) + jnp.sum(p["x"] ** 4)

    tx = optax.inject_hyperparams(sam)(optax.sgd(0.1), rho=0.05)
    state = tx.init(params)
    update = jax.jit(lambda g, s: tx.update(g, s, params, obj_fn=loss))
    g = jax.grad(loss)(params)
    got, state = update(g, state)
    plain = sam(optax.sgd(0.1), rho=0.05)
    want, _ = plain.update(g, plain.init(params), params, obj_fn=loss)
    np.testing.assert_allclose(got["x"], want["x"], rtol=1e-6)
    np.testing.assert_allclose(state.hyperparams["rho"], 0.05)
    state.hyperparams["rho"] = jnp.asarray(0.5)
    changed, _ = update(g, state)
    bigger = sam(optax.sgd(0.1), rho=0.5)
    want, _ = bigger.update(g, bigger.init(params), params, obj_fn=loss)
    np.testing.assert_allclose(changed["x"], want["x"], rtol=1e-6)
    lib = optax.inject_hyperparams(sam, static_args=("like",))(
        optax.sgd(0.1), rho=0.05, like="optax"
    )
    u, _ = jax.jit(lib.update)(g, lib.init(params), params)
    np.testing.assert_allclose(u["x"], 0.05 * ascent_direction(g)["x"], rtol=1e-6)


def test_signature_keeps_optax_order():
    ours = inspect.signature(sam).parameters
    theirs = inspect.signature(optax.contrib.sam).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name in ("sync_period", "reset_state", "opaque_mode", "batch_axis_name"):
        assert ours[name].default == theirs[name].default, name
    assert ours["rho"].default == 0.05 and ours["rho"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rho": -0.05}, "sam: `rho` must be a finite number >= 0"),
        ({"like": "torch"}, "torch.optim has no sam"),
        ({"like": "keras"}, r"sam: `like` must be one of \(None, 'optax'\)"),
        ({"sync_period": 0}, "`sync_period` must be an integer >= 1"),
        ({"sync_period": 1.5}, "`sync_period` must be an integer >= 1"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sam(optax.sgd(0.1), **kwargs)


def test_update_needs_obj_fn():
    params = {"x": jnp.ones(2)}
    tx = sam(optax.sgd(0.1))
    with pytest.raises(ValueError, match="sam: `update` needs `obj_fn`"):
        tx.update(params, tx.init(params), params)
    opaque = sam(optax.sgd(0.1), like="optax", opaque_mode=True)
    with pytest.raises(ValueError, match="grad_fn \\(or obj_fn\\) must be provided"):
        opaque.update(params, opaque.init(params), params)
