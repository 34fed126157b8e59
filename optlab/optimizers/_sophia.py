"""Sophia: second-order clipped stochastic optimization (Liu et al. 2023), Sophia-H."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    check_like,
    decoupled_decay,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
    zeros_like,
)

PROBES = ("rademacher", "normal")


class HutchinsonState(NamedTuple):
    """``key``: the PRNG key of the next probe (optax's ``HutchinsonState``)."""

    key: jax.Array


class SophiaState(NamedTuple):
    """optax's ``SophiaState``: ``count`` (updates made), ``mu`` (m, the EMA of gradients),
    ``nu`` (h, the EMA of the Hessian-diagonal estimates), ``hessian_fn_state`` (the
    estimator's state: the PRNG key for Hutchinson's estimator, so a resumed run draws the
    same probes)."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    hessian_fn_state: Any


def _prng_key(seed: Any) -> jax.Array:
    """A raw PRNG key from an integer seed, or ``seed`` itself if it already is a key."""
    if isinstance(seed, jax.Array) and (
        jax.dtypes.issubdtype(seed.dtype, jax.dtypes.prng_key) or seed.shape == (2,)
    ):
        return seed
    return jax.random.PRNGKey(seed)


def _check_real(owner: str, params: Any) -> None:
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise ValueError(
                f"{owner}: complex parameters are not supported (the Hessian diagonal of a "
                "real loss in complex coordinates is not one number per coordinate). Split "
                "them into real and imaginary parts."
            )


def hutchinson_estimator_diag_hessian(
    random_seed: jax.Array | int | None = None, *, probe: str = "rademacher"
) -> optax.GradientTransformationExtraArgs:
    """Hutchinson's estimate of diag(∇²L(θ)): ĥ = u ⊙ (∇²L(θ)·u), one probe u per call.

    E[u ⊙ (H u)] = diag(H) when E[u uᵀ] = I. ``probe="rademacher"`` (optax's choice,
    u_i = ±1) has the smaller variance and is exact for a diagonal H (u_i² = 1);
    ``"normal"`` (u ~ N(0, I)) is the paper's Algorithm 1. ``update(grads, state, params,
    obj_fn=...)`` ignores ``grads``; ``obj_fn(params) -> scalar loss`` gives the
    Hessian-vector product through ``jax.jvp(jax.grad(obj_fn), (params,), (u,))``.

    The key lives in the state: each call splits it as ``key, subkey = split(key)`` and
    draws u with ``optax.tree.random_like(subkey, params, sampler, dtype=float32)`` cast
    to each leaf's dtype, exactly as ``optax.contrib.hutchinson_estimator_diag_hessian``
    does (``random_seed``: a key or an integer seed; None is ``PRNGKey(0)``, optax's).
    """
    _validation.check_choice("hutchinson_estimator_diag_hessian", "probe", probe, PROBES)
    sampler = jax.random.rademacher if probe == "rademacher" else jax.random.normal

    def init_fn(params):
        del params
        return HutchinsonState(key=_prng_key(0 if random_seed is None else random_seed))

    def update_fn(updates, state, params=None, obj_fn=None, **extra_args):
        del updates, extra_args
        if params is None:
            raise ValueError("hutchinson_estimator_diag_hessian: `update` needs `params`.")
        if obj_fn is None:
            raise ValueError(
                "hutchinson_estimator_diag_hessian: `update` needs `obj_fn`, a function "
                "params -> scalar loss, e.g. update(g, state, params, obj_fn=loss_fn)."
            )
        key, subkey = jax.random.split(state.key)
        probes = optax.tree.random_like(subkey, params, sampler, dtype=jnp.float32)
        probes = jax.tree.map(lambda u, p: u.astype(p.dtype), probes, params)
        hvp = jax.jvp(jax.grad(obj_fn), (params,), (probes,))[1]
        product = jax.tree.map(lambda h, u: (h * u).astype(u.dtype), hvp, probes)
        return product, HutchinsonState(key=key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def check_sophia_hyperparams(b1, b2, eps, gamma, clip_threshold, update_interval) -> None:
    _validation.check_unit_interval("sophia", "b1", b1, "optax uses b1=0.965.")
    _validation.check_unit_interval("sophia", "b2", b2, "Liu et al. and optax use b2=0.99.")
    _validation.check_non_negative("sophia", "eps", eps, "optax uses eps=1e-8.")
    _validation.check_non_negative("sophia", "gamma", gamma, "Liu et al. use gamma=0.01.")
    if clip_threshold is not None and _validation.is_concrete_number(clip_threshold):
        if not clip_threshold > 0:
            _validation.fail(
                "sophia", "clip_threshold", clip_threshold, "> 0 or None", "The paper clips at 1."
            )
    if _validation.is_concrete_number(update_interval) and not (
        update_interval >= 1 and float(update_interval).is_integer()
    ):
        _validation.fail(
            "sophia",
            "update_interval",
            update_interval,
            "an integer >= 1",
            "Liu et al. refresh the Hessian every k=10 steps.",
        )


def scale_by_sophia(
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: optax.GradientTransformation | None = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
    *,
    like: str | None = None,
    seed: int | jax.Array = 0,
    probe: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Sophia's direction clip(m_t / max{γ·h_t, ε}, 1) (without η and λ); see ``sophia``."""
    check_like("sophia", like, ("optax",))
    check_sophia_hyperparams(b1, b2, eps, gamma, clip_threshold, update_interval)
    if probe is not None:
        _validation.check_choice("sophia", "probe", probe, PROBES)
        if hessian_diagonal_fn is not None:
            raise ValueError(
                "sophia: `probe` configures the default Hutchinson estimator; it cannot be "
                "combined with `hessian_diagonal_fn`."
            )
    own_estimator = hessian_diagonal_fn is None
    if own_estimator:
        default_probe = "rademacher" if like == "optax" else "normal"
        hessian_diagonal_fn = hutchinson_estimator_diag_hessian(seed, probe=probe or default_probe)
    hessian_fn = optax.with_extra_args_support(hessian_diagonal_fn)

    def init_fn(params):
        _check_real("sophia", params)
        return SophiaState(
            count=init_count(),
            mu=moment_zeros(params, mu_dtype),
            nu=zeros_like(params),
            hessian_fn_state=hessian_fn.init(params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError("sophia: `update` needs `params` (the Hessian is taken there).")
        if own_estimator and extra_args.get("obj_fn") is None:
            raise ValueError(
                "sophia: `update` needs `obj_fn`, a function params -> scalar loss of this "
                "step's batch, for the Hessian-vector products: "
                "tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch))."
            )
        grads = updates
        count_inc = next_count(state.count)

        def ema(g, m):
            if like == "optax":  # optax.tree.update_moment's expression and promotions
                return (1 - b1) * g + b1 * m
            dtype = jnp.result_type(g, m)
            g, m = g.astype(dtype), m.astype(dtype)
            return scalar_like(1.0 - b1, m) * g + scalar_like(b1, m) * m

        mu = jax.tree.map(ema, grads, state.mu)

        def refresh(hess_state, nu):
            diag, hess_state = hessian_fn.update(grads, hess_state, params, **extra_args)
            nu = jax.tree.map(
                lambda d, n: scalar_like(1.0 - b2, n) * d.astype(n.dtype) + scalar_like(b2, n) * n,
                diag,
                nu,
            )
            return hess_state, nu

        hessian_fn_state, nu = jax.lax.cond(
            state.count % update_interval == 0,
            refresh,
            lambda h, n: (h, n),
            state.hessian_fn_state,
            state.nu,
        )

        if like == "optax":
            # optax.contrib.scale_by_sophia: the bias-corrected m̂_t over the h *before*
            # this step's refresh.
            correction = 1 - b1**count_inc
            numerator = jax.tree.map(lambda m: m / correction.astype(m.dtype), mu)
            curvature = state.nu
        else:  # the paper's Algorithm 3: m_t over the h_t just refreshed
            numerator, curvature = mu, nu

        def direction(m, h):
            denom = jnp.maximum(scalar_like(gamma, h) * h, scalar_like(eps, h))
            return m / denom.astype(m.dtype)

        out = jax.tree.map(direction, numerator, curvature)
        if clip_threshold is not None:
            if verbose:
                inside = sum(jnp.sum(jnp.abs(u) < clip_threshold) for u in jax.tree.leaves(out))
                win_rate = inside / optax.tree.size(out)
                every = jnp.maximum(print_win_rate_every_n_steps, 1)
                jax.lax.cond(
                    (print_win_rate_every_n_steps > 0) & (count_inc % every == 0),
                    lambda: jax.debug.print("Sophia optimizer win rate: {}", win_rate),
                    lambda: None,
                )
            out = jax.tree.map(
                lambda u: jnp.clip(
                    u, -scalar_like(clip_threshold, u), scalar_like(clip_threshold, u)
                ),
                out,
            )
        out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, grads)
        mu = jax.tree.map(lambda m, old: m.astype(old.dtype), mu, state.mu)
        new_state = SophiaState(count=count_inc, mu=mu, nu=nu, hessian_fn_state=hessian_fn_state)
        return out, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sophia(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.965,
    b2: float = 0.99,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-4,
    weight_decay_mask: MaskOrFn = None,
    gamma: float = 0.01,
    clip_threshold: float | None = 1.0,
    update_interval: int = 10,
    hessian_diagonal_fn: optax.GradientTransformation | None = None,
    mu_dtype: Any = None,
    verbose: bool = False,
    print_win_rate_every_n_steps: int = 0,
    *,
    like: str | None = None,
    seed: int | jax.Array = 0,
    probe: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Sophia-H: Liu et al.'s Algorithm 3 with Hutchinson's Hessian-diagonal estimator.

    ::

        m_0 ← 0,  h_{1−k} ← 0
        for t = 1, 2, …
            g_t ← ∇L_t(θ_t)
            m_t ← β1·m_{t−1} + (1 − β1)·g_t
            if t mod k = 1:   ĥ_t ← u ⊙ (∇²L_t(θ_t)·u),  u ~ N(0, I)     (Algorithm 1)
                              h_t ← β2·h_{t−k} + (1 − β2)·ĥ_t
            else:             h_t ← h_{t−1}
            θ_t ← θ_t − η_t·λ·θ_t
            θ_{t+1} ← θ_t − η_t·clip( m_t / max{γ·h_t, ε}, 1 )

    clip(z, 1) = max{min{z, 1}, −1} per coordinate, so no coordinate moves more than η_t
    (plus the decay): where the curvature estimate is small, negative or stale the step
    falls back to η_t·sign(m_t). The Hessian is refreshed on the first update and every
    k-th after it, and the refreshed h_t already scales that step.

    Symbols → arguments: η_t = ``learning_rate`` (a float or a schedule of the number of
    updates made, 0 for the first), β1 = ``b1``, β2 = ``b2``, ε = ``eps``, λ =
    ``weight_decay`` (a float or such a schedule; ``weight_decay_mask`` selects the leaves
    that decay), γ = ``gamma``, k = ``update_interval``, the clip bound 1 =
    ``clip_threshold`` (None: no clipping), L_t = ``obj_fn``. The defaults are optax's
    (b1 0.965, b2 0.99, eps 1e-8, λ 1e-4, γ 0.01, clip 1, k 10); the paper tunes them per
    model (its GPT-2 runs use β1 = 0.96, β2 = 0.99, k = 10 and γ ≈ 0.01 for Sophia-H).

    **The loss function is an argument of update**: ``update(grads, state, params, *,
    obj_fn)``, ``obj_fn(params) -> scalar loss`` on this step's batch, optax.contrib's
    name; the Hessian-vector product is ``jax.jvp(jax.grad(obj_fn), (params,), (u,))``,
    computed only on refresh steps (inside ``lax.cond``). optlab's trainer passes it.
    The PRNG key of the probes lives in the state (``state[0].hessian_fn_state.key``), so
    a resumed run draws the same u. Another estimator (e.g. Gauss-Newton-Bartlett, Sophia-G)
    can be passed as ``hessian_diagonal_fn``: a transformation whose ``update(grads,
    state, params, **extra_args)`` returns the diagonal estimate, called with ``update``'s
    extra arguments.

    Versus the paper's first version and optax.contrib.sophia:

    * Paper v1 wrote θ ← θ − η·clip(m/max{h, ε}, ρ). Since clip(z, ρ) = ρ·clip(z/ρ, 1),
      that is this update with γ = ρ, η ↦ η·ρ and ε ↦ ρ·ε; the final version (and optax)
      use γ and the bound 1, as here.
    * ``like="optax"`` (optax.contrib.scale_by_sophia + add_decayed_weights + the step)
      divides the bias-corrected m̂_t = m_t/(1 − β1^t) by the h *before* this step's
      refresh: θ ← θ − η_t·( clip(m̂_t / max{γ·h_{t−1}, ε}, 1) + λ·θ ). So its first update
      uses h = 0: max{0, ε} = ε and every coordinate takes the full step η·sign(m̂_1), and
      h_t enters one step late after each refresh. ε and γ sit in the same place
      (max{γ·h, ε}) in both. The weight decay is the same: the paper's θ_t ← θ_t − η_tλθ_t
      followed by the clipped step gives θ − η_t·(clip(·) + λθ) exactly, as optax's
      add_decayed_weights before the learning rate does. Both refresh h on the first update
      (t mod k = 1 ⇔ count mod k = 0).
    * The probe: the paper's Algorithm 1 draws u ~ N(0, I) (as its code and levanter do);
      optax draws Rademacher u (±1, lower variance, exact for a diagonal Hessian). The
      default ``probe`` follows the form (``"normal"`` for the paper, ``"rademacher"`` for
      ``like="optax"``); pass ``probe=`` to choose. Both split the key in the state the
      same way (``seed`` 0 is optax's ``PRNGKey(0)``), so ``like="optax"`` reproduces
      optax.contrib.sophia draw for draw.

    torch.optim has no Sophia: ``like="torch"`` raises. ``mu_dtype`` stores m in another
    dtype; ``verbose``/``print_win_rate_every_n_steps`` print the fraction of unclipped
    coordinates (the paper's "win rate"), as optax. Parameters must be real.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      b1: β1 in [0, 1), the momentum's decay.
      b2: β2 in [0, 1), the decay of the Hessian EMA per refresh (effectively
        1 − (1 − β2)/k per step).
      eps: ε ≥ 0, the floor of the denominator.
      weight_decay: λ ≥ 0, or a schedule (decoupled, multiplied by η_t).
      weight_decay_mask: which leaves decay (a tree of bools, a prefix, or a function).
      gamma: γ ≥ 0, the scale of the curvature.
      clip_threshold: the clip bound (> 0), or None for no clipping.
      update_interval: k ≥ 1, updates between Hessian refreshes.
      hessian_diagonal_fn: None (Hutchinson's estimator, seeded by ``seed``) or a
        transformation returning a Hessian-diagonal estimate.
      mu_dtype: the dtype of m (None: the params').
      verbose: print the win rate every ``print_win_rate_every_n_steps`` updates.
      print_win_rate_every_n_steps: see ``verbose`` (0: never).
      like: None (the paper) or ``"optax"``.
      seed: the default estimator's PRNG seed (an integer, or a key).
      probe: ``"normal"`` or ``"rademacher"`` (None: the form's, see above).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params`` and, with
      the default estimator, ``obj_fn``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * p**2)  # diag Hessian (4, 1)
      >>> tx = optlab.optimizers.sophia(0.1, weight_decay=0.0, probe="rademacher")
      >>> p = jnp.array([1.0, 1.0])
      >>> g = jnp.array([4.0, 1.0])
      >>> u, state = tx.update(g, tx.init(p), p, obj_fn=loss)
      >>> print(np.asarray(state[0].nu))  # (1 − β2)·diag(H): Rademacher probes are exact here
      [0.04 0.01]
      >>> print(np.asarray(u))  # m/max(γh, ε) = (0.14, 0.035)/(4e-4, 1e-4) is clipped to 1
      [-0.1 -0.1]

    References:
      Liu, Li, Hall, Liang & Ma, "Sophia: A Scalable Stochastic Second-order Optimizer
      for Language Model Pre-training", ICLR 2024 (arXiv:2305.14342).
    """
    check_like("sophia", like, ("optax",))
    return optax.chain(
        scale_by_sophia(
            b1,
            b2,
            eps,
            gamma,
            clip_threshold,
            update_interval,
            hessian_diagonal_fn,
            mu_dtype,
            verbose,
            print_win_rate_every_n_steps,
            like=like,
            seed=seed,
            probe=probe,
        ),
        decoupled_decay("sophia", learning_rate, weight_decay, weight_decay_mask),
    )
