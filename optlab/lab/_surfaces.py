"""The lectures' 2-D test surfaces, each with its known minima (and saddles).

A `Surface` is a JAX function of a point ``w = (x, y)`` plus what is known about it:
its minima (which of them are global), its saddle points, a box for plotting and a
default start. ``noisy_grad`` adds N(0, scale²) noise to the gradient: the noisy steps
of lecture 03 ("Noisy gradients") and lecture 04 ("may escape local minima due to noise").
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Point = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Surface:
    """A 2-D loss surface f(w), w = (x, y), and what is known about it.

    Attributes:
      name: registry name (a key of `SURFACES`).
      fn: ``f(w) -> scalar``, a JAX function of an array of shape ``(2,)``.
      minima: every known minimum ``(x, y)``; ``is_global`` says which are global.
      is_global: one flag per entry of ``minima``.
      saddles: known saddle points (gradient zero, Hessian indefinite).
      bounds: ``((x_min, x_max), (y_min, y_max))``, the box drawn by the plots.
      start: the default start of a trajectory.
      lecture: where the lectures use this surface.
      hessian_matrix: the constant Hessian of a quadratic surface, else None.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    minima: tuple[Point, ...]
    is_global: tuple[bool, ...]
    bounds: tuple[Point, Point]
    start: Point
    lecture: str
    saddles: tuple[Point, ...] = ()
    hessian_matrix: tuple[Point, Point] | None = None

    def __post_init__(self) -> None:
        if len(self.minima) != len(self.is_global) or not any(self.is_global):
            raise ValueError(
                f"Surface {self.name!r}: `is_global` needs one flag per minimum, at least one "
                f"True; got {len(self.minima)} minima and flags {self.is_global}."
            )

    @functools.cached_property
    def _jitted(self) -> dict[str, Callable]:
        """Compiled once per surface: eager calls (notebooks, tests) skip op-by-op dispatch;
        inside a traced function they are inlined."""
        grad = jax.grad(self.fn)

        def noisy(w, key, scale):
            return grad(w) + jnp.asarray(scale, w.dtype) * jax.random.normal(key, w.shape, w.dtype)

        return {
            "value": jax.jit(self.fn),
            "grad": jax.jit(grad),
            "hessian": jax.jit(jax.hessian(self.fn)),
            "noisy_grad": jax.jit(noisy),
            "values": jax.jit(jax.vmap(self.fn)),
        }

    def value(self, w: jax.Array) -> jax.Array:
        """f(w)."""
        return self._jitted["value"](jnp.asarray(w))

    def grad(self, w: jax.Array) -> jax.Array:
        """∇f(w), by ``jax.grad``."""
        return self._jitted["grad"](jnp.asarray(w))

    def hessian(self, w: jax.Array) -> jax.Array:
        """The 2×2 Hessian ∇²f(w), by ``jax.hessian`` (lectures 03, 04)."""
        return self._jitted["hessian"](jnp.asarray(w))

    def noisy_grad(self, w: jax.Array, key: jax.Array, scale: float | jax.Array) -> jax.Array:
        """∇f(w) + ε, ε ~ N(0, scale²·I): a noisy gradient estimate (lectures 03, 04)."""
        return self._jitted["noisy_grad"](jnp.asarray(w), key, scale)

    @property
    def global_minima(self) -> tuple[Point, ...]:
        return tuple(m for m, g in zip(self.minima, self.is_global, strict=True) if g)

    @functools.cached_property
    def f_star(self) -> float:
        """The global minimum value f* (f at the first global minimum)."""
        return float(self.value(jnp.asarray(self.global_minima[0], jnp.float32)))

    def grid(self, resolution: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)``: f on a ``resolution × resolution`` grid over ``bounds``."""
        (x0, x1), (y0, y1) = self.bounds
        xs = np.linspace(x0, x1, resolution, dtype=np.float32)
        ys = np.linspace(y0, y1, resolution, dtype=np.float32)
        X, Y = np.meshgrid(xs, ys)
        points = np.stack([X.ravel(), Y.ravel()], axis=1)
        Z = np.asarray(self._jitted["values"](points)).reshape(X.shape)
        return X, Y, Z


def _check_number(owner: str, name: str, value: float, *, must: str = "", ok: bool = True) -> None:
    finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not (finite and ok):
        raise ValueError(f"{owner}: `{name}` must be a finite number{must}, got {value!r}.")


def _lecture02(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return 5 * x**2 + 2 * x * y + 3 * y**2


def lecture02_quadratic() -> Surface:
    """Lecture 02's f = 5x² + 2xy + 3y²: ∇f = (10x + 2y, 2x + 6y), (12, 8) at (1, 1).

    Its Hessian [[10, 2], [2, 6]] has eigenvalues 8 ± 2√2, so plain gradient descent is
    stable for α < 2/(8 + 2√2) ≈ 0.185; the minimum is (0, 0).
    """
    return Surface(
        name="lecture02_quadratic",
        fn=_lecture02,
        minima=((0.0, 0.0),),
        is_global=(True,),
        bounds=((-1.5, 1.5), (-1.5, 1.5)),
        start=(1.0, 1.0),
        lecture="lecture 02, 'Review of SGD'",
        hessian_matrix=((10.0, 2.0), (2.0, 6.0)),
    )


def elongated_bowl(condition_number: float = 50.0, angle: float = 0.0) -> Surface:
    """An elongated quadratic bowl f = ½ wᵀAw of condition number κ (lectures 01, 02, 04).

    A = R(θ) diag(1/κ, 1) R(θ)ᵀ: curvature 1/κ along the long axis (cos θ, sin θ) and 1
    across it, so λmax/λmin = κ = ``condition_number`` (lecture 04) and gradient descent
    needs α < 2 (λmax = 1). θ = ``angle`` (radians) turns the bowl: at θ = 0 its axes are
    the coordinates, which per-coordinate methods (AdaGrad, RMSProp, Adam) exploit. The
    start sits 4 units out along the long axis and 1 across it: lecture 02's L-shaped
    path, lecture 01's "meandering towards the minimum".
    """
    _check_number(
        "elongated_bowl", "condition_number", condition_number, must=" >= 1 (λmax/λmin)",
        ok=isinstance(condition_number, int | float) and condition_number >= 1,
    )  # fmt: skip
    _check_number("elongated_bowl", "angle", angle)
    c, s = math.cos(angle), math.sin(angle)
    long_axis, short_axis = np.array([c, s]), np.array([-s, c])
    A = np.outer(long_axis, long_axis) / condition_number + np.outer(short_axis, short_axis)

    def bowl(w: jax.Array) -> jax.Array:
        return 0.5 * w @ jnp.asarray(A, w.dtype) @ w

    start = -4.0 * long_axis + 1.0 * short_axis
    return Surface(
        name="elongated_bowl",
        fn=bowl,
        minima=((0.0, 0.0),),
        is_global=(True,),
        bounds=((-5.0, 5.0), (-5.0, 5.0)),
        start=(float(start[0]), float(start[1])),
        lecture=f"lectures 01, 02, 04: elongated bowl, κ = {condition_number:g}",
        hessian_matrix=(tuple(map(float, A[0])), tuple(map(float, A[1]))),
    )


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    """Rosenbrock's banana valley f = (a − x)² + b(y − x²)²; minimum (a, a²), f* = 0.

    The curved, flat-bottomed valley is the classic test of momentum and quasi-Newton
    methods (lecture 01's L-BFGS); start (−1.2, 1) as in Rosenbrock (1960).
    """
    _check_number("rosenbrock", "a", a)
    _check_number("rosenbrock", "b", b, must=" > 0", ok=isinstance(b, int | float) and b > 0)

    def banana(w: jax.Array) -> jax.Array:
        x, y = w[0], w[1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    reach = abs(a) + 1.0
    return Surface(
        name="rosenbrock",
        fn=banana,
        minima=((float(a), float(a) ** 2),),
        is_global=(True,),
        bounds=((-reach - 0.5, reach), (a**2 - 2.0, a**2 + 2.0)),
        start=(-1.2, 1.0),
        lecture="lecture 01 (quasi-Newton), lecture 02 (momentum in a narrow valley)",
    )


def _beale(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def beale() -> Surface:
    """Beale's function: f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)².

    Global minimum (3, ½) with f* = 0; a saddle at (0, 1) (∂f/∂y ≡ 0 on x = 0 and
    ∂²f/∂x∂y = 24.75 there). Flat plateaus and steep walls: lecture 02's case for
    per-parameter rates.
    """
    return Surface(
        name="beale",
        fn=_beale,
        minima=((3.0, 0.5),),
        is_global=(True,),
        saddles=((0.0, 1.0),),
        bounds=((-1.5, 4.5), (-2.0, 2.0)),
        start=(1.0, 1.5),
        lecture="lecture 02 (plateaus and per-parameter rates)",
    )


def _saddle(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2


def saddle() -> Surface:
    """A saddle at the origin between two minima: f = ½x² − ½y² + ¼y⁴ (lecture 03).

    ∇f = (x, y³ − y). Near (0, 0) f ≈ ½(x² − y²), lecture 03's saddle: a minimum along x,
    a maximum along y (Hessian diag(1, −1)). The quartic bounds it below: two global
    minima (0, ±1) with f* = −¼ (Hessian diag(1, 2)). The x axis is the saddle's stable
    manifold: noiseless gradient descent started on it converges to the saddle; noise
    pushes it off (lectures 03, 04). The default start is 10⁻³ off that axis, so a path
    lingers near the saddle before it escapes.
    """
    return Surface(
        name="saddle",
        fn=_saddle,
        minima=((0.0, 1.0), (0.0, -1.0)),
        is_global=(True, True),
        saddles=((0.0, 0.0),),
        bounds=((-2.0, 2.0), (-1.75, 1.75)),
        start=(-1.5, 1e-3),
        lecture="lecture 03, 'Loss surface geometry' (saddle points)",
    )


def _local_minima(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    # g(x) with g'(x) = (x + 1)(x − ¼)(x − 1): the roots are the stationary points' x.
    g = x**4 / 4 - x**3 / 12 - x**2 / 2 + x / 4
    return g + (y - x / 2) ** 2


def local_minima() -> Surface:
    """A global and a local minimum with a saddle between them (lecture 01, limitation 3).

    f = g(x) + (y − x/2)², g(x) = x⁴/4 − x³/12 − x²/2 + x/4, so g'(x) = (x + 1)(x − ¼)(x − 1)
    and ∇f = 0 exactly at y = x/2 with x ∈ {−1, ¼, 1}: the global minimum (−1, −½) with
    f* = −5/12, the local minimum (1, ½) with f = −1/12, and the saddle (¼, ⅛) between
    them (g''(¼) < 0). From the default start on the right, gradient descent settles in
    the local minimum; the barrier from there is ≈ 0.114, from the global one ≈ 0.448, so
    gradient noise of the right scale escapes the first and not the second (lecture 04).
    """
    return Surface(
        name="local_minima",
        fn=_local_minima,
        minima=((-1.0, -0.5), (1.0, 0.5)),
        is_global=(True, False),
        saddles=((0.25, 0.125),),
        bounds=((-2.0, 2.0), (-1.75, 1.75)),
        start=(1.9, 1.5),
        lecture="lecture 01, 'Getting stuck in local minima'; lecture 04 (noise)",
    )


SURFACES: dict[str, Callable[..., Surface]] = {
    "lecture02_quadratic": lecture02_quadratic,
    "elongated_bowl": elongated_bowl,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "saddle": saddle,
    "local_minima": local_minima,
}
