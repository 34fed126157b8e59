"""sophia: Liu et al.'s Algorithm 3 (Sophia-H), and optax.contrib.sophia's form.

The NumPy references take the probes u as data: ``probe_sequence`` draws them with the
same jax.random calls and key schedule that the estimator documents (key, subkey =
split(key) once per Hessian refresh; u = optax.tree.random_like(subkey, params, sampler,
float32) cast to float64), so the reference only re-does the arithmetic: on the quadratic
L(v) = ½vᵀAv − bᵀv the Hessian is A and ĥ = u ⊙ (A u), in float64 NumPy.
"""

import inspect

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optimizers._sophia import (
    SophiaState,
    hutchinson_estimator_diag_hessian,
    sophia,
)
from optlab.testing import assert_matches_reference
from optlab.testing._reference import DEFAULT_SHAPES

RTOL, ATOL = 1e-11, 1e-13
N = 17  # parameters in DEFAULT_SHAPES: kernel 3×4, bias 4, scale


def _template():
    return {"dense": {"kernel": np.zeros((3, 4)), "bias": np.zeros(4)}, "scale": np.zeros(())}


def flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def unflat(v, like):
    leaves, treedef = jax.tree.flatten(like)
    out, i = [], 0
    for leaf in leaves:
        n = np.size(leaf)
        out.append(v[i : i + n].reshape(np.shape(leaf)))
        i += n
    return jax.tree.unflatten(treedef, out)


def quadratic(seed=1):
    """A (SPD, not diagonal), b; the JAX loss of the param tree and its NumPy gradient."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((N, N))
    a = m @ m.T / N + np.diag(rng.uniform(0.5, 3.0, N))
    b = rng.standard_normal(N)

    def loss(params):
        v = jax.flatten_util.ravel_pytree(params)[0]
        return 0.5 * v @ jnp.asarray(a) @ v - jnp.asarray(b) @ v

    def grad_fn(params, t):
        del t
        return unflat(a @ flat(params) - b, params)

    return a, b, loss, grad_fn


def probe_sequence(seed, probe, count):
    """The u of the first ``count`` refreshes, drawn as the estimator does (float64)."""
    sampler = jax.random.rademacher if probe == "rademacher" else jax.random.normal
    out = []
    with jax.enable_x64(True):
        template = jax.tree.map(jnp.asarray, _template())
        key = jax.random.PRNGKey(seed)
        for _ in range(count):
            key, subkey = jax.random.split(key)
            u = optax.tree.random_like(subkey, template, sampler, dtype=jnp.float32)
            out.append(flat(jax.tree.map(lambda x: np.asarray(x, np.float64), u)))
    return out


def algorithm_3(a, probes, lr_of, b1, b2, eps, wd_of, gamma, clip, k, like=None):
    """The paper's loop (like=None) or optax.contrib.sophia's (like="optax") in NumPy.

    t counts updates from 1; η_t = lr_of(t − 1), λ_t = wd_of(t − 1) (schedules read the
    number of updates made). h is refreshed when t mod k = 1 with ĥ = u_j ⊙ (A u_j).
    """

    def init(params):
        return {"m": np.zeros(N), "h": np.zeros(N), "t": 0, "j": 0}

    def step(params, grads, s):
        theta, g = flat(params), flat(grads)
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        h_old, h, j = s["h"], s["h"], s["j"]
        if (t - 1) % k == 0:
            u = probes[j]
            h = b2 * h_old + (1 - b2) * u * (a @ u)
            j += 1
        if like == "optax":
            direction = (m / (1 - b1**t)) / np.maximum(gamma * h_old, eps)
        else:
            direction = m / np.maximum(gamma * h, eps)
        if clip is not None:
            direction = np.clip(direction, -clip, clip)
        eta, lam = lr_of(t - 1), wd_of(t - 1)
        theta = theta - eta * lam * theta  # θ_t ← θ_t − η_t λ θ_t
        theta = theta - eta * direction
        return unflat(theta, params), {"m": m, "h": h, "t": t, "j": j}

    return init, step


def constant(x):
    return lambda t: x


SLOW = pytest.mark.slow  # more compiles; run in the full tier (pytest -m "")
CASES = [
    # lr, b1, b2, eps, weight_decay, gamma, clip_threshold, update_interval, seed
    (1e-2, 0.965, 0.99, 1e-8, 1e-4, 0.01, 1.0, 10, 0),  # optax's defaults: clipped
    (5e-2, 0.9, 0.5, 1e-3, 0.1, 1.0, 1.0, 3, 3),  # k = 3, another seed, |·| < 1 often
    pytest.param(5e-2, 0.9, 0.5, 1e-8, 0.0, 1.0, 1.0, 1, 0, marks=SLOW),  # refresh every step
    pytest.param(1e-2, 0.0, 0.9, 1e-8, 0.0, 2.0, None, 2, 1, marks=SLOW),  # b1 = 0, no clip
    pytest.param(1e-2, 0.9, 0.9, 10.0, 0.0, 1.0, 0.5, 4, 0, marks=SLOW),  # max{γh, ε} = ε
]


@pytest.mark.parametrize(
    ("like", "probe"), [(None, "normal"), ("optax", "rademacher")], ids=["paper", "optax"]
)
@pytest.mark.parametrize(("lr", "b1", "b2", "eps", "wd", "gamma", "clip", "k", "seed"), CASES)
def test_algorithm_3(like, probe, lr, b1, b2, eps, wd, gamma, clip, k, seed):
    # Each form with its own probe (the paper's Gaussian, optax's Rademacher).
    check_algorithm_3(like, probe, lr, b1, b2, eps, wd, gamma, clip, k, seed)


@pytest.mark.parametrize(("like", "probe"), [(None, "rademacher"), ("optax", "normal")])
def test_algorithm_3_other_probe(like, probe):
    check_algorithm_3(like, probe, *CASES[1])


def check_algorithm_3(like, probe, lr, b1, b2, eps, wd, gamma, clip, k, seed):
    a, _, loss, grad_fn = quadratic()
    probes = probe_sequence(seed, probe, 15)
    init, step = algorithm_3(
        a, probes, constant(lr), b1, b2, eps, constant(wd), gamma, clip, k, like
    )
    tx = sophia(lr, b1, b2, eps, wd, None, gamma, clip, k, like=like, seed=seed, probe=probe)
    assert_matches_reference(
        tx,
        step,
        ref_init=init,
        num_steps=15,
        grad_fn=grad_fn,
        per_leaf=False,
        update_kwargs={"obj_fn": loss},
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("like", [None, "optax"])
def test_schedules(like):
    # η_t and λ_t are read at the number of updates made; the form's own probe.
    a, _, loss, grad_fn = quadratic(2)
    probe = "rademacher" if like == "optax" else "normal"
    probes = probe_sequence(0, probe, 15)

    def lr(n):
        return 0.05 / (1 + n)

    def wd(n):
        return 0.01 * (n + 1)

    init, step = algorithm_3(a, probes, lr, 0.9, 0.5, 1e-8, wd, 1.0, 1.0, 2, like)
    tx = sophia(lr, 0.9, 0.5, weight_decay=wd, gamma=1.0, update_interval=2, like=like)
    assert_matches_reference(
        tx,
        step,
        ref_init=init,
        num_steps=15,
        grad_fn=grad_fn,
        per_leaf=False,
        update_kwargs={"obj_fn": loss},
        rtol=RTOL,
        atol=ATOL,
    )


def test_custom_hessian_diagonal_fn():
    # An estimator that returns the exact diagonal: the reference's ĥ = diag(A).
    a, _, loss, grad_fn = quadratic(3)
    diag = np.diag(a)

    def exact_init(params):
        del params
        return optax.EmptyState()

    def exact_update(updates, state, params=None, **extra_args):
        del updates, extra_args
        return unflat(jnp.asarray(diag), params), state

    exact = optax.GradientTransformationExtraArgs(exact_init, exact_update)

    def init(params):
        return {"m": np.zeros(N), "h": np.zeros(N), "t": 0}

    def step(params, grads, s):
        theta, g, t = flat(params), flat(grads), s["t"] + 1
        m = 0.9 * s["m"] + 0.1 * g
        h = 0.5 * s["h"] + 0.5 * diag if (t - 1) % 3 == 0 else s["h"]
        theta = theta - 0.05 * np.clip(m / np.maximum(1.0 * h, 1e-8), -1, 1)
        return unflat(theta, params), {"m": m, "h": h, "t": t}

    tx = sophia(0.05, 0.9, 0.5, weight_decay=0.0, gamma=1.0, update_interval=3,
                hessian_diagonal_fn=exact)  # fmt: skip
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, grad_fn=grad_fn, per_leaf=False,
        update_kwargs={"obj_fn": loss}, rtol=RTOL, atol=ATOL,
    )  # fmt: skip


# --- parity with optax.contrib.sophia ------------------------------------------------

SHAPES = {"w": (3, 4), "b": (4,)}
MASK = {"w": True, "b": False}


def logistic_problem(seed=0):
    """Random float64 params and a non-quadratic loss (logistic regression + ridge)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((20, 3))
    y = np.sign(rng.standard_normal((20, 4)))
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}

    def loss(p):
        logits = jnp.asarray(x) @ p["w"] + p["b"]
        ridge = 0.05 * (jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2))
        return jnp.mean(jnp.logaddexp(0.0, -jnp.asarray(y) * logits)) + ridge

    return params, loss


def rollout(tx, params, loss, steps=25, **kwargs):
    """Parameters after each update; the gradient and obj_fn at the current params."""
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)

        @jax.jit
        def step(p, state):
            updates, state = tx.update(jax.grad(loss)(p), state, p, obj_fn=loss, **kwargs)
            return optax.apply_updates(p, updates), state

        state, out = tx.init(p), []
        for _ in range(steps):
            p, state = step(p, state)
            out.append(jax.tree.map(np.asarray, p))
    return out


def assert_same(got, want, rtol=1e-10, atol=1e-12):
    for t, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for k in w:
            np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=atol, err_msg=f"step {t} {k}")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.05},
        {"learning_rate": 0.05, "b2": 0.5, "gamma": 1.0, "update_interval": 1},
        pytest.param(
            {"learning_rate": 0.02, "gamma": 2.0, "clip_threshold": None, "update_interval": 3},
            marks=SLOW,
        ),
        pytest.param(
            {"learning_rate": 0.05, "weight_decay": 0.1, "weight_decay_mask": MASK},
            marks=SLOW,
        ),
        pytest.param(
            {"learning_rate": lambda n: 0.05 / (1 + n), "b1": 0.5, "eps": 1e-3, "gamma": 1.0},
            marks=SLOW,
        ),
        {"learning_rate": 0.05, "mu_dtype": jnp.float32, "gamma": 1.0, "update_interval": 2},
    ],
)
def test_parity_optax(kwargs):
    params, loss = logistic_problem()
    assert_same(
        rollout(sophia(**kwargs, like="optax"), params, loss),
        rollout(optax.contrib.sophia(**kwargs), params, loss),
    )


def test_parity_optax_seed_and_key_in_state():
    # seed=s is optax's hutchinson_estimator_diag_hessian(PRNGKey(s)); the key is state.
    params, loss = logistic_problem(1)
    theirs = optax.contrib.sophia(
        0.05,
        gamma=1.0,
        update_interval=2,
        hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(7)),
    )
    ours = sophia(0.05, gamma=1.0, update_interval=2, like="optax", seed=7)
    assert_same(rollout(ours, params, loss), rollout(theirs, params, loss))
    other = rollout(sophia(0.05, gamma=1.0, update_interval=2, like="optax", seed=8), params, loss)
    assert not np.allclose(other[-1]["w"], rollout(ours, params, loss)[-1]["w"])


def test_resume_is_exact():
    # The key lives in the state: 9 steps, then 6 more from the saved state, equal 15 in a row.
    params, loss = logistic_problem(2)
    tx = sophia(0.05, gamma=1.0, update_interval=2)
    with jax.enable_x64(True):
        p = jax.tree.map(jnp.asarray, params)
        update = jax.jit(lambda g, s, p: tx.update(g, s, p, obj_fn=loss))

        def run(p, s, n):
            for _ in range(n):
                u, s = update(jax.grad(loss)(p), s, p)
                p = optax.apply_updates(p, u)
            return p, s

        straight, _ = run(p, tx.init(p), 15)
        mid, state = run(p, tx.init(p), 9)
        saved = jax.tree.map(np.asarray, state)  # as a checkpoint would store it
        resumed, _ = run(mid, jax.tree.map(jnp.asarray, saved), 6)
    for k in straight:
        np.testing.assert_array_equal(np.asarray(resumed[k]), np.asarray(straight[k]))


def test_forms_differ():
    # optax's first step divides by max{γ·0, ε} = ε: every coordinate moves η·sign(g).
    # The paper's divides by the h_1 refreshed on that step.
    params, loss = logistic_problem()
    paper = rollout(sophia(0.05, weight_decay=0.0, gamma=1.0), params, loss, steps=1)
    lib = rollout(sophia(0.05, weight_decay=0.0, gamma=1.0, like="optax"), params, loss, steps=1)
    with jax.enable_x64(True):
        g = jax.grad(loss)(jax.tree.map(jnp.asarray, params))
    for k in params:
        np.testing.assert_allclose(lib[0][k], params[k] - 0.05 * np.sign(g[k]), rtol=1e-13)
    assert max(np.max(np.abs(paper[0][k] - lib[0][k])) for k in params) > 1e-3


# --- facts ---------------------------------------------------------------------------


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    # Rademacher u: u ⊙ (D u) = D·u² = diag(D) exactly, whatever the draw.
    d = {"a": jnp.array([4.0, 1.0, 0.25]), "b": jnp.array([[2.0, 3.0]])}

    def loss(p):
        return 0.5 * sum(jnp.sum(d[k] * p[k] ** 2) for k in d)

    params = jax.tree.map(jnp.ones_like, d)
    est = hutchinson_estimator_diag_hessian(jax.random.PRNGKey(5))
    state = est.init(params)
    update = jax.jit(lambda s: est.update(params, s, params, obj_fn=loss))
    for _ in range(4):
        diag, new_state = update(state)
        for k in d:
            np.testing.assert_array_equal(np.asarray(diag[k]), np.asarray(d[k]))
        assert not np.array_equal(np.asarray(new_state.key), np.asarray(state.key))
        state = new_state
    # A Gaussian probe gives D·u², exact only in expectation.
    normal = hutchinson_estimator_diag_hessian(jax.random.PRNGKey(5), probe="normal")
    diag, _ = normal.update(params, normal.init(params), params, obj_fn=loss)
    assert not np.allclose(np.asarray(diag["a"]), np.asarray(d["a"]))
    # And in sophia: after the first update h = (1 − β2)·diag(D).
    tx = sophia(0.1, probe="rademacher")
    _, state = tx.update(params, tx.init(params), params, obj_fn=loss)
    assert isinstance(state[0], SophiaState)
    for k in d:
        np.testing.assert_allclose(np.asarray(state[0].nu[k]), 0.01 * np.asarray(d[k]), rtol=1e-6)


def test_hessian_refresh_only_every_k_steps():
    params = {"x": jnp.ones(3)}
    tx = sophia(0.1, update_interval=3)
    state = tx.init(params)
    update = jax.jit(lambda s: tx.update(params, s, params, obj_fn=lambda p: jnp.sum(p["x"] ** 2)))
    keys = []
    for _ in range(7):
        _, state = update(state)
        keys.append(np.asarray(state[0].hessian_fn_state.key))
    changed = [not np.array_equal(keys[i], keys[i - 1]) for i in range(1, 7)]
    assert changed == [False, False, True, False, False, True]  # refreshes at counts 3, 6


def test_defaults_are_optax():
    ours = inspect.signature(sophia).parameters
    theirs = inspect.signature(optax.contrib.sophia).parameters
    assert list(ours)[: len(theirs)] == list(theirs)  # names and positional order
    for name in theirs:
        if name != "hessian_diagonal_fn":  # optax: an instance seeded with PRNGKey(0)
            assert ours[name].default == theirs[name].default, name
    assert ours["learning_rate"].default is inspect.Parameter.empty
    assert ours["seed"].default == 0 and ours["seed"].kind is inspect.Parameter.KEYWORD_ONLY


def test_traced_hyperparameters():
    params = {"x": jnp.array([1.0, -2.0])}

    def loss(p):
        return jnp.sum(jnp.array([3.0, 1.0]) * p["x"] ** 2)

    tx = optax.inject_hyperparams(sophia)(learning_rate=0.1, b1=0.9, gamma=1.0, eps=1e-6)
    state = tx.init(params)
    update = jax.jit(lambda g, s: tx.update(g, s, params, obj_fn=loss))
    g = jax.grad(loss)(params)
    got, _ = update(g, state)
    plain = sophia(0.1, b1=0.9, gamma=1.0, eps=1e-6)
    want, _ = plain.update(g, plain.init(params), params, obj_fn=loss)
    np.testing.assert_allclose(got["x"], want["x"], rtol=1e-6)
    state.hyperparams["gamma"] = jnp.asarray(100.0)
    changed, _ = update(g, state)
    assert not np.allclose(changed["x"], got["x"])


def test_dtype_preserved_bf16():
    params = {"x": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}

    def loss(p):
        return jnp.sum(p["x"].astype(jnp.float32) ** 2).astype(jnp.bfloat16)

    tx = sophia(0.1)
    state = tx.init(params)
    for _ in range(3):
        u, state = jax.jit(lambda g, s: tx.update(g, s, params, obj_fn=loss))(params, state)
        assert u["x"].dtype == jnp.bfloat16
    assert state[0].nu["x"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"sophia: `like` must be one of \(None, 'optax'\)"),
        ({"like": "torch"}, "torch.optim has no sophia"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.1}, r"`b2` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"gamma": -0.01}, "`gamma` must be a finite number >= 0"),
        ({"weight_decay": -1e-4}, "`weight_decay` must be a finite number >= 0"),
        ({"clip_threshold": 0.0}, r"`clip_threshold` must be > 0 or None"),
        ({"update_interval": 0}, "`update_interval` must be an integer >= 1"),
        ({"update_interval": 2.5}, "`update_interval` must be an integer >= 1"),
        ({"learning_rate": -0.1}, "sophia: `learning_rate` must be"),
        ({"probe": "uniform"}, "`probe` must be one of"),
        ({"probe": "normal", "hessian_diagonal_fn": optax.identity()}, "cannot be combined"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        sophia(**kwargs)


def test_update_needs_obj_fn_params_and_real_params():
    params = {"x": jnp.ones(2)}
    tx = sophia(0.1)
    with pytest.raises(ValueError, match="sophia: `update` needs `obj_fn`"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match="needs `params`"):
        tx.update(params, tx.init(params), None, obj_fn=lambda p: jnp.sum(p["x"]))
    with pytest.raises(ValueError, match="complex parameters are not supported"):
        tx.init({"x": jnp.ones(2, jnp.complex64)})


def test_shapes_cover_default_tree():
    assert sum(int(np.prod(s)) for s in jax.tree.leaves(
        dict(DEFAULT_SHAPES), is_leaf=lambda x: isinstance(x, tuple))) == N  # fmt: skip
