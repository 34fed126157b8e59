"""adafactor: Shazeer & Stern's Algorithms 4 and 5, and the optax / torch forms."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._adafactor import FactoredState, adafactor, scale_by_factored_rms
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, torch_rollout

RTOL, ATOL = 1e-11, 1e-13
# a matrix, a vector, a scalar and a 3-D leaf whose two largest axes are not its last two
SHAPES = {"w": (3, 4), "b": (4,), "k": (5, 2, 4), "s": ()}


def rms(x):
    return np.sqrt(np.mean(np.square(x)))


def adafactor_reference(
    rho_of=None,
    c=0.8,
    eps1=1e-30,
    eps2=1e-3,
    d=1.0,
    scale=True,
    factor=lambda shape: len(shape) >= 2,
    axes=lambda shape: (len(shape) - 2, len(shape) - 1),
    beta_of=lambda t, c: (1.0 - t ** (-c), t ** (-c)),
    b1=None,
    lam=None,
):
    """Algorithms 4 (matrices) and 5 (vectors) with the paper's sums, per leaf.

    A leaf that ``factor``s is a batch of matrices over ``axes`` (row axis, column axis),
    moved last: R_t holds row sums, C_t column sums of G² + ε1, V̂ = R·C/(1ᵀR). ρ_t is
    min(10⁻², 1/√t) unless ``rho_of(t − 1)`` is given; ``b1``: m_t = β1·m + (1 − β1)·α_t·Û_t;
    ``lam``: X_t = X_{t−1} − m_t − λ·X_{t−1}.
    """

    def init(x):
        return {"t": 0, "R": 0.0, "C": 0.0, "V": 0.0, "m": np.zeros_like(x)}

    def step(x, g, s):
        t = s["t"] + 1
        beta, one_minus = beta_of(t, c)  # β̂2t and 1 − β̂2t
        s = dict(s, t=t)
        if factor(x.shape):
            rows, cols = axes(x.shape)
            gm = np.moveaxis(g, (rows, cols), (-2, -1))
            sq = gm * gm + eps1
            s["R"] = beta * s["R"] + one_minus * sq.sum(axis=-1)  # (G² + ε1·11ᵀ)·1_m
            s["C"] = beta * s["C"] + one_minus * sq.sum(axis=-2)  # 1_nᵀ·(G² + ε1·11ᵀ)
            v_hat = s["R"][..., :, None] * s["C"][..., None, :] / s["R"].sum(-1)[..., None, None]
            u = np.moveaxis(gm / np.sqrt(v_hat), (-2, -1), (rows, cols))
        else:
            s["V"] = beta * s["V"] + one_minus * (g * g + eps1)
            u = g / np.sqrt(s["V"])
        if d is not None:
            u = u / max(1.0, rms(u) / d)
        rho = min(1e-2, 1 / np.sqrt(t)) if rho_of is None else rho_of(t - 1)
        alpha = max(eps2, rms(x)) * rho if scale else rho
        delta = alpha * u
        if b1 is not None:
            s["m"] = b1 * s["m"] + (1 - b1) * delta
            delta = s["m"]
        if lam is not None:
            delta = delta + lam * x
        return x - delta, s

    return init, step


def optax_axes(shape):
    order = np.argsort(shape)  # optax: the two largest axes, the largest as columns
    return int(order[-2]), int(order[-1])


def optax_reference(rho_of=lambda t: 1.0, min_dim=128, **kwargs):
    """optax.adafactor's equations: ρ ≡ 1 for learning_rate=None, the two largest axes
    factored when the smaller is ≥ min_dim, β̂2t = 1 − t^(−c) rounded to float32."""

    def factor(shape):
        return len(shape) >= 2 and shape[optax_axes(shape)[0]] >= min_dim

    def beta_of(t, c):  # optax computes both in float32
        beta = np.float32(1) - np.float32(t) ** np.float32(-c)
        return float(beta), float(np.float32(1) - beta)

    return adafactor_reference(
        rho_of=rho_of, factor=factor, axes=optax_axes, beta_of=beta_of, **kwargs
    )


def torch_reference(gamma=1e-2, c=0.8, eps1=None, eps2=1e-3, d=1.0, lam=0.0):
    """torch.optim.Adafactor's docstring equations: ρ_t = min(γ, 1/√t), ε1 outside the
    means (V̂ = R·C/max(mean R, ε1), U = G/max(√V̂, ε1)), X_t = (1 − γλ)X_{t−1} − α_tÛ_t;
    ε1 = None: float64's machine epsilon."""
    eps1 = np.finfo(np.float64).eps if eps1 is None else eps1

    def init(x):
        return {"t": 0, "R": 0.0, "C": 0.0, "V": 0.0}

    def step(x, g, s):
        t = s["t"] + 1
        w = t ** (-c)
        s = dict(s, t=t)
        if g.ndim >= 2:
            s["R"] = (1 - w) * s["R"] + w * np.mean(g * g, axis=-1)
            s["C"] = (1 - w) * s["C"] + w * np.mean(g * g, axis=-2)
            v_hat = s["R"][..., :, None] * s["C"][..., None, :]
            v_hat = v_hat / np.maximum(s["R"].mean(-1), eps1)[..., None, None]
        else:
            s["V"] = (1 - w) * s["V"] + w * g * g
            v_hat = s["V"]
        u = g / np.maximum(np.sqrt(v_hat), eps1)
        if d is not None:
            u = u / max(1.0, rms(u) / d)
        alpha = max(eps2, rms(x)) * min(gamma, 1 / np.sqrt(t))
        return (1 - gamma * lam) * x - alpha * u, s

    return init, step


PAPER_CASES = [
    # (kwargs for optlab.adafactor, kwargs for the reference, grad_scale)
    ({"learning_rate": None}, {}, 1.0),  # the algorithm box, its defaults
    pytest.param({"learning_rate": 0.1}, {"rho_of": lambda t: 0.1}, 1.0, marks=pytest.mark.slow),
    ({"learning_rate": lambda n: 0.1 / (1 + n)}, {"rho_of": lambda t: 0.1 / (1 + t)}, 1.0),
    (  # threshold 3: w (3, 4) factored, k's last two axes (2, 4) are not
        {"learning_rate": 0.05, "min_dim_size_to_factor": 3},
        {"rho_of": lambda t: 0.05, "factor": lambda s: len(s) >= 2 and min(s[-2:]) >= 3},
        1.0,
    ),
    pytest.param(
        {"learning_rate": None, "factored": False},
        {"factor": lambda s: False},
        1.0,
        marks=pytest.mark.slow,
    ),
    (  # no clipping, absolute steps
        {"learning_rate": 0.01, "clipping_threshold": None, "multiply_by_parameter_scale": False},
        {"rho_of": lambda t: 0.01, "d": None, "scale": False},
        1.0,
    ),
    (  # momentum and weight decay (optax's conventions)
        {"learning_rate": 0.1, "momentum": 0.9, "dtype_momentum": None, "weight_decay_rate": 0.01},
        {"rho_of": lambda t: 0.1, "b1": 0.9, "lam": 0.01},
        1.0,
    ),
    (  # ε1 matters (tiny gradients), a shorter memory, a looser clip
        {"learning_rate": 0.1, "decay_rate": 0.5, "eps": 1e-6, "clipping_threshold": 2.0},
        {"rho_of": lambda t: 0.1, "c": 0.5, "eps1": 1e-6, "d": 2.0},
        1e-3,
    ),
    ({"learning_rate": None, "min_scale": 5.0}, {"eps2": 5.0}, 1.0),  # the ε2 floor active
    pytest.param(  # c = 0: β̂2t = 0, V̂ = G² + ε1 every step; huge gradients
        {"learning_rate": 0.1, "decay_rate": 0.0},
        {"rho_of": lambda t: 0.1, "c": 0.0},
        1e8,
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("kwargs", "ref_kwargs", "scale"), PAPER_CASES)
def test_algorithms_4_and_5(kwargs, ref_kwargs, scale):
    init, step = adafactor_reference(**ref_kwargs)
    assert_matches_reference(
        adafactor(**kwargs),
        step,
        ref_init=init,
        num_steps=15,
        shapes=SHAPES,
        grad_scale=scale,
        rtol=RTOL,
        atol=ATOL,
    )


OPTAX_CASES = [
    pytest.param(  # optax's defaults: nothing here reaches 128
        {"learning_rate": None}, {}, 1.0, marks=pytest.mark.slow
    ),
    ({"learning_rate": None, "min_dim_size_to_factor": 2}, {"min_dim": 2}, 1.0),  # ρ ≡ 1
    pytest.param(
        {"learning_rate": 0.1, "min_dim_size_to_factor": 4},
        {"rho_of": lambda t: 0.1, "min_dim": 4},
        1.0,
        marks=pytest.mark.slow,
    ),
    pytest.param(
        {"learning_rate": lambda n: 0.1 / (1 + n), "min_dim_size_to_factor": 2},
        {"rho_of": lambda t: 0.1 / (1 + t), "min_dim": 2},
        1.0,
        marks=pytest.mark.slow,
    ),
    (
        {
            "learning_rate": 0.05,
            "min_dim_size_to_factor": 2,
            "momentum": 0.9,
            "dtype_momentum": None,
            "weight_decay_rate": 0.01,
        },
        {"rho_of": lambda t: 0.05, "min_dim": 2, "b1": 0.9, "lam": 0.01},
        1.0,
    ),
    (
        {"learning_rate": 0.1, "min_dim_size_to_factor": 2, "decay_rate": 0.5, "eps": 1e-6},
        {"rho_of": lambda t: 0.1, "min_dim": 2, "c": 0.5, "eps1": 1e-6},
        1e-3,
    ),
    pytest.param(
        {"learning_rate": 0.1, "min_dim_size_to_factor": 2, "clipping_threshold": None},
        {"rho_of": lambda t: 0.1, "min_dim": 2, "d": None},
        1.0,
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(("kwargs", "ref_kwargs", "scale"), OPTAX_CASES)
def test_optax_form_equations(kwargs, ref_kwargs, scale):
    init, step = optax_reference(**ref_kwargs)
    assert_matches_reference(
        adafactor(**kwargs, like="optax"),
        step,
        ref_init=init,
        num_steps=15,
        shapes=SHAPES,
        grad_scale=scale,
        rtol=RTOL,
        atol=ATOL,
    )


TORCH_CASES = [
    ({"learning_rate": None}, {}, 1.0),  # torch's defaults: γ = 1e-2, ε1 = machine ε
    ({"learning_rate": 0.5}, {"gamma": 0.5}, 1.0),  # ρ_t = min(0.5, 1/√t): the cap ends at t = 5
    pytest.param(
        {"learning_rate": 0.2, "weight_decay_rate": 0.1},
        {"gamma": 0.2, "lam": 0.1},
        1.0,
        marks=pytest.mark.slow,
    ),
    (
        {"learning_rate": 0.1, "eps": 1e-3, "decay_rate": 0.5, "clipping_threshold": None},
        {"gamma": 0.1, "eps1": 1e-3, "c": 0.5, "d": None},
        1e-4,  # ε1 outside the means is active
    ),
    pytest.param(
        {"learning_rate": 0.1, "min_scale": 5.0},
        {"gamma": 0.1, "eps2": 5.0},
        1.0,
        marks=pytest.mark.slow,
    ),
    pytest.param(  # gradients below the machine ε
        {"learning_rate": 0.1}, {"gamma": 0.1}, 1e-17, marks=pytest.mark.slow
    ),
]


@pytest.mark.parametrize(("kwargs", "ref_kwargs", "scale"), TORCH_CASES)
def test_torch_form_equations(kwargs, ref_kwargs, scale):
    init, step = torch_reference(**ref_kwargs)
    assert_matches_reference(
        adafactor(**kwargs, like="torch"),
        step,
        ref_init=init,
        num_steps=15,
        shapes=SHAPES,
        grad_scale=scale,
        rtol=RTOL,
        atol=ATOL,
    )


def problem(shapes, num_steps, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = [
        {k: scale * rng.standard_normal(s) for k, s in shapes.items()} for _ in range(num_steps)
    ]
    return params, grads


PARITY_RTOL, PARITY_ATOL = 1e-10, 1e-12


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # optax's defaults (ρ ≡ 1, only "big" factored)
        {"learning_rate": 0.05, "min_dim_size_to_factor": 2, "momentum": 0.9},  # float32 m
        pytest.param({"learning_rate": 0.1}, marks=pytest.mark.slow),
        pytest.param({"min_dim_size_to_factor": 2}, marks=pytest.mark.slow),
        pytest.param(
            {"learning_rate": 0.05, "min_dim_size_to_factor": 3, "decay_rate": 0.5, "eps": 1e-6},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {"learning_rate": optax.linear_schedule(0.1, 0.01, 20), "min_dim_size_to_factor": 2},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {
                "learning_rate": 0.05,
                "weight_decay_rate": 0.01,
                "weight_decay_mask": {"w": True, "b": False, "k": True, "s": True, "big": False},
            },
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {
                "learning_rate": 0.1,
                "multiply_by_parameter_scale": False,
                "clipping_threshold": None,
            },
            marks=pytest.mark.slow,
        ),
        pytest.param({"factored": False, "learning_rate": 0.1}, marks=pytest.mark.slow),
    ],
)
def test_parity_optax(kwargs):
    # optax's own threshold 128 is reached by "big" only.
    shapes = {**SHAPES, "big": (130, 129)}
    params, grads = problem(shapes, 20)
    optax_kwargs = {"learning_rate": None, **kwargs}
    assert_same_trajectory(
        jax_rollout(adafactor(**optax_kwargs, like="optax"), params, grads),
        jax_rollout(optax.adafactor(**optax_kwargs), params, grads),
        rtol=PARITY_RTOL,
        atol=PARITY_ATOL,
    )


def test_scale_by_factored_rms_matches_optax():
    params, grads = problem(SHAPES, 20)
    for kwargs in ({}, {"min_dim_size_to_factor": 2, "decay_rate": 0.6, "epsilon": 1e-8}):
        assert_same_trajectory(
            jax_rollout(scale_by_factored_rms(**kwargs, like="optax"), params, grads),
            jax_rollout(optax.scale_by_factored_rms(**kwargs), params, grads),
            rtol=PARITY_RTOL,
            atol=PARITY_ATOL,
        )


@pytest.mark.parametrize(
    ("kwargs", "torch_kwargs"),
    [
        ({"learning_rate": None}, {}),
        pytest.param({"learning_rate": 0.5}, {"lr": 0.5}, marks=pytest.mark.slow),
        ({"learning_rate": 0.2, "weight_decay_rate": 0.1}, {"lr": 0.2, "weight_decay": 0.1}),
        pytest.param(
            {"learning_rate": 0.1, "decay_rate": 0.5, "eps": 1e-3, "clipping_threshold": 2.0},
            {"lr": 0.1, "beta2_decay": -0.5, "eps": (1e-3, 1e-3), "d": 2.0},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {"learning_rate": 0.1, "min_scale": 5.0},
            {"lr": 0.1, "eps": (None, 5.0)},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_parity_torch(kwargs, torch_kwargs):
    torch = pytest.importorskip("torch")
    params, grads = problem(SHAPES, 25)
    assert_same_trajectory(
        jax_rollout(adafactor(**kwargs, like="torch"), params, grads),
        torch_rollout(lambda ps: torch.optim.Adafactor(ps, **torch_kwargs), params, grads),
        rtol=PARITY_RTOL,
        atol=PARITY_ATOL,
    )


def _state_numbers(tx, shapes):
    abstract = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    state = jax.eval_shape(tx.init, abstract)
    return sum(
        int(np.prod(x.shape))
        for x in jax.tree.leaves(state)
        if jnp.issubdtype(x.dtype, jnp.floating)
    )


@pytest.mark.parametrize("like", [None, "optax", "torch"])
def test_a_factored_matrix_keeps_n_plus_m_numbers(like):
    n, m = 256, 512
    assert _state_numbers(adafactor(0.1, like=like), {"w": (n, m)}) == n + m
    assert _state_numbers(adafactor(0.1, like=like), {"b": (m,)}) == m  # Algorithm 5
    assert _state_numbers(adafactor(0.1, like=like), {"k": (3, n, m)}) == 3 * (n + m)
    assert _state_numbers(optlab.adam(0.1), {"w": (n, m)}) == 2 * n * m
    state = jax.eval_shape(
        adafactor(0.1, like=like).init, {"w": jax.ShapeDtypeStruct((n, m), jnp.float32)}
    )
    assert isinstance(state[0], FactoredState)
    assert state[0].v_row["w"].shape == (n,) and state[0].v_col["w"].shape == (m,)


def test_paper_factors_small_matrices_and_optax_does_not():
    shapes = {"w": (3, 4)}
    assert _state_numbers(adafactor(None), shapes) == 7
    assert _state_numbers(adafactor(None, like="optax"), shapes) == 12  # 3 < 128
    assert _state_numbers(adafactor(None, like="torch"), shapes) == 7
    # a 3-D leaf: the paper and torch factor the last two axes, optax the two largest
    paper = jax.eval_shape(adafactor(None).init, {"k": jax.ShapeDtypeStruct((5, 2, 4), float)})
    lib = jax.eval_shape(
        adafactor(None, 2, like="optax").init, {"k": jax.ShapeDtypeStruct((5, 2, 4), float)}
    )
    assert (paper[0].v_row["k"].shape, paper[0].v_col["k"].shape) == ((5, 2), (5, 4))
    assert (lib[0].v_row["k"].shape, lib[0].v_col["k"].shape) == ((2, 4), (5, 2))


def _max_rel(a, b):
    return max(
        float(np.max(np.abs(x[k] - y[k]) / np.maximum(np.abs(y[k]), 1e-12)))
        for x, y in zip(a, b, strict=True)
        for k in y
    )


def test_the_forms_differ():
    params, grads = problem(SHAPES, 30)
    paper = jax_rollout(adafactor(None), params, grads)
    # optax's learning_rate=None is ρ ≡ 1, the paper's min(10⁻², 1/√t): 100× the steps,
    # and w (3, 4), below optax's 128, gets Algorithm 5 there: not merely a rescaled step
    lib = jax_rollout(adafactor(None, like="optax"), params, grads)
    assert _max_rel(paper, lib) > 0.5
    assert not np.allclose(lib[0]["w"] - params["w"], 100 * (paper[0]["w"] - params["w"]))
    np.testing.assert_allclose(lib[0]["b"] - params["b"], 100 * (paper[0]["b"] - params["b"]))
    # torch's lr = 0.5 caps ρ_t = min(0.5, 1/√t): alike for t ≤ 4, the paper's ρ = 0.5 after
    paper = jax_rollout(adafactor(0.5), params, grads)
    torch_form = jax_rollout(adafactor(0.5, like="torch"), params, grads)
    assert_same_trajectory(paper[:4], torch_form[:4], rtol=1e-9, atol=1e-12)
    assert _max_rel(paper, torch_form) > 0.05


@pytest.mark.slow
def test_the_forms_differ_in_factored_axes_and_weight_decay():
    params, grads = problem(SHAPES, 30)
    # ρ = 0.1 and the threshold made alike: only optax's float32 β̂ differs on w, b and s,
    # while the 3-D leaf is factored over other axes
    a = jax_rollout(adafactor(0.1, 2), params, grads)
    b = jax_rollout(adafactor(0.1, 2, like="optax"), params, grads)
    keys = ("w", "b", "s")
    assert_same_trajectory(
        [{k: x[k] for k in keys} for x in a], [{k: x[k] for k in keys} for x in b],
        rtol=1e-6, atol=1e-6,
    )  # fmt: skip
    assert _max_rel([{"k": x["k"]} for x in a], [{"k": x["k"]} for x in b]) > 1e-3
    # torch's weight decay is γλ·X (γ = lr), optax's and the paper form's λ·X
    a = jax_rollout(adafactor(0.01, weight_decay_rate=0.5), params, grads)
    b = jax_rollout(adafactor(0.01, weight_decay_rate=0.5, like="torch"), params, grads)
    assert _max_rel(a, b) > 0.1


def test_decay_offset_restarts_the_decay_schedule():
    # fine-tuning from step k: at count = k, β̂ = 1 − 1^(−c) = 0, so V̂ is G² + ε1 afresh.
    tx = adafactor(0.1, decay_offset=7, factored=False)
    params = {"b": jnp.ones(3)}
    state = tx.init(params)
    estimator = state[0]._replace(count=jnp.asarray(7, jnp.int32), v={"b": jnp.full(3, 9.0)})
    g = {"b": jnp.array([1.0, 2.0, -3.0])}
    _, new = tx.update(g, (estimator, state[1]), params)
    np.testing.assert_allclose(new[0].v["b"], g["b"] ** 2 + 1e-30, rtol=1e-6)


def test_defaults_are_optax_and_the_papers():
    ours = inspect.signature(adafactor).parameters
    theirs = inspect.signature(optax.adafactor).parameters
    assert list(ours)[: len(theirs)] == list(theirs)  # optax's names and positional order
    assert ours["learning_rate"].default is inspect.Parameter.empty  # None: the paper's ρ_t
    sentinels = {"learning_rate", "min_dim_size_to_factor", "eps", "dtype_momentum"}
    for name in set(theirs) - sentinels:
        assert ours[name].default == theirs[name].default, name
    assert jnp.dtype(ours["dtype_momentum"].default) == jnp.dtype(theirs["dtype_momentum"].default)
    # the sentinels: None → optax's 128 with like="optax" (every ≥ 2-D leaf otherwise)
    shapes = {"w": (130, 129), "v": (127, 300), "b": (4,)}
    for like, want in ((None, 130 + 129 + 127 + 300 + 4), ("optax", 130 + 129 + 127 * 300 + 4)):
        assert _state_numbers(adafactor(0.1, like=like), shapes) == want
        assert _state_numbers(adafactor(0.1, 128, like=like), shapes) == 130 + 129 + 127 * 300 + 4
    # ε1 = None → 1e-30 (the paper, optax): it sets U for a gradient of 1e-16 (≈ 0.1)
    g = {"b": jnp.array([1e-16, 0.0])}
    for like in (None, "optax"):
        a, b = adafactor(1.0, like=like), adafactor(1.0, eps=1e-30, like=like)
        ua, _ = a.update(g, a.init(g), g)
        ub, _ = b.update(g, b.init(g), g)
        np.testing.assert_array_equal(ua["b"], ub["b"])
    # the paper's: c = 0.8, ε2 = 1e-3, d = 1, momentum off
    assert (ours["decay_rate"].default, ours["min_scale"].default) == (0.8, 1e-3)
    assert (ours["clipping_threshold"].default, ours["momentum"].default) == (1.0, None)
    # torch's: lr = 1e-2, beta2_decay = −0.8, eps = (None, 1e-3), d = 1
    torch = pytest.importorskip("torch")
    t = inspect.signature(torch.optim.Adafactor).parameters
    assert t["lr"].default == 1e-2 and t["beta2_decay"].default == -ours["decay_rate"].default
    assert t["eps"].default == (ours["eps"].default, ours["min_scale"].default)
    assert t["d"].default == ours["clipping_threshold"].default


@pytest.mark.parametrize("like", [None, "torch"])
def test_inject_hyperparams_traces_the_learning_rate(like):
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.25, params)
    tx = optax.inject_hyperparams(adafactor)(learning_rate=0.1, like=like)
    state = tx.init(params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.05)
    got, _ = jax.jit(tx.update)(grads, state, params)
    plain = adafactor(0.05, like=like)
    want, _ = plain.update(grads, plain.init(params), params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.slow
def test_inject_hyperparams_traces_the_other_floats():
    # None passes through (not a number); c, d, β1, ε1 are traced
    params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    grads = jax.tree.map(lambda p: 0.5 * p + 0.25, params)
    tx = optax.inject_hyperparams(adafactor)(
        learning_rate=None, decay_rate=0.8, clipping_threshold=1.0, momentum=0.9, eps=1e-30
    )
    state = tx.init(params)
    assert set(state.hyperparams) >= {"decay_rate", "clipping_threshold", "momentum", "eps"}
    got, _ = jax.jit(tx.update)(grads, state, params)
    plain = adafactor(None, momentum=0.9)
    want, _ = plain.update(grads, plain.init(params), params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.slow  # the contract checks bfloat16 and complex64 for every spec too
def test_dtypes_are_kept():
    for dtype in (jnp.bfloat16, jnp.float16, jnp.complex64):
        params = {"w": jnp.ones((3, 4), dtype), "b": jnp.ones(4, dtype)}
        for like in (None, "optax", "torch"):
            tx = adafactor(0.1, like=like, momentum=None if like == "torch" else 0.9)
            u, _ = jax.jit(tx.update)(params, tx.init(params), params)
            assert all(x.dtype == dtype for x in jax.tree.leaves(u)), (like, dtype)
            assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u)), (like, dtype)


def test_update_needs_params():
    tx = adafactor(0.1)
    with pytest.raises(ValueError, match="adafactor: `update` needs `params`"):
        tx.update(jnp.ones(3), tx.init(jnp.ones(3)))
    tx = adafactor(0.1, multiply_by_parameter_scale=False)  # no params needed then
    u, _ = tx.update(jnp.ones(3), tx.init(jnp.ones(3)))
    np.testing.assert_allclose(u, -0.1 * jnp.ones(3), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"adafactor: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"learning_rate": -0.1}, "adafactor: `learning_rate` must be"),
        ({"eps": -1e-30}, "`eps` must be a finite number >= 0"),
        ({"min_scale": -1e-3}, "`min_scale` must be a finite number >= 0"),
        ({"decay_rate": -0.8}, "`decay_rate` must be a finite number >= 0"),
        ({"momentum": 1.0}, r"`momentum` must be in \[0, 1\)"),
        ({"momentum": -0.1}, r"`momentum` must be in \[0, 1\)"),
        ({"clipping_threshold": 0.5}, "`clipping_threshold` must be a number >= 1 or None"),
        ({"weight_decay_rate": -1e-4}, "`weight_decay_rate` must be a finite number >= 0"),
        ({"decay_offset": -1}, "`decay_offset` must be an integer >= 0"),
        ({"min_dim_size_to_factor": 0}, "`min_dim_size_to_factor` must be an integer >= 1"),
        ({"min_dim_size_to_factor": 2.5}, "`min_dim_size_to_factor` must be an integer >= 1"),
        ({"like": "torch", "momentum": 0.9}, "`momentum`=0.9 conflicts with like='torch'"),
        ({"like": "torch", "min_dim_size_to_factor": 128}, "conflicts with like='torch'"),
        ({"like": "torch", "factored": False}, "`factored`=False conflicts with like='torch'"),
        ({"like": "torch", "decay_offset": 10}, "`decay_offset`=10 conflicts"),
        (
            {"like": "torch", "multiply_by_parameter_scale": False},
            "`multiply_by_parameter_scale`=False conflicts with like='torch'",
        ),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"learning_rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        adafactor(**kwargs)


def test_bad_input_scale_by_factored_rms():
    with pytest.raises(ValueError, match="scale_by_factored_rms: `epsilon` must be"):
        scale_by_factored_rms(epsilon=-1.0)
    with pytest.raises(ValueError, match="scale_by_factored_rms: `like` must be"):
        scale_by_factored_rms(like="keras")
