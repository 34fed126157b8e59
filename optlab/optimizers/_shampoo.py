"""Shampoo: Kronecker-factored preconditioning of matrix parameters (Gupta, Koren & Singer
2018), with the practical extensions of Anil et al. 2020 (blocks, EMA statistics, stale
inverse roots, Adam grafting, momentum)."""

from __future__ import annotations

import functools
import math
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
    next_count,
    scalar_like,
    zeros_like,
)

GRAFTS = ("adam", None)

# Statistics and rotations are formed at full float32 (or float64) precision: on GPU/TPU a
# default-precision float32 matmul may round its inputs to TF32/bfloat16.
matmul = functools.partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)


# ----------------------------------------------------------------------------------------
# Helpers shared with SOAP (``_soap.py``).


def compute_dtype(dtype: Any) -> Any:
    """float32 for bfloat16/float16/float32 leaves, float64 for float64 ones (under x64)."""
    return jnp.promote_types(dtype, jnp.float32)


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The (rows, columns) a leaf is preconditioned as, or None for a diagonal leaf.

    2-D leaves are themselves; a leaf with more dimensions has all but its LAST flattened
    into rows (a conv kernel (H, W, I, O) → (H·W·I, O)); 0-D/1-D leaves (and empty ones)
    are None.
    """
    if len(shape) < 2 or math.prod(shape) == 0:
        return None
    return math.prod(shape[:-1]), shape[-1]


def check_real(owner: str, params: Any) -> None:
    for leaf in jax.tree.leaves(params):
        if jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise ValueError(
                f"{owner}: complex parameters are not supported (the Kronecker-factored "
                "statistics G·Gᵀ, Gᵀ·G are defined here for real matrices). Split the "
                "parameter into real and imaginary parts."
            )


def check_positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    """``value`` is an int ≥ ``minimum`` (traced values pass)."""
    if isinstance(value, bool) or (
        _validation.is_concrete_number(value) and (value != int(value) or value < minimum)
    ):
        _validation.fail(owner, name, value, f"an integer >= {minimum}", "")
    if not _validation.is_concrete_number(value) and not isinstance(value, jax.Array):
        _validation.fail(owner, name, value, f"an integer >= {minimum}", "")


def check_static(owner: str, name: str, value: Any) -> None:
    """``value`` sets shapes, so it cannot be traced."""
    if not _validation.is_concrete_number(value):
        _validation.fail(
            owner,
            name,
            value,
            "a Python int (it sets shapes)",
            "Under optax.inject_hyperparams pass it in static_args.",
        )


# ----------------------------------------------------------------------------------------
# Shampoo.


class ShampooBlocks(NamedTuple):
    """One matrix leaf's preconditioner, block by block (``nr × nc`` blocks of ``br × bc``).

    ``left``: L, shape (nr, nc, br, br); ``right``: R, shape (nr, nc, bc, bc);
    ``left_root``/``right_root``: L^{−1/4}, R^{−1/4} as of the last refresh.
    """

    left: jax.Array
    right: jax.Array
    left_root: jax.Array
    right_root: jax.Array


class ShampooState(NamedTuple):
    """``count``: updates made; ``mu``: m, the EMA of gradients (b1); ``nu``: v, the Adam
    graft's EMA of squared gradients (graft_b2), also the diagonal leaves' Adam;
    ``preconditioners``: like the params, a ``ShampooBlocks`` per matrix leaf, None per
    0-D/1-D leaf."""

    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    preconditioners: Any


def block_layout(m: int, n: int, block_size: int) -> tuple[int, int, int, int]:
    """(nr, nc, br, bc): a dimension up to ``block_size`` is one block, a longer one is cut
    into blocks of ``block_size`` (the last one zero-padded)."""
    br, bc = min(block_size, m), min(block_size, n)
    return -(-m // br), -(-n // bc), br, bc


def to_blocks(x: jax.Array, layout: tuple[int, int, int, int]) -> jax.Array:
    """(m, n) → (nr, nc, br, bc), zero-padded at the bottom/right."""
    nr, nc, br, bc = layout
    m, n = x.shape
    x = jnp.pad(x, ((0, nr * br - m), (0, nc * bc - n)))
    return x.reshape(nr, br, nc, bc).transpose(0, 2, 1, 3)


def from_blocks(xb: jax.Array, m: int, n: int) -> jax.Array:
    nr, nc, br, bc = xb.shape
    return xb.transpose(0, 2, 1, 3).reshape(nr * br, nc * bc)[:m, :n]


def inverse_root(stat: jax.Array, eps: Any, p: int = 4) -> jax.Array:
    """S^{−1/p} = Q·diag(max(λ, floor)^{−1/p})·Qᵀ from ``jnp.linalg.eigh`` (batched), the
    floor max(ε, s·u·λ_max) (s: the side, u: the dtype's machine epsilon): eigenvalues
    below s·u·λ_max are eigh's rounding noise, whose inverse root would amplify it."""
    w, q = jnp.linalg.eigh(stat)
    resolution = stat.shape[-1] * jnp.finfo(w.dtype).eps * jnp.max(w, axis=-1, keepdims=True)
    w = jnp.maximum(w, jnp.maximum(scalar_like(eps, w), resolution))
    return matmul(q * (w ** (-1.0 / p))[..., None, :], jnp.swapaxes(q, -1, -2))


def _gram(xb: jax.Array, side: str) -> jax.Array:
    xt = jnp.swapaxes(xb, -1, -2)
    return matmul(xb, xt) if side == "left" else matmul(xt, xb)


def check_shampoo_hyperparams(
    b1, b2, eps, block_size, precondition_every, graft, graft_b2, graft_eps
) -> None:
    owner = "shampoo"
    _validation.check_unit_interval(owner, "b1", b1, "Anil et al. use b1=0.9.")
    if _validation.is_concrete_number(b2) and not 0.0 <= b2 <= 1.0:
        _validation.fail(owner, "b2", b2, "in [0, 1]", "1 sums the statistics (the paper).")
    if _validation.is_concrete_number(eps) and not (math.isfinite(eps) and eps > 0):
        _validation.fail(owner, "eps", eps, "a finite number > 0", "Use e.g. 1e-12.")
    check_positive_int(owner, "block_size", block_size)
    check_static(owner, "block_size", block_size)
    check_positive_int(owner, "precondition_every", precondition_every)
    if graft not in GRAFTS:
        _validation.fail(owner, "graft", graft, f"one of {GRAFTS}", "'adam' is Anil et al.'s.")
    _validation.check_unit_interval(owner, "graft_b2", graft_b2, "Use e.g. 0.999.")
    _validation.check_non_negative(owner, "graft_eps", graft_eps, "Use e.g. 1e-8.")


def scale_by_shampoo(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-12,
    block_size: int = 128,
    precondition_every: int = 1,
    graft: str | None = "adam",
    graft_b2: float = 0.999,
    graft_eps: float = 1e-8,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Shampoo's direction U_t (the box of ``shampoo`` without α and λ)."""
    check_like("shampoo", like, ())
    check_shampoo_hyperparams(
        b1, b2, eps, block_size, precondition_every, graft, graft_b2, graft_eps
    )
    block_size = int(block_size)

    def init_leaf(p):
        shape = matrix_shape(p.shape)
        if shape is None:
            return None
        nr, nc, br, bc = block_layout(*shape, block_size)
        dtype = compute_dtype(p.dtype)

        def eye(k):
            return jnp.broadcast_to(jnp.eye(k, dtype=dtype), (nr, nc, k, k))

        left, right = eps * eye(br), eps * eye(bc)
        return ShampooBlocks(left, right, eye(br), eye(bc))

    def init_fn(params):
        check_real("shampoo", params)
        return ShampooState(
            count=init_count(),
            mu=zeros_like(params),
            nu=zeros_like(params),
            preconditioners=jax.tree.map(init_leaf, params),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        count = state.count
        t = next_count(count)
        refresh = count % precondition_every == 0  # t = 1, 1 + k, 1 + 2k, …

        def leaf(g, m, v, pre):
            cd = compute_dtype(g.dtype)
            g_c = g.astype(cd)
            m_new = scalar_like(b1, g_c) * m.astype(cd) + scalar_like(1.0 - b1, g_c) * g_c
            v_new = scalar_like(graft_b2, g_c) * v.astype(cd) + scalar_like(
                1.0 - graft_b2, g_c
            ) * abs_sq(g_c)
            m_hat = m_new / scalar_like(1.0 - jnp.asarray(b1) ** t, g_c)
            v_hat = v_new / scalar_like(1.0 - jnp.asarray(graft_b2) ** t, g_c)
            adam = m_hat / (jnp.sqrt(v_hat) + scalar_like(graft_eps, g_c))
            if pre is None:  # 0-D / 1-D leaves: Adam (b1, graft_b2, graft_eps)
                return adam.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype), pre
            rows, cols = matrix_shape(g.shape)
            layout = pre.left.shape[0], pre.left.shape[1], pre.left.shape[2], pre.right.shape[2]
            gb = to_blocks(g_c.reshape(rows, cols), layout)
            w1 = scalar_like(b2, g_c)
            w2 = jnp.where(jnp.asarray(b2) == 1, 1.0, 1.0 - jnp.asarray(b2)).astype(cd)
            left = w1 * pre.left + w2 * _gram(gb, "left")
            right = w1 * pre.right + w2 * _gram(gb, "right")
            left_root, right_root = jax.lax.cond(
                refresh,
                lambda: (inverse_root(left, eps), inverse_root(right, eps)),
                lambda: (pre.left_root, pre.right_root),
            )
            mb = to_blocks(m_hat.reshape(rows, cols), layout)
            d = matmul(matmul(left_root, mb), right_root)
            if graft == "adam":  # per block: ‖U‖ = ‖Adam's update‖, U ∥ D
                ab = to_blocks(adam.reshape(rows, cols), layout)
                norm_a = jnp.sqrt(jnp.sum(ab * ab, axis=(-2, -1), keepdims=True))
                norm_d = jnp.sqrt(jnp.sum(d * d, axis=(-2, -1), keepdims=True))
                safe = jnp.where(norm_d > 0, norm_d, 1)
                d = d * jnp.where(norm_d > 0, norm_a / safe, 0)
            direction = from_blocks(d, rows, cols).reshape(g.shape)
            new_pre = ShampooBlocks(left, right, left_root, right_root)
            return direction.astype(g.dtype), m_new.astype(m.dtype), v_new.astype(v.dtype), new_pre

        treedef = jax.tree.structure(updates)
        out = [
            leaf(g, m, v, pre)
            for g, m, v, pre in zip(
                treedef.flatten_up_to(updates),
                treedef.flatten_up_to(state.mu),
                treedef.flatten_up_to(state.nu),
                treedef.flatten_up_to(state.preconditioners),
                strict=True,
            )
        ]
        direction, mu, nu, pre = (treedef.unflatten([o[i] for o in out]) for i in range(4))
        return direction, ShampooState(count=t, mu=mu, nu=nu, preconditioners=pre)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def shampoo(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-12,
    block_size: int = 128,
    precondition_every: int = 1,
    graft: str | None = "adam",
    graft_b2: float = 0.999,
    graft_eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    mask: MaskOrFn = None,
    *,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Shampoo: Gupta, Koren & Singer's Algorithm 1 for matrices, with Anil et al.'s
    blocks, EMA statistics, stale roots, Adam grafting and momentum.

    The paper's box (for a matrix W ∈ ℝ^{m×n})::

        L_0 ← εI_m,  R_0 ← εI_n
        for t = 1, 2, …
            G_t ← ∇f_t(W_{t−1})
            L_t ← L_{t−1} + G_t·G_tᵀ
            R_t ← R_{t−1} + G_tᵀ·G_t
            W_t ← W_{t−1} − η·L_t^{−1/4}·G_t·R_t^{−1/4}

    With the practical extensions (Anil et al. 2020), per matrix leaf and per block B of
    at most ``block_size × block_size`` (a longer dimension is cut into blocks of
    ``block_size``, the last one shorter; each block has its own L, R)::

        m_t ← β1·m_{t−1} + (1 − β1)·G_t,         m̂_t ← m_t/(1 − β1^t)
        L_t ← β2·L_{t−1} + w·G_B·G_Bᵀ,            R_t ← β2·R_{t−1} + w·G_Bᵀ·G_B
              (w = 1 − β2, or w = 1 if β2 = 1: the paper's sum)
        if t ≡ 1 (mod k):  P_L ← L_t^{−1/4},  P_R ← R_t^{−1/4}      (else: the stale ones)
        D_B ← P_L·m̂_B·P_R
        graft = "adam":  v_t ← β2'·v_{t−1} + (1 − β2')·G_t²,  v̂_t ← v_t/(1 − β2'^t)
                         A_t ← m̂_t/(√v̂_t + ε')                       (Adam's update)
                         U_B ← (‖A_B‖_F / ‖D_B‖_F)·D_B   (0 where D_B = 0)
        graft = None:    U_B ← D_B
        W_t ← W_{t−1} − α_t·(U_t + λ·W_{t−1})

    Symbols → arguments: α_t = ``learning_rate`` (the paper's η; a float or a schedule of
    the number of updates made), β1 = ``b1`` (0: no momentum, m̂ = G), β2 = ``b2`` (1: the
    paper's sum), ε = ``eps``, block size = ``block_size``, k = ``precondition_every``
    (the first root is taken at t = 1, then at 1 + k, 1 + 2k, …), β2' = ``graft_b2``,
    ε' = ``graft_eps``, λ = ``weight_decay`` (decoupled, on the leaves ``mask`` selects).
    With ``graft=None, b1=0, b2=1`` and a block per leaf, every step is the paper's box.

    The inverse roots: ``jnp.linalg.eigh`` of L (R) in float32 (float64 for float64
    params), eigenvalues clipped at ε: S^{−1/4} = Q·diag(max(λ, ε̃)^{−1/4})·Qᵀ with
    ε̃ = max(ε, s·u·λ_max) (s: the block's side, u: the machine epsilon of the float32 or
    float64 computation). Eigenvalues below s·u·λ_max are eigh's rounding noise (a null
    direction of a rank-deficient L comes out as ±1e-7·λ_max in float32), and their
    inverse root would amplify that noise; the extra floor binds only where ε < s·u·λ_max,
    i.e. on eigenvalues the dtype cannot resolve anyway (in this module's float64 tests,
    nowhere).
    With the sum (β2 = 1) L ⪰ εI and the clip does nothing; with an EMA the εI of L_0
    decays and the clip keeps the floor. The statistics are not bias-corrected (only
    their scale would change, which the graft sets anyway). ε = 1e-12 is the default of
    Meta's distributed Shampoo (Shi et al. 2023). The statistics, roots and matmuls run
    in float32 (float64) at ``Precision.HIGHEST``; m and v are stored in the params' dtype.

    Which leaves: a 2-D leaf is one matrix; a leaf with more dimensions is preconditioned
    as the matrix that flattens all but its LAST dimension into rows (a conv kernel
    (H, W, I, O) as (H·W·I, O)). 0-D and 1-D leaves (biases, scales) get the graft's
    Adam, A_t, whatever ``graft`` is.

    Cost per (m, n) leaf and step, one block (m, n ≤ ``block_size``): 4mn(m + n) flops for
    the statistics and D, about 11(m³ + n³) for the two roots every k steps (eigh ≈ 9s³,
    the product ≈ 2s³); blocked with b_r × b_c blocks: 4mn(b_r + b_c) and
    (mn/(b_r·b_c))·11(b_r³ + b_c³) every k steps. Memory: L and R per block (≈ mn·(b_r/b_c
    + b_c/b_r) numbers, twice with the roots), plus m and v.

    Versus the libraries: neither optax nor torch.optim has Shampoo (optax's old
    ``distributed_shampoo`` lives outside it): ``like="optax"`` and ``like="torch"``
    raise. Complex parameters are not supported (``init`` raises).

    Hyper-parameters that set shapes (``block_size``) cannot be traced: under
    ``optax.inject_hyperparams`` pass them in ``static_args`` (``precondition_every`` may
    be traced; the refresh is ``count % k == 0`` inside ``lax.cond``, so nothing
    recompiles).

    Args:
      learning_rate: α ≥ 0, or a schedule.
      b1: β1 in [0, 1), the momentum (EMA of gradients, bias-corrected).
      b2: β2 in [0, 1], the statistics' EMA (1: the paper's running sum).
      eps: ε > 0: L_0 = R_0 = εI and the floor of their eigenvalues.
      block_size: the largest block side (an int ≥ 1).
      precondition_every: k ≥ 1, steps between recomputations of the inverse roots.
      graft: ``"adam"`` (the step's size per block from Adam's update) or None.
      graft_b2: β2' in [0, 1), the Adam graft's second-moment decay.
      graft_eps: ε' ≥ 0, the Adam graft's ε.
      weight_decay: λ ≥ 0 (decoupled), or a schedule.
      mask: which leaves decay; None decays all.
      like: None only (no library has Shampoo).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its ``update`` needs ``params`` when
      λ ≠ 0.

    Example:
      >>> import jax.numpy as jnp, numpy as np
      >>> from optlab.optimizers._shampoo import shampoo
      >>> tx = shampoo(1.0, b1=0.0, b2=1.0, eps=1e-30, graft=None)
      >>> g = jnp.array([[3.0, 0.0], [0.0, -2.0]])
      >>> u, _ = tx.update(g, tx.init(jnp.zeros((2, 2))))
      >>> print(np.round(np.asarray(u, float), 4))  # (GGᵀ)^{−1/4} G (GᵀG)^{−1/4} = sign(G)
      [[-1. -0.]
       [-0.  1.]]

    References:
      Gupta, Koren & Singer, "Shampoo: Preconditioned stochastic tensor optimization",
      ICML 2018 (arXiv:1802.09568).
      Anil, Gupta, Koren, Regan & Singer, "Scalable second order optimization for deep
      learning", 2020 (arXiv:2002.09018).
      Shi et al., "A distributed data-parallel PyTorch implementation of the distributed
      Shampoo optimizer", 2023 (arXiv:2309.06497).
    """
    check_like("shampoo", like, ())
    direction = scale_by_shampoo(
        b1, b2, eps, block_size, precondition_every, graft, graft_b2, graft_eps
    )
    return optax.chain(direction, decoupled_decay("shampoo", learning_rate, weight_decay, mask))
