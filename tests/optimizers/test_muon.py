"""muon: Jordan et al.'s momentum orthogonalized by Newton–Schulz, AdamW for the rest."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.optimizers._muon import newton_schulz
from optlab.testing import assert_matches_reference
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem

RTOL, ATOL = 1e-11, 1e-13
ABC = (3.4445, -4.7750, 2.0315)
SHAPES = {"w": (3, 5), "tall": (6, 2), "k": (2, 3, 4), "b": (4,)}


# --- the references, in NumPy float64 --------------------------------------------------


def ns5(m, eps, *, clamp=False, coeffs=ABC, steps=5):
    """Newton–Schulz: X_0 = M/(‖M‖_F + ε) (or /max(‖M‖_F, ε)), X ← aX + bAX + cA²X."""
    x = m.T if m.shape[0] > m.shape[1] else m
    norm = np.linalg.norm(x)
    x = x / (max(norm, eps) if clamp else norm + eps)
    a, b, c = coeffs
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + b * gram @ x + c * gram @ gram @ x
    return x.T if m.shape[0] > m.shape[1] else x


def as_matrix(p):
    """optlab's default view: every axis but the last as rows."""
    return p.reshape(-1, p.shape[-1])


def adamw_step(lr, b1, b2, eps, wd, nesterov=False):
    """AdamW (Loshchilov & Hutter, decay times η), or optax's Nesterov AdamW."""

    def step(p, g, s):
        t = s["t"] + 1
        m = b1 * s["m"] + (1 - b1) * g
        v = b2 * s["v"] + (1 - b2) * g * g
        if nesterov:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * (m_hat / (np.sqrt(v_hat) + eps) + wd * p)
        return p, {"t": t, "m": m, "v": v, "buf": s["buf"]}

    return step


def init(p):
    return {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p), "buf": np.zeros_like(p)}


def paper(lr, mu=0.95, eps=1e-8, wd=0.0, nesterov=True, adam=(0.9, 0.999, 0.0)):
    """Jordan et al.: B ← μB + G, M = G + μB, W ← W − η(√max(1, n/m)·NS5(M) + λW).

    ``lr``: η, or η(t) of the number t of updates made before this one."""
    rate = lr if callable(lr) else (lambda t: lr)

    def step(p, g, s):
        if p.ndim < 2:
            return adamw_step(rate(s["t"]), adam[0], adam[1], eps, adam[2])(p, g, s)
        buf = mu * s["buf"] + g
        m = g + mu * buf if nesterov else buf
        o = ns5(as_matrix(m), eps).reshape(p.shape)
        rows, cols = as_matrix(p).shape
        p = p - rate(s["t"]) * (np.sqrt(max(1.0, cols / rows)) * o + wd * p)
        return p, {**s, "t": s["t"] + 1, "buf": buf}

    return step


def optax_form(lr, mu=0.95, eps=1e-8, wd=0.0, nesterov=True, adam=(0.9, 0.999, 0.0)):
    """optax.contrib.muon's documented steps: a bias-corrected EMA; only 2-D leaves."""
    fallback = adamw_step(lr, adam[0], adam[1], eps, adam[2], nesterov=nesterov)

    def step(p, g, s):
        if p.ndim != 2:
            return fallback(p, g, s)
        t = s["t"] + 1
        buf = mu * s["buf"] + (1 - mu) * g
        if nesterov:
            m = mu * buf / (1 - mu ** (t + 1)) + (1 - mu) * g / (1 - mu**t)
        else:
            m = buf / (1 - mu**t)
        o = ns5(m, eps)
        p = p - lr * (np.sqrt(max(1.0, p.shape[1] / p.shape[0])) * o + wd * p)
        return p, {**s, "t": t, "buf": buf}

    return step


def torch_form(lr, mu=0.95, eps=1e-7, wd=0.1, nesterov=True, match_rms=False):
    """torch.optim.Muon's steps (with its NS in float64 instead of bfloat16)."""
    fallback = adamw_step(lr, 0.9, 0.999, eps, 0.0)

    def step(p, g, s):
        if p.ndim != 2:
            return fallback(p, g, s)
        buf = mu * s["buf"] + (1 - mu) * g
        m = (1 - mu) * g + mu * buf if nesterov else buf
        o = ns5(m, eps, clamp=True)
        rows, cols = p.shape
        scale = 0.2 * np.sqrt(max(rows, cols)) if match_rms else np.sqrt(max(1.0, rows / cols))
        p = p * (1 - lr * wd) - lr * scale * o
        return p, {**s, "buf": buf}

    return step


# --- formula tests ---------------------------------------------------------------------

CASES = [
    # kwargs of optlab.muon, kwargs of the reference
    ({}, {}),
    ({"nesterov": False}, {"nesterov": False}),
    ({"beta": 0.5, "eps": 1e-3, "weight_decay": 0.1}, {"mu": 0.5, "eps": 1e-3, "wd": 0.1}),
    (
        {"adam_b1": 0.8, "adam_b2": 0.99, "adam_weight_decay": 0.01},
        {"adam": (0.8, 0.99, 0.01)},
    ),
]


@pytest.mark.parametrize(("kwargs", "ref"), CASES)
def test_jordans_algorithm(kwargs, ref):
    assert_matches_reference(
        optlab.muon(0.02, **kwargs),
        paper(0.02, **ref),
        ref_init=init,
        shapes=SHAPES,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(("kwargs", "ref"), CASES)
def test_optax_form(kwargs, ref):
    assert_matches_reference(
        optlab.muon(0.02, **kwargs, like="optax"),
        optax_form(0.02, **ref),
        ref_init=init,
        shapes=SHAPES,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize(
    ("kwargs", "ref"),
    [
        ({}, {}),
        ({"nesterov": False, "weight_decay": 0.0}, {"nesterov": False, "wd": 0.0}),
        ({"adjust_lr_fn": "match_rms_adamw", "beta": 0.9}, {"match_rms": True, "mu": 0.9}),
    ],
)
def test_torch_form(kwargs, ref):
    # Newton–Schulz in float64 here (ns_dtype): the formula, without bfloat16's rounding.
    with jax.enable_x64(True):
        tx = optlab.muon(0.02, **kwargs, ns_dtype=jnp.float64, like="torch")
    assert_matches_reference(
        tx, torch_form(0.02, **ref), ref_init=init, shapes=SHAPES, rtol=RTOL, atol=ATOL
    )


def test_schedule_reads_the_update_count():
    # η_t = schedule(t), t the updates made before; the same for the AdamW leaves.
    assert_matches_reference(
        optlab.muon(lambda n: 0.05 / (1.0 + n)),
        paper(lambda t: 0.05 / (1.0 + t)),
        ref_init=init,
        shapes=SHAPES,
        num_steps=15,
        rtol=RTOL,
        atol=ATOL,
    )


# --- parity with the libraries ---------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"nesterov": False}, {"weight_decay": 0.1}, {"beta": 0.5, "adam_b1": 0.8}],
)
def test_parity_optax(kwargs):
    params, grads = problem(15)
    assert_same_trajectory(
        jax_rollout(optlab.muon(0.01, **kwargs, like="optax"), params, grads),
        jax_rollout(optax.contrib.muon(0.01, **kwargs), params, grads),
        rtol=1e-10,
        atol=1e-12,
    )


def test_parity_optax_with_dimension_numbers_and_consistent_rms():
    dims = {"w": optax.contrib.MuonDimensionNumbers(0, 1), "b": None}
    params, grads = problem(15)
    kwargs = {"muon_weight_dimension_numbers": dims, "consistent_rms": 0.2}
    assert_same_trajectory(
        jax_rollout(optlab.muon(0.01, **kwargs, like="optax"), params, grads),
        jax_rollout(optax.contrib.muon(0.01, **kwargs), params, grads),
        rtol=1e-10,
        atol=1e-12,
    )


class _TorchMuonAndAdamW:
    """torch.optim.Muon on the matrix, AdamW on the vector (torch's recipe)."""

    def __init__(self, tensors, lr, eps, **kwargs):
        import torch

        w, b = tensors
        self.optimizers = [
            torch.optim.Muon([w], lr=lr, **kwargs),
            torch.optim.AdamW([b], lr=lr, eps=eps, weight_decay=0.0),
        ]

    def step(self):
        for opt in self.optimizers:
            opt.step()


def _float64_newton_schulz(torch):
    """torch's own ``_zeropower_via_newtonschulz`` with its bfloat16 cast taken out."""
    import torch.optim._muon as module

    source = inspect.getsource(module._zeropower_via_newtonschulz)
    assert source.count("grad.bfloat16()") == 1  # the one cast; fails if torch changes it
    namespace = dict(vars(module))
    exec(source.replace("grad.bfloat16()", "grad.clone()"), namespace)
    return namespace["_zeropower_via_newtonschulz"]


@pytest.mark.parametrize(
    "kwargs", [{}, {"nesterov": False}, {"adjust_lr_fn": "match_rms_adamw", "weight_decay": 0.0}]
)
def test_parity_torch_in_float64(kwargs, monkeypatch):
    # torch's Muon with its Newton–Schulz run in float64: the rest of its step (the EMA
    # buffer, the lerp, the clamp, decay, the shape factor) is then matched to 1e-10.
    torch = pytest.importorskip("torch")
    import torch.optim._muon as module

    monkeypatch.setattr(module, "_zeropower_via_newtonschulz", _float64_newton_schulz(torch))
    params, grads = problem(20)
    with jax.enable_x64(True):
        tx = optlab.muon(0.02, **kwargs, ns_dtype=jnp.float64, like="torch")
    assert_same_trajectory(
        jax_rollout(tx, params, grads),
        torch_rollout_muon(params, grads, 0.02, **kwargs),
        rtol=1e-10,
        atol=1e-12,
    )


def torch_rollout_muon(params, grads, lr, **kwargs):
    from tests.optimizers.rollouts import torch_rollout

    return torch_rollout(lambda ts: _TorchMuonAndAdamW(ts, lr, 1e-7, **kwargs), params, grads)


def test_parity_torch_in_bfloat16():
    # Both run Newton–Schulz in bfloat16 (8 significant bits, ε = 2⁻⁸), so their steps
    # differ by rounding, which the iteration amplifies along small singular directions
    # (p⁵'s slope at 0 is a⁵ ≈ 490). Measured over 30 steps: at most 0.10·η·s per
    # coordinate of a step (0.16 without Nesterov); bound 0.25·η·s. The AdamW leaf is exact.
    pytest.importorskip("torch")
    lr = 0.02
    params, grads = problem(30)
    ours = jax_rollout(optlab.muon(lr, like="torch"), params, grads)
    theirs = torch_rollout_muon(params, grads, lr)
    scale = np.sqrt(max(1.0, 3 / 4))
    before_o, before_t = params, params
    for step, (o, t) in enumerate(zip(ours, theirs, strict=True), start=1):
        gap = np.max(np.abs((o["w"] - before_o["w"]) - (t["w"] - before_t["w"])))
        assert gap <= 0.25 * lr * scale, f"step {step}: steps differ by {gap / lr:.3f}·η"
        np.testing.assert_allclose(o["b"], t["b"], rtol=1e-10, atol=1e-12)
        before_o, before_t = o, t
    # and bfloat16 is not exact: the forms are not accidentally computed in float32
    assert np.max(np.abs(ours[-1]["w"] - theirs[-1]["w"])) > 1e-6


def test_forms_differ():
    params, grads = problem(10)
    lr = 0.01
    jordan = jax_rollout(optlab.muon(lr), params, grads)
    lib = jax_rollout(optlab.muon(lr, like="optax"), params, grads)
    assert np.max(np.abs(jordan[-1]["w"] - lib[-1]["w"])) > 1e-3  # the bias corrections
    with jax.enable_x64(True):
        tx = optlab.muon(lr, weight_decay=0.0, eps=1e-7, ns_dtype=jnp.float64, like="torch")
    torch_like = jax_rollout(tx, params, grads)
    # torch's M is (1 − μ)·Jordan's M and √max(1, A/B) replaces √max(1, B/A) (1 vs √(4/3)
    # on a 3×4 leaf): the direction agrees, the length of the step does not.
    d_j = jordan[0]["w"] - params["w"]
    d_t = torch_like[0]["w"] - params["w"]
    np.testing.assert_allclose(d_j, np.sqrt(4 / 3) * d_t, rtol=1e-5)


# --- the facts of Newton–Schulz ---------------------------------------------------------


def quintic(x, steps=5):
    for _ in range(steps):
        x = ABC[0] * x + ABC[1] * x**3 + ABC[2] * x**5
    return x


def test_newton_schulz_maps_singular_values_through_the_quintic():
    # NS acts on each singular value alone: NS(G) = U·p⁵(S/‖G‖_F)·Vᵀ, exactly in float64.
    rng = np.random.default_rng(0)
    for shape in [(5, 8), (8, 5), (6, 6)]:
        g = rng.standard_normal(shape)
        u, s, vt = np.linalg.svd(g, full_matrices=False)
        want = u @ np.diag(quintic(s / (np.linalg.norm(g) + 1e-8))) @ vt
        with jax.enable_x64(True):
            got = np.asarray(newton_schulz(jnp.asarray(g)))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_five_steps_leave_singular_values_in_a_band():
    # Measured on the quintic over σ/‖G‖_F in [1e-5, 1] (2·10⁶ points): every singular
    # value at or above 1.5e-3·‖G‖_F ends in [0.680, 1.203]; below that threshold p⁵ has
    # not yet lifted it (at 1e-3·‖G‖_F it ends at 0.47).
    x = np.geomspace(1.5e-3, 1.0, 200_001)
    y = quintic(x)
    assert 0.679 < y.min() and y.max() < 1.204
    assert quintic(np.array([1e-3]))[0] < 0.5
    # and on matrices whose spectrum spans the band, in float32 as the trainer computes:
    rng = np.random.default_rng(1)
    u, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    v, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    s = np.geomspace(1.0, 2e-3, 32)
    g = u[:, :32] @ np.diag(s) @ v.T
    ortho = np.asarray(newton_schulz(jnp.asarray(g, jnp.float32)), float)
    sv = np.linalg.svd(ortho, compute_uv=False)
    kept = s / np.linalg.norm(g) >= 1.5e-3
    assert kept.sum() >= 28
    sv_of = np.sort(sv)[::-1][: kept.sum()]
    assert np.all((sv_of > 0.67) & (sv_of < 1.21)), sv_of


def test_conv_kernels_are_matrices_of_all_but_the_output_axis():
    # (k, in, out) → (k·in, out): the update is the orthogonalized im2col matrix.
    rng = np.random.default_rng(2)
    g = rng.standard_normal((5, 3, 4))
    params = {"kernel": jnp.zeros((5, 3, 4))}
    with jax.enable_x64(True):
        tx = optlab.muon(1.0, nesterov=False)
        updates, _ = tx.update({"kernel": jnp.asarray(g)}, tx.init(params), params)
    want = -ns5(g.reshape(15, 4), 1e-8).reshape(5, 3, 4)  # s = √max(1, 4/15) = 1
    np.testing.assert_allclose(np.asarray(updates["kernel"]), want, rtol=1e-10, atol=1e-12)
    assert optlab.muon_labels(params) == {"kernel": "muon"}
    assert optlab.muon_labels(params, like="optax") == {"kernel": "adam"}  # optax: 2-D only


def test_labels_and_adam_paths():
    params = {
        "embed": {"embedding": jnp.zeros((10, 4))},
        "Dense_0": {"kernel": jnp.zeros((4, 4)), "bias": jnp.zeros(4)},
        "head": {"kernel": jnp.zeros((4, 3))},
    }
    labels = optlab.muon_labels(params, adam_paths=[r"^embed/", r"^head/"])
    assert labels == {
        "embed": {"embedding": "adam"},
        "Dense_0": {"kernel": "muon", "bias": "adam"},
        "head": {"kernel": "adam"},
    }
    tx = optlab.muon(0.1, adam_paths=[r"^embed/", r"^head/"])
    state = tx.init(params)
    assert isinstance(state.inner_states["muon"].inner_state[0], optlab.MuonState)


# --- the API ---------------------------------------------------------------------------


def test_names_and_defaults_are_optax_contribs():
    ours = inspect.signature(optlab.muon).parameters
    theirs = inspect.signature(optax.contrib.muon).parameters
    assert list(ours)[:8] == list(theirs)[:8]
    for name in ("ns_steps", "beta", "nesterov", "adaptive", "adam_b1", "adam_b2"):
        assert ours[name].default == theirs[name].default, name
    # eps and weight_decay default to None: optax's 1e-8 and 0, torch's 1e-7 and 0.1.
    params, grads = problem(3)
    assert_same_trajectory(
        jax_rollout(optlab.muon(0.01, like="optax"), params, grads),
        jax_rollout(optlab.muon(0.01, eps=1e-8, weight_decay=0.0, like="optax"), params, grads),
        rtol=0,
        atol=0,
    )


def test_inject_hyperparams_and_jit():
    tx = optax.inject_hyperparams(optlab.muon)(learning_rate=0.1, beta=0.9)
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(params, state, params)
    assert updates["w"].shape == (3, 2)
    state.hyperparams["learning_rate"] = jnp.asarray(0.0)
    updates, _ = jax.jit(tx.update)(params, state, params)
    assert float(jnp.max(jnp.abs(updates["w"]))) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"like": "keras"}, r"muon: `like` must be one of \(None, 'optax', 'torch'\)"),
        ({"beta": 1.0}, r"`beta` must be in \[0, 1\)"),
        ({"eps": -1e-8}, "`eps` must be a finite number >= 0"),
        ({"learning_rate": -0.1}, "muon: `learning_rate` must be"),
        ({"ns_steps": 0}, "`ns_steps` must be an int >= 1"),
        ({"ns_coeffs": (1.0, 2.0)}, "`ns_coeffs` must be"),
        ({"ns_coeffs": "polar"}, "`ns_coeffs` must be one of"),
        ({"preconditioning": "aol"}, "`preconditioning` must be one of"),
        ({"adjust_lr_fn": "rms"}, "`adjust_lr_fn` must be one of"),
        ({"adam_paths": ["(unclosed"]}, "`adam_paths` must be regular expressions"),
        ({"adam_eps_root": 1e-8}, "pass like='optax'"),
        ({"fallback": "sgd"}, "`fallback` must be 'adamw' or None"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optlab.muon(**{"learning_rate": 0.1, **kwargs})


def test_no_fallback_and_no_matrix_is_a_clear_error():
    tx = optlab.muon(0.1, fallback=None)
    with pytest.raises(ValueError, match=r"no parameter is a matrix and fallback=None: b \(3,\)"):
        tx.init({"b": jnp.zeros(3)})
    tx.init({"w": jnp.zeros((3, 2))})  # matrices only: fine
