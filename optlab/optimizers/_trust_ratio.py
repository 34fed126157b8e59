"""Layer-wise trust ratios: LARS (You, Gitman & Ginsburg 2017) and LAMB (You et al. 2020).

Both rescale each layer's step by the ratio of the layer's weight norm to its update norm,
so that no layer moves by more than a set fraction of its own size whatever the scale of
its gradient. A layer is one leaf of the parameter pytree (a kernel, a bias, a scale); its
norms are the 2-norms of the flattened leaf (Frobenius norms for matrices), as in optax.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._adam import ScaleByAdamState
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    abs_sq,
    check_like,
    init_count,
    learning_rate_at,
    moment_zeros,
    next_count,
    scalar_like,
    scale_by_learning_rate,
    unzip,
)
from optlab.optimizers._trust_ratio_core import (  # noqa: F401  (re-exported: tests and __init__ import them here)
    _flags,
    _need_params,
    _norm,
    _ratio,
    scale_by_trust_ratio,
)


class ScaleByLarsState(NamedTuple):
    """``count``: updates made, for a weight-decay schedule."""

    count: jax.Array


def check_lars_hyperparams(weight_decay, trust_coefficient, eps, momentum) -> None:
    if not callable(weight_decay):
        _validation.check_non_negative("lars", "weight_decay", weight_decay, "Use e.g. 5e-4.")
    _validation.check_non_negative(
        "lars", "trust_coefficient", trust_coefficient, "You et al. use 0.001."
    )
    _validation.check_non_negative("lars", "eps", eps, "Use e.g. 0.")
    _validation.check_unit_interval("lars", "momentum", momentum, "You et al. use 0.9.")


def scale_by_lars(
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: MaskOrFn = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: MaskOrFn = True,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """LARS's direction λ^l·(g + β·θ) per layer, without γ and the momentum; see ``lars``.

    ``like=None``: λ^l = η‖θ‖/(‖g‖ + β‖θ‖ + ε) (the paper's local rate), 1 where ‖θ‖ = 0 or
    ‖g‖ = 0. ``like="optax"``: λ^l = η‖θ‖/(‖g + βθ‖ + ε), 1 where ‖θ‖ = 0 or ‖g + βθ‖ = 0.
    """
    check_like("lars", like, ("optax",))
    check_lars_hyperparams(weight_decay, trust_coefficient, eps, 0.0)

    def init_fn(params):
        del params
        return ScaleByLarsState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _need_params("lars", params)
        beta = learning_rate_at(weight_decay, state.count)
        decays, trusts = _flags(weight_decay_mask, params), _flags(trust_ratio_mask, params)

        def direction(g, p, decay, trust):
            d = g + scalar_like(beta, p) * p if decay else g
            if not trust:
                return d
            w_norm = _norm(p)
            eta = scalar_like(trust_coefficient, w_norm)
            if like == "optax":  # the norm of the decayed gradient
                d_norm = _norm(d)
                ok = (w_norm > 0) & (d_norm > 0)
                return _ratio(eta * w_norm, d_norm + scalar_like(eps, d_norm), ok, d) * d
            g_norm = _norm(g)  # the paper: ‖g‖ and β‖θ‖ apart
            denom = g_norm + scalar_like(beta if decay else 0.0, w_norm) * w_norm
            ok = (w_norm > 0) & (g_norm > 0)
            return _ratio(eta * w_norm, denom + scalar_like(eps, denom), ok, d) * d

        out = jax.tree.map(direction, updates, params, decays, trusts)
        return out, ScaleByLarsState(count=next_count(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _trace(momentum: float, nesterov: bool) -> optax.GradientTransformationExtraArgs:
    """v ← μ·v + u; returns v, or u + μ·v with ``nesterov`` (``optax.trace``, same state)."""

    def init_fn(params):
        return optax.TraceState(trace=moment_zeros(params))

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        trace = jax.tree.map(lambda u, v: u + scalar_like(momentum, v) * v, updates, state.trace)
        out = trace
        if nesterov:
            out = jax.tree.map(lambda u, v: u + scalar_like(momentum, v) * v, updates, trace)
        return out, optax.TraceState(trace=trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lars(
    learning_rate: ScalarOrSchedule,
    weight_decay: ScalarOrSchedule = 0.0,
    weight_decay_mask: MaskOrFn = True,
    trust_coefficient: float = 0.001,
    eps: float = 0.0,
    trust_ratio_mask: MaskOrFn = True,
    momentum: float = 0.9,
    nesterov: bool = False,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""LARS: You, Gitman & Ginsburg's Algorithm 1 (SGD with momentum and layer-wise rates).

    For each layer l (a leaf of the parameter pytree), at the update that follows t
    earlier ones::

        g^l ← ∇L(w^l)
        λ^l ← η·‖w^l‖ / (‖g^l‖ + β·‖w^l‖ + ε)     (the local rate; 1 if ‖w^l‖ = 0 or ‖g^l‖ = 0)
        v^l ← m·v^l + γ_t·λ^l·(g^l + β·w^l)
        w^l ← w^l − v^l                           (nesterov: w^l − m·v^l − γ_t·λ^l·(g^l + β·w^l))

    Symbols → arguments: γ_t = ``learning_rate`` (a float, or a schedule of t, the number
    of updates made: 0 for the first), η = ``trust_coefficient``, β = ``weight_decay`` (a
    float or such a schedule), m = ``momentum``, ε = ``eps`` (not in the paper, which has
    ε = 0; TensorFlow's ``LARSOptimizer`` adds it there); v = 0 at the start. The paper's
    box uses a polynomial schedule γ_t = γ_0·(1 − t/T)², which is just one schedule here
    (e.g. ``optax.polynomial_schedule(γ_0, 0, 2, T)``). Defaults: optax's (η = 0.001,
    m = 0.9 and ε = 0 are also TensorFlow's; β = 0, where TensorFlow's is 1e-4). The paper
    sets no rule for ‖w‖ = 0 (its λ = 0 would freeze a zero-initialized layer forever) or
    ‖g‖ = 0; λ^l = 1 there, as in TensorFlow's ``LARSOptimizer`` (``tf.contrib.opt``).

    ``weight_decay_mask`` selects the leaves that decay (elsewhere β = 0 in both lines of
    λ^l and v^l); ``trust_ratio_mask`` the leaves that get a local rate (elsewhere λ^l = 1:
    plain SGD with momentum, as is usual for biases and normalization scales). Each is a
    bool, a tree of bools like the params or a prefix of it, or a function of the params,
    as in optax. ``nesterov=True`` is optax's (and TensorFlow's) option, not the paper's.

    Where the rate sits: γ_t multiplies the step *before* it enters the momentum, so
    every past step keeps the rate it was taken with (v_t = Σ_s m^{t−s}·γ_s·λ_s·d_s), in
    the paper's box and in optax's chain (``add_decayed_weights``, ``masked(
    scale_by_trust_ratio)``, ``scale_by_learning_rate``, ``trace``) alike, so with a
    schedule optax and the paper still agree. The other placement, v ← m·v + λ^l·d^l,
    w ← w − γ_t·v (torch.optim.SGD's), gives the same iterates only for a constant γ.

    Versus the libraries: ``optax.lars`` divides by the norm of the decayed gradient::

        paper:  λ^l = η·‖w‖ / (‖g‖ + β·‖w‖ + ε),  1 where ‖w‖ = 0 or ‖g‖ = 0
        optax:  λ^l = η·‖w‖ / (‖g + β·w‖ + ε),    1 where ‖w‖ = 0 or ‖g + β·w‖ = 0

    (‖g + βw‖ ≤ ‖g‖ + β‖w‖, so optax's rate is the larger one). With β = 0 (optax's
    default) or on leaves outside ``weight_decay_mask`` the two are equal. ``like="optax"``
    computes optax's λ^l; all the rest (names, defaults, masks, momentum) is the same.
    torch.optim has no LARS: ``like="torch"`` raises.

    Complex parameters: ‖·‖ is the 2-norm of the moduli, as in optax. Norms of float16 and
    bfloat16 leaves are summed in float32; updates keep the leaf's dtype.

    Args:
      learning_rate: γ ≥ 0, or a schedule.
      weight_decay: β ≥ 0, or a schedule.
      weight_decay_mask: which leaves decay (True: all).
      trust_coefficient: η ≥ 0.
      eps: ε ≥ 0.
      trust_ratio_mask: which leaves get the local rate λ^l (True: all).
      momentum: m in [0, 1).
      nesterov: step along the Nesterov look-ahead of v.
      like: None (the paper) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (state: ``ScaleByLarsState``,
      ``ScaleByLearningRateState``, ``optax.TraceState``); its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.lars(10.0)
      >>> params = jnp.array([3.0, 4.0])  # ‖w‖ = 5: each step is γ·η·‖w‖ = 0.05 long
      >>> u, _ = tx.update(jnp.array([0.0, -20.0]), tx.init(params), params)
      >>> print(np.round(np.asarray(u, float), 6))
      [0.   0.05]

    References:
      You, Gitman & Ginsburg, "Large batch training of convolutional networks",
      arXiv:1708.03888, 2017.
    """
    check_like("lars", like, ("optax",))
    _validation.check_learning_rate("lars", learning_rate)
    check_lars_hyperparams(weight_decay, trust_coefficient, eps, momentum)
    return optax.chain(
        scale_by_lars(
            weight_decay, weight_decay_mask, trust_coefficient, eps, trust_ratio_mask, like=like
        ),
        scale_by_learning_rate(learning_rate),
        _trace(momentum, nesterov),
    )


# ----------------------------------------------------------------------------------------
# LAMB


def check_lamb_hyperparams(b1, b2, eps, eps_root, weight_decay) -> None:
    _validation.check_unit_interval("lamb", "b1", b1, "You et al. use b1=0.9.")
    _validation.check_unit_interval("lamb", "b2", b2, "You et al. use b2=0.999.")
    _validation.check_non_negative("lamb", "eps", eps, "You et al. use eps=1e-6.")
    _validation.check_non_negative("lamb", "eps_root", eps_root, "Use 0.")
    if not callable(weight_decay):
        _validation.check_non_negative("lamb", "weight_decay", weight_decay, "Use e.g. 0.01.")


def scale_by_lamb(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """LAMB's direction ‖x‖/‖r + λx‖·(r + λx) per layer, without η_t; see ``lamb``."""
    check_like("lamb", like, ("optax",))
    check_lamb_hyperparams(b1, b2, eps, eps_root, weight_decay)

    def init_fn(params):
        return ScaleByAdamState(
            count=init_count(), mu=moment_zeros(params), nu=moment_zeros(params)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        _need_params("lamb", params)
        t = next_count(state.count)
        lam = learning_rate_at(weight_decay, state.count)
        correction1 = 1.0 - jnp.asarray(b1) ** t
        correction2 = 1.0 - jnp.asarray(b2) ** t

        def leaf(g, m, v, x, decays):
            m = scalar_like(1.0 - b1, m) * g + scalar_like(b1, m) * m
            v = scalar_like(1.0 - b2, v) * abs_sq(g).astype(v.dtype) + scalar_like(b2, v) * v
            m_hat = m / scalar_like(correction1, m)
            v_hat = v / scalar_like(correction2, v)
            r = m_hat / (jnp.sqrt(v_hat + scalar_like(eps_root, v)) + scalar_like(eps, v))
            u = r + scalar_like(lam, x) * x if decays else r
            x_norm, u_norm = _norm(x), _norm(u)  # φ(‖x‖) = ‖x‖
            return _ratio(x_norm, u_norm, (x_norm > 0) & (u_norm > 0), u) * u, m, v

        out = jax.tree.map(leaf, updates, state.mu, state.nu, params, _flags(mask, params))
        direction, mu, nu = unzip(updates, out, 3)
        return direction, ScaleByAdamState(count=t, mu=mu, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lamb(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""LAMB: You et al.'s Algorithm 2 (Adam's direction with a layer-wise trust ratio).

    For each layer i (a leaf of the parameter pytree), at step t = 1, 2, …::

        g_t ← ∇ℓ(x_t)
        m_t ← β1·m_{t−1} + (1 − β1)·g_t
        v_t ← β2·v_{t−1} + (1 − β2)·g_t²
        m̂_t ← m_t / (1 − β1^t),   v̂_t ← v_t / (1 − β2^t)
        r_t ← m̂_t / (√v̂_t + ε)
        x_{t+1}^{(i)} ← x_t^{(i)} − η_t·φ(‖x_t^{(i)}‖) / ‖r_t^{(i)} + λ·x_t^{(i)}‖
                                     · (r_t^{(i)} + λ·x_t^{(i)})

    Symbols → arguments: η_t = ``learning_rate`` (a float, or a schedule of the number of
    updates made, t − 1: 0 for the first), β1 = ``b1``, β2 = ``b2``, ε = ``eps``, λ =
    ``weight_decay`` (a float or such a schedule); m_0 = v_0 = 0. ``eps_root`` (optax's,
    not the paper's; 0 by default) is added inside the root: √(v̂_t + eps_root). φ is the
    identity, φ(z) = z: the paper allows any φ with γ_l ≤ φ(z) ≤ γ_u (a clipped norm)
    but fixes none, and optax uses the identity too. Where ‖x‖ = 0 (a zero-initialized
    layer, which φ(0) = 0 would freeze) or ‖r + λx‖ = 0 the ratio is 1, as in optax.
    Defaults: optax's (β1 = 0.9, β2 = 0.999, ε = 1e-6, λ = 0; the paper's box fixes none).
    ``mask`` selects the leaves that decay (λ = 0 elsewhere; the trust
    ratio applies to every leaf), as in optax.

    Versus the libraries: ``optax.lamb`` (``scale_by_adam``, ``add_decayed_weights``,
    ``scale_by_trust_ratio``, ``scale_by_learning_rate``) computes exactly these iterates,
    zero-norm rule included, so ``like="optax"`` equals the default. torch.optim has no LAMB:
    ``like="torch"`` raises.

    Complex parameters: g² is |g|² and ‖·‖ the 2-norm of the moduli (optax's convention).
    Norms of float16 and bfloat16 leaves are summed in float32; updates keep the leaf's dtype.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      eps: ε ≥ 0, outside the root.
      eps_root: ≥ 0, inside the root.
      weight_decay: λ ≥ 0, or a schedule.
      mask: which leaves decay; None decays all.
      like: None (the paper) or ``"optax"`` (the same formula).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (state: optax's ``ScaleByAdamState``,
      then ``ScaleByLearningRateState``); its ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.lamb(0.1)
      >>> params = jnp.array([3.0, 4.0])  # ‖x‖ = 5; the first r is ≈ sign(g)
      >>> u, _ = tx.update(jnp.array([1.0, -2.0]), tx.init(params), params)
      >>> print(np.round(np.asarray(u, float), 3))  # −η·‖x‖·r/‖r‖
      [-0.354  0.354]

    References:
      You et al., "Large batch optimization for deep learning: training BERT in 76
      minutes", ICLR 2020 (arXiv:1904.00962).
    """
    check_like("lamb", like, ("optax",))
    _validation.check_learning_rate("lamb", learning_rate)
    return optax.chain(
        scale_by_lamb(b1, b2, eps, eps_root, weight_decay, mask, like=like),
        scale_by_learning_rate(learning_rate),
    )
