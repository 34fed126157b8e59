"""AdEMAMix: Adam with a mixture of a fast and a slow EMA (Pagliardini et al. 2024)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    abs_sq,
    check_like,
    decoupled_decay,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
    zeros_like,
)


class ScaleByAdemamixState(NamedTuple):
    """``count``, ``count_m2``: updates made (always equal; optax keeps both); ``m1``: the
    fast EMA (β1); ``m2``: the slow EMA (β3); ``nu``: ν, the EMA of g² (β2). optax's
    ``contrib.ScaleByAdemamixState``: the same names and fields."""

    count: jax.Array
    count_m2: jax.Array
    m1: optax.Updates
    m2: optax.Updates
    nu: optax.Updates


def alpha_warmup_schedule(alpha: Any, warmup: int):
    """The paper's f_α(t) = min(t·α/T_α, α): α grows linearly from 0 over T_α steps."""

    def schedule(t):
        t = jnp.asarray(t).astype(jnp.result_type(float))
        return jnp.minimum(t * alpha / warmup, alpha)

    return schedule


def b3_warmup_schedule(b3: Any, b_start: Any, warmup: int):
    """The paper's f_β3(t): β3 from β_start to β3 over T_β3 steps, its half-life
    log(0.5)/log β growing linearly in t::

        f_β3(t) = min( exp( log β_start · log β3 / ((1 − t/T)·log β3 + (t/T)·log β_start) ), β3 )
    """

    def schedule(t):
        a = jnp.asarray(t).astype(jnp.result_type(float)) / warmup
        log_start, log_end = jnp.log(b_start), jnp.log(b3)
        value = jnp.exp(log_start * log_end / ((1.0 - a) * log_end + a * log_start))
        return jnp.minimum(value, b3)

    return schedule


def _check_warmup(owner: str, name: str, warmup: Any, value: Any) -> None:
    if warmup is None:
        return
    if callable(value):
        raise ValueError(
            f"{owner}: `{name}_warmup` builds the paper's {name} schedule, but `{name}` is "
            f"already a schedule. Pass a number as `{name}` or drop `{name}_warmup`."
        )
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup <= 0:
        _validation.fail(owner, f"{name}_warmup", warmup, "a positive int (steps)", "")


def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 6.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    alpha_warmup: int | None = None,
    b3_warmup: int | None = None,
    b3_start: float | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdEMAMix's direction (m̂1 + α·m2)/(√ν̂ + ε) (Algorithm 1 without η and λ); see
    ``ademamix``. The default α = 6 is optax's ``scale_by_ademamix``'s (its ``ademamix``
    uses 5)."""
    owner = "ademamix"
    check_like(owner, like, ("optax",))
    _validation.check_unit_interval(owner, "b1", b1, "Pagliardini et al. use b1=0.9.")
    _validation.check_unit_interval(owner, "b2", b2, "Pagliardini et al. use b2=0.999.")
    if not callable(b3):
        _validation.check_unit_interval(owner, "b3", b3, "Pagliardini et al. use b3=0.9999.")
    if not callable(alpha):
        _validation.check_non_negative(owner, "alpha", alpha, "Pagliardini et al. use 4 to 10.")
    _validation.check_non_negative(owner, "eps", eps, "Pagliardini et al. use eps=1e-8.")
    _validation.check_non_negative(owner, "eps_root", eps_root, "Use 0 unless differentiating.")
    _check_warmup(owner, "alpha", alpha_warmup, alpha)
    _check_warmup(owner, "b3", b3_warmup, b3)
    b_start = b1 if b3_start is None else b3_start
    if b3_warmup is not None and _validation.is_concrete_number(b_start):
        if not 0.0 < b_start < 1.0 or (_validation.is_concrete_number(b3) and b3 == 0):
            _validation.fail(
                owner,
                "b3_start",
                b_start,
                "in (0, 1) (and b3 > 0) for the β3 warm-up, which takes logarithms",
                "The paper starts from b1; pass e.g. b3_start=0.9.",
            )

    def coefficient(value, warmup, make, count):
        if warmup is not None:
            # The paper's schedulers read its t (1 for the first update); optax reads the
            # same functions at count_m2 = t − 1 (the authors' JAX code does too).
            return make(warmup)(count if like == "optax" else next_count(count))
        return value(count) if callable(value) else value

    def init_fn(params):
        return ScaleByAdemamixState(
            count=init_count(),
            count_m2=init_count(),
            m1=moment_zeros(params, mu_dtype),
            m2=moment_zeros(params, mu_dtype),
            nu=zeros_like(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        c_alpha = coefficient(
            alpha, alpha_warmup, lambda w: alpha_warmup_schedule(alpha, w), state.count_m2
        )
        c_b3 = coefficient(
            b3, b3_warmup, lambda w: b3_warmup_schedule(b3, b_start, w), state.count_m2
        )
        t = next_count(state.count)
        correction1 = 1.0 - jnp.asarray(b1) ** t
        correction2 = 1.0 - jnp.asarray(b2) ** t

        def leaf(g, m1, m2, nu):
            dtype = jnp.result_type(g, m1)
            gm = g.astype(dtype)
            m1 = scalar_like(1.0 - b1, gm) * gm + scalar_like(b1, gm) * m1.astype(dtype)
            m2 = scalar_like(1.0 - c_b3, gm) * gm + scalar_like(c_b3, gm) * m2.astype(dtype)
            sq = abs_sq(g).astype(nu.dtype)
            nu = scalar_like(1.0 - b2, nu) * sq + scalar_like(b2, nu) * nu
            m1_hat = m1 / scalar_like(correction1, m1)
            nu_hat = nu / scalar_like(correction2, nu)
            denom = jnp.sqrt(nu_hat + scalar_like(eps_root, nu)) + scalar_like(eps, nu)
            direction = (m1_hat + scalar_like(c_alpha, m2) * m2) / denom.astype(dtype)
            return direction.astype(g.dtype), m1, m2, nu

        out = jax.tree.map(leaf, updates, state.m1, state.m2, state.nu)
        direction, m1, m2, nu = unzip(updates, out, 4)
        m1 = jax.tree.map(lambda new, old: new.astype(old.dtype), m1, state.m1)
        m2 = jax.tree.map(lambda new, old: new.astype(old.dtype), m2, state.m2)
        new_state = ScaleByAdemamixState(
            count=t, count_m2=next_count(state.count_m2), m1=m1, m2=m2, nu=nu
        )
        return direction, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ademamix(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: ScalarOrSchedule = 0.9999,
    alpha: ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
    *,
    alpha_warmup: int | None = None,
    b3_warmup: int | None = None,
    b3_start: float | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdEMAMix: Pagliardini et al.'s Algorithm 1, with its α and β3 warm-up schedulers.

    ::

        m1_0 ← 0, m2_0 ← 0, ν_0 ← 0
        for t = 1, 2, …
            β3(t) ← f_β3(t, β3, β_start, T_β3),  α(t) ← f_α(t, α, T_α)    (optional)
            g_t  ← ∇_θ f(θ_{t−1})
            m1_t ← β1·m1_{t−1} + (1 − β1)·g_t            (fast EMA)
            m2_t ← β3(t)·m2_{t−1} + (1 − β3(t))·g_t      (slow EMA, no bias correction)
            ν_t  ← β2·ν_{t−1} + (1 − β2)·g_t²
            m̂1_t ← m1_t/(1 − β1^t),  ν̂_t ← ν_t/(1 − β2^t)
            θ_t  ← θ_{t−1} − η·( (m̂1_t + α(t)·m2_t)/(√ν̂_t + ε) + λ·θ_{t−1} )

    with the schedulers f_α(t) = min(t·α/T_α, α) and
    f_β3(t) = min(exp(log β_start·log β3 / ((1 − t/T_β3)·log β3 + (t/T_β3)·log β_start)), β3),
    which grows β3's half-life linearly from β_start's to β3's (``alpha_warmup_schedule``,
    ``b3_warmup_schedule`` in this module).

    Symbols → arguments: η = ``learning_rate`` (a float or a schedule of the number of
    updates made), β1, β2, β3 = ``b1``, ``b2``, ``b3``, α = ``alpha``, ε = ``eps``,
    λ = ``weight_decay`` (decoupled, times the full η as in the paper and optax), T_α =
    ``alpha_warmup``, T_β3 = ``b3_warmup`` (None: no warm-up, constant α and β3; the paper
    sets both to the run's length T), β_start = ``b3_start`` (None: β1, as the paper). The
    defaults are optax's; they are the paper's β's, and its α lies in the paper's range
    4–10 (8 for its language models). ``b3`` and ``alpha`` may also be schedules of the
    number of updates made (0 for the first), as in optax; ``eps_root`` (inside the root)
    and ``mu_dtype`` (m1, m2's dtype) are optax's; ``mask`` selects the decayed leaves.

    Versus the libraries: ``optax.contrib.ademamix`` computes the same formula but has no
    warm-up arguments: one passes the schedulers as ``alpha=``/``b3=``, which optax reads
    at count_m2 = t − 1, so its warm-up runs one step behind the paper's
    (α(t) = f_α(t − 1): its first update uses α = 0 and β3 = β_start exactly).
    ``like="optax"`` reads the warm-ups at t − 1 likewise; without warm-ups both forms are
    the same. optax's ``ScaleByAdemamixState`` keeps ν in ``mu_dtype`` too (here in the
    params' dtype). torch.optim has no AdEMAMix: ``like="torch"`` raises.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      b3: β3 in [0, 1), or a schedule.
      alpha: α ≥ 0, or a schedule.
      eps: ε ≥ 0.
      eps_root: added to ν̂ inside the square root, ≥ 0.
      mu_dtype: the dtype of m1 and m2 (None: the params').
      weight_decay: λ ≥ 0, or a schedule.
      mask: which leaves decay; None decays all.
      alpha_warmup: T_α, a positive int, or None.
      b3_warmup: T_β3, a positive int, or None.
      b3_start: β_start in (0, 1) for the β3 warm-up (None: ``b1``).
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.ademamix(0.1, b3=0.9, alpha=5.0, alpha_warmup=10)
      >>> updates, _ = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
      >>> # step 1: m̂1/√ν̂ = 1, α(1) = 5/10, m2 = (1 − β3)·g = 0.3: −η(1 + 0.5·0.3/3)
      >>> print(np.round(np.asarray(updates, float), 4))
      [-0.105]

    References:
      Pagliardini, Ablin & Grangier, "The AdEMAMix optimizer: Better, faster, older",
      ICLR 2025 (arXiv:2409.03137).
    """
    check_like("ademamix", like, ("optax",))
    direction = scale_by_ademamix(
        b1,
        b2,
        b3,
        alpha,
        eps,
        eps_root,
        mu_dtype,
        alpha_warmup=alpha_warmup,
        b3_warmup=b3_warmup,
        b3_start=b3_start,
        like=like,
    )
    return optax.chain(direction, decoupled_decay("ademamix", learning_rate, weight_decay, mask))
