"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import (
    MaskOrFn,
    ScalarOrSchedule,
    _decay_flags,
    check_like,
    init_count,
    learning_rate_at,
    next_count,
    scalar_like,
    zeros_like,
)
from optlab.optimizers._shampoo import (
    check_positive_int,
    check_real,
    check_static,
    compute_dtype,
    matmul,
    matrix_shape,
)
from optlab.optimizers._soap_basis import (
    eigenbasis,
    power_qr,
    project,
    project_back,
)


class SoapPreconditioner(NamedTuple):
    """One matrix leaf's Shampoo statistics and their eigenbases (the code's ``GG``, ``Q``).

    ``gg_left``, ``gg_right``: L, R, the EMAs of G·Gᵀ (m × m) and Gᵀ·G (n × n);
    ``q_left``, ``q_right``: Q_L, Q_R, their eigenvectors, eigenvalues in descending order.
    A side longer than ``max_precond_dim`` is None in both (that side is not rotated).
    """

    gg_left: jax.Array | None
    gg_right: jax.Array | None
    q_left: jax.Array | None
    q_right: jax.Array | None


class SoapState(NamedTuple):
    """``count``: updates made (the first only initializes, so Adam's step is ``count``);
    ``exp_avg``: M', Adam's first moment IN THE CURRENT EIGENBASIS; ``exp_avg_sq``: V, the
    second moment of the rotated gradients; ``preconditioners``: like the params, a
    ``SoapPreconditioner`` per matrix leaf, None per 0-D/1-D leaf (plain Adam)."""

    count: jax.Array
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates
    preconditioners: Any


def check_soap_hyperparams(
    b1, b2, shampoo_beta, eps, weight_decay, precondition_frequency, max_precond_dim
) -> None:
    owner = "soap"
    _validation.check_unit_interval(owner, "b1", b1, "Vyas et al. use b1=0.95.")
    _validation.check_unit_interval(owner, "b2", b2, "Vyas et al. use b2=0.95.")
    if _validation.is_concrete_number(shampoo_beta) and shampoo_beta >= 1:
        _validation.fail(
            owner, "shampoo_beta", shampoo_beta, "in [0, 1), or < 0 for b2", "The code uses -1."
        )
    _validation.check_non_negative(owner, "eps", eps, "Vyas et al. use eps=1e-8.")
    if not callable(weight_decay):
        _validation.check_non_negative(owner, "weight_decay", weight_decay, "Use e.g. 0.01.")
    check_positive_int(owner, "precondition_frequency", precondition_frequency)
    check_positive_int(owner, "max_precond_dim", max_precond_dim, minimum=0)
    check_static(owner, "max_precond_dim", max_precond_dim)


def scale_by_soap(
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float = -1,
    eps: float = 1e-8,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """SOAP's direction d_t = c_t·N_t (see ``soap``); 0 on the first update."""
    check_like("soap", like, ())
    check_soap_hyperparams(b1, b2, shampoo_beta, eps, 0.0, precondition_frequency, max_precond_dim)
    max_precond_dim = int(max_precond_dim)
    if _validation.is_concrete_number(shampoo_beta):
        beta = shampoo_beta if shampoo_beta >= 0 else b2
    else:  # traced (optax.inject_hyperparams)
        beta = jnp.where(jnp.asarray(shampoo_beta) >= 0, shampoo_beta, b2)

    def init_leaf(p):
        shape = matrix_shape(p.shape)
        if shape is None:
            return None
        dtype = compute_dtype(p.dtype)
        sides = [jnp.zeros((s, s), dtype) if s <= max_precond_dim else None for s in shape]
        eyes = [None if s is None else jnp.eye(s.shape[0], dtype=dtype) for s in sides]
        return SoapPreconditioner(*sides, *eyes)

    def init_fn(params):
        check_real("soap", params)
        return SoapState(
            count=init_count(),
            exp_avg=zeros_like(params),
            exp_avg_sq=zeros_like(params),
            preconditioners=jax.tree.map(init_leaf, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = state.count  # on updates after the first, Adam's step k = count

        def leaf(g, m, v, pre):
            cd = compute_dtype(g.dtype)
            shape = matrix_shape(g.shape) if pre is not None else g.shape
            x = g.astype(cd).reshape(shape)
            m_c, v_c = m.astype(cd).reshape(shape), v.astype(cd).reshape(shape)
            gg, q = (None, None), (None, None)
            if pre is not None:  # L ← β·L + (1 − β)·G·Gᵀ, R ← β·R + (1 − β)·Gᵀ·G
                w, w1 = scalar_like(beta, x), scalar_like(1.0 - beta, x)
                grams = (matmul(x, x.T), matmul(x.T, x))
                gg = tuple(
                    None if s is None else w * s + w1 * gram
                    for s, gram in zip((pre.gg_left, pre.gg_right), grams, strict=True)
                )
                q = (pre.q_left, pre.q_right)

            def first():
                new_q = tuple(None if s is None else eigenbasis(s) for s in gg)
                return jnp.zeros_like(x), m_c, v_c, new_q

            def later():
                rotated = project(x, q)
                m_new = scalar_like(b1, x) * m_c + scalar_like(1.0 - b1, x) * rotated
                v_new = scalar_like(b2, x) * v_c + scalar_like(1.0 - b2, x) * rotated * rotated
                n = project_back(m_new / (jnp.sqrt(v_new) + scalar_like(eps, x)), q)
                if normalize_grads:
                    n = n / (1e-30 + jnp.sqrt(jnp.mean(n * n)))
                if correct_bias:
                    k = count
                    n = n * scalar_like(
                        jnp.sqrt(1.0 - jnp.asarray(b2) ** k) / (1.0 - jnp.asarray(b1) ** k), x
                    )

                def refresh():
                    new_q, v_r = [], v_new
                    for axis, (s, qs) in enumerate(zip(gg, q, strict=True)):
                        if s is None:
                            new_q.append(None)
                            continue
                        qs, v_r = power_qr(s, qs, v_r, axis)
                        new_q.append(qs)
                    new_q = tuple(new_q)
                    # M' into the new basis: Q_L'ᵀ·(Q_L·M'·Q_Rᵀ)·Q_R'.
                    return project(project_back(m_new, q), new_q), v_r, new_q

                if pre is None:
                    m_r, v_r, new_q = m_new, v_new, q
                else:
                    m_r, v_r, new_q = jax.lax.cond(
                        count % precondition_frequency == 0,
                        refresh,
                        lambda: (m_new, v_new, q),
                    )
                return n, m_r, v_r, new_q

            d, m_out, v_out, new_q = jax.lax.cond(count == 0, first, later)
            new_pre = None if pre is None else SoapPreconditioner(*gg, *new_q)
            return (
                d.reshape(g.shape).astype(g.dtype),
                m_out.reshape(m.shape).astype(m.dtype),
                v_out.reshape(v.shape).astype(v.dtype),
                new_pre,
            )

        treedef = jax.tree.structure(updates)
        out = [
            leaf(g, m, v, pre)
            for g, m, v, pre in zip(
                treedef.flatten_up_to(updates),
                treedef.flatten_up_to(state.exp_avg),
                treedef.flatten_up_to(state.exp_avg_sq),
                treedef.flatten_up_to(state.preconditioners),
                strict=True,
            )
        ]
        d, m, v, pre = (treedef.unflatten([o[i] for o in out]) for i in range(4))
        new_state = SoapState(count=next_count(count), exp_avg=m, exp_avg_sq=v, preconditioners=pre)
        return d, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class SoapStepState(NamedTuple):
    """``count``: updates made, for the schedules (and the first, initializing, update)."""

    count: jax.Array


def soap_step(
    learning_rate: ScalarOrSchedule, weight_decay: ScalarOrSchedule, mask: MaskOrFn = None
) -> optax.GradientTransformationExtraArgs:
    """The code's step: θ' ← θ − α·d, then θ'' ← θ' − α·λ·θ' (the decay of the UPDATED
    weights); nothing on the first update. As an update: −α·d − α·λ·(θ − α·d)."""
    _validation.check_learning_rate("soap", learning_rate)
    zero_decay = _validation.is_concrete_number(weight_decay) and weight_decay == 0

    def init_fn(params):
        del params
        return SoapStepState(count=init_count())

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        alpha = learning_rate_at(learning_rate, state.count)
        first = state.count == 0
        new_state = SoapStepState(count=next_count(state.count))

        def step(d, p=None, decays=False):
            a = scalar_like(alpha, d)
            u = -(a * d)
            if decays:
                lam = scalar_like(learning_rate_at(weight_decay, state.count), p)
                u = u - a * lam * (p + u)
            return jnp.where(first, jnp.zeros_like(u), u)

        if zero_decay:
            return jax.tree.map(step, updates), new_state
        if params is None:
            raise ValueError("soap: `update` needs `params` for the weight decay term.")
        return jax.tree.map(step, updates, params, _decay_flags(mask, params)), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def soap(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.95,
    b2: float = 0.95,
    shampoo_beta: float = -1,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.01,
    precondition_frequency: int = 10,
    max_precond_dim: int = 10000,
    normalize_grads: bool = False,
    correct_bias: bool = True,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SOAP: Vyas et al.'s Algorithm 3 (Adam in the eigenbasis of Shampoo's L, R), with
    Algorithm 4 (one power iteration + QR) refreshing the basis.

    For a matrix W ∈ ℝ^{m×n} (the box, with the authors' code's boundary conditions)::

        t = 0:  L ← (1 − β)·G_0·G_0ᵀ,  R ← (1 − β)·G_0ᵀ·G_0
                Q_L, Q_R ← eigh(L), eigh(R) (eigenvalues descending);  W does not move
        for k = 1, 2, …   (the k-th update after the first)
            G  ← ∇f(W)
            G' ← Q_Lᵀ·G·Q_R
            M' ← β1·M' + (1 − β1)·G'               (M' = Q_Lᵀ·M·Q_R: M in the basis)
            V  ← β2·V + (1 − β2)·G' ⊙ G'
            N  ← Q_L·( M' / (√V + ε) )·Q_Rᵀ
            N  ← N / (1e-30 + rms(N))               (only if normalize_grads)
            W  ← W − α_k·c_k·N,   c_k = √(1 − β2^k)/(1 − β1^k)   (1 if not correct_bias)
            W  ← W − α_k·λ·W                        (decoupled decay of the updated W)
            L  ← β·L + (1 − β)·G·Gᵀ,   R ← β·R + (1 − β)·Gᵀ·G
            if k ≡ 0 (mod f):                        (Algorithm 4, per side)
                order ← argsort(−diag(Q_Lᵀ·L·Q_L));  Q_L ← Q_L[:, order];  V's rows ← order
                Q_L ← QR(L·Q_L).Q                    (R, Q_R, V's columns alike)
                M' ← Q_Lᵀ·(Q_L,old·M'·Q_R,oldᵀ)·Q_R  (M rotated into the new basis)

    Symbols → arguments (the authors' code's names and defaults): α = ``learning_rate``
    (the code's lr = 3e-3; required here, a float or a schedule of the number of updates
    made), β1 = ``b1``, β2 = ``b2`` (the code's ``betas=(0.95, 0.95)``), β =
    ``shampoo_beta`` (< 0, the code's −1: β = β2), ε = ``eps``, λ = ``weight_decay``,
    f = ``precondition_frequency``, ``max_precond_dim``: a side longer than this keeps
    Q = I (no statistics, no rotation on that side), ``normalize_grads``,
    ``correct_bias`` as in the code. ``mask`` selects the leaves that decay.

    As the paper says, M is Adam's momentum of the gradients in the original space, read
    in the current basis (line 5 of Algorithm 3); it is stored in the basis (M', as the
    code's ``exp_avg``) and rotated into the new basis when the basis changes, which is
    the same thing. V is not rotated: only its rows/columns follow the sorted columns
    (the code's ``index_select``). The first gradient only builds L, R and the first
    basis (the code's "first step is skipped"): no leaf moves and nothing decays on the
    first update, and the schedule's α(0) is unused.

    QR and eigenvector signs: each column of Q_L (Q_R) is defined up to its sign. The
    iterates do not depend on it: flipping a column flips the same row (column) of G' and
    M', leaves V unchanged, and cancels in Q_L·N'·Q_Rᵀ; so ``jnp.linalg.qr``'s convention
    (LAPACK's Householder, the same as ``numpy.linalg.qr`` and ``torch.linalg.qr``) is
    immaterial. What does matter: an eigenvalue of L_0 with multiplicity > 1 (a null space
    of dimension ≥ 2, e.g. G_0 of shape (2, 5) makes R_0 rank 2) leaves its eigenvectors
    arbitrary, and any implementation's iterates then depend on its eigh.

    Which leaves: 2-D leaves are matrices; a leaf with more dimensions is rotated as the
    matrix that flattens all but its LAST dimension into rows (a conv kernel (H, W, I, O)
    as (H·W·I, O); the code instead keeps one Q per dimension); 0-D and 1-D leaves get
    plain Adam in the code's form (ε added to √v, the bias corrections in c_k, the first
    update skipped), the code's default ``precondition_1d=False``. Its ``merge_dims`` and
    ``data_format`` are not offered. L, R, Q (and the eigh/QR) are float32 (float64 for
    float64 params); M', V are stored in the params' dtype.

    Cost per (m, n) leaf and step (both sides rotated): 6mn(m + n) flops (G', N and the
    two statistics, four matmuls of (m×m)·(m×n) or (m×n)·(n×n) each side); every f steps
    per side 2s³ (P·Q) + ≈ 8s³/3 (QR) plus 4mn(m + n) to rotate M'; the first update an
    eigh per side (≈ 9s³).

    Versus the libraries: neither optax nor torch.optim has SOAP (the authors' code is
    PyTorch, github.com/nikhilvyas/SOAP): ``like="optax"``, ``like="torch"`` raise.
    Complex parameters are not supported (``init`` raises). ``max_precond_dim`` sets
    shapes, so under ``optax.inject_hyperparams`` pass it in ``static_args``.

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1).
      b2: β2 in [0, 1).
      shampoo_beta: β in [0, 1) for the statistics, or < 0 for β = β2.
      eps: ε ≥ 0.
      weight_decay: λ ≥ 0, or a schedule.
      precondition_frequency: f ≥ 1, updates between basis refreshes.
      max_precond_dim: sides longer than this are not rotated (an int ≥ 0).
      normalize_grads: divide N by its root mean square (per leaf).
      correct_bias: Adam's bias corrections, folded into the step as in the code.
      mask: which leaves decay; None decays all.
      like: None only (no library has SOAP).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._soap import soap
      >>> tx = soap(0.1, weight_decay=0.0)
      >>> w = jnp.zeros((2, 2))
      >>> u0, state = tx.update(jnp.array([[3.0, 0.0], [0.0, -2.0]]), tx.init(w))
      >>> u1, state = tx.update(jnp.array([[1.0, 0.0], [0.0, 1.0]]), state)
      >>> print(float(jnp.abs(u0).max()), np.round(np.asarray(u1, float), 4))  # −α·sign
      0.0 [[-0.1 -0. ]
       [-0.  -0.1]]

    References:
      Vyas, Morwani, Zhao, Shapira, Brandfonbrener, Janson & Kakade, "SOAP: Improving and
      stabilizing Shampoo using Adam", ICLR 2025 (arXiv:2409.11321); code:
      github.com/nikhilvyas/SOAP.
    """
    check_like("soap", like, ())
    check_soap_hyperparams(
        b1, b2, shampoo_beta, eps, weight_decay, precondition_frequency, max_precond_dim
    )
    direction = scale_by_soap(
        b1,
        b2,
        shampoo_beta,
        eps,
        precondition_frequency,
        max_precond_dim,
        normalize_grads,
        correct_bias,
    )
    return optax.chain(direction, soap_step(learning_rate, weight_decay, mask))
