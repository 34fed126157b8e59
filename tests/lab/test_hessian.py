"""optlab.lab conditioning (lecture 04): the Hessian, its spectrum and κ = λmax/λmin against
NumPy float64 on quadratics H = Q diag(λ) Qᵀ with known eigenvalues, and a small MLP's
Lanczos extremes against its dense Hessian."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from optlab.lab import (
    _hessian,
    condition_number,
    extreme_eigenvalues,
    hessian,
    hessian_eigenvalues,
    hvp,
    lanczos,
    power_iteration,
)

N = 30  # parameters: a (10,) vector and a (4, 5) matrix, to exercise the pytree flattening
KAPPA = 1000.0
# float32 Hessians: entries and eigenvalues within this fraction of λmax (float32 rounding of
# H = Q diag(λ) Qᵀ and of the Hessian-vector products, ~1e-7 per entry, summed over N terms).
RTOL = 2e-5


def _params():
    return {"a": jnp.zeros(10), "b": jnp.zeros((4, 5))}


def quadratic(params, H):
    """½ wᵀ H w + 1ᵀw with w = ravel(params): its Hessian is H everywhere."""
    w = ravel_pytree(params)[0]
    return 0.5 * w @ H @ w + jnp.sum(w)


def _spd(eigenvalues, seed=0):
    """(H as float32, Q) with H = Q diag(λ) Qᵀ, Q a random orthogonal matrix (float64)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(N, N)))
    q = q * np.sign(np.diag(r))
    return jnp.asarray((q * eigenvalues) @ q.T, jnp.float32), q


@pytest.fixture(scope="module")
def spectrum():
    return np.geomspace(1.0, KAPPA, N)  # λmin = 1, λmax = 1000, all distinct


@pytest.fixture(scope="module")
def problem(spectrum):
    return _spd(spectrum)


def test_dense_hessian_and_exact_eigenvalues(spectrum, problem):
    H, _ = problem
    np.testing.assert_allclose(hessian(quadratic, _params(), batch=H), H, atol=RTOL * KAPPA)
    values = hessian_eigenvalues(quadratic, _params(), batch=H)
    assert values.dtype == np.float64 and np.all(np.diff(values) >= 0)
    np.testing.assert_allclose(values, spectrum, atol=RTOL * KAPPA)


def test_hvp_equals_matrix_vector_product(problem):
    H, _ = problem
    params = {"a": jnp.ones(10), "b": jnp.full((4, 5), -0.5)}  # H v does not depend on θ
    v = {"a": jnp.linspace(-1, 1, 10), "b": jnp.arange(20.0).reshape(4, 5) / 20}
    out = hvp(quadratic, params, v, batch=H)
    assert jax.tree.structure(out) == jax.tree.structure(v)
    expected = np.asarray(H, np.float64) @ np.asarray(ravel_pytree(v)[0], np.float64)
    np.testing.assert_allclose(ravel_pytree(out)[0], expected, rtol=1e-5, atol=1e-4)


def test_power_iteration_finds_top_eigenpair(spectrum, problem):
    H, Q = problem
    # |λ₂/λ₁| = 1000^(-1/29) ≈ 0.79: after 200 steps the eigenvector error is ~0.79^200.
    top = power_iteration(quadratic, _params(), iters=200, key=jax.random.PRNGKey(3), batch=H)
    assert float(top.value) == pytest.approx(KAPPA, rel=RTOL)
    vector = np.asarray(ravel_pytree(top.vector)[0], np.float64)
    assert abs(vector @ Q[:, -1]) == pytest.approx(1.0, abs=1e-5)
    assert jax.tree.structure(top.vector) == jax.tree.structure(_params())


def test_power_iteration_is_by_magnitude():
    H, _ = _spd(np.concatenate([[-50.0], np.linspace(1.0, 10.0, N - 1)]), seed=1)
    assert float(power_iteration(quadratic, _params(), iters=200, batch=H).value) == (
        pytest.approx(-50.0, rel=1e-5)
    )


def test_lanczos_full_and_partial(spectrum, problem):
    H, _ = problem
    # k = N: the Ritz values are all the eigenvalues.
    np.testing.assert_allclose(
        lanczos(quadratic, _params(), k=N, batch=H), spectrum, atol=1e-4 * KAPPA
    )
    # k < N: the extremes converge first, their error measured against the spectrum's width
    # (Kaniel–Paige): at k = 20 here λmax to 1e-7 of it, λmin (the dense, geometric bottom)
    # to ~1e-3 of it, i.e. 1.3–1.7 for λmin = 1 over keys 0–2.
    width = KAPPA - 1.0
    ritz = lanczos(quadratic, _params(), k=20, key=jax.random.PRNGKey(1), batch=H)
    assert ritz.shape == (20,) and np.all(np.diff(ritz) >= 0)
    assert ritz[-1] == pytest.approx(KAPPA, abs=1e-5 * width)
    assert ritz[0] == pytest.approx(1.0, abs=2e-3 * width)
    # Ritz values lie inside the spectrum (Cauchy interlacing).
    assert ritz[0] >= 1.0 - RTOL * KAPPA and ritz[-1] <= KAPPA * (1 + RTOL)


def test_lanczos_survives_an_invariant_subspace():
    """Three distinct eigenvalues, ten times each: the Krylov space is exhausted after three
    steps and Lanczos restarts from a fresh direction; no NaN, every Ritz value exact."""
    values = np.repeat([2.0, 5.0, 40.0], N // 3)
    H, _ = _spd(values, seed=2)
    ritz = lanczos(quadratic, _params(), k=N, batch=H)
    assert np.all(np.isfinite(ritz))
    np.testing.assert_allclose(ritz, values, atol=RTOL * 40 * 10)
    assert extreme_eigenvalues(quadratic, _params(), method="lanczos", k=N, batch=H) == (
        pytest.approx((2.0, 40.0), rel=1e-4)
    )


def test_condition_number(spectrum, problem):
    H, _ = problem
    exact = condition_number(quadratic, _params(), method="exact", batch=H)
    assert exact == pytest.approx(KAPPA, rel=1e-4)
    assert condition_number(quadratic, _params(), batch=H) == pytest.approx(exact)  # auto: exact
    assert condition_number(quadratic, _params(), method="lanczos", k=N, batch=H) == (
        pytest.approx(KAPPA, rel=1e-3)
    )
    # Not a minimum: λmin ≤ 0, κ undefined, reported as inf.
    saddle, _ = _spd(np.concatenate([[-1.0], spectrum[1:]]), seed=3)
    assert condition_number(quadratic, _params(), method="exact", batch=saddle) == math.inf
    lam_min, lam_max = extreme_eigenvalues(quadratic, _params(), method="exact", batch=saddle)
    assert lam_min == pytest.approx(-1.0, abs=RTOL * KAPPA) and lam_max == pytest.approx(KAPPA)


def test_compiled_once_per_loss_and_shape(problem, spectrum):
    H, _ = problem
    H2, _ = _spd(spectrum[::-1].copy(), seed=5)
    lanczos(quadratic, _params(), k=N, batch=H)
    before = _hessian._lanczos_jit._cache_size()
    lanczos(quadratic, _params(), k=N, batch=H2, key=jax.random.PRNGKey(7))  # new data, key
    assert _hessian._lanczos_jit._cache_size() == before


def _mlp_loss(params, batch):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))


def test_small_mlp_lanczos_extremes_match_dense_hessian():
    """A 4-8-3 tanh MLP (67 parameters) at a random point, not a minimum: λmin < 0."""
    rng = np.random.default_rng(0)
    params = {
        "w1": jnp.asarray(rng.normal(size=(4, 8)), jnp.float32),
        "b1": jnp.zeros(8),
        "w2": jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
        "b2": jnp.zeros(3),
    }
    batch = (
        jnp.asarray(rng.normal(size=(32, 4)), jnp.float32),
        jnp.asarray(rng.integers(0, 3, 32)),
    )
    dense = np.linalg.eigvalsh(np.asarray(hessian(_mlp_loss, params, batch=batch), np.float64))
    spread = dense[-1] - dense[0]
    assert dense[0] < 0 < dense[-1]
    lam_min, lam_max = extreme_eigenvalues(_mlp_loss, params, method="lanczos", k=40, batch=batch)
    # 40 of 67 steps: both ends to 1e-4 of the spectrum's width (float32 products).
    assert lam_max == pytest.approx(dense[-1], abs=1e-4 * spread)
    assert lam_min == pytest.approx(dense[0], abs=1e-4 * spread)
    assert condition_number(_mlp_loss, params, method="lanczos", k=40, batch=batch) == math.inf


def test_bad_arguments_raise_clear_errors(problem):
    H, _ = problem
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        lanczos(quadratic, _params(), k=0, batch=H)
    with pytest.raises(ValueError, match="`iters` must be a positive integer"):
        power_iteration(quadratic, _params(), iters=2.5, batch=H)
    with pytest.raises(ValueError, match="`method` must be one of"):
        extreme_eigenvalues(quadratic, _params(), method="arnoldi", batch=H)
    with pytest.raises(ValueError, match="`loss_fn` must be a function"):
        hessian("loss", _params())
    with pytest.raises(ValueError, match="`v` must have the params' structure"):
        hvp(quadratic, _params(), jnp.ones(N), batch=H)
