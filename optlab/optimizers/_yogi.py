"""Yogi: Adam with an additive, sign-controlled second moment (Zaheer et al. 2018, Alg. 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
)

# v_0 of each form when ``initial_accumulator_value`` is not given.
INITIAL_ACCUMULATOR = {None: 0.0, "optax": 1e-6}


def check_yogi_hyperparams(b1, b2, eps, eps_root, initial_accumulator_value) -> None:
    _validation.check_unit_interval("yogi", "b1", b1, "Zaheer et al. use b1=0.9.")
    _validation.check_unit_interval("yogi", "b2", b2, "Zaheer et al. use b2=0.999.")
    _validation.check_non_negative("yogi", "eps", eps, "Zaheer et al. use eps=1e-3.")
    _validation.check_non_negative("yogi", "eps_root", eps_root, "Use 0 unless differentiating.")
    _validation.check_non_negative(
        "yogi", "initial_accumulator_value", initial_accumulator_value, "optax uses 1e-6."
    )


def _full_like(params, value):
    return jax.tree.map(lambda p: jnp.full(p.shape, value, p.dtype), params)


def scale_by_yogi(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    eps_root: float = 0.0,
    initial_accumulator_value: float | None = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Yogi's direction m_t/(√v_t + ε) (paper) or optax's bias-corrected one; see ``yogi``.

    optax's name, arguments (in optax's order) and state (``ScaleByAdamState``);
    ``initial_accumulator_value`` None takes the form's default: v_0 = 0 for the paper,
    m_0 = v_0 = 1e-6 for optax. ``eps_root`` is added to v inside the root (optax's; 0 is
    the paper).
    """
    check_like("yogi", like, ("optax",))
    if initial_accumulator_value is None:
        initial_accumulator_value = INITIAL_ACCUMULATOR[like]
    check_yogi_hyperparams(b1, b2, eps, eps_root, initial_accumulator_value)
    corrected = like == "optax"

    def init_fn(params):
        v0 = _full_like(params, initial_accumulator_value)
        m0 = v0 if corrected else jax.tree.map(jnp.zeros_like, v0)  # optax starts m at v_0 too
        return ScaleByAdamState(count=init_count(), mu=m0, nu=v0)

    def leaf(g, m, v, t):
        m = scalar_like(b1, m) * m + scalar_like(1.0 - b1, m) * g
        sq = abs_sq(g)
        v_real = v.real
        v_new = v_real - scalar_like(1.0 - b2, sq) * jnp.sign(v_real - sq) * sq
        v = v_new.astype(v.dtype)
        if corrected:
            m_hat = m / scalar_like(1.0 - jnp.asarray(b1) ** t, m)
            v_hat = v_new / scalar_like(1.0 - jnp.asarray(b2) ** t, v_new)
        else:
            m_hat, v_hat = m, v_new
        denom = jnp.sqrt(v_hat + scalar_like(eps_root, v_hat)) + scalar_like(eps, v_hat)
        return (m_hat / denom.astype(m_hat.dtype)).astype(g.dtype), m, v

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        out = jax.tree.map(lambda g, m, v: leaf(g, m, v, t), updates, state.mu, state.nu)
        direction, mu, nu = unzip(updates, out, 3)
        return direction, ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def yogi(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-3,
    *,
    initial_accumulator_value: float | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Yogi: Zaheer et al.'s Algorithm 2.

    ::

        m_0 ← 0,  v_0 ← 0
        for t = 1, 2, …
            g_t ← ∇f(x_t)
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            v_t ← v_{t−1} − (1 − β2)·sign(v_{t−1} − g_t²)·g_t²
            x_{t+1} ← x_t − η_t·m_t / (√v_t + ε)

    Adam's v_t = v_{t−1} − (1 − β2)·(v_{t−1} − g_t²) moves v by a multiple of its distance
    to g², so a run of small gradients shrinks v (and grows the step) geometrically; Yogi
    moves it by (1 − β2)·g_t² only, up or down, so the effective rate grows slowly. v
    stays ≥ 0 (from v_0 ≥ 0). The box has no bias correction and ε outside the root.

    Symbols → arguments: η_t = ``learning_rate`` (a float, or a schedule of the number of
    updates made: 0 for the first), β1 = ``b1``, β2 = ``b2``, ε = ``eps``; v_0 =
    ``initial_accumulator_value`` (None: the form's default, 0 for the paper's box, 1e-6 for
    optax). The defaults β1 = 0.9, β2 = 0.999, ε = 1e-3 are the paper's (and optax's). The
    paper warns that v_0 matters and proposes v_0 = g² at the initial point averaged over a
    large minibatch; ``initial_accumulator_value`` is one number for every coordinate (for a
    per-coordinate v_0, replace ``nu`` in the ``ScaleByAdamState`` that ``init`` returns).

    Versus the libraries: ``optax.yogi`` (same names and defaults; optax's
    ``ScaleByAdamState``) differs in the start and adds Adam's bias corrections
    (``like="optax"``, with ``optax.scale_by_yogi``'s ``eps_root`` = 0)::

        m_0 = v_0 = 1e-6          (optax starts m at the accumulator value too)
        m_t, v_t as above
        m̂_t = m_t / (1 − β1^t),   v̂_t = v_t / (1 − β2^t)
        u_t = −η_t·m̂_t / (√(v̂_t + eps_root) + ε)

    so its first step is about −η·sign(g) where the paper's is about
    −η·(1 − β1)/√(1 − β2)·sign(g) ≈ −3.16·η·sign(g) (for |g| ≫ ε); the corrections fade
    as β^t → 0 (thousands of steps for β2 = 0.999). torch.optim has no Yogi: ``like="torch"``
    raises. Complex parameters: g² is |g|² (optax's convention) in both forms; v is real
    (stored in the parameters' dtype).

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      initial_accumulator_value: v_0 ≥ 0 (optax: m_0 too), or None for the form's default.
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._yogi import yogi
      >>> tx = yogi(0.1, eps=0.0)
      >>> updates, _ = tx.update(jnp.array([3.0, -2.0]), tx.init(jnp.zeros(2)))
      >>> # v_1 = 0.001·g², m_1 = 0.1·g: the step is −η·0.1/√0.001·sign(g)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.3162  0.3162]

    References:
      Zaheer, Reddi, Sachan, Kale & Kumar, "Adaptive methods for nonconvex optimization",
      NeurIPS 2018.
    """
    check_like("yogi", like, ("optax",))
    _validation.check_learning_rate("yogi", learning_rate)
    direction = scale_by_yogi(
        b1, b2, eps, initial_accumulator_value=initial_accumulator_value, like=like
    )
    return with_learning_rate(direction, learning_rate)
