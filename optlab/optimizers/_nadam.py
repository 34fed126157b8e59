"""Nadam: Adam with Nesterov momentum (Dozat 2016, as PyTorch's NAdam computes it)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import (
    ScaleByAdamState,
    check_adam_hyperparams,
    ema_moments,
    per_real_coordinate,
)
from optlab.optimizers._base import (
    ScalarOrSchedule,
    check_like,
    init_count,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
    zeros_like,
)

LIKE = ("optax", "torch")
MOMENTUM_DECAY = 0.004  # ψ: Dozat's and torch.optim.NAdam's


class NadamState(NamedTuple):
    """``count``: t − 1; ``mu_product``: Π_{i<t} μ_i; ``m``, ``v``: Adam's biased moments."""

    count: jax.Array
    mu_product: jax.Array
    m: optax.Params
    v: optax.Params


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    momentum_decay: float = 0.004,
    momentum_schedule: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Nadam's direction (see ``nadam``), without the step size."""
    check_adam_hyperparams("nadam", b1, b2, eps)
    _validation.check_non_negative("nadam", "momentum_decay", momentum_decay, "PyTorch uses 0.004.")

    def mu_at(t):
        if not momentum_schedule:
            return jnp.asarray(b1, jnp.result_type(float))
        return b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))

    def init_fn(params):
        return NadamState(
            count=init_count(),
            mu_product=jnp.ones([], jnp.result_type(float)),
            m=zeros_like(params),
            v=zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        tf = t.astype(state.mu_product.dtype)
        mu_t, mu_next = mu_at(tf), mu_at(tf + 1.0)
        mu_product = (state.mu_product * mu_t).astype(state.mu_product.dtype)
        mu_product_next = mu_product * mu_next
        m, v = ema_moments(b1, b2, state.m, state.v, updates)
        correction2 = 1.0 - jnp.asarray(b2) ** t
        grad_coeff = (1.0 - mu_t) / (1.0 - mu_product)
        momentum_coeff = mu_next / (1.0 - mu_product_next)

        def direction(g, m, v):
            denom = jnp.sqrt(v / scalar_like(correction2, v)) + scalar_like(eps, v)
            return (scalar_like(grad_coeff, g) * g + scalar_like(momentum_coeff, m) * m) / denom

        new_state = NadamState(count=t, mu_product=mu_product, m=m, v=v)
        return jax.tree.map(direction, updates, m, v), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_nadam_torch(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *, momentum_decay: float = 0.004
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.NAdam``'s direction: the default's, on the real view of complex
    parameters (Re and Im each with their own v); the state is ``NadamState``."""
    check_adam_hyperparams("nadam", b1, b2, eps)
    _validation.check_non_negative("nadam", "momentum_decay", momentum_decay, "PyTorch uses 0.004.")

    def mu_at(t):
        return b1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))

    def init_fn(params):
        return NadamState(
            count=init_count(),
            mu_product=jnp.ones([], jnp.result_type(float)),
            m=zeros_like(params),
            v=zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        tf = t.astype(state.mu_product.dtype)
        mu_t, mu_next = mu_at(tf), mu_at(tf + 1.0)
        mu_product = (state.mu_product * mu_t).astype(state.mu_product.dtype)
        mu_product_next = mu_product * mu_next
        correction2 = 1.0 - jnp.asarray(b2) ** t
        grad_coeff = (1.0 - mu_t) / (1.0 - mu_product)
        momentum_coeff = mu_next / (1.0 - mu_product_next)

        def leaf(g, m, v):
            m = m + scalar_like(1.0 - b1, m) * (g - m)  # exp_avg.lerp_(grad, 1 − β1)
            v = scalar_like(b2, v) * v + scalar_like(1.0 - b2, v) * (g * g)
            denom = jnp.sqrt(v / scalar_like(correction2, v)) + scalar_like(eps, v)
            grad_term = scalar_like(grad_coeff, g) * g / denom
            step = grad_term + scalar_like(momentum_coeff, m) * m / denom
            return step, m, v

        out = jax.tree.map(
            lambda g, m, v: per_real_coordinate(leaf, g, m, v), updates, state.m, state.v
        )
        direction, m, v = unzip(updates, out, 3)
        return direction, NadamState(count=t, mu_product=mu_product, m=m, v=v)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_nadam_optax(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """``optax.nadam``'s direction (``optax.scale_by_adam(nesterov=True)``, ``eps_root=0``),
    term by term, with optax's ``ScaleByAdamState``."""
    check_adam_hyperparams("nadam", b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(count=init_count(), mu=zeros_like(params), nu=zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        t = next_count(state.count)
        mu, nu = ema_moments(b1, b2, state.mu, state.nu, updates)
        correction_next = 1.0 - jnp.asarray(b1) ** next_count(t)  # 1 − β1^{t+1}
        correction1 = 1.0 - jnp.asarray(b1) ** t
        correction2 = 1.0 - jnp.asarray(b2) ** t

        def direction(g, m, v):
            m_hat = scalar_like(b1, m) * (m / scalar_like(correction_next, m)) + scalar_like(
                1.0 - b1, g
            ) * (g / scalar_like(correction1, g))
            return m_hat / (jnp.sqrt(v / scalar_like(correction2, v)) + scalar_like(eps, v))

        return jax.tree.map(direction, updates, mu, nu), ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    momentum_decay: float | None = None,
    momentum_schedule: bool | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Nadam: Adam whose first moment takes a Nesterov look-ahead step.

    Lecture 02 names Nadam but leaves its section empty, so Dozat (2016) as
    ``torch.optim.NAdam`` computes it is the specification::

        μ_t   = β1·(1 − ½·0.96^{t·ψ})                 momentum schedule
        m_t   = β1·m_{t−1} + (1 − β1)·g_t
        v_t   = β2·v_{t−1} + (1 − β2)·g_t²
        v̂_t   = v_t / (1 − β2^t)
        θ_t   = θ_{t−1} − α·[ (1 − μ_t)/(1 − Π_{i≤t} μ_i) · g_t
                             + μ_{t+1}/(1 − Π_{i≤t+1} μ_i) · m_t ] / (√v̂_t + ε)

    Symbols → arguments: α = ``learning_rate``, β1 = ``b1``, β2 = ``b2``, ε = ``eps``,
    ψ = ``momentum_decay`` (None, the default: 0.004). ``momentum_schedule`` (None, the
    default: True) ``=False`` holds μ_t = β1 for every t, which is exactly ``optax.nadam``
    (Π μ_i = β1^t). Note that ``momentum_decay=0`` is *not* that form: it gives
    μ_t = β1/2.

    Versus the libraries: Dozat's paper also uses μ_t inside the first-moment average;
    PyTorch (and this) use β1 there. ε is outside the root, as in Adam, in all forms.

    * ``torch.optim.NAdam(lr, betas=(b1, b2), eps, momentum_decay=ψ)`` (``weight_decay=0``)
      is the default form, with the same defaults (ψ = 0.004); torch computes
      m_t = lerp(m_{t−1}, g_t, 1 − β1) and adds the g- and m-terms to θ one after the
      other (the same numbers to rounding). For complex parameters torch works on the
      real view (Re and Im each with their own v_t, from (Re g)² and (Im g)²); the
      default uses |g|². ``like="torch"`` follows torch there.
    * ``optax.nadam`` (``= optax.adam(nesterov=True)``, ``eps_root=0``) has no
      μ-schedule: it is Adam with a Nesterov term,
      m̄_t = β1·m_t/(1 − β1^{t+1}) + (1 − β1)·g_t/(1 − β1^t),
      θ_t = θ_{t−1} − α_t·m̄_t/(√v̂_t + ε), which is the μ_t = β1 case of the box above
      (``momentum_schedule=False``). ``like="optax"`` computes optax's expression with
      optax's ``ScaleByAdamState`` (count, mu, nu); passing ``momentum_schedule=True`` or
      any ``momentum_decay`` with it raises, as optax takes neither.

    Args:
      learning_rate: α ≥ 0, or a schedule (required, as in optax; PyTorch defaults to 2e-3).
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0.
      momentum_decay: ψ ≥ 0; None (default) for PyTorch's 0.004.
      momentum_schedule: use the μ_t schedule (None, the default: yes) or a constant
        μ = β1 (``False``, optax's numbers).
      like: None (Dozat as PyTorch computes it), ``"optax"`` or ``"torch"`` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.nadam(0.1, momentum_schedule=False)
      >>> updates, _ = tx.update(jnp.array([4.0]), tx.init(jnp.zeros(1)))
      >>> # −α[(1−β1)/(1−β1) + β1(1−β1)/(1−β1²)]·sign(g)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.1474]

    References:
      Dozat, "Incorporating Nesterov momentum into Adam", ICLR workshop 2016.
    """
    check_like("nadam", like, LIKE)
    _validation.check_learning_rate("nadam", learning_rate)
    if like == "optax":
        for name, value, bad in (
            ("momentum_schedule", momentum_schedule, momentum_schedule is True),
            ("momentum_decay", momentum_decay, momentum_decay is not None),
        ):
            if bad:
                raise ValueError(
                    f"nadam: {name}={value!r} conflicts with like='optax': optax.nadam has no "
                    "momentum schedule (it is Adam with a Nesterov term, μ_t = β1). Drop one."
                )
        return with_learning_rate(scale_by_nadam_optax(b1, b2, eps), learning_rate)
    momentum_decay = MOMENTUM_DECAY if momentum_decay is None else momentum_decay
    if like == "torch":
        if momentum_schedule is False:
            raise ValueError(
                "nadam: momentum_schedule=False conflicts with like='torch': torch.optim.NAdam "
                "always uses μ_t = β1·(1 − ½·0.96^{t·ψ}). Drop one (optax.nadam is "
                "like='optax')."
            )
        direction = scale_by_nadam_torch(b1, b2, eps, momentum_decay=momentum_decay)
        return with_learning_rate(direction, learning_rate)
    momentum_schedule = True if momentum_schedule is None else momentum_schedule
    return with_learning_rate(
        scale_by_nadam(
            b1, b2, eps, momentum_decay=momentum_decay, momentum_schedule=momentum_schedule
        ),
        learning_rate,
    )
