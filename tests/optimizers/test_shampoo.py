"""shampoo: Gupta et al.'s Algorithm 1 for matrices, with Anil et al.'s extensions.

Every comparison runs in float64 (``jax.enable_x64``) against NumPy written from the
equations in the docstring's box; tolerances are stated per test.
"""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import optlab
from optlab.optimizers._shampoo import ShampooState, shampoo
from optlab.testing import assert_matches_reference

RTOL, ATOL = 1e-10, 1e-12  # the full reference (eigh on both sides, 15 steps)
BOX_RTOL = 1e-9  # eigh (ours) against scipy's Schur-based fractional_matrix_power

SHAPES = {"dense": {"kernel": (3, 4), "bias": (4,)}, "scale": (), "conv": (2, 2, 3)}


def dense_power(s, power, method="scipy"):
    """S^power for a symmetric positive definite S: scipy's Schur-Padé algorithm, or
    numpy's eigh (no floor) where S is too ill-conditioned for Schur-Padé's 1e-9."""
    if method == "eigh":
        w, q = np.linalg.eigh(s)
        return (q * w**power) @ q.T
    return np.real(scipy.linalg.fractional_matrix_power(s, power))


def inverse_root(s, eps):
    """S^{−1/4} from eigh, eigenvalues floored at max(ε, side·u·λ_max) (the docstring)."""
    w, q = np.linalg.eigh(s)
    floor = max(eps, s.shape[0] * np.finfo(np.float64).eps * w.max())
    return (q * np.maximum(w, floor) ** -0.25) @ q.T


def spans(size, block_size):
    return [(i, min(i + block_size, size)) for i in range(0, size, block_size)]


def shampoo_reference(alpha_of, b1, b2, eps, block_size, every, graft, gb2, geps, wd):
    """The box of ``shampoo``'s docstring, per leaf, in NumPy float64."""

    def init(theta):
        state = {"t": 0, "m": np.zeros_like(theta), "v": np.zeros_like(theta), "blocks": None}
        if theta.ndim >= 2 and theta.size:
            rows, cols = math.prod(theta.shape[:-1]), theta.shape[-1]
            state["blocks"] = {
                (r, c): {"L": eps * np.eye(r[1] - r[0]), "R": eps * np.eye(c[1] - c[0])}
                for r in spans(rows, block_size)
                for c in spans(cols, block_size)
            }
        return state

    def step(theta, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = gb2 * s["v"] + (1 - gb2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - gb2**t)
        adam = m_hat / (np.sqrt(v_hat) + geps)
        if s["blocks"] is None:
            u = adam
        else:
            shape = (math.prod(theta.shape[:-1]), theta.shape[-1])
            G, Mh, A = g.reshape(shape), m_hat.reshape(shape), adam.reshape(shape)
            U = np.zeros(shape)
            w = 1.0 if b2 == 1 else 1 - b2
            for ((r0, r1), (c0, c1)), blk in s["blocks"].items():
                gb = G[r0:r1, c0:c1]
                blk["L"] = b2 * blk["L"] + w * gb @ gb.T
                blk["R"] = b2 * blk["R"] + w * gb.T @ gb
                if (t - 1) % every == 0:
                    blk["PL"], blk["PR"] = inverse_root(blk["L"], eps), inverse_root(blk["R"], eps)
                d = blk["PL"] @ Mh[r0:r1, c0:c1] @ blk["PR"]
                if graft == "adam":
                    nd = np.linalg.norm(d)
                    d = d * (np.linalg.norm(A[r0:r1, c0:c1]) / nd if nd > 0 else 0.0)
                U[r0:r1, c0:c1] = d
            u = U.reshape(theta.shape)
        theta = theta - alpha_of(t - 1) * (u + wd * theta)
        return theta, {**s, "t": t, "m": m, "v": v}

    return init, step


def constant(x):
    return lambda t: x


CASES = [
    # b1, b2, eps, block_size, every, graft, graft_b2, graft_eps, weight_decay
    (0.9, 0.999, 1e-12, 128, 1, "adam", 0.999, 1e-8, 0.0),  # the defaults
    (0.0, 1.0, 1e-3, 128, 1, None, 0.999, 1e-8, 0.0),  # the paper's box
    (0.9, 0.99, 1e-6, 2, 1, "adam", 0.99, 1e-8, 0.0),  # blocks 2 × 2, uneven last ones
    (0.5, 0.9, 1e-6, 3, 3, "adam", 0.9, 1e-3, 0.0),  # stale roots (every 3 steps)
    (0.9, 1.0, 1e-4, 2, 2, None, 0.999, 1e-8, 0.1),  # sum, blocks, no graft, decay
    (0.0, 0.0, 1e-6, 128, 1, "adam", 0.0, 0.0, 0.0),  # only the last gradient everywhere
]


@pytest.mark.parametrize(("b1", "b2", "eps", "bs", "every", "graft", "gb2", "geps", "wd"), CASES)
def test_reference(b1, b2, eps, bs, every, graft, gb2, geps, wd):
    init, step = shampoo_reference(constant(0.05), b1, b2, eps, bs, every, graft, gb2, geps, wd)
    tx = shampoo(0.05, b1, b2, eps, bs, every, graft, gb2, geps, wd)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, shapes=SHAPES, rtol=RTOL, atol=ATOL
    )


def test_reference_with_schedules_and_mask():
    alpha = lambda n: 0.1 / (1 + n)  # noqa: E731
    init, step = shampoo_reference(alpha, 0.9, 0.99, 1e-6, 2, 2, "adam", 0.99, 1e-8, 0.0)
    tx = shampoo(alpha, 0.9, 0.99, 1e-6, 2, 2, "adam", 0.99, 1e-8)
    assert_matches_reference(
        tx, step, ref_init=init, num_steps=15, shapes=SHAPES, rtol=RTOL, atol=ATOL
    )
    # λ only where the mask says: the kernel decays by −α_0·λ·θ, the other leaves not.
    mask = {"dense": {"kernel": True, "bias": False}, "scale": False, "conv": False}
    tx = shampoo(alpha, 0.9, 0.99, 1e-6, 2, 2, weight_decay=0.5, mask=mask)
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        params = {
            "dense": {"kernel": jnp.asarray(rng.standard_normal((3, 4))), "bias": jnp.ones(4)},
            "scale": jnp.ones(()),
            "conv": jnp.ones((2, 2, 3)),
        }
        grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
        decayed, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        plain = shampoo(alpha, 0.9, 0.99, 1e-6, 2, 2)
        undecayed, _ = jax.jit(plain.update)(grads, plain.init(params), params)
        np.testing.assert_allclose(
            decayed["dense"]["kernel"] - undecayed["dense"]["kernel"],
            -0.1 * 0.5 * params["dense"]["kernel"],
            rtol=1e-12,
        )
        for path in (("dense", "bias"), ("scale",), ("conv",)):
            a, b = decayed, undecayed
            for key in path:
                a, b = a[key], b[key]
            np.testing.assert_array_equal(a, b)


def _run(tx, shape, steps=15, seed=0):
    """(gradients, updates) of ``steps`` random float64 gradients on a leaf of ``shape``."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        params = jnp.asarray(rng.standard_normal(shape))
        state = tx.init(params)
        update = jax.jit(tx.update)
        grads, updates, states = [], [], []
        for _ in range(steps):
            g = rng.standard_normal(shape)
            u, state = update(jnp.asarray(g), state, params)
            grads.append(g)
            updates.append(np.asarray(u))
            states.append(jax.tree.map(np.asarray, state))
    return grads, updates, states


@pytest.mark.parametrize(
    ("shape", "eps", "method"),
    [((3, 4), 1e-3, "scipy"), ((2, 3, 4), 1e-3, "scipy"), ((5, 2), 1e-8, "eigh")],
)
def test_the_papers_box_step_after_step(shape, eps, method):
    # graft off, b1 = 0, b2 = 1 (sums), one block per side, the root every step:
    # U_t = (εI + Σ G Gᵀ)^{−1/4} · G_t · (εI + Σ Gᵀ G)^{−1/4}, 15 steps, rtol 1e-9.
    # (At ε = 1e-8 the first L or R has condition ~1e9, where scipy's Schur-Padé root is
    # off by ~1e-8; NumPy's eigh is the reference there.)
    tx = shampoo(1.0, b1=0.0, b2=1.0, eps=eps, block_size=128, graft=None)
    grads, updates, _ = _run(tx, shape)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    left, right = eps * np.eye(rows), eps * np.eye(cols)
    for g, u in zip(grads, updates, strict=True):
        g = g.reshape(rows, cols)
        left, right = left + g @ g.T, right + g.T @ g
        want = dense_power(left, -0.25, method) @ g @ dense_power(right, -0.25, method)
        np.testing.assert_allclose(-u.reshape(rows, cols), want, rtol=BOX_RTOL, atol=1e-12)


def test_blocks_are_separate_shampoos():
    # block_size 3 on a 5 × 7 leaf: row blocks [0:3], [3:5], column blocks [0:3], [3:6],
    # [6:7]; each is the paper's box on its own sub-matrix (rtol 1e-9). The implementation
    # zero-pads the short blocks to 3 × 3; the padding must not leak.
    eps = 1e-4
    tx = shampoo(1.0, b1=0.0, b2=1.0, eps=eps, block_size=3, graft=None)
    grads, updates, states = _run(tx, (5, 7))
    assert states[0][0].preconditioners.left.shape == (2, 3, 3, 3)
    blocks = [(r, c) for r in spans(5, 3) for c in spans(7, 3)]
    stats = {b: [eps * np.eye(b[0][1] - b[0][0]), eps * np.eye(b[1][1] - b[1][0])] for b in blocks}
    for g, u in zip(grads, updates, strict=True):
        for (r0, r1), (c0, c1) in blocks:
            s, gb = stats[((r0, r1), (c0, c1))], g[r0:r1, c0:c1]
            s[0], s[1] = s[0] + gb @ gb.T, s[1] + gb.T @ gb
            want = dense_power(s[0], -0.25, "eigh") @ gb @ dense_power(s[1], -0.25, "eigh")
            np.testing.assert_allclose(-u[r0:r1, c0:c1], want, rtol=BOX_RTOL, atol=1e-12)


@pytest.mark.parametrize("block_size", [128, 2])
def test_graft_takes_adams_norm_per_block_and_shampoos_direction(block_size):
    # ‖U_B‖ = ‖A_B‖ with A = optlab.adam's update (b1, graft_b2, graft_eps), and U_B is a
    # positive multiple of the ungrafted D_B (same statistics), per block, every step.
    kwargs = {"b1": 0.9, "b2": 0.99, "eps": 1e-6, "block_size": block_size}
    grafted = _run(shampoo(1.0, **kwargs, graft_b2=0.95, graft_eps=1e-3), (3, 5))[1]
    raw = _run(shampoo(1.0, **kwargs, graft=None), (3, 5))[1]
    adam = _run(optlab.adam(1.0, 0.9, 0.95, 1e-3), (3, 5))[1]
    for u, d, a in zip(grafted, raw, adam, strict=True):
        for r0, r1 in spans(3, block_size):
            for c0, c1 in spans(5, block_size):
                ub, db, ab = (x[r0:r1, c0:c1] for x in (u, d, a))
                np.testing.assert_allclose(np.linalg.norm(ub), np.linalg.norm(ab), rtol=1e-12)
                cos = np.sum(ub * db) / (np.linalg.norm(ub) * np.linalg.norm(db))
                np.testing.assert_allclose(cos, 1.0, rtol=1e-12)


def test_one_dimensional_leaves_get_adam():
    tx = shampoo(0.1, b1=0.9, graft_b2=0.99, graft_eps=1e-6, graft=None)
    ours = _run(tx, (6,))[1]
    adam = _run(optlab.adam(0.1, 0.9, 0.99, 1e-6), (6,))[1]
    np.testing.assert_allclose(ours, adam, rtol=1e-13, atol=1e-16)


def test_roots_are_stale_between_refreshes():
    # precondition_every = 3: the roots are recomputed at t = 1, 4, 7, … from that step's
    # statistics and kept (bit for bit) in between; the update of t = 2, 3 uses t = 1's.
    eps = 1e-4
    tx = shampoo(1.0, b1=0.0, b2=1.0, eps=eps, precondition_every=3, graft=None)
    grads, updates, states = _run(tx, (3, 4), steps=8)
    last = None
    for t, (g, u, s) in enumerate(zip(grads, updates, states, strict=True), start=1):
        pre = s[0].preconditioners
        left, right = pre.left[0, 0], pre.right[0, 0]
        if t % 3 == 1:
            np.testing.assert_allclose(pre.left_root[0, 0], dense_power(left, -0.25), rtol=1e-9)
            np.testing.assert_allclose(pre.right_root[0, 0], dense_power(right, -0.25), rtol=1e-9)
            last = pre
        else:
            np.testing.assert_array_equal(pre.left_root, last.left_root)
            np.testing.assert_array_equal(pre.right_root, last.right_root)
            fresh = dense_power(left, -0.25)
            assert not np.allclose(pre.left_root[0, 0], fresh, rtol=1e-3)  # truly stale
        want = last.left_root[0, 0] @ g @ last.right_root[0, 0]
        np.testing.assert_allclose(-u, want, rtol=1e-12)


def test_refresh_does_not_recompile():
    tx = shampoo(0.1, precondition_every=2)
    traces = [0]

    def update(g, s, p):
        traces[0] += 1
        return tx.update(g, s, p)

    update = jax.jit(update)
    params = jnp.ones((3, 2))
    state = tx.init(params)
    for i in range(5):
        _, state = update(jnp.full((3, 2), float(i + 1)) + jnp.eye(3, 2), state, params)
    assert traces[0] == 1
    assert isinstance(state[0], ShampooState) and int(state[0].count) == 5


def _least_squares(seed=0):
    """min_W ½‖A·W − B‖² for W of shape (8, 4), A of condition number 30."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((32, 8)))
    v, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    a = u @ np.diag(np.geomspace(1.0, 1 / 30, 8)) @ v.T
    w_star = rng.standard_normal((8, 4))
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(a @ w_star, jnp.float32)

    def loss(w):
        return 0.5 * jnp.sum((a @ w - b) ** 2)

    return loss, jnp.zeros((8, 4), jnp.float32)


def steps_to(tx, tol=1e-3, max_steps=3000):
    """The first step at which the loss falls below tol × its start (max_steps + 1: never)."""
    loss, w0 = _least_squares()

    @jax.jit
    def run(w):
        def body(carry, _):
            w, s = carry
            u, s = tx.update(jax.grad(loss)(w), s, w)
            w = optax.apply_updates(w, u)
            return (w, s), loss(w)

        return jax.lax.scan(body, (w, tx.init(w)), length=max_steps)[1]

    losses = np.asarray(run(w0)) / float(loss(w0))
    below = np.flatnonzero(losses < tol)
    return int(below[0]) + 1 if below.size else max_steps + 1


def test_beats_sgd_on_matrix_least_squares():
    # The Hessian's eigenvalues span 1 … 1/900: SGD at its best stable rate (λ_max = 1,
    # α < 2) needs ~1300 steps to cut the loss by 1e6; Shampoo's L^{−1/4}·G·R^{−1/4}
    # roughly takes the square root of the conditioning (~60 steps; grafted to Adam's
    # step sizes ~120). Rates tuned on a grid (SGD 1.0/1.5/1.9: 2468/1645/1299 steps;
    # Shampoo 2/3/4: 102/64/52; grafted 0.1/0.2/0.3: 343/121/122).
    sgd = steps_to(optax.sgd(1.9), 1e-6)
    ours = steps_to(shampoo(3.0, b1=0.0, b2=1.0, graft=None), 1e-6)
    grafted = steps_to(shampoo(0.2), 1e-6)
    assert ours < sgd / 5, (ours, sgd)
    assert grafted < sgd / 2, (grafted, sgd)


def test_defaults():
    params = inspect.signature(shampoo).parameters
    assert params["learning_rate"].default is inspect.Parameter.empty
    assert {k: params[k].default for k in list(params)[1:11]} == {
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-12,
        "block_size": 128,
        "precondition_every": 1,
        "graft": "adam",
        "graft_b2": 0.999,
        "graft_eps": 1e-8,
        "weight_decay": 0.0,
        "mask": None,
    }
    assert params["like"].kind is inspect.Parameter.KEYWORD_ONLY


def test_traced_hyperparameters_and_abstract_init():
    tx = optax.inject_hyperparams(shampoo, static_args=("block_size",))(
        learning_rate=0.1, b1=0.9, b2=0.99, eps=1e-10, precondition_every=2, block_size=2
    )
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for _ in range(3):
        updates, state = update(jax.tree.map(jnp.ones_like, params), state, params)
    assert updates["w"].shape == (3, 4)
    abstract = jax.eval_shape(
        tx.init, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    )
    assert jax.tree.structure(abstract) == jax.tree.structure(state)


def test_complex_parameters_raise():
    with pytest.raises(ValueError, match="complex parameters are not supported"):
        shampoo(0.1).init(jnp.zeros((2, 2), jnp.complex64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"shampoo: `like` must be one of \(None,\)"),
        ({"like": "optax"}, "optax has no shampoo"),
        ({"like": "torch"}, "torch.optim has no shampoo"),
        ({"eps": -1e-12}, "`eps` must be a finite number > 0"),
        ({"eps": 0.0}, "`eps` must be a finite number > 0"),
        ({"b1": 1.0}, r"`b1` must be in \[0, 1\)"),
        ({"b1": -0.1}, r"`b1` must be in \[0, 1\)"),
        ({"b2": 1.5}, r"`b2` must be in \[0, 1\]"),
        ({"graft_b2": 1.0}, r"`graft_b2` must be in \[0, 1\)"),
        ({"graft_eps": -1.0}, "`graft_eps` must be a finite number >= 0"),
        ({"block_size": 0}, "`block_size` must be an integer >= 1"),
        ({"block_size": 2.5}, "`block_size` must be an integer >= 1"),
        ({"precondition_every": 0}, "`precondition_every` must be an integer >= 1"),
        ({"graft": "adagrad"}, "`graft` must be one of"),
        ({"weight_decay": -1.0}, "`weight_decay` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "shampoo: `learning_rate` must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        shampoo(**kwargs)
