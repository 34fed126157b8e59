"""AdaGrad (lectures 01, 02, 03)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import per_real_coordinate
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    learning_rate_at,
    scalar_like,
    unzip,
    with_learning_rate,
)

LIKE = ("optax", "torch")
# (ε, s_0, ε inside the root) when the caller passes none: the lecture's and
# torch.optim.Adagrad's 1e-10 and 0 (torch: ε outside the root), optax.adagrad's 1e-7, 0.1.
DEFAULTS = {None: (1e-10, 0.0, True), "torch": (1e-10, 0.0, False), "optax": (1e-7, 0.1, True)}


class AdagradState(NamedTuple):
    """``s``: the running sum of squared gradients, s = s_0 + Σ_τ g_τ ⊙ g_τ."""

    s: optax.Params


def _full(params, value):
    return jax.tree.map(lambda p: jnp.full(p.shape, value, p.dtype), params)


def scale_by_adagrad(
    eps: float = 1e-10, *, initial_accumulator: float = 0.0, eps_in_sqrt: bool = True
) -> optax.GradientTransformationExtraArgs:
    """AdaGrad direction ``g ⊘ √(s + ε)`` (or ``g ⊘ (√s + ε)``) after ``s ← s + g ⊙ g``."""
    _validation.check_non_negative("adagrad", "eps", eps)
    _validation.check_non_negative("adagrad", "initial_accumulator", initial_accumulator)

    def init_fn(params):
        return AdagradState(
            s=jax.tree.map(lambda p: jnp.full(p.shape, initial_accumulator, p.dtype), params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        s = jax.tree.map(lambda s, g: s + abs_sq(g).astype(s.dtype), state.s, updates)

        def direction(g, s):
            e = scalar_like(eps, s)
            denom = jnp.sqrt(s + e) if eps_in_sqrt else jnp.sqrt(s) + e
            return (g / denom).astype(g.dtype)

        return jax.tree.map(direction, updates, s), AdagradState(s=s)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adagrad_optax(
    eps: float = 1e-7, *, initial_accumulator: float = 0.1
) -> optax.GradientTransformationExtraArgs:
    """``optax.scale_by_rss``: ``s ← s + |g|²``, then ``g·rsqrt(s + ε)`` where s > 0, else 0."""
    _validation.check_non_negative("adagrad", "eps", eps)
    _validation.check_non_negative("adagrad", "initial_accumulator", initial_accumulator)

    def init_fn(params):
        return AdagradState(s=_full(params, initial_accumulator))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        s = jax.tree.map(lambda s, g: s + abs_sq(g).astype(s.dtype), state.s, updates)

        def direction(g, s):
            s = s.real
            scale = jnp.where(s > 0, jax.lax.rsqrt(s + scalar_like(eps, s)), 0.0)
            return (scale.astype(g.dtype) * g).astype(g.dtype)

        return jax.tree.map(direction, updates, s), AdagradState(s=s)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adagrad_torch(
    eps: float = 1e-10, *, initial_accumulator: float = 0.0
) -> optax.GradientTransformationExtraArgs:
    """``torch.optim.Adagrad``'s direction ``g ⊘ (√s + ε)`` after ``s ← s + g ⊙ g``, on the
    real view of complex parameters (Re and Im each accumulate their own square)."""
    _validation.check_non_negative("adagrad", "eps", eps)
    _validation.check_non_negative("adagrad", "initial_accumulator", initial_accumulator)

    def init_fn(params):  # torch's state_sum = full_like(param, value), complex too
        return AdagradState(s=_full(params, initial_accumulator))

    def leaf(g, s):
        s = s + g * g
        return g / (jnp.sqrt(s) + scalar_like(eps, s)), s

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        out = jax.tree.map(lambda g, s: per_real_coordinate(leaf, g, s), updates, state.s)
        direction, s = unzip(updates, out, 2)
        return direction, AdagradState(s=s)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _conflict(name: str, value, like: str, why: str) -> None:
    raise ValueError(f"adagrad: {name}={value!r} conflicts with like={like!r}: {why} Drop one.")


def adagrad(
    learning_rate: ScalarOrSchedule,
    eps: float | None = None,
    *,
    initial_accumulator: float | None = None,
    eps_in_sqrt: bool | None = None,
    lr_decay: float | None = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad: per-coordinate step sizes shrinking with the gradients seen so far.

    Lecture 02 (and lecture 03, after Duchi et al.)::

        s ← s + ∇J(w) ⊗ ∇J(w)
        w ← w − α·∇J(w) ⊘ √(s + ε)

    Lecture 01 writes the same without ε: Δθ_j = −η·g_j / √(Σ_{τ=1}^{t} g²_{τ,j}).

    Symbols → arguments: α = η = ``learning_rate``; ε = ``eps`` (lecture 02's "10e-10"
    means 10⁻¹⁰, the default here); the initial s is ``initial_accumulator`` (default 0).
    ``eps_in_sqrt=False`` gives g ⊘ (√s + ε) (PyTorch's placement). The defaults are
    None because the libraries' differ: not passed, they resolve to the lecture's
    ε = 1e-10, s_0 = 0, ε inside the root, or to the library's with ``like``.

    Versus the libraries:

    * ``torch.optim.Adagrad(lr, lr_decay, weight_decay=0, initial_accumulator_value,
      eps)``: s_t = s_{t−1} + g_t ⊙ g_t, θ_t = θ_{t−1} − α_t/(1 + (t − 1)·lr_decay) ·
      g_t ⊘ (√s_t + ε): ε *outside* the root; defaults ε = 1e-10, s_0 = 0, lr_decay = 0.
      ``like="torch"`` is that (``lr_decay`` divides the rate, schedule or not, by
      1 + t·lr_decay with t the updates made before); ``eps_in_sqrt=True`` with it
      raises. For complex parameters torch works on the real view: Re and Im each have
      their own s (real part Σ(Re g)², imaginary part Σ(Im g)²) and are divided by
      their own √s + ε; the lecture's form and optax use |g|² for both.
    * ``optax.adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7)``
      (``optax.scale_by_rss``): s_t = s_{t−1} + |g_t|², u_t = −α_t·g_t·rsqrt(s_t + ε)
      where s_t > 0 and 0 where s_t = 0: ε *inside* the root like the lecture, but with
      defaults ε = 1e-7 and s_0 = 0.1 (``like="optax"`` takes them when not passed);
      ``eps_in_sqrt=False`` with it raises.

    ``lr_decay`` is torch's only: passing it (other than 0) without ``like="torch"``
    raises; use a schedule instead. The state is ``AdagradState(s)`` in every form.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      eps: ε ≥ 0; None (default): 1e-10 (optax's 1e-7 with ``like="optax"``).
      initial_accumulator: the starting value of every entry of s, ≥ 0; None (default):
        0 (optax's 0.1 with ``like="optax"``).
      eps_in_sqrt: ``True`` for √(s + ε) (lecture, optax); ``False`` for √s + ε
        (PyTorch); None (default): the form's own placement.
      lr_decay: torch's ``lr_decay`` ≥ 0 (``like="torch"`` only); None: 0.
      like: None (the lecture), ``"optax"`` or ``"torch"`` (keyword-only).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adagrad(1.0)
      >>> updates, _ = tx.update(jnp.array([3.0, -0.5]), tx.init(jnp.zeros(2)))
      >>> # the first step is −α·sign(g), whatever |g|
      >>> print(np.round(np.asarray(updates, float), 4))
      [-1.  1.]

    References:
      Duchi, Hazan & Singer, "Adaptive subgradient methods for online learning and
      stochastic optimization", JMLR 12, 2011.
    """
    check_like("adagrad", like, LIKE)
    _validation.check_learning_rate("adagrad", learning_rate)
    default_eps, default_s0, default_in_sqrt = DEFAULTS[like]
    eps = default_eps if eps is None else eps
    initial_accumulator = default_s0 if initial_accumulator is None else initial_accumulator
    if like == "torch" and eps_in_sqrt:
        _conflict("eps_in_sqrt", eps_in_sqrt, like, "torch.optim.Adagrad adds ε outside the root.")
    if like == "optax" and eps_in_sqrt is False:
        _conflict("eps_in_sqrt", eps_in_sqrt, like, "optax.adagrad adds ε inside the root.")
    eps_in_sqrt = default_in_sqrt if eps_in_sqrt is None else eps_in_sqrt
    decays = lr_decay is not None and not (
        _validation.is_concrete_number(lr_decay) and lr_decay == 0
    )
    if lr_decay is not None:
        _validation.check_non_negative("adagrad", "lr_decay", lr_decay, "torch's default is 0.")
    if decays and like != "torch":
        raise ValueError(
            f"adagrad: lr_decay={lr_decay!r} needs like='torch' (torch.optim.Adagrad's "
            f"option), got like={like!r}. Use a learning-rate schedule instead."
        )
    if like == "optax":
        direction = scale_by_adagrad_optax(eps, initial_accumulator=initial_accumulator)
        return with_learning_rate(direction, learning_rate)
    if like == "torch":
        rate = learning_rate
        if decays:

            def rate(count):  # torch: clr = lr / (1 + (step − 1)·lr_decay), step = count + 1
                return learning_rate_at(learning_rate, count) / (1.0 + count * lr_decay)

        direction = scale_by_adagrad_torch(eps, initial_accumulator=initial_accumulator)
        return with_learning_rate(direction, rate)
    return with_learning_rate(
        scale_by_adagrad(eps, initial_accumulator=initial_accumulator, eps_in_sqrt=eps_in_sqrt),
        learning_rate,
    )
