"""soap: Vyas et al.'s Algorithm 3 (Adam in Shampoo's eigenbasis) with Algorithm 4.

Every comparison runs in float64 (``jax.enable_x64``) against NumPy written from the
paper's boxes with the authors' code's boundary conditions (github.com/nikhilvyas/SOAP,
``soap.py`` at a1e5535: the first gradient only initializes, ε added to √V, the bias
corrections folded into the step, the decay applied to the updated weights, Q's columns
sorted by diag(QᵀPQ) before the power iteration, V permuted alike). QR: ``numpy.linalg.qr``
as is (LAPACK Householder, R's diagonal of either sign); the iterates do not depend on
the sign convention, which ``test_sign_convention_is_immaterial`` shows.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._soap import SoapState, soap
from optlab.testing import assert_matches_reference
from tests.optimizers.test_shampoo import steps_to

RTOL, ATOL = 1e-9, 1e-12  # eigh and QR (LAPACK via NumPy vs via XLA), 15 steps

# Shapes whose first L, R have null spaces of dimension ≤ 1, so that the first eigenbasis
# is defined up to signs (see the docstring): (3, 4) → L 3×3 full, R 4×4 rank 3;
# (2, 2, 3) → (4, 3): L rank 3 of 4, R full.
SHAPES = {"dense": {"kernel": (3, 4), "bias": (4,)}, "scale": (), "conv": (2, 2, 3)}


def descending_eigh(p):
    _, q = np.linalg.eigh(p + 1e-30 * np.eye(p.shape[0]))
    return q[:, ::-1]


def soap_reference(
    alpha_of, b1, b2, beta, eps, wd, freq, max_dim, normalize, correct_bias, flips=None
):
    """Algorithm 3 + 4 per leaf; ``flips`` (an rng) flips random columns of every new Q."""

    def new_basis(q):
        if flips is not None:
            q = q * flips.choice([-1.0, 1.0], size=q.shape[1])
        return q

    def init(theta):
        shape = theta.shape
        if theta.ndim >= 2:
            shape = (math.prod(theta.shape[:-1]), theta.shape[-1])
        sides = [None, None]
        if theta.ndim >= 2:
            sides = [np.zeros((d, d)) if d <= max_dim else None for d in shape]
        return {
            "k": None,
            "shape": shape,
            "M": np.zeros(shape),
            "V": np.zeros(shape),
            "P": sides,
            "Q": [None, None],
        }

    def rotate(x, q):  # Q_Lᵀ·X·Q_R
        if q[0] is not None:
            x = q[0].T @ x
        return x @ q[1] if q[1] is not None else x

    def back(x, q):  # Q_L·X·Q_Rᵀ
        if q[0] is not None:
            x = q[0] @ x
        return x @ q[1].T if q[1] is not None else x

    def update_statistics(s, G):
        grams = [G @ G.T, G.T @ G] if G.ndim == 2 else [None, None]
        s["P"] = [
            None if p is None else beta * p + (1 - beta) * gg
            for p, gg in zip(s["P"], grams, strict=True)
        ]

    def step(theta, g, s):
        G = g.reshape(s["shape"])
        if s["k"] is None:  # t = 0: L, R and their eigenbases; W stays
            update_statistics(s, G)
            s["Q"] = [None if p is None else new_basis(descending_eigh(p)) for p in s["P"]]
            return theta, {**s, "k": 0}
        k = s["k"] + 1
        Gr = rotate(G, s["Q"])
        M = b1 * s["M"] + (1 - b1) * Gr
        V = b2 * s["V"] + (1 - b2) * Gr * Gr
        N = back(M / (np.sqrt(V) + eps), s["Q"])
        if normalize:
            N = N / (1e-30 + np.sqrt(np.mean(N * N)))
        c = np.sqrt(1 - b2**k) / (1 - b1**k) if correct_bias else 1.0
        alpha = alpha_of(k)  # the schedule reads the number of updates made: k
        theta = theta - alpha * c * N.reshape(theta.shape)
        theta = theta - alpha * wd * theta
        update_statistics(s, G)
        Q = list(s["Q"])
        if k % freq == 0:  # Algorithm 4 per side, columns sorted as the code does
            for axis, (p, q) in enumerate(zip(s["P"], s["Q"], strict=True)):
                if p is None:
                    continue
                order = np.argsort(-np.diag(q.T @ p @ q), kind="stable")
                V = np.take(V, order, axis=axis)
                Q[axis] = new_basis(np.linalg.qr(p @ q[:, order])[0])
            M = rotate(back(M, s["Q"]), Q)  # M into the new basis
        return theta, {**s, "k": k, "M": M, "V": V, "Q": Q}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # b1, b2, shampoo_beta (→ β), eps, weight_decay, freq, max_dim, normalize, correct_bias
    (0.95, 0.95, 0.95, 1e-8, 0.01, 10, 10000, False, True),  # the code's defaults
    (0.9, 0.99, 0.9, 1e-8, 0.0, 1, 10000, False, True),  # a refresh every update
    (0.9, 0.95, 0.99, 1e-6, 0.1, 3, 10000, True, True),  # every 3, normalized, decay
    (0.5, 0.9, 0.95, 1e-8, 0.0, 2, 3, False, False),  # sides > 3 unrotated, no correction
    (0.0, 0.0, 0.0, 1e-8, 0.0, 4, 10000, False, True),  # no memories at all
]


@pytest.mark.parametrize(("b1", "b2", "beta", "eps", "wd", "freq", "dim", "norm", "bias"), CASES)
def test_reference(b1, b2, beta, eps, wd, freq, dim, norm, bias):
    init, step = soap_reference(constant(0.03), b1, b2, beta, eps, wd, freq, dim, norm, bias)
    tx = soap(0.03, b1, b2, beta, eps, wd, freq, dim, norm, bias)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, shapes=SHAPES, rtol=RTOL, atol=ATOL
    )


def test_reference_with_a_schedule_and_shampoo_beta_from_b2():
    alpha = lambda n: 0.05 / (1 + n)  # noqa: E731
    init, step = soap_reference(alpha, 0.9, 0.9, 0.9, 1e-8, 0.05, 2, 10000, False, True)
    tx = soap(alpha, 0.9, 0.9, shampoo_beta=-1, weight_decay=0.05, precondition_frequency=2)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, shapes=SHAPES, rtol=RTOL, atol=ATOL
    )


def test_sign_convention_is_immaterial():
    # The reference itself, with random column signs on every eigh/QR output, stays on
    # the same iterates (to rounding): flipping a column of Q flips a row of G' and M',
    # not V, and cancels in Q_L·N'·Q_Rᵀ.
    rng = np.random.default_rng(0)
    params = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(15)]
    paths = []
    for flips in (None, np.random.default_rng(1)):
        init, step = soap_reference(
            constant(0.03), 0.9, 0.95, 0.95, 1e-8, 0.0, 2, 10000, False, True, flips=flips
        )
        theta, s, path = params, init(params), []
        for g in grads:
            theta, s = step(theta, g, s)
            path.append(theta)
        paths.append(np.array(path))
    np.testing.assert_allclose(paths[0], paths[1], rtol=1e-11, atol=1e-13)


def test_frozen_basis_is_adam_on_the_rotated_gradient():
    # f larger than the run: Q_L, Q_R are eigh((1 − β)·G_0·G_0ᵀ), eigh((1 − β)·G_0ᵀ·G_0)
    # forever, and every later update is Adam (the code's form: ε on √v, corrections in
    # the step) run on the rotated gradients Q_Lᵀ·G·Q_R, rotated back. rtol 1e-9.
    b1, b2, eps, alpha = 0.9, 0.95, 1e-8, 0.1
    tx = soap(alpha, b1, b2, eps=eps, weight_decay=0.0, precondition_frequency=1000)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)) for _ in range(15)]
    with jax.enable_x64(True):
        w = jnp.zeros((3, 4))
        state, update = tx.init(w), jax.jit(tx.update)
        updates = []
        for g in grads:
            u, state = update(jnp.asarray(g), state, w)
            updates.append(np.asarray(u))
    ql, qr = (
        descending_eigh(0.05 * grads[0] @ grads[0].T),
        descending_eigh(0.05 * grads[0].T @ grads[0]),
    )
    assert not np.any(updates[0])
    m = v = np.zeros((3, 4))
    for k, (g, u) in enumerate(zip(grads[1:], updates[1:], strict=True), start=1):
        rotated = ql.T @ g @ qr
        m, v = b1 * m + (1 - b1) * rotated, b2 * v + (1 - b2) * rotated**2
        adam = np.sqrt(1 - b2**k) / (1 - b1**k) * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(u, -alpha * ql @ adam @ qr.T, rtol=1e-9, atol=1e-13)


def test_one_dimensional_leaves_get_adam_after_the_first_update():
    # ε = 0, where the code's form (ε on √v) and Kingma & Ba's (ε on √v̂) coincide: the
    # updates are optlab.adam's on the gradients after the first, which only initializes.
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        grads = [jnp.asarray(rng.standard_normal(5)) for _ in range(10)]
        tx, adam = soap(0.1, 0.9, 0.99, eps=0.0, weight_decay=0.0), optlab.adam(0.1, 0.9, 0.99, 0.0)
        s, a = tx.init(jnp.zeros(5)), adam.init(jnp.zeros(5))
        u, s = tx.update(grads[0], s)
        assert not np.any(np.asarray(u))
        for g in grads[1:]:
            u, s = tx.update(g, s)
            want, a = adam.update(g, a)
            np.testing.assert_allclose(u, want, rtol=1e-13)


def test_the_first_update_moves_nothing_and_states_are_named_tuples():
    tx = soap(0.1, weight_decay=0.5)
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 2.0), params)
    u, state = jax.jit(tx.update)(grads, tx.init(params), params)
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))
    assert isinstance(state[0], SoapState) and state[0].preconditioners["b"] is None
    u, state = jax.jit(tx.update)(grads, state, params)
    assert all(np.all(np.asarray(x) != 0) for x in jax.tree.leaves(u))


def test_unrotated_sides_keep_no_statistics():
    state = soap(0.1, max_precond_dim=3).init({"w": jnp.zeros((3, 5)), "v": jnp.zeros((4, 2))})
    pre = state[0].preconditioners
    assert pre["w"].gg_left.shape == (3, 3) and pre["w"].gg_right is None
    assert pre["v"].gg_left is None and pre["v"].q_right.shape == (2, 2)


def test_beats_sgd_on_matrix_least_squares():
    # See test_shampoo: SGD's best rate (1.9) needs ~1300 steps to cut the loss by 1e6;
    # SOAP ~300 (rates 0.02/0.03/0.05/0.1: 369/300/294/306 steps).
    sgd = steps_to(optax.sgd(1.9), 1e-6)
    ours = steps_to(soap(0.03, weight_decay=0.0), 1e-6)
    assert ours < sgd / 2, (ours, sgd)


def test_defaults_are_the_authors_code():
    # SOAP.__init__ at a1e5535 (lr=3e-3 there; required here, as everywhere in optlab).
    code = {
        "betas": (0.95, 0.95),
        "shampoo_beta": -1,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "precondition_frequency": 10,
        "max_precond_dim": 10000,
        "normalize_grads": False,
        "correct_bias": True,
    }
    params = inspect.signature(soap).parameters
    assert params["learning_rate"].default is inspect.Parameter.empty
    ours = {k: p.default for k, p in params.items() if k != "learning_rate"}
    assert (ours.pop("b1"), ours.pop("b2")) == code.pop("betas")
    assert {k: ours[k] for k in code} == code
    assert params["like"].kind is inspect.Parameter.KEYWORD_ONLY


def test_traced_hyperparameters_and_abstract_init():
    tx = optax.inject_hyperparams(soap, static_args=("max_precond_dim",))(
        learning_rate=0.1,
        b1=0.9,
        b2=0.99,
        shampoo_beta=0.9,
        eps=1e-8,
        weight_decay=0.01,
        precondition_frequency=2,
        max_precond_dim=3,
    )
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for i in range(4):
        grads = jax.tree.map(
            lambda p, i=i: jnp.ones_like(p) * (i + 1) + jnp.arange(p.size).reshape(p.shape), params
        )
        updates, state = update(grads, state, params)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(updates))
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert jax.tree.structure(jax.eval_shape(tx.init, shapes)) == jax.tree.structure(state)


def test_complex_parameters_raise():
    with pytest.raises(ValueError, match="complex parameters are not supported"):
        soap(0.1).init(jnp.zeros((2, 2), jnp.complex64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"soap: `like` must be one of \(None,\)"),
        ({"like": "optax"}, "optax has no soap"),
        ({"like": "torch"}, "torch.optim has no soap"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b2": -0.5}, r"`b2` must be in \[0, 1\)"),
        ({"shampoo_beta": 1.0}, r"`shampoo_beta` must be in \[0, 1\), or < 0 for b2"),
        ({"weight_decay": -0.01}, "`weight_decay` must be a finite number >= 0"),
        ({"precondition_frequency": 0}, "`precondition_frequency` must be an integer >= 1"),
        ({"max_precond_dim": -1}, "`max_precond_dim` must be an integer >= 0"),
        ({"learning_rate": -0.1}, "soap: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        soap(**kwargs)
