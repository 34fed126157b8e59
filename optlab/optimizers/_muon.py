"""Muon: momentum orthogonalized by Newton–Schulz (Jordan et al. 2024).

The matrices of a network (``weight_dimension_numbers`` says which axes of a leaf are its
rows and columns) step along an approximately orthogonalized momentum; every other leaf
(biases, norms, and by choice embeddings and output heads) goes to AdamW.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.contrib import MuonDimensionNumbers

from optlab import _validation
from optlab.optimizers._adamw import adamw
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    check_like,
    decoupled_decay,
    init_count,
    moment_zeros,
    next_count,
    scalar_like,
    unzip,
)
from optlab.optimizers._muon_adam import scale_by_optax_adam
from optlab.optimizers._muon_matrices import (  # noqa: F401  (re-exported: imported from here)
    NS_COEFFS,
    NS_PRESETS,
    WeightDimNumOrFn,
    _is_dim_nums,
    _resolve_dims,
    as_matrices,
    coeffs_table,
    fan_in_out,
    matrix_dimension_numbers,
    muon_labels,
    newton_schulz,
)
from optlab.optimizers._muon_shape import scale_by_shape

PRECONDITIONINGS = ("frobenius", "spectral")
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
TORCH_DEFAULTS = {"weight_decay": 0.1, "eps": 1e-7, "ns_dtype": jnp.bfloat16}


class MuonState(NamedTuple):
    """``count``: updates made; ``mu``: the momentum buffer; ``ns_coeffs``: the
    Newton–Schulz coefficients, one row per step. optax.contrib's ``MuonState``: the same
    names and fields."""

    count: jax.Array
    mu: optax.Updates
    ns_coeffs: jax.Array


def _check_muon_args(owner, beta, eps, like, preconditioning, adjust_lr_fn):
    check_like(owner, like, ("optax", "torch"))
    _validation.check_unit_interval(owner, "beta", beta, "Jordan uses beta=0.95.")
    _validation.check_non_negative(owner, "eps", eps, "Use e.g. 1e-8.")
    _validation.check_choice(owner, "preconditioning", preconditioning, PRECONDITIONINGS)
    if adjust_lr_fn not in ADJUST_LR_FNS:
        _validation.fail(
            owner, "adjust_lr_fn", adjust_lr_fn, f"one of {ADJUST_LR_FNS}", "torch's names."
        )


def scale_by_muon(
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    weight_dimension_numbers: WeightDimNumOrFn = None,
    ns_dtype: Any = None,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Muon's direction on matrix leaves: NS(momentum), before the shape scale and η.

    The momentum and the normalization follow ``like`` (see ``muon``). Every leaf must be a
    matrix under ``weight_dimension_numbers`` (a tree of ``MuonDimensionNumbers`` like the
    params, or a function of them; None: every leaf is a 2-D (fan_in, fan_out) matrix);
    axes that are neither reduction nor output are batch axes, one matrix each.
    """
    owner = "muon"
    _check_muon_args(owner, beta, eps, like, preconditioning, None)
    table = coeffs_table(owner, ns_coeffs, ns_steps)

    def dims_of(updates):
        dims = weight_dimension_numbers
        dims = dims(updates) if callable(dims) else dims
        if dims is None:
            dims = jax.tree.map(lambda _: MuonDimensionNumbers(), updates)
        return dims

    def orthogonalize(x, spec, coeffs):
        if not _is_dim_nums(spec):
            raise ValueError(
                f"muon: a leaf of shape {x.shape} has no MuonDimensionNumbers; send it to "
                "AdamW (muon's default for leaves that are not matrices)."
            )
        matrices, back = as_matrices(x, spec)
        ortho = jax.vmap(
            lambda m: newton_schulz(
                m,
                coeffs,
                ns_steps,
                eps,
                preconditioning=preconditioning,
                clamp_eps=like == "torch",
                dtype=ns_dtype,
            )
        )(matrices)
        return back(ortho)

    def init_fn(params):
        return MuonState(
            count=init_count(),
            mu=moment_zeros(params, mu_dtype),
            ns_coeffs=jnp.asarray(table),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = next_count(state.count)
        t = count.astype(jnp.float32)

        def step(g, buf):
            dtype = jnp.result_type(g, buf)
            g, buf = g.astype(dtype), buf.astype(dtype)
            b = scalar_like(beta, g)
            if like is None:  # B_t = μ·B_{t−1} + G_t; Nesterov: G_t + μ·B_t
                new = b * buf + g
                direction = g + b * new if nesterov else new
            elif like == "torch":  # EMA buffer; Nesterov: lerp(g, B_t, μ)
                new = b * buf + (1 - b) * g
                direction = (1 - b) * g + b * new if nesterov else new
            else:  # optax: bias-corrected EMA, Nesterov with bias corrections at t+1, t
                new = b * buf + (1 - b) * g
                bc = lambda n: scalar_like(1.0, g) - b ** scalar_like(n, g)  # noqa: E731
                if nesterov:
                    direction = b * new / bc(t + 1) + (1 - b) * g / bc(t)
                else:
                    direction = new / bc(t)
            return direction, new.astype(buf.dtype)

        directions, mu = unzip(updates, jax.tree.map(step, updates, state.mu), 2)
        out = jax.tree.map(
            lambda x, spec: orthogonalize(x, spec, state.ns_coeffs),
            directions,
            dims_of(updates),
            is_leaf=_is_dim_nums,
        )
        if adaptive:  # ⟨M, O⟩·O: the dual norm's scale (Bernstein & Newhouse 2024)
            out = jax.tree.map(
                lambda m, o: (jnp.sum(m.conj() * o) * o).astype(o.dtype), directions, out
            )
        out = jax.tree.map(lambda o, g: o.astype(g.dtype), out, updates)
        return out, MuonState(count=count, mu=mu, ns_coeffs=state.ns_coeffs)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def muon(
    learning_rate: ScalarOrSchedule,
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float | None = None,
    weight_decay: ScalarOrSchedule | None = None,
    weight_decay_mask: MaskOrFn = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adaptive: bool = False,
    preconditioning: str = "frobenius",
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: ScalarOrSchedule | None = None,
    muon_weight_dimension_numbers: WeightDimNumOrFn = None,
    consistent_rms: float | None = None,
    adam_paths: str | Sequence[str] = (),
    ns_dtype: Any = None,
    adjust_lr_fn: str | None = None,
    fallback: str | None = "adamw",
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Muon: Jordan et al.'s momentum orthogonalized by Newton–Schulz, AdamW elsewhere.

    For each matrix W (shape fan_in × fan_out; see ``muon_weight_dimension_numbers``)::

        G_t ← ∇_W L(θ_{t−1})
        B_t ← μ·B_{t−1} + G_t                       B_0 = 0
        M_t ← G_t + μ·B_t   (Nesterov; B_t without)
        O_t ← NS5(M_t)      ≈ U·Vᵀ for M_t = U·S·Vᵀ  (``newton_schulz``)
        W_t ← W_{t−1} − η_t·( s·O_t + λ·W_{t−1} )    s = √max(1, fan_out/fan_in)

    NS5 is five steps of X ← aX + b(XXᵀ)X + c(XXᵀ)²X from X_0 = M/(‖M‖_F + ε), with
    (a, b, c) = (3.4445, −4.7750, 2.0315). Every other leaf (vectors, scalars, and those
    ``adam_paths`` names) is updated by AdamW (``optlab.adamw`` with ``adam_b1``,
    ``adam_b2``, ε, ``adam_weight_decay`` at ``adam_learning_rate``, default η_t).

    Symbols → arguments: η_t = ``learning_rate``, μ = ``beta``, ε = ``eps`` (1e-8),
    λ = ``weight_decay`` (0; multiplied by η_t, not by s), NS5 = ``ns_coeffs``,
    ``ns_steps``. Names and defaults are optax.contrib's ``muon``.

    Which leaves are matrices (``muon_weight_dimension_numbers`` None): 2-D leaves as
    (fan_in, fan_out), and — optlab's default, unlike optax — leaves of more dimensions
    with every axis but the last as rows, so a conv kernel (H, W, I, O) is the
    (H·W·I) × O matrix of its im2col product. Pass a tree of ``MuonDimensionNumbers``
    (None for AdamW), or a function of the params, to choose (attention kernels
    (d, heads, head_dim) want reduction 0, output (1, 2)); ``adam_paths``: regular
    expressions of parameter paths (``optlab.param_paths``) sent to AdamW anyway — Jordan
    leaves embeddings and the output head to AdamW. ``muon_labels(params, ...)`` shows the
    assignment.

    Versus the libraries:

    - ``like="optax"`` (optax.contrib.muon): the momentum is a bias-corrected EMA,
      m_t = μm_{t−1} + (1−μ)G_t, M_t = μ·m_t/(1−μ^{t+1}) + (1−μ)·G_t/(1−μ^t) (Nesterov)
      or m_t/(1−μ^t); as NS normalizes M, the two forms differ only in the relative
      weight of G_t and the history (1 − μ^t factors) and through ε. Leaves of more than
      two dimensions go to the fallback, which is ``optax.adamw(..., nesterov=True)``:
      m̂ = μ₁·m_t/(1−μ₁^{t+1}) + (1−μ₁)·g_t/(1−μ₁^t), with muon's ε.
    - ``like="torch"`` (torch.optim.Muon, 2-D leaves only): B_t = μB_{t−1} + (1−μ)G_t,
      M_t = (1−μ)G_t + μB_t (a (1−μ) multiple of the paper's M_t, so the same after
      normalization except for ε); X_0 = M/max(‖M‖_F, ε) with ε = 1e-7, the iteration in
      bfloat16 (``ns_dtype``); W ← W(1 − η·λ) − η·s·O with λ = 0.1 by default and
      s = √max(1, A/B) for the stored shape (A, B) — torch's Linear stores (out, in), so
      on (in, out) kernels this is √max(1, fan_in/fan_out), the reverse of optax's on the
      same array. ``adjust_lr_fn="match_rms_adamw"``: s = 0.2·√max(A, B).
    - Jordan's reference code computes NS in bfloat16 with ε = 1e-7; optlab computes in
      the gradient's dtype unless ``ns_dtype`` is given.

    Args:
      learning_rate: η ≥ 0, or a schedule.
      ns_coeffs: (a, b, c), one per step, or a preset name (``"standard"``, ``"dion"``).
      ns_steps: Newton–Schulz steps.
      beta: μ in [0, 1).
      eps: ε ≥ 0 (None: 1e-8; torch's 1e-7 with ``like="torch"``).
      weight_decay: λ ≥ 0 on the matrices (None: 0; torch's 0.1 with ``like="torch"``).
      weight_decay_mask: which matrices decay (a tree of bools, a prefix, or a function).
      mu_dtype: dtype of the momentum buffers.
      nesterov: Nesterov momentum (the default, as in Jordan's code).
      adaptive: scale O_t by ⟨M_t, O_t⟩ (Bernstein & Newhouse 2024), as optax.
      preconditioning: ``"frobenius"`` (X_0 = M/‖M‖_F) or ``"spectral"`` (M/‖M‖_2).
      adam_b1, adam_b2, adam_eps_root, adam_weight_decay, adam_learning_rate: the AdamW
        of the other leaves.
      muon_weight_dimension_numbers: which leaves are matrices and how (see above).
      consistent_rms: s = r·√max(fan_in, fan_out) (Liu et al. 2025 use r = 0.2).
      adam_paths: path patterns sent to AdamW (embeddings, heads).
      ns_dtype: the dtype of the Newton–Schulz iteration (None: the gradient's).
      adjust_lr_fn: torch's shape factor (with ``like="torch"``).
      fallback: ``"adamw"`` for the leaves that are not matrices, or None to require
        every leaf to be one (``init`` raises otherwise, naming them).
      like: None (Jordan et al.), ``"optax"`` or ``"torch"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is an ``optax.partition``
      state with ``inner_states["muon"]`` and ``inner_states["adam"]``.

    Raises:
      ValueError: for out-of-range hyper-parameters; at ``init``, naming the leaves and
        the fix, when ``fallback=None`` and a leaf is not a matrix.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np, optlab
      >>> params = {"w": jnp.zeros((4, 3)), "b": jnp.zeros(3)}
      >>> tx = optlab.muon(0.1)
      >>> g = {"w": jax.random.normal(jax.random.key(0), (4, 3)), "b": jnp.ones(3)}
      >>> updates, _ = tx.update(g, tx.init(params), params)
      >>> s = np.linalg.svd(np.asarray(updates["w"]), compute_uv=False) / 0.1
      >>> bool(np.all((s > 0.6) & (s < 1.2)))  # orthogonalized: singular values near 1
      True

    References:
      Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024,
      https://kellerjordan.github.io/posts/muon/. Liu et al., "Muon is scalable for LLM
      training", 2025. Bernstein & Newhouse, "Old optimizer, new norm", 2024.
    """
    owner = "muon"
    _check_muon_args(owner, beta, 0.0 if eps is None else eps, like, preconditioning, adjust_lr_fn)
    _validation.check_learning_rate(owner, learning_rate)
    if isinstance(adam_paths, str):
        adam_paths = (adam_paths,)
    for pattern in adam_paths:
        try:
            re.compile(pattern)
        except re.error as err:
            _validation.fail(owner, "adam_paths", pattern, "regular expressions", str(err))
    if like == "torch":
        eps = TORCH_DEFAULTS["eps"] if eps is None else eps
        weight_decay = TORCH_DEFAULTS["weight_decay"] if weight_decay is None else weight_decay
        ns_dtype = TORCH_DEFAULTS["ns_dtype"] if ns_dtype is None else ns_dtype
    eps = 1e-8 if eps is None else eps
    weight_decay = 0.0 if weight_decay is None else weight_decay
    _validation.check_non_negative(owner, "eps", eps)
    _validation.check_unit_interval(owner, "adam_b1", adam_b1)
    _validation.check_unit_interval(owner, "adam_b2", adam_b2)
    if fallback not in ("adamw", None):
        _validation.fail(owner, "fallback", fallback, "'adamw' or None", "None: matrices only.")
    if like != "optax" and _validation.is_concrete_number(adam_eps_root) and adam_eps_root != 0:
        raise ValueError(
            "muon: `adam_eps_root` is optax's (ε inside the root of its AdamW); pass "
            "like='optax' with it, or leave it 0."
        )
    adam_paths = tuple(adam_paths)

    def dims_tree(params):
        return _resolve_dims(muon_weight_dimension_numbers, params, like, adam_paths)

    def labels(params):
        tree = dims_tree(params)
        out = jax.tree.map(
            lambda s: "muon" if _is_dim_nums(s) else "adam",
            tree,
            is_leaf=lambda x: x is None or _is_dim_nums(x),
        )
        if fallback is None and "adam" in jax.tree.leaves(out):
            from optlab._param_groups import param_paths

            others = [
                f"{path} {tuple(p.shape)}"
                for path, p, label in zip(
                    jax.tree.leaves(param_paths(params)),
                    jax.tree.leaves(params),
                    jax.tree.leaves(out),
                    strict=True,
                )
                if label == "adam"
            ]
            what = "no parameter is a matrix" if "muon" not in jax.tree.leaves(out) else ""
            raise ValueError(
                f"muon: {what or 'some parameters are not matrices'} and fallback=None: "
                f"{', '.join(others[:6])}{' ...' if len(others) > 6 else ''}. Pass "
                "fallback='adamw' (the default) to update them with AdamW, or "
                "muon_weight_dimension_numbers to say which axes are rows and columns."
            )
        return out

    def matrix_dims(updates):
        # Inside the partition the "adam" leaves are optax.MaskedNode; keep their slots.
        tree = dims_tree(updates)
        return jax.tree.map(
            lambda s, u: s if not isinstance(u, optax.MaskedNode) else u,
            tree,
            updates,
            is_leaf=lambda x: x is None or _is_dim_nums(x) or isinstance(x, optax.MaskedNode),
        )

    matrix_part = optax.chain(
        scale_by_muon(
            ns_coeffs,
            ns_steps,
            beta,
            eps,
            mu_dtype,
            nesterov=nesterov,
            adaptive=adaptive,
            preconditioning=preconditioning,
            weight_dimension_numbers=matrix_dims,
            ns_dtype=ns_dtype,
            like=like,
        ),
        scale_by_shape(matrix_dims, consistent_rms, adjust_lr_fn=adjust_lr_fn, like=like),
        decoupled_decay(owner, learning_rate, weight_decay, weight_decay_mask),
    )
    adam_rate = learning_rate if adam_learning_rate is None else adam_learning_rate
    if like == "optax":
        adam_part = optax.chain(
            scale_by_optax_adam(adam_b1, adam_b2, eps, adam_eps_root, mu_dtype, nesterov),
            decoupled_decay(owner, adam_rate, adam_weight_decay),
        )
    else:
        adam_part = adamw(adam_rate, adam_b1, adam_b2, eps, adam_weight_decay)
    partition = optax.partition({"muon": matrix_part, "adam": adam_part}, labels)
    return optax.GradientTransformationExtraArgs(partition.init, partition.update)
