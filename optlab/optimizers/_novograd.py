"""NovoGrad: layer-wise normalized momentum (Ginsburg et al. 2019, Algorithm 1)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    is_zero,
    learning_rate_at,
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
    with_learning_rate,
)


class ScaleByNovogradState(NamedTuple):
    """optax's ``ScaleByNovogradState`` (the same names, fields and dtypes).

    ``count``: updates made; ``mu``: m, one array like each leaf (in ``mu_dtype`` if
    given); ``nu``: v, one scalar per leaf (a layer), in the leaf's dtype (for complex
    leaves a complex number with zero imaginary part, as in optax).
    """

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates


def check_novograd_hyperparams(b1, b2, eps, eps_root, weight_decay) -> None:
    owner = "novograd"
    _validation.check_unit_interval(owner, "b1", b1, "Ginsburg et al. use b1=0.9 or 0.95.")
    _validation.check_unit_interval(owner, "b2", b2, "Ginsburg et al. use b2=0.25 to 0.98.")
    _validation.check_non_negative(owner, "eps", eps, "Use e.g. 1e-6.")
    _validation.check_non_negative(owner, "eps_root", eps_root, "Use 0.0 unless meta-learning.")
    if not callable(weight_decay):
        _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 1e-3.")


def scale_by_novograd(
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mu_dtype: Any = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """NovoGrad's direction m_t (Algorithm 1 without the step λ_t); see ``novograd``.

    The defaults are optax's ``scale_by_novograd``'s, whose ε = 1e-8 differs from
    ``optax.novograd``'s 1e-6. ``update`` needs ``params`` unless ``weight_decay`` is the
    constant 0.
    """
    check_like("novograd", like, ("optax",))
    check_novograd_hyperparams(b1, b2, eps, eps_root, weight_decay)

    def init_fn(params):
        return ScaleByNovogradState(
            count=init_count(),
            mu=moment_zeros(params, mu_dtype),
            nu=jax.tree.map(lambda p: jnp.zeros([], p.dtype), params),
        )

    def paper_leaf(g, w, m, v, first, d):
        dtype = jnp.result_type(g, m)
        sq = jnp.sum(abs_sq(g))  # ‖g^l_t‖², real
        v_prev = v.real.astype(sq.dtype)
        v_new = jnp.where(first, sq, scalar_like(b2, sq) * v_prev + scalar_like(1.0 - b2, sq) * sq)
        root = jnp.sqrt(v_new + scalar_like(eps_root, sq))
        # t = 1: g_1/√v_1 (no ε in the paper's initialization; a zero g_1 gives 0, not 0/0)
        safe_root = jnp.where(root > 0, root, jnp.ones_like(root))
        first_normed = jnp.where(root > 0, g / safe_root.astype(g.dtype), jnp.zeros_like(g))
        later_normed = g / (root + scalar_like(eps, root)).astype(g.dtype)
        normed = jnp.where(first, first_normed, later_normed).astype(dtype)
        if d is not None:
            normed = normed + scalar_like(d, normed) * w.astype(dtype)
        m_new = jnp.where(first, normed, scalar_like(b1, normed) * m.astype(dtype) + normed)
        return m_new.astype(m.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype)

    def optax_leaf(g, w, m, v, first, d):
        # optax.scale_by_novograd, term by term: the first step is the general m with m_0
        # dropped, so ε is in it; v_1 = ‖g‖² = jnp.linalg.norm(g)**2.
        sq = jnp.linalg.norm(g) ** 2
        v_new = jnp.where(
            first, sq.astype(v.dtype), (1 - b2) * sq + b2 * v.astype(jnp.result_type(sq, v))
        ).astype(v.dtype)
        u = g / (jnp.sqrt(v_new + eps_root) + eps)
        if d is not None:
            u = u + d * w
        m_new = jnp.where(first, u, b1 * m + u)
        m_new = m_new.astype(mu_dtype or m_new.dtype)
        return m_new, m_new.astype(m.dtype), v_new

    leaf = optax_leaf if like == "optax" else paper_leaf

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        first = state.count == 0
        d = None
        if not is_zero(weight_decay):
            if params is None:
                raise ValueError("novograd: `update` needs `params` for the weight decay term.")
            d = learning_rate_at(weight_decay, state.count)
        else:
            params = updates  # unused: d = 0
        out = jax.tree.map(
            lambda g, w, m, v: leaf(g, w, m, v, first, d), updates, params, state.mu, state.nu
        )
        direction, mu, nu = unzip(updates, out, 3)
        direction = jax.tree.map(lambda u, g: u.astype(g.dtype), direction, updates)
        return direction, ScaleByNovogradState(count=next_count(state.count), mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def novograd(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""NovoGrad: Ginsburg et al.'s Algorithm 1 (layer-wise normalized momentum).

    For each layer l (a leaf of the parameter pytree; ‖·‖ is the Euclidean norm over the
    whole leaf, so v^l is one number per leaf)::

        t = 1:  v^l_1 ← ‖g^l_1‖²
                m^l_1 ← g^l_1/√v^l_1 + d·w^l_1                  (no ε here)
                w^l_2 ← w^l_1 − λ_1·m^l_1
        t ≥ 2:  v^l_t ← β2·v^l_{t−1} + (1 − β2)·‖g^l_t‖²
                m^l_t ← β1·m^l_{t−1} + ( g^l_t/(√v^l_t + ε) + d·w^l_t )
                w^l_{t+1} ← w^l_t − λ_t·m^l_t

    The gradient is normalized by its layer's running norm before the momentum, and the
    weight decay d·w joins the normalized gradient (so it is not scaled by 1/√v). The
    momentum is a plain sum (no (1 − β1) factor: the paper's box; NVIDIA's implementations
    call the (1 − β1)-weighted form ``grad_averaging``, which is not offered here). The
    initialization v_1 = ‖g_1‖², m_1 = g_1/√v_1 + d·w_1 replaces a bias correction.

    Symbols → arguments: λ_t = ``learning_rate`` (a float or a schedule of the number of
    updates made: the update with g^l_t reads λ(t − 1)), β1 = ``b1``, β2 = ``b2``, ε =
    ``eps``, d = ``weight_decay`` (a float, or a schedule read like λ). ``eps_root`` (optax's
    addition, 0 in the paper) goes under the root everywhere: √(v + eps_root). The
    defaults are optax's: β1 = 0.9, β2 = 0.25 (the paper's ResNet-50 setting: a short
    memory of the norm), ε = 1e-6, d = 0; the paper reports β1 ∈ {0.9, 0.95}, β2 from
    0.25 to 0.98. A first gradient that is 0 on a whole layer gives m_1 = d·w_1 (the box's
    0/0 is read as 0).

    Versus the libraries: ``optax.novograd`` (same names, defaults and state) computes the
    same iterates except at t = 1, where it runs the general m-update with m_0 dropped::

        m^l_1 = g^l_1/(√(v^l_1 + eps_root) + ε) + d·w^l_1          (optax, ε included)

    so its first step is smaller by the factor √v_1/(√v_1 + ε) on the gradient term, and the
    difference is carried by the momentum (weight β1^{t−1}) ever after: visible when a
    layer's gradient norm is not large against ε. ``like="optax"`` reproduces it (and its
    ‖g‖² as ``jnp.linalg.norm(g)**2``). optax's ``weight_decay`` must be a number (a
    schedule fails there); here it may be a schedule in both forms. torch.optim has no
    NovoGrad: ``like="torch"`` raises.

    Complex parameters: ‖g‖² = Σ|g|² (optax's convention, real), stored in ``nu`` in the
    leaf's dtype as optax does.

    Args:
      learning_rate: λ ≥ 0, or a schedule.
      b1: β1 in [0, 1), the momentum.
      b2: β2 in [0, 1), the decay of the layer norms' average.
      eps: ε ≥ 0, added to √v.
      eps_root: ≥ 0, added to v under the root.
      weight_decay: d ≥ 0, or a schedule.
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      d ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.optimizers.novograd(0.1)
      >>> updates, _ = tx.update(jnp.array([3.0, 4.0]), tx.init(jnp.zeros(2)))
      >>> print(np.round(np.asarray(updates, float), 6))  # −λ·g/‖g‖
      [-0.06 -0.08]

    References:
      Ginsburg et al., "Stochastic gradient methods with layer-wise adaptive moments for
      training of deep networks", arXiv:1905.11286, 2019.
    """
    check_like("novograd", like, ("optax",))
    _validation.check_learning_rate("novograd", learning_rate)
    direction = scale_by_novograd(b1, b2, eps, eps_root, weight_decay, like=like)
    return with_learning_rate(direction, learning_rate)
