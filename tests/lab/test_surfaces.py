"""optlab.lab surfaces: known minima and saddles checked by jax's derivatives, global
minima against a dense grid, lecture 02's gradient, the bowl's condition number."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.lab import SURFACES, Surface, elongated_bowl, lecture02_quadratic, rosenbrock

# float32 derivatives at exact stationary points: |∇f| within this, eigenvalues beyond it.
GRAD_ATOL = 1e-5


def _eigenvalues(surface, point) -> np.ndarray:
    return np.linalg.eigvalsh(np.asarray(surface.hessian(jnp.asarray(point)), np.float64))


@pytest.fixture(scope="module", params=sorted(SURFACES))
def surface(request) -> Surface:
    return SURFACES[request.param]()


def test_registry_names_match(surface):
    assert SURFACES[surface.name]().name == surface.name
    (x0, x1), (y0, y1) = surface.bounds
    for x, y in (*surface.minima, *surface.saddles, surface.start):
        assert x0 <= x <= x1 and y0 <= y <= y1


def test_minima_are_stationary_with_positive_definite_hessian(surface):
    for point in surface.minima:
        np.testing.assert_allclose(surface.grad(jnp.asarray(point)), 0.0, atol=GRAD_ATOL)
        assert _eigenvalues(surface, point).min() > 1e-3, (surface.name, point)


def test_saddles_are_stationary_with_indefinite_hessian(surface):
    for point in surface.saddles:
        np.testing.assert_allclose(surface.grad(jnp.asarray(point)), 0.0, atol=GRAD_ATOL)
        low, high = _eigenvalues(surface, point)
        assert low < -1e-3 < 1e-3 < high, (surface.name, point, low, high)


def test_global_minima_are_below_a_dense_grid_and_local_ones_above(surface):
    _, _, Z = surface.grid(401)
    tol = 1e-6  # float32 rounding near a minimum; no grid point can lie below f*
    values = [float(surface.value(jnp.asarray(m))) for m in surface.minima]
    for value, is_global in zip(values, surface.is_global, strict=True):
        if is_global:
            assert value <= Z.min() + tol
            assert value == pytest.approx(surface.f_star, abs=1e-6)
        else:
            assert value > surface.f_star + 1e-2  # a local minimum is strictly worse


def test_noisy_gradient_mean_and_std():
    surface = lecture02_quadratic()
    w, scale, n = jnp.asarray([1.0, 1.0]), 0.5, 20000
    keys = jax.random.split(jax.random.key(0), n)
    sample = jax.jit(jax.vmap(lambda k: surface.noisy_grad(w, k, scale)))
    samples = np.asarray(sample(keys), np.float64)
    # mean within 5 standard errors of ∇f(1, 1) = (12, 8); std within 3%
    np.testing.assert_allclose(samples.mean(0), [12.0, 8.0], atol=5 * scale / math.sqrt(n))
    np.testing.assert_allclose(samples.std(0), scale, rtol=0.03)
    np.testing.assert_array_equal(surface.noisy_grad(w, keys[0], 0.0), [12.0, 8.0])


def test_lecture02_gradient_and_hessian():
    surface = lecture02_quadratic()
    np.testing.assert_array_equal(surface.grad(jnp.asarray([1.0, 1.0])), [12.0, 8.0])
    np.testing.assert_allclose(surface.hessian(jnp.zeros(2)), surface.hessian_matrix)
    np.testing.assert_allclose(surface.hessian_matrix, [[10.0, 2.0], [2.0, 6.0]])
    eig = np.linalg.eigvalsh(np.asarray(surface.hessian_matrix, np.float64))
    np.testing.assert_allclose(eig, [8 - 2 * math.sqrt(2), 8 + 2 * math.sqrt(2)], rtol=1e-12)


@pytest.mark.parametrize("kappa, angle", [(10.0, 0.0), (100.0, 0.7), (1.0, 2.0)])
def test_elongated_bowl_condition_number(kappa, angle):
    surface = elongated_bowl(kappa, angle)
    A = np.asarray(surface.hessian_matrix, np.float64)
    low, high = np.linalg.eigvalsh(A)
    assert high / low == pytest.approx(kappa, rel=1e-9)
    assert high == pytest.approx(1.0, rel=1e-12)
    # the long (flat) axis points along (cos θ, sin θ)
    axis = np.array([math.cos(angle), math.sin(angle)])
    np.testing.assert_allclose(A @ axis, axis / kappa, atol=1e-12)
    # jax's Hessian and value agree with ½ wᵀAw computed in float64
    w = np.array([0.3, -1.7])
    np.testing.assert_allclose(surface.hessian(jnp.asarray(w)), A, rtol=1e-5, atol=1e-6)
    assert float(surface.value(jnp.asarray(w))) == pytest.approx(0.5 * w @ A @ w, rel=1e-5)


def test_rosenbrock_parameters_move_the_minimum():
    surface = rosenbrock(a=2.0, b=10.0)
    assert surface.minima == ((2.0, 4.0),)
    np.testing.assert_allclose(surface.grad(jnp.asarray([2.0, 4.0])), 0.0, atol=GRAD_ATOL)
    assert float(surface.value(jnp.asarray([0.0, 0.0]))) == pytest.approx(4.0)


def test_known_minimum_values():
    assert SURFACES["saddle"]().f_star == pytest.approx(-0.25)
    assert SURFACES["local_minima"]().f_star == pytest.approx(-5 / 12, abs=1e-7)
    assert SURFACES["beale"]().f_star == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: elongated_bowl(0.5), "condition_number"),
        (lambda: elongated_bowl(math.inf), "condition_number"),
        (lambda: elongated_bowl(10.0, angle=float("nan")), "angle"),
        (lambda: rosenbrock(b=-1.0), "`b`"),
        (lambda: rosenbrock(a="1"), "`a`"),
        (
            lambda: Surface(
                "s",
                lambda w: w @ w,
                ((0.0, 0.0),),
                (False,),
                ((-1, 1), (-1, 1)),
                (1.0, 1.0),
                "none",
            ),
            "is_global",
        ),
    ],
)
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
