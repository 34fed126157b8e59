"""AdaGrad (lectures 01, 02, 03)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import ScalarOrSchedule, abs_sq, scalar_like, with_learning_rate


class AdagradState(NamedTuple):
    """``s``: the running sum of squared gradients, s = s_0 + Σ_τ g_τ ⊙ g_τ."""

    s: optax.Params


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


def adagrad(
    learning_rate: ScalarOrSchedule,
    eps: float = 1e-10,
    *,
    initial_accumulator: float = 0.0,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad: per-coordinate step sizes shrinking with the gradients seen so far.

    Lecture 02 (and lecture 03, after Duchi et al.)::

        s ← s + ∇J(w) ⊗ ∇J(w)
        w ← w − α·∇J(w) ⊘ √(s + ε)

    Lecture 01 writes the same without ε: Δθ_j = −η·g_j / √(Σ_{τ=1}^{t} g²_{τ,j}).

    Symbols → arguments: α = η = ``learning_rate``; ε = ``eps`` (lecture 02's "10e-10"
    means 10⁻¹⁰, the default here); the initial s is ``initial_accumulator``.

    Versus the libraries: ``torch.optim.Adagrad`` puts ε outside the root,
    ``g/(√s + ε)``: set ``eps_in_sqrt=False`` (its defaults are eps=1e-10, initial 0, and
    no ``lr_decay``). ``optax.adagrad`` keeps ε inside the root like the lecture, but its
    defaults differ (``initial_accumulator_value=0.1``, ``eps=1e-7``). For complex
    gradients g ⊗ g is |g|² (optax's convention: pass conjugated gradients).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      eps: ε ≥ 0.
      initial_accumulator: the starting value of every entry of s, ≥ 0.
      eps_in_sqrt: ``True`` for √(s + ε) (lecture, optax); ``False`` for √s + ε (PyTorch).

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
    _validation.check_learning_rate("adagrad", learning_rate)
    return with_learning_rate(
        scale_by_adagrad(eps, initial_accumulator=initial_accumulator, eps_in_sqrt=eps_in_sqrt),
        learning_rate,
    )
