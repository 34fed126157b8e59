"""optlab.minimize: L-BFGS and Newton reach scipy's optimum; one compile per objective."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab

scipy_optimize = pytest.importorskip("scipy.optimize")


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _logistic_problem():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((300, 6))
    true_w = rng.standard_normal(6)
    labels = (features @ true_w + 0.5 * rng.standard_normal(300) > 0).astype(float)
    return features, labels


FEATURES, LABELS = _logistic_problem()


def logistic_loss(params):
    """Mean cross-entropy of a logistic regression plus λ|w|² (lecture 01's model)."""
    logits = jnp.asarray(FEATURES) @ params["w"] + params["b"]
    y = jnp.asarray(LABELS)
    nll = jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)
    return nll + 1e-3 * jnp.sum(params["w"] ** 2)


def scipy_solution(fun, x0):
    flat = jax.jit(jax.value_and_grad(fun))
    res = scipy_optimize.minimize(
        lambda v: tuple(np.asarray(a, float) for a in flat(jnp.asarray(v))),
        np.asarray(x0, float),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "gtol": 1e-10, "ftol": 1e-15},
    )
    assert res.success, res.message
    return res.x, res.fun


@pytest.mark.parametrize(("method", "dim"), [("lbfgs", 2), ("lbfgs", 100), ("newton", 2)])
def test_rosenbrock_matches_scipy(dim, method):
    x0 = np.zeros(dim)
    x0[0] = -1.2
    with jax.enable_x64(True):
        want_x, want_f = scipy_solution(rosenbrock, x0)
        got = optlab.minimize(rosenbrock, jnp.asarray(x0), method, tol=1e-9, max_iter=3000)
    assert got.converged, got
    np.testing.assert_allclose(np.asarray(got.x), want_x, atol=1e-6)  # both at (1, …, 1)
    assert abs(got.value - want_f) < 1e-10


@pytest.mark.parametrize("method", ["lbfgs", "newton"])
def test_logistic_regression_matches_scipy(method):
    with jax.enable_x64(True):
        x0 = {"w": jnp.zeros(6), "b": jnp.zeros(())}
        flat = lambda v: logistic_loss({"w": v[:6], "b": v[6]})  # noqa: E731
        want_x, want_f = scipy_solution(flat, np.zeros(7))
        got = optlab.minimize(logistic_loss, x0, method, tol=1e-9)
    assert got.converged
    np.testing.assert_allclose(np.asarray(got.x["w"]), want_x[:6], atol=1e-6)
    np.testing.assert_allclose(float(got.x["b"]), want_x[6], atol=1e-6)
    np.testing.assert_allclose(got.value, want_f, rtol=1e-10)


def test_newton_solves_a_quadratic_in_one_step():
    # Lecture 01: Newton's step θ − H⁻¹∇J lands on the minimum of a quadratic.
    a = jnp.array([[3.0, 1.0], [1.0, 2.0]])

    def quad(x):
        return 0.5 * x @ a @ x - jnp.array([1.0, -1.0]) @ x

    with jax.enable_x64(True):
        got = optlab.minimize(quad, jnp.array([5.0, -7.0]), "newton", tol=1e-10)
    assert got.iterations == 1
    np.testing.assert_allclose(got.x, np.linalg.solve(np.asarray(a), [1.0, -1.0]), rtol=1e-12)


def test_newton_finds_the_other_local_minimum_of_rosenbrock_100d():
    # From (−1.2, 0, …, 0) Newton's method settles in the local minimum near (−1, 1, …, 1)
    # (f ≈ 3.99) that the extended Rosenbrock function has for n ≥ 4 (lecture 01's local
    # minima): a stationary point with a positive-definite Hessian, not scipy's (1, …, 1).
    x0 = np.zeros(100)
    x0[0] = -1.2
    with jax.enable_x64(True):
        got = optlab.minimize(rosenbrock, jnp.asarray(x0), "newton", tol=1e-9, max_iter=3000)
        hessian = np.asarray(jax.hessian(rosenbrock)(got.x))
    assert got.converged
    assert 3.9 < got.value < 4.0 and float(got.x[0]) < -0.99
    assert np.linalg.eigvalsh(hessian).min() > 0


def test_newton_converges_quadratically():
    with jax.enable_x64(True):
        got = optlab.minimize(logistic_loss, {"w": jnp.zeros(6), "b": jnp.zeros(())}, "newton")
    n0, n1, n2 = got.grad_norms[-3:]
    # The order of convergence p from the last three gradient norms: log(n2/n1)/log(n1/n0);
    # p = 1 is linear (gradient descent), p = 2 quadratic (Newton near the optimum).
    order = np.log(n2 / n1) / np.log(n1 / n0)
    assert order > 1.8, got.grad_norms


def test_history_and_evaluations():
    got = optlab.minimize(rosenbrock, jnp.array([-1.2, 1.0]), "lbfgs", tol=1e-5)
    assert len(got.values) == len(got.grad_norms) == got.iterations + 1
    assert np.all(np.diff(got.values) <= 0)  # the line search only accepts decreases
    assert np.all(np.diff(got.evaluation_counts) >= 1)
    assert got.evaluation_counts[-1] == got.evaluations
    assert got.grad_norms[-1] <= 1e-5


def test_first_order_methods_and_custom_transformations():
    got = optlab.minimize(
        rosenbrock, jnp.array([-1.2, 1.0]), "adam", learning_rate=0.02, max_iter=5000
    )
    assert got.value < 1e-4 and got.iterations <= 5000
    custom = optlab.minimize(
        rosenbrock, jnp.array([-1.2, 1.0]), optlab.momentum(1e-3, 0.9), max_iter=20_000, tol=1e-4
    )
    assert custom.converged


def test_second_call_does_not_recompile():
    traces = []

    def counted(x):
        traces.append(1)
        return rosenbrock(x)

    optlab.minimize(counted, jnp.array([-1.2, 1.0]), "lbfgs")
    after_first = len(traces)
    second = optlab.minimize(counted, jnp.array([0.5, -0.3]), "lbfgs", tol=1e-8)
    assert len(traces) == after_first, "the second call traced the objective again"
    assert second.converged


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "bfgs"}, "unknown `method`"),
        ({"method": "adam"}, "needs `learning_rate`"),
        ({"max_iter": 0}, "`max_iter`"),
        ({"tol": -1.0}, "`tol`"),
        ({"ftol": -1.0}, "`ftol`"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optlab.minimize(rosenbrock, jnp.zeros(2), **kwargs)


def test_default_lbfgs_converges_where_scipys_defaults_do():
    """The 100-D Rosenbrock from zeros: scipy's L-BFGS-B defaults end at f ≈ 4e-10 (its
    ftol); optlab's defaults (max_iter 15000) go on to the gradient tolerance."""
    rosen = scipy_optimize.rosen
    scipy_default = scipy_optimize.minimize(
        rosen, np.zeros(100), jac=scipy_optimize.rosen_der, method="L-BFGS-B"
    )
    with jax.enable_x64(True):
        got = optlab.minimize(rosenbrock, jnp.zeros(100))
    assert got.converged and got.status == optlab._minimize.GRADIENT
    assert got.value < 1e-10 and got.value <= scipy_default.fun and got.iterations > 500
    assert got.message.startswith("converged") and "tol" in got.message


def test_the_message_says_max_iter_was_hit():
    with jax.enable_x64(True):
        got = optlab.minimize(rosenbrock, jnp.zeros(100), max_iter=50)
    assert not got.converged and got.iterations == 50
    assert got.status == optlab._minimize.MAX_ITER_REACHED and "max_iter" in got.message


def test_scipys_ftol_stops_on_the_change_of_f():
    with jax.enable_x64(True):
        got = optlab.minimize(rosenbrock, jnp.zeros(100), ftol=2.220446049250313e-09)
    rel = (got.values[-2] - got.values[-1]) / max(abs(got.values[-2]), 1.0)
    assert got.converged and got.status == optlab._minimize.FUNCTION_CHANGE
    assert 0 <= rel <= 2.220446049250313e-09 and "ftol" in got.message


def test_a_failed_line_search_and_a_non_finite_f_stop_the_run():
    @jax.custom_jvp
    def uphill(x):  # x², with a gradient pointing the wrong way: no step decreases f
        return jnp.sum(x**2)

    uphill.defjvp(lambda primals, tangents: (uphill(*primals), -2 * primals[0] @ tangents[0]))
    got = optlab.minimize(uphill, jnp.array([1.0, 2.0]))
    assert not got.converged and got.status == optlab._minimize.LINESEARCH_FAILED
    assert got.iterations == 1 and "line search" in got.message
    got = optlab.minimize(lambda x: jnp.sum(jnp.log(x)), jnp.array([1.0]), "sgd", learning_rate=2)
    assert not got.converged and got.status == optlab._minimize.NONFINITE
    assert got.iterations == 1 and "not finite" in got.message


def test_minimize_hands_the_objective_to_optimizers_that_need_it():
    # Sophia's Hessian-vector products need obj_fn: minimize passes `fun` (optax's name).
    result = optlab.minimize(
        lambda x: jnp.sum((x - 1.0) ** 2), jnp.zeros(3), "sophia", learning_rate=0.05
    )
    assert result.value < 1e-5
