"""Adafactor: factored second moments, update clipping, relative steps (Shazeer & Stern 2018)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    _decay_flags,
    abs_sq,
    check_like,
    init_count,
    learning_rate_at,
    next_count,
)
from optlab.optimizers._factored_rms import (
    LIKE,
    RELATIVE_STEP_CAP,
    TORCH_LEARNING_RATE,
    AdafactorStepState,
    FactoredState,  # noqa: F401  (re-exported)
    _check_int,
    _check_torch_options,
    _real_compute_dtype,
    _rms,
    scale_by_factored_rms,
)


def _relative_step(count: jax.Array, dtype: Any) -> jax.Array:
    """ρ_t = min(10⁻², 1/√t), t = count + 1."""
    t = jnp.asarray(count, dtype) + 1
    return jnp.minimum(jnp.asarray(RELATIVE_STEP_CAP, dtype), jax.lax.rsqrt(t))


def _scale_by_adafactor_step(
    learning_rate,
    multiply_by_parameter_scale,
    clipping_threshold,
    momentum,
    dtype_momentum,
    weight_decay_rate,
    weight_decay_mask,
    min_scale,
    like,
) -> optax.GradientTransformationExtraArgs:
    """U_t → the parameter update: clip, step size, momentum, weight decay, sign."""
    if like == "optax" and dtype_momentum is not None:  # as optax.ema, when built
        dtype_momentum = jax.dtypes.canonicalize_dtype(dtype_momentum)

    def _momentum_dtype(p):
        if dtype_momentum is None:
            return p.dtype
        if jnp.iscomplexobj(p) and not jnp.issubdtype(dtype_momentum, jnp.complexfloating):
            return jnp.promote_types(dtype_momentum, jnp.complex64)  # keep m's imaginary part
        return dtype_momentum

    decays = weight_decay_rate is not None and not (
        _validation.is_concrete_number(weight_decay_rate) and weight_decay_rate == 0
    )
    needs_params = multiply_by_parameter_scale or decays

    def init_fn(params):
        mu = None
        if momentum is not None:
            mu = jax.tree.map(lambda p: jnp.zeros(p.shape, _momentum_dtype(p)), params)
        return AdafactorStepState(count=init_count(), mu=mu)

    def paper_leaf(u, p, m, lam, count):
        cd = _real_compute_dtype(u)
        uc = u.astype(jnp.promote_types(u.dtype, cd))
        if clipping_threshold is not None:  # Û_t = U_t / max(1, RMS(U_t)/d)
            uc = uc / jnp.maximum(1, _rms(uc) / jnp.asarray(clipping_threshold, cd))
        if learning_rate is None:
            alpha = _relative_step(count, cd)
        else:
            alpha = jnp.asarray(learning_rate_at(learning_rate, count), cd)
        if multiply_by_parameter_scale:  # α_t = ρ_t · max(ε2, RMS(X_{t−1}))
            alpha = alpha * jnp.maximum(jnp.asarray(min_scale, cd), _rms(p.astype(uc.dtype)))
        step = alpha * uc
        new_m = None
        if momentum is not None:
            b1 = jnp.asarray(momentum, cd)
            step = b1 * m + (1 - b1) * step
            new_m = step.astype(m.dtype)
        if lam is not None:
            step = step + jnp.asarray(lam, cd) * p
        return (-step).astype(u.dtype), new_m

    def optax_leaf(u, p, m, lam, count):
        dtype = u.dtype
        if clipping_threshold is not None:  # optax.clip_by_block_rms
            u = u / jnp.maximum(1.0, jnp.sqrt(jnp.mean(abs_sq(u))) / clipping_threshold)
        if learning_rate is not None:  # optax.scale_by_learning_rate(flip_sign=False)
            if callable(learning_rate):
                u = jnp.array(learning_rate(count), dtype=u.dtype) * u
            else:
                u = learning_rate * u
        if multiply_by_parameter_scale:  # optax.scale_by_param_block_rms
            u = u * optax.safe_root_mean_squares(p, min_scale)
        new_m = None
        if momentum is not None:  # optax.ema(momentum, debias=False)
            u = (1 - momentum) * u + momentum * m
            new_m = u.astype(m.dtype)
        if lam is not None:  # optax.add_decayed_weights
            u = u + lam * p
        return (-u).astype(dtype), new_m

    def torch_leaf(u, p, m, lam, count):
        del m
        cd = _real_compute_dtype(u)
        uc = u.astype(jnp.promote_types(u.dtype, cd))
        lr = TORCH_LEARNING_RATE if learning_rate is None else learning_rate
        gamma = jnp.asarray(learning_rate_at(lr, count), cd)
        t = jnp.asarray(count, cd) + 1
        rho = jnp.minimum(gamma, jax.lax.rsqrt(t))
        alpha = jnp.maximum(jnp.asarray(min_scale, cd), _rms(p.astype(uc.dtype))) * rho
        if clipping_threshold is not None:
            alpha = alpha / jnp.maximum(1, _rms(uc) / jnp.asarray(clipping_threshold, cd))
        step = alpha * uc
        if lam is not None:  # θ ← (1 − γλ)·θ before the step
            step = step + (gamma * jnp.asarray(lam, cd)) * p
        return (-step).astype(u.dtype), None

    leaf_fn = {None: paper_leaf, "optax": optax_leaf, "torch": torch_leaf}[like]

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if needs_params and params is None:
            raise ValueError(
                "adafactor: `update` needs `params` for the parameter scale RMS(X_{t−1}) "
                "and the weight decay."
            )
        count = state.count
        lam = learning_rate_at(weight_decay_rate, count) if decays else None
        flags = _decay_flags(weight_decay_mask, params) if decays else None
        mu = state.mu if momentum is not None else None

        def leaf(path_index, u):
            p = params_leaves[path_index] if params is not None else None
            m = mu_leaves[path_index] if mu is not None else None
            decay_here = lam if decays and flag_leaves[path_index] else None
            return leaf_fn(u, p, m, decay_here, count)

        treedef = jax.tree.structure(updates)
        u_leaves = treedef.flatten_up_to(updates)
        params_leaves = treedef.flatten_up_to(params) if params is not None else None
        mu_leaves = treedef.flatten_up_to(mu) if mu is not None else None
        flag_leaves = treedef.flatten_up_to(flags) if decays else None
        out = [leaf(i, u) for i, u in enumerate(u_leaves)]
        new_updates = treedef.unflatten([o[0] for o in out])
        new_mu = treedef.unflatten([o[1] for o in out]) if mu is not None else None
        return new_updates, AdafactorStepState(count=next_count(count), mu=new_mu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adafactor(
    learning_rate: ScalarOrSchedule | None,
    min_dim_size_to_factor: int | None = None,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    dtype_momentum: Any = "float32",
    weight_decay_rate: ScalarOrSchedule | None = None,
    eps: float | None = None,
    factored: bool = True,
    weight_decay_mask: MaskOrFn = None,
    *,
    min_scale: float = 1e-3,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adafactor: Shazeer & Stern's Algorithms 4 (matrices) and 5 (vectors).

    ::

        for t = 1, 2, …
            G_t ← ∇f_t(X_{t−1});   β̂2t ← 1 − t^(−c);   ρ_t ← min(10⁻², 1/√t)
            a matrix X ∈ ℝ^{n×m} (Algorithm 4):
                R_t ← β̂2t·R_{t−1} + (1 − β̂2t)·(G_t² + ε1·1_n1_mᵀ)·1_m        (n numbers)
                C_t ← β̂2t·C_{t−1} + (1 − β̂2t)·1_nᵀ·(G_t² + ε1·1_n1_mᵀ)       (m numbers)
                V̂_t ← R_t·C_t / (1_nᵀ·R_t)
            a vector (Algorithm 5):
                V̂_t ← β̂2t·V̂_{t−1} + (1 − β̂2t)·(G_t² + ε1·1_n)
            U_t ← G_t / √V̂_t
            Û_t ← U_t / max(1, RMS(U_t)/d)                                 (update clipping)
            α_t ← max(ε2, RMS(X_{t−1}))·ρ_t                     (relative step size)
            X_t ← X_{t−1} − α_t·Û_t

    β̂21 = 0, so no bias correction is needed; RMS(x) = √(mean x²) over the whole leaf. A
    factored (n, m) leaf keeps n + m numbers instead of Adam's 2nm (``FactoredState``
    stores R and C as row and column means, which gives the same V̂).

    Symbols → arguments: ρ_t = ``learning_rate``: **None for the paper's relative step
    ρ_t = min(10⁻², 1/√t)** (``optlab.adafactor(None)`` is the algorithm box; the argument
    has no default because optlab's registry needs one), or a float or a schedule of the
    updates made (the update with G_t reads ρ(t − 1)) that replaces ρ_t. c =
    ``decay_rate`` (0.8), ε1 = ``eps`` (None: 1e-30), ε2 = ``min_scale`` (1e-3), d =
    ``clipping_threshold`` (1; None: no clipping). ``multiply_by_parameter_scale=False``
    takes α_t = ρ_t. The defaults are the paper's.

    Beyond the box (optax's arguments, the authors' tensor2tensor code): ``factored=False``
    uses Algorithm 5 for every leaf; ``min_dim_size_to_factor`` (None: factor every leaf of
    ≥ 2 dimensions) factors only leaves whose last two dimensions are both at least that
    long; a leaf of ≥ 3 dimensions is a batch of matrices over its last two axes (the
    authors' code); ``decay_offset`` k uses β̂2t = 1 − (t − k)^(−c) when fine-tuning from
    step k (a restored state: t ≤ k gives NaN). ``momentum`` β1 (the paper's runs with
    β1 > 0, the authors' code) averages the steps, m_t = β1·m_{t−1} + (1 − β1)·α_t·Û_t and
    X_t = X_{t−1} − m_t, with m stored in ``dtype_momentum`` (None: the params'; optax's
    float32 by default, given as the string so that ``optax.inject_hyperparams`` leaves
    it alone). ``weight_decay_rate`` λ_t (the paper has none; optax's term) subtracts
    λ_t·X_{t−1} more, on the leaves ``weight_decay_mask`` selects.

    Versus the libraries (t = count + 1; c, ε1, ε2, d as above):

    * ``optax.adafactor`` (same names, defaults and ``FactoredState``; ``like="optax"``):
      ``learning_rate=None`` applies **no** step size, α_t = max(ε2, RMS(X_{t−1})), i.e.
      ρ_t ≡ 1 instead of min(10⁻², 1/√t) (100 times the paper's steps); a number ρ is the
      same as here. It factors the two *largest* axes of a leaf (``np.argsort`` of the
      shape), and only when the second largest is ≥ ``min_dim_size_to_factor`` = 128, so
      vectors and smaller matrices (and a (1000, 64) embedding) keep a full V̂ = Algorithm 5;
      the paper factors every matrix, over its last two axes. β̂2t = 1 − (t − k)^(−c) is
      computed with t in float32 (≈ 1e-8 relative in a float64 run). ε1 (inside the
      averages), clipping, ε2 = 1e-3, momentum (an undebiased ``optax.ema`` in float32)
      and weight decay (X_t = X_{t−1} − m_t − λ_t·X_{t−1}, not multiplied by α_t) are the
      same. ``like="optax"`` takes those defaults for ``min_dim_size_to_factor=None``.
    * ``torch.optim.Adafactor(lr=γ, beta2_decay=−c, eps=(ε1, ε2), d, weight_decay=λ)``
      (``like="torch"``, ``learning_rate`` = γ, None for torch's 1e-2): ρ_t = min(γ, 1/√t),
      the relative step and the parameter scale always on (γ only caps ρ_t). ε1 is not
      added to G²: R_t = β̂2t·R_{t−1} + (1 − β̂2t)·mean_cols(G_t²), C_t likewise,
      V̂_t = R_t·C_t / max(mean(R_t), ε1), U_t = G_t / max(√V̂_t, ε1) (vectors:
      G_t / max(√V_t, ε1)), with ε1 = None: the machine epsilon of the parameter's dtype
      (2.2e-16 in float64, 1.2e-7 in float32, not 1e-30). Every leaf of ≥ 2 dimensions is
      factored over its last two axes (no threshold), β̂2t = 1 − t^(−c) (no offset), and
      the weight decay is decoupled and scaled by γ: X_t = (1 − γλ)·X_{t−1} − α_t·Û_t
      (α_t from X_{t−1} before the decay). torch has no ``momentum``, ``factored``,
      ``min_dim_size_to_factor``, ``decay_offset`` or ``multiply_by_parameter_scale``:
      ``like="torch"`` raises for a non-default one (``weight_decay_mask`` is allowed, as
      torch's per-group weight decay). torch refuses complex parameters; this form uses |G|².

    Complex parameters: |G|² (optax's convention) in the statistics and the RMS, real
    statistics; bfloat16/float16 leaves are computed in float32 and stored in their dtype.
    ``optax.inject_hyperparams`` traces every number passed (``learning_rate``,
    ``decay_rate``, ``clipping_threshold``, ``momentum``, ``eps``, …); give an integer
    ``min_dim_size_to_factor`` or a mask function as ``static_args``.

    Args:
      learning_rate: None (the paper's ρ_t = min(10⁻², 1/√t); optax: no factor; torch:
        γ = 1e-2), or ρ ≥ 0 as a float or a schedule (torch: the cap γ).
      min_dim_size_to_factor: None (every leaf of ≥ 2 dims is factored; optax: 128) or an
        integer ≥ 1: factor only when both factored dimensions are at least this long.
      decay_rate: c ≥ 0 in β̂2t = 1 − t^(−c).
      decay_offset: k ≥ 0, the step fine-tuning starts from.
      multiply_by_parameter_scale: α_t = ρ_t·max(ε2, RMS(X_{t−1})) (else α_t = ρ_t).
      clipping_threshold: d ≥ 1, or None for no update clipping.
      momentum: β1 in [0, 1), or None (the paper's Adafactor has none).
      dtype_momentum: the dtype of m (None: the params').
      weight_decay_rate: λ ≥ 0 (a float or a schedule), or None.
      eps: ε1 ≥ 0; None for 1e-30 (torch: the dtype's machine epsilon).
      factored: factor the second moments of matrices (False: Algorithm 5 everywhere).
      weight_decay_mask: which leaves decay (a tree of bools, a prefix, or a function).
      min_scale: ε2 ≥ 0, the floor of the parameter scale.
      like: None (the paper), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is
      ``(FactoredState, AdafactorStepState)``; ``update`` needs ``params``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, optlab
      >>> tx = optlab.adafactor(None)  # the paper: ρ_1 = min(10⁻², 1) = 0.01
      >>> params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> state = tx.init(params)
      >>> print(state[0].v_row["w"].shape, state[0].v_col["w"].shape)  # n + m numbers
      (2,) (3,)
      >>> u, state = tx.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state, params)
      >>> print(np.round(np.asarray(u["w"][0]), 6), np.round(np.asarray(u["b"]), 6))
      [-0.01 -0.01 -0.01] [-1.e-05 -1.e-05 -1.e-05]

    References:
      Shazeer & Stern, "Adafactor: Adaptive learning rates with sublinear memory cost",
      ICML 2018 (arXiv:1804.04235), Algorithms 4 and 5; the authors' code,
      tensor2tensor's ``adafactor.py``.
    """
    owner = "adafactor"
    check_like(owner, like, LIKE)
    _validation.check_learning_rate(owner, learning_rate)
    _validation.check_non_negative(owner, "decay_rate", decay_rate, "The paper uses 0.8.")
    _validation.check_non_negative(owner, "eps", eps, "The paper uses eps=1e-30.")
    _validation.check_non_negative(owner, "min_scale", min_scale, "The paper uses 1e-3.")
    _check_int(owner, "decay_offset", decay_offset, 0, "Use 0, or the first fine-tuning step.")
    _check_int(owner, "min_dim_size_to_factor", min_dim_size_to_factor, 1, "optax uses 128.")
    if clipping_threshold is not None and _validation.is_concrete_number(clipping_threshold):
        if not clipping_threshold >= 1:
            _validation.fail(
                owner, "clipping_threshold", clipping_threshold, "a number >= 1 or None",
                "The paper uses d=1; None turns update clipping off.",
            )  # fmt: skip
    if momentum is not None:
        _validation.check_unit_interval(owner, "momentum", momentum, "None, or e.g. 0.9.")
    if weight_decay_rate is not None and not callable(weight_decay_rate):
        _validation.check_non_negative(owner, "weight_decay_rate", weight_decay_rate, "e.g. 1e-4")
    if like == "torch":
        _check_torch_options(
            owner,
            min_dim_size_to_factor=(min_dim_size_to_factor, None),
            decay_offset=(decay_offset, 0),
            multiply_by_parameter_scale=(multiply_by_parameter_scale, True),
            momentum=(momentum, None),
            factored=(factored, True),
        )
    if isinstance(dtype_momentum, str):
        dtype_momentum = jnp.dtype(dtype_momentum)
    estimator = scale_by_factored_rms(
        factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, like=like
    )
    step = _scale_by_adafactor_step(
        learning_rate,
        multiply_by_parameter_scale,
        clipping_threshold,
        momentum,
        dtype_momentum,
        weight_decay_rate,
        weight_decay_mask,
        min_scale,
        like,
    )
    return optax.chain(estimator, step)
